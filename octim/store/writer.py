"""The single LMDB writer: a pykka ThreadingActor that commits whole batches.

Group commit is split across the two sides. The trio side
(:class:`~octim.store.store.Store`) collects every write that arrives while
a commit is running into the next batch; this thread commits one batch per
transaction (one fsync), then hands the outcome back to trio with one
``run_sync_soon`` per batch. One pykka message and one wake-up per commit, not
per append, is what keeps the thread hop cheap at tens of thousands of appends
per second.

The puts run while the trio loop is **parked**. py-lmdb releases and retakes
the GIL around every put; with the loop thread runnable, each retake waits for
the loop to give the GIL up (up to the switch interval), so a batch of a few
hundred puts took hundreds of milliseconds and held every ack behind it
(../shared/reference/performance-notes.md). So the trio side hands a batch
over and blocks in :meth:`CommitBatch.staged` until this thread has done the
puts (a few µs each, with nobody to contend with), then runs on while this
thread commits: the fsyncs, one GIL release for their whole duration, overlap
the loop's work. The transaction stays on one thread (LMDB's rule) and the sync
flags stay LMDB's fully synchronous default. The park has a ceiling
(``PARK_CEILING``): if the writer cannot start (another process holds the
write lock, e.g. ``octim rekey``), the loop goes on and the puts merely run
slower.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import lmdb
import pykka
import trio

from octim.actors.bridge import Reply
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

#: Called on the trio thread with the per-request errors (None = committed).
Committed = Callable[[list[str | None]], None]

#: Longest the trio loop stays parked waiting for the writer to stage a batch.
PARK_CEILING = 0.1


@dataclass(slots=True)
class CommitBatch:
    """Requests to commit in one transaction; each request's ops are atomic.

    ``staged`` is set once the puts are done (or failed), before the commit's
    fsyncs: the sender may park on it (see the module docstring).
    """

    requests: Sequence[Sequence[Op]]
    done: Committed
    staged: threading.Event = field(default_factory=threading.Event)


@dataclass(slots=True)
class StopWriter:
    """Stop the writer once every earlier message is handled; then fill ``reply``."""

    reply: Reply[None]


@dataclass(slots=True)
class WriterStats:
    """Counters of the writer thread (only that thread writes them)."""

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

    def __init__(self, env: Environment, token: trio.lowlevel.TrioToken,
                 stats: WriterStats) -> None:
        super().__init__()
        self._env = env
        self._token = token
        self.stats = stats

    def on_receive(self, message: Any) -> None:
        if isinstance(message, CommitBatch):
            try:
                errors = self._commit_batch(message.requests, message.staged)
            finally:
                message.staged.set()  # never leave the loop parked
            try:
                self._token.run_sync_soon(message.done, errors)
            except trio.RunFinishedError:
                pass  # nobody is left waiting
        elif isinstance(message, StopWriter):
            self.stop()
            message.reply.set_result(None)

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        log.error("store writer crashed", exc_info=exception_value)

    def _commit_batch(self, requests: Sequence[Sequence[Op]],
                      staged: threading.Event) -> list[str | None]:
        started = time.perf_counter()
        try:
            self._commit(requests, staged)
        except Exception as exc:
            # One bad request must not fail its neighbours: redo them one by
            # one so only the culprit gets the error.
            log.warning("batch commit failed, retrying requests singly", exc_info=exc)
            errors: list[str | None] = []
            for request in requests:
                try:
                    self._commit((request,))
                    errors.append(None)
                except Exception as single:
                    self.stats.failed_requests += 1
                    errors.append(f"write rejected by the store: {single}")
        else:
            errors = [None] * len(requests)
        self._record(requests, started)
        return errors

    def _commit(self, requests: Sequence[Sequence[Op]],
                staged: threading.Event | None = None) -> None:
        dbs = self._env.dbs
        while True:
            try:
                with self._env.env.begin(write=True) as txn:
                    for ops in requests:
                        for op in ops:
                            if type(op) is Put:
                                txn.put(op.key, op.value, db=dbs[op.db])
                            else:
                                txn.delete(op.key, db=dbs[op.db])
                    if staged is not None:
                        staged.set()  # the loop runs on while the commit syncs
                return
            except lmdb.MapFullError:
                # The transaction was aborted whole; grow and redo it, losing nothing.
                new_size = self._env.grow()
                self.stats.map_grows += 1
                log.info("store map grown", extra={"map_size": new_size})

    def _record(self, requests: Sequence[Sequence[Op]], started: float) -> None:
        stats = self.stats
        ops = sum(len(r) for r in requests)
        stats.commits += 1
        stats.requests += len(requests)
        stats.ops += ops
        stats.largest_batch = max(stats.largest_batch, ops)
        if len(stats.commit_seconds) < 100_000:
            stats.commit_seconds.append(time.perf_counter() - started)
