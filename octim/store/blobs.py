"""Upload bytes on disk, content-addressed by SHA-256, next to the LMDB store.

Metadata (owner, kind, conversations) lives in the ``uploads`` database; the
bytes live in ``DATA/blobs/ab/abcdef…``. Writes go to a temporary file that
is fsynced and renamed into place, so a blob is either whole or absent.
Blocking: call from a worker thread (``trio.to_thread.run_sync``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from octim.store.crypto import DataKeyMissing, Sealer, is_sealed


class BlobStore:
    """Content-addressed files under ``root``, sealed when the store has a data key.

    Names stay the SHA-256 of the clear bytes (so the same file is stored once);
    the contents are sealed with the associated data ``blob ‖ digest``.
    """

    def __init__(self, root: Path, sealer: Sealer | None = None) -> None:
        self.root = root
        self.sealer = sealer

    def path(self, digest: str) -> Path:
        """Where the blob with this SHA-256 hex digest lives."""
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError("not a sha256 hex digest")
        return self.root / digest[:2] / digest

    def put(self, data: bytes) -> str:
        """Store ``data`` durably; returns its digest (storing twice is a no-op)."""
        digest = hashlib.sha256(data).hexdigest()
        final = self.path(digest)
        if final.exists():
            return digest
        final.parent.mkdir(parents=True, exist_ok=True)
        if self.sealer is not None:
            data = self.sealer.seal(data, blob_aad(digest))
        write_durably(final, data)
        return digest

    def get(self, digest: str) -> bytes:
        """The clear bytes of a stored blob."""
        raw = self.path(digest).read_bytes()
        if is_sealed(raw):
            if self.sealer is None:
                raise DataKeyMissing("the blob is encrypted and no data key is set")
            return self.sealer.open(raw, blob_aad(digest))
        return raw


def write_durably(final: Path, data: bytes) -> None:
    """Replace ``final`` with ``data`` atomically: a fsynced temporary file renamed
    into place, then the directory fsynced, so the file is whole or as it was."""
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(final.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def blob_aad(digest: str) -> bytes:
    """The associated data of a sealed blob."""
    return b"blob\0" + digest.encode()
