"""The store as the engine sees it: awaitable durable writes, synchronous reads.

Writes go to the single :class:`~octim.store.writer.StoreWriter` thread and
``await`` returns only once the transaction holding them is committed and
synced. Reads are short LMDB read transactions on the caller's thread; LMDB's
MVCC means they never block the writer and the writer never blocks them.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pykka
import trio
import trio.testing

from octim.actors.bridge import Reply
from octim.errors import StoreClosed, StoreError
from octim.store.crypto import SEALED, DataKeyMissing, Sealer, aad, is_sealed
from octim.store.env import DATABASES, DEFAULT_MAP_SIZE, LOGS, Environment, pack, unpack
from octim.store.keys import encode_key, scope_bounds
from octim.store.writer import (
    Append,
    CommitBatch,
    Delete,
    Op,
    Put,
    StopWriter,
    StoreWriter,
    WriterStats,
)

__all__ = ["Append", "Delete", "Op", "Put", "Store", "open_store"]

_KNOWN_DBS = frozenset(DATABASES)
log = logging.getLogger("octim.store")
COMMIT_GAP = 2.0  # loop time left free after a commit, in multiples of its park

#: Called on the trio thread when a submitted write is durable (None) or failed (a reason).
Durable = Callable[[str | None], None]


class _Batch:
    """Writes that will share one transaction, and the event their writers await."""

    __slots__ = ("callbacks", "done", "errors", "ops", "requests")

    def __init__(self) -> None:
        self.requests: list[Sequence[Op]] = []
        self.callbacks: list[tuple[int, Durable]] = []
        self.ops = 0
        self.done = trio.Event()
        self.errors: list[str | None] = []


class Store:
    """Durable state of one engine. Create it with :func:`open_store`."""

    def __init__(self, env: Environment, writer: pykka.ActorRef[StoreWriter],
                 stats: WriterStats, max_batch: int, max_inflight: int,
                 sealer: Sealer | None = None) -> None:
        self._env = env
        self._sealer = sealer
        self._writer = writer
        self._stats = stats
        self._max_batch = max_batch
        # Bounded: at most this many writes wait for durability at once;
        # further writers wait here (backpressure), memory stays flat.
        self._inflight = trio.Semaphore(max_inflight)
        self._queued: deque[_Batch] = deque()
        self._committing: _Batch | None = None
        self._wakeup: trio.Event | None = None  # set when the committer has work
        self._committer_scope: trio.CancelScope | None = None
        self._closed = False
        self._log_next: dict[str, int] = {}  # log database → the next sequence number

    @property
    def path(self) -> str:
        """The data directory."""
        return str(self._env.path)

    # -- writes -------------------------------------------------------------

    async def write(self, ops: Sequence[Op]) -> None:
        """Commit ``ops`` atomically; return once they are durable on disk.

        Writes that arrive while a commit is running are gathered into the next
        one (group commit). If the caller is cancelled while waiting, the write
        may still commit.
        """
        batch, index = await self._enqueue(ops)
        try:
            await batch.done.wait()
        finally:
            self._inflight.release()
        error = batch.errors[index]
        if error is not None:
            raise StoreError(error)

    async def submit(self, ops: Sequence[Op], on_durable: Durable) -> None:
        """Queue ``ops`` for commit and return at once; pipelining for actors.

        ``on_durable(error)`` runs on the trio thread once the commit is synced
        (``error`` is None) or failed. Callbacks run in submission order, so an
        actor can assign sequence numbers, keep going, and acknowledge in order.
        Waits only while ``max_inflight`` writes are already pending.
        """
        batch, index = await self._enqueue(ops)
        batch.callbacks.append((index, on_durable))

    @property
    def sealer(self) -> Sealer | None:
        """The at-rest encryption of this store (None without a data key)."""
        return self._sealer

    async def _enqueue(self, ops: Sequence[Op]) -> tuple[_Batch, int]:
        appends = False
        for op in ops:
            if op.db not in _KNOWN_DBS:
                raise StoreError(f"unknown database {op.db!r}")
            if type(op) is Append:
                if op.db not in LOGS:
                    raise StoreError(f"{op.db!r} is not a log database")
                appends = True
        if self._closed:
            raise StoreClosed("the store is closed")
        try:
            # Fast path without a checkpoint: the semaphore only blocks when
            # max_inflight writes are already waiting.
            self._inflight.acquire_nowait()
        except trio.WouldBlock:
            await self._inflight.acquire()
        if self._closed:
            self._inflight.release()
            raise StoreClosed("the store is closed")
        # From here to joining the queue there is no await: log sequence numbers are
        # handed out in queue order, and the queue commits in order, so a reader who
        # has seen number n has seen every committed number below it.
        if appends:
            ops = [Put(op.db, self._sequence(op.db), op.value) if type(op) is Append else op
                   for op in ops]
        sealer = self._sealer
        if sealer is not None:
            # Sealed here, on the trio thread, in submission order: one nonce counter.
            ops = [Put(op.db, op.key, sealer.seal(op.value, aad(op.db, op.key)))
                   if type(op) is Put and op.db in SEALED else op for op in ops]
        batch = self._queued[-1] if self._queued else None
        if batch is None or batch.ops >= self._max_batch:
            batch = _Batch()
            self._queued.append(batch)
        batch.requests.append(ops)
        batch.ops += len(ops)
        if self._wakeup is not None:
            self._wakeup.set()
        return batch, len(batch.requests) - 1

    def _sequence(self, db: str) -> bytes:
        """The key of the next record of log ``db`` (numbers start at 1; a write that
        fails leaves a gap, never a reordering)."""
        n = self._log_next.get(db)
        if n is None:
            n = self.log_last(db) + 1
        self._log_next[db] = n + 1
        return n.to_bytes(8, "big")

    def log_last(self, db: str) -> int:
        """The highest sequence number handed out in log ``db`` (committed or queued)."""
        if db in self._log_next:
            return self._log_next[db] - 1
        with self._env.read() as txn:
            cursor = txn.cursor(db=self._env.dbs[db])
            return int.from_bytes(cursor.key(), "big") if cursor.last() else 0

    def read_log(self, db: str, after: int, limit: int) -> list[tuple[int, Any]]:
        """Up to ``limit`` committed records of log ``db`` numbered above ``after``, in
        order, as ``(number, value)``: a reader's cursor is the last number it read."""
        return [(int.from_bytes(key, "big"), value)
                for key, value in self.scan(db, (after + 1).to_bytes(8, "big"), limit=limit)]

    async def run_committer(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                            ) -> None:
        """The committer task (started by :func:`open_store`): one batch per
        scheduling round, so every write issued in a round shares one commit.

        Shielded: an outer cancellation must not strand accepted writes; the
        task ends when :meth:`aclose` has drained the queue."""
        with trio.CancelScope(shield=True) as self._committer_scope:
            task_status.started()
            await self._commit_rounds()

    async def _commit_rounds(self) -> None:
        while True:
            if not self._queued:
                self._wakeup = trio.Event()
                await self._wakeup.wait()
                self._wakeup = None
            batch = self._queued.popleft()
            self._committing = batch
            message = CommitBatch(batch.requests, partial(self._committed, batch))
            parked = 0.0
            try:
                self._writer.tell(message)
            except pykka.ActorDeadError:
                self._committed(batch, ["the store writer has stopped"] * len(batch.requests))
            else:
                # Park the loop while the writer commits (writer.py says why).
                parked = time.perf_counter()
                ok = message.park()
                parked = time.perf_counter() - parked
                self._stats.parks += 1
                if ok:
                    self._committed(batch, message.errors)
                else:
                    self._stats.late_parks += 1
                    await batch.done.wait()  # the writer reports through the token
            # Let every task woken by this commit run before the next one starts
            # (what they write joins the next batch). On a busy loop, wait until it
            # has nothing else to run or COMMIT_GAP × the park has passed, so the
            # loop is parked for at most 1 / (1 + COMMIT_GAP) of its time: under
            # load the batches grow instead of the loop standing still.
            with trio.move_on_after(parked * COMMIT_GAP):
                await trio.testing.wait_all_tasks_blocked()

    def _committed(self, batch: _Batch, errors: list[str | None]) -> None:
        if batch.done.is_set():
            return  # reported twice (a park that ended as the writer finished)
        batch.errors = errors
        batch.done.set()
        self._committing = None
        for index, callback in batch.callbacks:
            self._inflight.release()
            try:
                callback(errors[index])
            except Exception:
                log.exception("on_durable callback failed")

    async def put(self, db: str, key: bytes, value: Any) -> None:
        """Durably store one msgpack-encoded value."""
        await self.write((Put(db, key, pack(value)),))

    async def delete(self, db: str, key: bytes) -> None:
        """Durably remove one key."""
        await self.write((Delete(db, key),))

    # -- reads --------------------------------------------------------------

    def get(self, db: str, key: bytes) -> Any | None:
        """The decoded value under ``key``, or ``None``."""
        raw = self._env.get(db, key)
        return None if raw is None else self._decode(db, key, raw)

    def _decode(self, db: str, key: bytes, raw: bytes) -> Any:
        if is_sealed(raw):
            if self._sealer is None:
                raise DataKeyMissing("the store holds encrypted data and no data key is set")
            raw = self._sealer.open(raw, aad(db, key))
        return unpack(raw)

    def scan(self, db: str, lo: bytes = b"", hi: bytes | None = None,
             *, limit: int | None = None, reverse: bool = False) -> list[tuple[bytes, Any]]:
        """Decoded ``(key, value)`` pairs with ``lo <= key < hi``, in key order.

        The result is materialised so no transaction outlives the call.
        """
        out: list[tuple[bytes, Any]] = []
        with self._env.read() as txn:
            for key, raw in _iterate(txn.cursor(db=self._env.dbs[db]), lo, hi, reverse):
                out.append((key, self._decode(db, key, raw)))
                if limit is not None and len(out) >= limit:
                    break
        return out

    def scan_scope(self, db: str, scope: str, *, after: int = -1,
                   limit: int | None = None) -> list[tuple[int, Any]]:
        """``(seq, value)`` pairs of one ordered scope with ``seq > after``."""
        lo, hi = scope_bounds(scope)
        if after >= 0:
            lo = encode_key(scope, after + 1)
        return [(int.from_bytes(k[-8:], "big"), v) for k, v in self.scan(db, lo, hi, limit=limit)]

    def last_seq(self, db: str, scope: str) -> int:
        """The highest seq stored in ``scope``, or 0 when it is empty."""
        lo, hi = scope_bounds(scope)
        with self._env.read() as txn:
            cursor = txn.cursor(db=self._env.dbs[db])
            if not cursor.set_range(hi):
                if not cursor.last():
                    return 0
            elif not cursor.prev():
                return 0
            key = cursor.key()
        return int.from_bytes(key[-8:], "big") if lo <= key < hi else 0

    def count(self, db: str) -> int:
        """Number of entries in a database."""
        with self._env.read() as txn:
            return int(txn.stat(self._env.dbs[db])["entries"])

    # -- housekeeping ---------------------------------------------------------

    def statistics(self) -> WriterStats:
        """The writer's counters (commits, ops, batch sizes, map grows)."""
        return self._stats

    @property
    def map_size(self) -> int:
        """The current LMDB map size in bytes."""
        return self._env.map_size

    def backup(self, dest: str | os.PathLike[str]) -> None:
        """Hot, compacted copy into ``dest`` while writes go on."""
        self._env.copy_to(dest)

    async def aclose(self) -> None:
        """Commit every accepted write, stop the writer and close the environment."""
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            # Every accepted write is committed before the writer stops.
            while self._committing is not None or self._queued:
                batch = self._committing or self._queued[-1]
                await batch.done.wait()
            if self._committer_scope is not None:
                self._committer_scope.cancel()
            stopped: Reply[None] = Reply()
            try:
                # pykka runs stop() after every message already in the inbox.
                self._writer.tell(StopWriter(stopped))
            except pykka.ActorDeadError:
                pass
            else:
                await stopped.wait()
        self._env.close()


