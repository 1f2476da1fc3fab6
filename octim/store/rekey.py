"""``octim rekey``: seal every value and blob under the current data key, in place.

Values sealed with an older key (or still in clear, for a store that just got
its first key) are re-sealed with the current one, a bounded batch per write
transaction, so memory stays flat and the engine may keep running meanwhile
(LMDB serialises writers across processes; this process takes its own nonce
epoch). Values already under the current key are skipped, so a rekey that was
stopped resumes where it left off: run it again.

LMDB writes copy-on-write: the pages a value was on before it was re-sealed
stay in the file as free pages until reused, so the old plaintext (or the old
key's ciphertext) can linger. ``compact=True`` then rewrites the file with live
pages only (and needs the engine stopped: it takes the directory's lock alone).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import lmdb

from octim.store.blobs import blob_aad, fsync_dir, write_durably
from octim.store.crypto import SEALED, Sealer, aad, is_sealed, sealed_kid
from octim.store.env import DATABASES, Environment, hold_lock

BATCH = 1000  # values re-sealed per write transaction
SCAN_PER_TXN = 20_000  # values looked at per write transaction


@dataclass
class RekeyReport:
    """What a rekey did: values and blobs re-sealed, per database."""

    kid: str
    values: dict[str, int] = field(default_factory=dict)
    blobs: int = 0
    compacted: bool = False


def rekey(data: Path, keys: dict[str, bytes], *, batch: int = BATCH,
          compact: bool = False) -> RekeyReport:
    """Re-seal the store in ``data`` under the first of ``keys`` (see the module)."""
    env = Environment(data)
    try:
        sealer = env.open_sealer(keys)
        assert sealer is not None
        report = RekeyReport(sealer.kid)
        for db in sorted(SEALED):
            report.values[db] = _rekey_db(env, sealer, db, batch)
        report.blobs = _rekey_blobs(data / "blobs", sealer)
    finally:
        env.close()
    if compact:
        compact_in_place(data)
        report.compacted = True
    return report


def compact_in_place(data: Path) -> None:
    """Rewrite ``data.mdb`` with its live pages only (no engine may have it open)."""
    lock = hold_lock(data, exclusive=True)
    try:
        env = lmdb.open(str(data), max_dbs=len(DATABASES) + 2, readonly=True, lock=True)
        tmp = Path(tempfile.mkdtemp(dir=data, prefix=".compact-"))
        try:
            env.copy(str(tmp), compact=True)
            env.close()
            fd = os.open(tmp / "data.mdb", os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp / "data.mdb", data / "data.mdb")
            fsync_dir(data)
        finally:
            for leftover in tmp.iterdir():
                leftover.unlink()
            tmp.rmdir()
    finally:
        lock.close()


def _current(raw: bytes, sealer: Sealer) -> bool:
    return is_sealed(raw) and sealed_kid(raw) == sealer.kid


def _rekey_db(env: Environment, sealer: Sealer, db: str, batch: int) -> int:
    handle, done, start = env.dbs[db], 0, b""
    while True:
        changed, scanned, last = 0, 0, None
        # Short write transactions, also over long runs of values already done, so
        # that a running engine's commits wait for one batch at most.
        with env.env.begin(write=True) as txn:
            cursor = txn.cursor(db=handle)
            found = cursor.set_range(start) if start else cursor.first()
            while found and changed < batch and scanned < SCAN_PER_TXN:
                key, raw = bytes(cursor.key()), bytes(cursor.value())
                last, scanned = key, scanned + 1
                if not _current(raw, sealer):
                    clear = sealer.open(raw, aad(db, key)) if is_sealed(raw) else raw
                    cursor.put(key, sealer.seal(clear, aad(db, key)))  # stays on key
                    changed += 1
                found = cursor.next()
            more = found
        done += changed
        if not more or last is None:
            return done
        start = last + b"\0"  # the next key after the last one handled


def _rekey_blobs(root: Path, sealer: Sealer) -> int:
    if not root.is_dir():
        return 0
    count = 0
    for path in sorted(root.glob("??/*")):
        if path.name.startswith(".tmp-") or len(path.name) != 64:
            continue
        raw = path.read_bytes()
        if _current(raw, sealer):
            continue
        clear = sealer.open(raw, blob_aad(path.name)) if is_sealed(raw) else raw
        write_durably(path, sealer.seal(clear, blob_aad(path.name)))
        count += 1
    return count
