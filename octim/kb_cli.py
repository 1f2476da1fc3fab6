"""``octim kb import | export | ask``: the knowledge base from the command line.

These open the data directory directly. Import is all-or-nothing unless
``--skip-bad``; a running engine sees imported entries after a restart.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import trio

from octim.domain.kb.knowledge import KnowledgeBase, export_line, validate_entry
from octim.errors import OctimError
from octim.store import Environment, Put, open_store, pack, unpack
from octim.store.crypto import load_keys


def _read_entries(data: Path) -> list[dict[str, Any]]:
    return [row for _, row in _read(data, "kb")]


def _read(data: Path, db: str) -> list[tuple[bytes, Any]]:
    env = Environment(data, readonly=True)
    try:
        with env.read() as txn:
            return [(bytes(key), unpack(raw)) for key, raw in txn.cursor(db=env.dbs[db])]
    finally:
        env.close()


def import_file(path: Path, data: Path, *, skip_bad: bool, out: TextIO) -> int:
    """Upsert every line of ``path``; report counts; exit code 0, or 1 on rejection."""
    good: list[dict[str, Any]] = []
    bad: list[tuple[int, str]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"octim: cannot read {path}: {exc}", file=sys.stderr)
        return 1
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            good.append(validate_entry(json.loads(line), int(time.time() * 1000)))
        except (ValueError, OctimError) as exc:
            bad.append((number, str(exc)))
    for number, problem in bad:
        print(f"{path}:{number}: {problem}", file=sys.stderr)
    if bad and not skip_bad:
        print(f"octim: {len(bad)} bad line(s); nothing imported (use --skip-bad to import the "
              "rest)", file=sys.stderr)
        return 1
    existing = {e["id"] for e in _read_entries(data)} if (data / "data.mdb").exists() else set()

    async def write() -> None:
        async with open_store(data, keys=load_keys(os.environ.get("OCTIM_DATA_KEY", ""),
                              os.environ.get("OCTIM_DATA_KEY_FILE", ""))) as store:
            await store.write([Put("kb", e["id"].encode(), pack(e)) for e in good])

    trio.run(write)
    created = sum(1 for e in good if e["id"] not in existing)
    print(json.dumps({"imported": len(good), "created": created,
                      "updated": len(good) - created, "rejected": len(bad)}), file=out)
    return 0


def export(data: Path, out: TextIO) -> int:
    """Every entry as one JSON line with exactly the import fields."""
    for entry in sorted(_read_entries(data), key=lambda e: e["id"]):
        out.write(json.dumps(export_line(entry), ensure_ascii=False) + "\n")
    return 0


def ask(data: Path, shop: str | None, questions: Iterable[str], out: TextIO) -> int:
    """One JSON object per question: ``{"id", "answer", "score", "confidence",
    "answered"}``, with the shops' and the platform's synonym lists as the engine has them."""
    kb = KnowledgeBase(_read_entries(data), synonyms={
        key.decode(): row["synonyms"] for key, row in _read(data, "kb_synonyms")})
    for question in questions:
        question = question.strip()
        if not question:
            continue
        result = kb.ask(question, shop)
        out.write(json.dumps({k: result[k] for k in ("id", "answer", "score", "confidence",
                                                     "answered")},
                             ensure_ascii=False) + "\n")
        out.flush()
    return 0
