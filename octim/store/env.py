"""The LMDB environment: its named databases, schema version and map growth.

This module owns the on-disk layout. Values are msgpack; keys are either plain
UTF-8 ids or ordered ``(scope, seq)`` keys from :mod:`octim.store.keys`.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import lmdb
import msgpack

from octim.errors import SchemaMismatch, StoreError
from octim.store.crypto import DataKeyMissing, Sealer, next_epoch

SCHEMA_VERSION = 1

#: Every named database. Index databases start with ``idx_``.
DATABASES: tuple[str, ...] = (
    "meta",  # schema version and engine-wide facts
    "shops",
    "agents",
    "customers",
    "orders",
    "conversations",
    "messages",  # key: (conversation id, seq)
    "tickets",  # ticket id → record (octim.domain.tickets)
    "ticket_history",  # key: (ticket id, n) → one change: who, when, field, before, after
    "ticket_comments",  # key: (ticket id, n) → a public reply or an internal note
    "ticket_counters",  # shop → the last ticket number given (T-<n>)
    "ticket_idem",  # shop \0 Idempotency-Key → ticket id
    "idx_shop_tickets",  # shop \0 ticket → status
    "idx_requester_tickets",  # buyer \0 ticket → shop
    "sla_policies",  # shop \0 policy id → an SLA policy (octim.domain.tickets.sla)
    "business_hours",  # shop → its working hours (time zone, weekly, holidays)
    "ticket_settings",  # shop → custom fields, categories, custom statuses (tickets/fields.py)
    "ticket_rules",  # shop → {"rules": [...]}: ordered assignment rules (tickets/assign.py)
    "ticket_mail",  # shop \0 Message-ID → the ticket an email joined, opened or came from
    "mail_outbox",  # (due ms, Message-ID) → a public reply to send by SMTP (outmail.py)
    "mail_dead",  # same key → a reply that failed every attempt
    "kb",
    "events",  # unread: time-keyed conversation events written before the "log" database
    "log",  # the durable event log, in commit order; key: 8-byte sequence number (LOGS)
    "client_ids",  # key: conversation \0 sender \x1f client message id → [seq, ts] (dedupe)
    "uploads",  # upload id → metadata; the bytes live in the blob directory
    "idx_upload_conversations",  # upload \0 conversation → 1 (it was sent there)
    "idx_upload_tickets",  # upload \0 ticket → 1 (an email brought it to the ticket)
    "idx_customer_conversations",  # buyer \0 shop → the buyer's current conversation
    "idx_user_conversations",  # user \0 conversation → shop (inboxes)
    "idx_shop_conversations",  # shop \0 conversation → state
    "idx_open_conversations",  # conversation → last activity (auto-close sweep)
    "idx_agent_open",  # agent \0 conversation → capacity cost (assigned, not released)
    "groups",  # shop \0 group → skill group record
    "routing",  # conversation → {"waiting": item or None, "traces": [...]} (dispatcher)
    "sticky",  # buyer \0 shop → [agent, ms] of the last assignment (熟客优先)
    "kb_stats",  # entry id → {"helpful": n, "unhelpful": n} from buyer feedback
    "kb_unanswered",  # shop \0 normalised question → {"count", "examples", ...}
    "kb_proposals",  # shop \0 proposal id → a learned similar question or entry (docs/bot.md)
    "kb_synonyms",  # shop (or "*", the platform's) → {"synonyms": {word: canonical}}
    "idx_customer_phone",  # HMAC(secret, phone) → the buyer with that number (来电弹屏)
    "idx_customer_orders",  # customer \0 shop \0 order → created ms
    "shop_customers",  # shop \0 customer → {"notes": [...], "tags": [...]} (shop-private)
    "audit",  # time-ordered key → one staff read of buyer data
    "webhooks",  # endpoint id → {"url", "events", "secret"}
    "webhook_dead",  # delivery id → a delivery that failed every attempt
    "outbox",  # (queued ms, delivery id) → a webhook or channel delivery to send (courier.py)
    "channels",  # channel id → {"shop", "type", "secret", "kinds", "outbound_url", ...}
    "channel_dead",  # delivery id → a channel delivery that failed every attempt
    "channel_inbound",  # channel \0 external message id → [conversation, seq, ts] (dedupe)
    "deliveries",  # (conversation, seq) → a reply's delivery on its channel: status, times
    "identities",  # HMAC(secret, type \0 value) → the buyer that identity belongs to
    "customer_identities",  # buyer → [{"type", "value", "channel"}]: identities linked to it
    "customer_aliases",  # buyer → [buyer ids merged into it by identity linking]
    "notice_settings",  # shop → {"types": {type: {"enabled", "templates": {lang: text}}}}
    "notices_sent",  # shop \0 order \0 event key → [conversation, seq]: each notice once
    "outreach_log",  # buyer \0 ms \0 n → one gate decision: what, why, sent or not
    "outreach_counts",  # buyer \0 shop (or *) \0 day or week → marketing messages sent
    "interests",  # shop \0 sku \0 buyer → {"kind": cart|favourite, "price", "at"}
    "customer_interests",  # buyer → [[shop, sku], …]: the keys above that are theirs
    "reminders_sent",  # buyer \0 shop \0 sku \0 type → ms of the last reminder
    "segments",  # segment id → {"name", "shop", "shared", "rule"}
    "peak",  # "*" (the platform) or a shop → its peak mode: on, windows, factor, queue cap
    "campaigns",  # campaign id → its record, schedule, progress and runs (outreach/campaigns)
    "campaign_recipients",  # campaign \0 run \0 buyer → pending, sent (where) or suppressed
    "campaign_events",  # campaign \0 run \0 buyer \0 "clicked" → ms of the first click
    "stats",  # shop \0 UTC day → the live monitor's counters for that day
    "report_buckets",  # shop \0 agent \0 hour → report counters (octim.domain.reports)
    "report_pending",  # conversation → what reports remember of it while it goes on
    "agent_time",  # agent \0 UTC day → ms online, busy and away that day (AgentActor)
    "canned",  # scope \0 id → a canned reply (scope: "shop:<shop>" or "user:<user>")
)

#: Databases written with ``Append``: their keys are sequence numbers in commit order.
LOGS: frozenset[str] = frozenset({"log"})

DEFAULT_MAP_SIZE = 64 << 20
_SCHEMA_KEY = b"schema_version"
LOCK_FILE = "octim.lock"
ENGINE_LOCK_FILE = "engine.lock"
_EPOCH_KEY = b"nonce_epoch"  # the last nonce epoch handed to a Sealer (octim.store.crypto)
_ENCRYPTED_KEY = b"encrypted"  # present once a data key has been used on this store


def pack(value: Any) -> bytes:
    """Encode a stored value."""
    return bytes(msgpack.packb(value, use_bin_type=True))


def unpack(raw: bytes | memoryview) -> Any:
    """Decode a stored value."""
    return msgpack.unpackb(raw, raw=False)


class ResizeGate:
    """Keeps read transactions out while the writer grows the map.

    LMDB requires that no transaction of this process is open while
    ``set_mapsize`` runs. Readers hold the gate shared for the few microseconds
    of a read; the writer takes it exclusively only to resize, which is rare.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._resizing = False

    def enter(self) -> None:
        """Take the gate shared (pair with :meth:`leave`)."""
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._readers += 1

    def leave(self) -> None:
        """Give back what :meth:`enter` took."""
        with self._cond:
            self._readers -= 1
            if self._readers == 0:
                self._cond.notify_all()

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the gate shared for the duration of one read transaction."""
        self.enter()
        try:
            yield
        finally:
            self.leave()

    def exclusive(self, action: Callable[[], None]) -> None:
        """Run ``action`` once no read transaction is open."""
        with self._cond:
            self._resizing = True
            try:
                while self._readers:
                    self._cond.wait()
                action()
            finally:
                self._resizing = False
                self._cond.notify_all()


class Environment:
    """An open LMDB environment with OctIM's named databases."""

    def __init__(self, path: str | os.PathLike[str], *, map_size: int = DEFAULT_MAP_SIZE,
                 readonly: bool = False) -> None:
        self.path = Path(path)
        if not readonly:
            self.path.mkdir(parents=True, exist_ok=True)
        elif not (self.path / "data.mdb").exists():
            raise StoreError(f"no OctIM store at {self.path} (data.mdb is missing)")
        try:
            self.env = lmdb.open(
                str(self.path),
                map_size=map_size,
                max_dbs=len(DATABASES) + 2,
                readonly=readonly,
                # Durable commits: one fsync per transaction, and group commit
                # keeps transactions few.
                sync=True,
                metasync=True,
                max_readers=256,
            )
        except lmdb.Error as exc:
            raise StoreError(f"cannot open the store at {self.path}: {exc}") from exc
        self.gate = ResizeGate()
        self.dbs: dict[str, Any] = {}
        # Every writable open holds the data directory's lock shared; only a
        # compaction that replaces data.mdb needs it alone (octim rekey --compact).
        self._lock = None if readonly else hold_lock(self.path, exclusive=False)
        try:
            if readonly:
                self._open_existing()
            else:
                self._open_or_create()
        except Exception:
            self.env.close()
            self._release()
            raise

    def _open_or_create(self) -> None:
        with self.env.begin(write=True) as txn:
            for name in DATABASES:
                self.dbs[name] = self.env.open_db(name.encode(), txn=txn)
            meta = self.dbs["meta"]
            raw = txn.get(_SCHEMA_KEY, db=meta)
            if raw is None:
                txn.put(_SCHEMA_KEY, pack(SCHEMA_VERSION), db=meta)
                return
        self._check_version(unpack(raw))

    def _open_existing(self) -> None:
        for name in DATABASES:
            try:
                # Without a txn argument py-lmdb opens the handle in its own committed
                # transaction, so the handle stays valid for later readers.
                self.dbs[name] = self.env.open_db(name.encode(), create=False)
            except lmdb.NotFoundError as exc:
                raise SchemaMismatch(
                    f"the store at {self.path} lacks the {name!r} database; "
                    "it was not written by this version of OctIM"
                ) from exc
        with self.env.begin() as txn:
            raw = txn.get(_SCHEMA_KEY, db=self.dbs["meta"])
        self._check_version(None if raw is None else unpack(raw))

    def _check_version(self, found: Any) -> None:
        if found != SCHEMA_VERSION:
            raise SchemaMismatch(
                f"the store at {self.path} has schema version {found!r}; this OctIM "
                f"reads version {SCHEMA_VERSION}. Migrate it or point --data elsewhere."
            )

    @property
    def map_size(self) -> int:
        """The current map size in bytes."""
        return int(self.env.info()["map_size"])

    def grow(self) -> int:
        """Double the map size (no read transaction open meanwhile); return the new size."""
        new_size = self.map_size * 2
        self.gate.exclusive(lambda: self.env.set_mapsize(new_size))
        return new_size

    def get(self, db: str, key: bytes) -> bytes | None:
        """One key's raw value in a read transaction of its own (the hot read path:
        no context-manager frames)."""
        gate = self.gate
        gate.enter()
        try:
            with self.env.begin(buffers=False) as txn:
                raw: bytes | None = txn.get(key, db=self.dbs[db])
                return raw
        finally:
            gate.leave()

    @contextmanager
    def read(self) -> Iterator[Any]:
        """A short read transaction. Never hold it across an ``await``."""
        with self.gate.reading(), self.env.begin(buffers=False) as txn:
            yield txn

    def copy_to(self, dest: str | os.PathLike[str]) -> None:
        """Hot, compacted copy of the environment into the empty directory ``dest``."""
        Path(dest).mkdir(parents=True, exist_ok=True)
        self.env.copy(str(dest), compact=True)

    def open_sealer(self, keys: dict[str, bytes]) -> Sealer | None:
        """The sealer for this open (raising the durable nonce epoch first), or None
        without keys; refuses to run keyless over a store that holds sealed data."""
        meta = self.dbs["meta"]
        with self.env.begin(write=bool(keys)) as txn:
            encrypted = txn.get(_ENCRYPTED_KEY, db=meta) is not None
            if not keys:
                if encrypted:
                    raise DataKeyMissing(
                        f"the store at {self.path} holds encrypted data: configure its "
                        "data key (OCTIM_DATA_KEY or OCTIM_DATA_KEY_FILE)")
                return None
            raw = txn.get(_EPOCH_KEY, db=meta)
            epoch = next_epoch(0 if raw is None else int(unpack(raw)))
            txn.put(_EPOCH_KEY, pack(epoch), db=meta)
            txn.put(_ENCRYPTED_KEY, b"\x01", db=meta)
        return Sealer(keys, epoch)

    def close(self) -> None:
        """Close the environment (the writer must already be stopped)."""
        self.env.close()
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def hold_lock(path: Path, *, exclusive: bool, name: str = LOCK_FILE,
              holder: str = "another process (an engine?)") -> IO[bytes]:
    """Take one of the data directory's advisory locks; ``StoreError`` if it is held
    against us. ``octim.lock``: every writer shared, a compaction alone;
    ``engine.lock``: one engine alone."""
    handle = (path / name).open("ab")
    try:
        fcntl.flock(handle, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StoreError(f"the store at {path} is in use by {holder}; stop it first") from None
    return handle