def _iterate(cursor: Any, lo: bytes, hi: bytes | None,
             reverse: bool) -> Iterable[tuple[bytes, bytes]]:
    if not reverse:
        if not cursor.set_range(lo):
            return
        for key, raw in cursor:
            if hi is not None and key >= hi:
                return
            yield key, raw
        return
    positioned = cursor.set_range(hi) if hi is not None else False
    ok = cursor.prev() if positioned else cursor.last()
    while ok:
        key = cursor.key()
        if key < lo:
            return
        yield key, cursor.value()
        ok = cursor.prev()


@asynccontextmanager
async def open_store(path: str | os.PathLike[str], *, map_size: int = DEFAULT_MAP_SIZE,
                     max_batch: int = 4096, max_inflight: int = 65536,
                     keys: dict[str, bytes] | None = None) -> AsyncIterator[Store]:
    """Open (or create) the store in ``path`` for the current trio run.

    With ``keys`` (:func:`octim.store.crypto.load_keys`) the sealed databases are
    encrypted at rest; without, a store that holds encrypted data is refused.
    """
    env = Environment(path, map_size=map_size)
    stats = WriterStats()
    try:
        sealer = env.open_sealer(keys or {})
        writer = StoreWriter.start(env, trio.lowlevel.current_trio_token(), stats)
    except BaseException:
        env.close()
        raise
    store = Store(env, writer, stats, max_batch, max_inflight, sealer)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run_committer)
            try:
                yield store
            finally:
                await store.aclose()  # drains the queue, then ends the committer
    finally:
        await store.aclose()  # if the nursery could not start

