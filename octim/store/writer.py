"""The single LMDB writer: a pykka ThreadingActor that commits whole batches.

Group commit is split across the two sides. The trio side
(:class:`~octim.store.store.Store`) collects every write that arrives while a
commit is running into the next batch, and its committer task hands one batch
per scheduling round to this thread, which commits it in one transaction.

While this thread works, the trio loop is **parked** (it waits on the batch's
``finished`` event, holding no GIL). py-lmdb releases and retakes the GIL
around every put, and when the loop thread is runnable each retake waits for it
to give the GIL up (up to the switch interval): a batch of a few hundred puts
took hundreds of milliseconds and held every ack behind it, and the thread's
return after the fsync waited once more
(../shared/reference/performance-notes.md). With the loop parked nobody
contends: the puts cost a few µs each and the commit's fsyncs return at once,
and the loop runs the batch's callbacks itself, without a wake-up through the
trio token. The transaction stays on this one thread (LMDB's rule) and the sync
flags stay LMDB's fully synchronous default: nothing about crash safety
changes.

The park has ceilings (``PARK_PUTS`` before the puts are done, ``PARK_SYNC``
for the fsyncs after them): if the writer cannot start (another process holds
the write lock, e.g. ``octim rekey``) or the disk's fsync is slow, the loop
goes on and this thread reports the outcome through the trio token instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import lmdb
import pykka
import trio

from octim.actors.bridge import Reply
from octim.store.env import Environment

log = logging.getLogger("octim.store.writer")


# Named tuples, not frozen dataclasses: several are built per message on the hot
# path, and a tuple is built in one step instead of one __setattr__ per field.
class Put(NamedTuple):
    """Store ``value`` (already encoded) under ``key`` in the named database."""

    db: str
    key: bytes
    value: bytes


class Delete(NamedTuple):
    """Remove ``key`` from the named database (absent keys are fine)."""

    db: str
    key: bytes


class Append(NamedTuple):
    """Append ``value`` (already encoded) to a log database (:data:`~octim.store.env.LOGS`):
    the store gives it the log's next sequence number as its key (8 bytes, big-endian)
    when it queues the write, so a log's key order is its commit order."""

    db: str
    value: bytes


Op = Put | Delete | Append

#: Called on the trio thread with the per-request errors (None = committed).
Committed = Callable[[list[str | None]], None]

#: Longest the trio loop stays parked until the writer has done a batch's puts.
PARK_PUTS = 0.1
#: Longest it then stays parked for the commit's fsyncs.
PARK_SYNC = 0.005


@dataclass(slots=True)
class CommitBatch:
    """Requests to commit in one transaction; each request's ops are atomic.

    ``staged`` is set once the puts are done, ``finished`` once the commit is
    (then ``errors`` holds the outcome). A sender that stopped waiting (it set
    ``late``) gets ``done(errors)`` through the trio token instead.
    """

    requests: Sequence[Sequence[Op]]
    done: Committed
    staged: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    errors: list[str | None] = field(default_factory=list)
    late: bool = False

    def park(self) -> bool:
        """Wait (trio thread, loop parked) for the commit; False if it takes longer
        than the ceilings, and then ``done`` will be called through the token."""
        if self.staged.wait(PARK_PUTS) and self.finished.wait(PARK_SYNC):
            return True
        self.late = True
        # The writer reads ``late`` after setting ``finished``: check again, so that
        # the outcome is always delivered (if both sides do, ``done`` ignores the
        # second report).
        if self.finished.is_set():
            self.late = False
            return True
        return False


@dataclass(slots=True)
class StopWriter:
    """Stop the writer once every earlier message is handled; then fill ``reply``."""

    reply: Reply[None]


@dataclass(slots=True)
class WriterStats:
    """Counters of the commit path. The writer thread writes all of them but the last
    two, which only the trio side (the committer task) writes."""

    commits: int = 0
    ops: int = 0
    requests: int = 0
    largest_batch: int = 0
    map_grows: int = 0
    failed_requests: int = 0
    # The latest commits' durations (the oldest leave past 100,000).
    commit_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))
    # The latest commits as (when it ended on time.monotonic(), how long it took).
    commit_log: deque[tuple[float, float]] = field(
        default_factory=lambda: deque(maxlen=1_000))
    parks: int = 0  # commits the loop waited for, parked
    late_parks: int = 0  # of those, the ones past a ceiling (reported through the token)


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
                message.errors = self._commit_batch(message.requests, message.staged)
            except BaseException:
                message.errors = ["the store writer failed"] * len(message.requests)
                raise
            finally:
                message.staged.set()  # never leave the loop parked
                message.finished.set()
                if message.late:  # the loop stopped waiting: wake it
                    try:
                        self._token.run_sync_soon(message.done, message.errors)
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
                            elif type(op) is Delete:
                                txn.delete(op.key, db=dbs[op.db])
                            else:  # the Store numbers an Append when it queues it
                                raise TypeError(f"unnumbered {type(op).__name__}")
                    if staged is not None:
                        staged.set()  # the puts are done; the commit syncs next
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
        took = time.perf_counter() - started
        stats.commit_seconds.append(took)
        stats.commit_log.append((time.monotonic(), took))
