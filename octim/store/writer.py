"""The single LMDB writer: a pykka ThreadingActor doing group commit.

Every write in the engine goes through this one thread. Requests that arrive
while a transaction is being committed queue in the actor's inbox; the writer
takes all of them (up to ``max_batch`` operations) into the next transaction,
so many appends from many conversations share one commit and one fsync. After
the commit it wakes every waiting trio caller with a single hop onto the loop.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import lmdb
import pykka
import trio

from octim.actors.bridge import ThreadReply, deliver_many
from octim.errors import StoreError
from octim.store.env import Environment

log = logging.getLogger("octim.store.writer")


@dataclass(frozen=True, slots=True)
class Put:
    """Store ``value`` (already encoded) under ``key`` in the named database."""

    db: str
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove ``key`` from the named database (absent keys are fine)."""

    db: str
    key: bytes


Op = Put | Delete


@dataclass(slots=True)
class WriteRequest:
    """Operations that commit atomically together, and who to wake when durable."""

    ops: tuple[Op, ...]
    reply: ThreadReply[None] | None


@dataclass(slots=True)
class CloseRequest:
    """Commit what is pending, stop the writer and report when done."""

    reply: ThreadReply[None]


@dataclass(slots=True)
class WriterStats:
    """Counters of the writer thread, readable from any thread."""

    commits: int = 0
    ops: int = 0
    requests: int = 0
    largest_batch: int = 0
    map_grows: int = 0
    failed_requests: int = 0
    commit_seconds: list[float] = field(default_factory=list)


class StoreWriter(pykka.ThreadingActor):
    """Owns the LMDB write transaction; see the module docstring."""

    use_daemon_thread = True

    def __init__(self, env: Environment, token: trio.lowlevel.TrioToken, max_batch: int,
                 stats: WriterStats) -> None:
        super().__init__()
        self._env = env
        self._token = token
        self._max_batch = max_batch
        self._pending: list[WriteRequest] = []
        self._pending_ops = 0
        self.stats = stats  # shared with Store.statistics(); only this thread writes it

    def on_receive(self, message: Any) -> None:
        if isinstance(message, WriteRequest):
            self._pending.append(message)
            self._pending_ops += len(message.ops)
            # Group commit: keep collecting while more requests are already
            # waiting, so one fsync covers everything that queued meanwhile.
            if self._pending_ops >= self._max_batch or self.actor_inbox.empty():
                self._commit_pending()
        elif isinstance(message, CloseRequest):
            self._commit_pending()
            self.stop()
            deliver_many(self._token, ((message.reply, None, None),))

    def on_stop(self) -> None:
        # pykka's own stop() (rather than CloseRequest) must not lose writes either.
        self._commit_pending()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        log.error("store writer crashed", exc_info=exception_value)
        self._fail(self._pending, StoreError(f"store writer crashed: {exception_value!r}"))

    def _commit_pending(self) -> None:
        batch, self._pending, self._pending_ops = self._pending, [], 0
        if not batch:
            return
        started = time.perf_counter()
        try:
            self._commit(batch)
        except Exception as exc:
            # One bad request must not fail its neighbours: retry them one by
            # one so only the culprit gets the error.
            log.warning("batch commit failed, retrying requests singly", exc_info=exc)
            self._commit_singly(batch)
            return
        self._record(batch, started)
        deliver_many(self._token, ((r.reply, None, None) for r in batch if r.reply is not None))

    def _commit_singly(self, batch: list[WriteRequest]) -> None:
        done: list[tuple[ThreadReply[None], None, BaseException | None]] = []
        for request in batch:
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                self._commit([request])
                self._record([request], started)
            except Exception as exc:
                self.stats.failed_requests += 1
                error = StoreError(f"write rejected by the store: {exc}")
            if request.reply is not None:
                done.append((request.reply, None, error))
        deliver_many(self._token, done)

    def _commit(self, batch: list[WriteRequest]) -> None:
        while True:
            try:
                with self._env.env.begin(write=True) as txn:
                    dbs = self._env.dbs
                    for request in batch:
                        for op in request.ops:
                            if isinstance(op, Put):
                                txn.put(op.key, op.value, db=dbs[op.db])
                            else:
                                txn.delete(op.key, db=dbs[op.db])
                return
            except lmdb.MapFullError:
                # The transaction was aborted whole; grow and redo it, losing nothing.
                new_size = self._env.grow()
                self.stats.map_grows += 1
                log.info("store map grown", extra={"map_size": new_size})

    def _record(self, batch: list[WriteRequest], started: float) -> None:
        stats = self.stats
        ops = sum(len(r.ops) for r in batch)
        stats.commits += 1
        stats.requests += len(batch)
        stats.ops += ops
        stats.largest_batch = max(stats.largest_batch, ops)
        if len(stats.commit_seconds) < 100_000:
            stats.commit_seconds.append(time.perf_counter() - started)

    def _fail(self, batch: list[WriteRequest], error: BaseException) -> None:
        deliver_many(self._token, ((r.reply, None, error) for r in batch if r.reply is not None))
