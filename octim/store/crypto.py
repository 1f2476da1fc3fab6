"""Encryption at rest: AES-256-GCM over the values of the sealed databases and blobs.

With a data key configured (``data_key`` / ``data_key_file``, docs/security.md)
the store seals every value of :data:`SEALED` before it reaches LMDB and opens
it on read; upload blobs are sealed the same way. Keys, sequence numbers and
the index databases stay in clear (routing and ordering need them).

A sealed value is ``0xC1 ‖ len(kid) ‖ kid ‖ nonce(12) ‖ ciphertext+tag``.
``0xC1`` is the one byte msgpack never uses, so a sealed value can never be
mistaken for a clear one: stores can be encrypted (and re-keyed) in place,
value by value, and a rekey that stops half-way simply resumes.

The associated data is the database name and the record's key, so a sealed
value cannot be moved to another record and still open.

Nonces are never reused under one key: ``epoch(4) ‖ counter(8)``, where the
epoch is stored durably and raised at every open of the store to more than
both its last value and the current Unix time (a restored backup therefore
never replays an epoch already used since), and the counter counts the seals
of this process.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from octim.errors import ConfigError, StoreError

MAGIC = 0xC1
NONCE_BYTES = 12
KEY_BYTES = 32
KID = re.compile(r"[A-Za-z0-9_-]{1,32}")

#: Databases whose values are sealed: message bodies, conversation metadata
#: (previews, first questions, entry context), customer profiles and orders,
#: shops' notes and tags, tickets, the event log, routing traces, unanswered
#: buyer questions, webhook and channel secrets, queued deliveries and dead
#: letters, and the identities linked to buyers.
SEALED = frozenset({
    "messages", "conversations", "customers", "orders", "shop_customers", "tickets",
    "ticket_history", "ticket_comments", "mail_outbox", "mail_dead",
    "events", "log", "routing", "kb_unanswered", "kb_proposals", "webhooks", "webhook_dead",
    "outbox", "channels", "channel_dead", "customer_identities", "outreach_log",
    "campaigns", "campaign_recipients",
})


class DataKeyMissing(StoreError):
    """Sealed data was found but no key (or not its key) is configured."""

    code = "store"


def parse_keys(text: str, setting: str = "data_key") -> dict[str, bytes]:
    """``"id:base64key, id2:base64key"`` (or one per line) → ``{id: key}``, in order.

    The first key is the current one (new seals use it); the others only open.
    """
    keys: dict[str, bytes] = {}
    for part in re.split(r"[,\n]", text):
        part = part.strip()
        if not part or part.startswith("#"):
            continue
        kid, sep, encoded = part.partition(":")
        if not sep or not KID.fullmatch(kid):
            raise ConfigError(setting, "expected id:base64key, the id of 1-32 letters, "
                              "digits, '-' or '_'")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(setting, f"key {kid!r} is not valid base64") from None
        if len(key) != KEY_BYTES:
            raise ConfigError(setting, f"key {kid!r} must be {KEY_BYTES} bytes (AES-256), "
                              f"got {len(key)}")
        if kid in keys:
            raise ConfigError(setting, f"key id {kid!r} appears twice")
        keys[kid] = key
    return keys


def load_keys(data_key: str, data_key_file: str) -> dict[str, bytes]:
    """The configured keys (either setting; none means no encryption)."""
    if data_key and data_key_file:
        raise ConfigError("data_key", "set data_key or data_key_file, not both")
    if data_key_file:
        return parse_keys(Path(data_key_file).read_text(encoding="utf-8"), "data_key_file")
    return parse_keys(data_key) if data_key else {}


def new_key_line(kid: str) -> str:
    """A fresh ``id:base64key`` line with 32 random bytes."""
    return f"{kid}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


def is_sealed(raw: bytes | memoryview) -> bool:
    """Whether a stored value is sealed (any key): msgpack never starts with 0xC1."""
    return bool(raw) and raw[0] == MAGIC


def sealed_kid(raw: bytes | memoryview) -> str:
    """The key id a sealed value was sealed with."""
    size = raw[1]
    return bytes(raw[2:2 + size]).decode("ascii")


@dataclass
class Sealer:
    """Seals and opens values with the configured keys; one per open store."""

    keys: dict[str, bytes]
    epoch: int
    _counter: int = 0
    _aeads: dict[str, AESGCM] = field(default_factory=dict)
    _prefix: bytes = b""

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a Sealer needs at least one key")
        if not 0 < self.epoch < 2**32:
            raise ValueError("the epoch is a 32-bit number")
        self.kid = next(iter(self.keys))
        self._aeads = {kid: AESGCM(key) for kid, key in self.keys.items()}
        kid = self.kid.encode()
        self._prefix = bytes((MAGIC, len(kid))) + kid
        self._current = self._aeads[self.kid]
        self._epoch = self.epoch.to_bytes(4, "big")
        self._lock = threading.Lock()

    def seal(self, value: bytes, aad: bytes) -> bytes:
        """``value`` sealed under the current key, bound to ``aad`` (any thread)."""
        with self._lock:  # blobs are sealed on worker threads: one counter for all
            self._counter += 1
            counter = self._counter
        nonce = self._epoch + counter.to_bytes(8, "big")
        return self._prefix + nonce + self._current.encrypt(nonce, value, aad)

    def open(self, raw: bytes | memoryview, aad: bytes) -> bytes:
        """The clear value of a sealed one; :class:`DataKeyMissing` if its key is unknown."""
        kid = sealed_kid(raw)
        aead = self._aeads.get(kid)
        if aead is None:
            raise DataKeyMissing(f"a value is sealed with key {kid!r}, which is not configured")
        start = 2 + raw[1]
        nonce = bytes(raw[start:start + NONCE_BYTES])
        try:
            return aead.decrypt(nonce, bytes(raw[start + NONCE_BYTES:]), aad)
        except InvalidTag:
            raise StoreError("a sealed value failed authentication (tampered, or moved "
                             "from another record)") from None


def next_epoch(previous: int, now: float | None = None) -> int:
    """The epoch of a new open: above the last one and above the current Unix time."""
    current = int(time.time() if now is None else now)
    epoch = max(previous + 1, current)
    if epoch >= 2**32:
        raise StoreError("nonce epochs are exhausted for this key; rotate the data key")
    return epoch


def aad(db: str, key: bytes) -> bytes:
    """The associated data of a record: where it lives."""
    return db.encode() + b"\0" + key
