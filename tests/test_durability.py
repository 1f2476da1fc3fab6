"""An acknowledged write survives SIGKILL, and the store stays consistent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import trio

from octim.store import open_store
from tests.durability_child import body

CHILD = Path(__file__).with_name("durability_child.py")
ROOT = Path(__file__).resolve().parent.parent


def run_and_kill(data: Path, acks_wanted: int) -> list[tuple[str, int]]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(CHILD), str(data)], stdout=subprocess.PIPE,
                            env=env, text=True)
    acked: list[tuple[str, int]] = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            conv, seq = line.split()
            acked.append((conv, int(seq)))
            if len(acked) >= acks_wanted:
                proc.send_signal(signal.SIGKILL)  # mid-stream: writes are in flight
                break
        # Lines already in the pipe were acknowledged before the kill too.
        rest, _ = proc.communicate(timeout=30)
        acked.extend((c, int(s)) for c, s in (ln.split() for ln in rest.splitlines()
                                               if len(ln.split()) == 2))
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    return acked


async def check_store(data: Path, acked: list[tuple[str, int]]) -> int:
    async with open_store(data) as store:
        for conv, seq in acked:
            stored = store.get("messages", _key(conv, seq))
            assert stored == body(conv, seq), f"acknowledged {conv}#{seq} lost or damaged"
        total = 0
        for key, meta in store.scan("conversations"):
            conv = key.decode()
            seqs = [s for s, _ in store.scan_scope("messages", conv)]
            # Each append wrote message and last_seq in one transaction: they agree,
            # and no message is missing below the last one.
            assert seqs == list(range(1, meta["last_seq"] + 1))
            total += len(seqs)
        assert total == store.count("messages")
        return total


def _key(conv: str, seq: int) -> bytes:
    from octim.store.keys import encode_key
    return encode_key(conv, seq)


def test_acknowledged_appends_survive_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "data"
    acked = run_and_kill(data, acks_wanted=3000)
    stored = trio.run(check_store, data, acked)
    assert stored >= len(acked)
    # A second crash on top of the recovered store (which then appends after it).
    acked2 = run_and_kill(data, acks_wanted=1000)
    assert trio.run(check_store, data, acked + acked2) >= len(acked) + len(acked2)
