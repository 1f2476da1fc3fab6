"""Keeps the report counters up to date from the durable event log.

:class:`Reports` reads the ``log`` database after its cursor (``meta``:
``reports_cursor``), folds the records (:mod:`.counting`) and writes the changed hourly
buckets (``report_buckets``), the changed pending records (``report_pending``) and the
cursor **in one commit**: every logged event is counted exactly once, across restarts and
crashes (a failed commit forgets what it folded and reads the log again from the cursor).
The engine calls :meth:`catch_up` on every tick and before a report is read, so a report
includes everything committed before it was asked for. Nothing ever scans messages.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from octim.domain.reports.counting import Fold
from octim.store import Delete, Put, pack

if TYPE_CHECKING:
    from octim.store import Store

log = logging.getLogger("octim.reports")

CURSOR_KEY = b"reports_cursor"
READ_BATCH = 5000


class Reports:
    """See the module docstring."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lock = trio.Lock()
        self.cursor = 0

    def open(self) -> None:
        stored = self.store.get("meta", CURSOR_KEY)
        self.cursor = int(stored) if stored is not None else 0

    async def catch_up(self, *, max_records: int = 50_000) -> int:
        """Fold what the log holds after the cursor (at most ``max_records`` per call, so
        a long replay does not hold the loop); returns how many records were counted."""
        async with self.lock:
            store = self.store
            fold = Fold(lambda key: store.get("report_buckets", key),
                        lambda conversation: store.get("report_pending",
                                                       conversation.encode()))
            cursor, counted = self.cursor, 0
            while counted < max_records:
                records = store.read_log("log", cursor, READ_BATCH)
                for number, record in records:
                    try:
                        fold.observe(record)
                    except Exception as exc:  # one bad record must not stop the reports
                        log.error("reports could not count an event", exc_info=exc,
                                  extra={"log": number})
                if records:
                    cursor = records[-1][0]
                    counted += len(records)
                if len(records) < READ_BATCH:
                    break
            if cursor == self.cursor:
                return 0
            ops: list[Any] = [Put("meta", CURSOR_KEY, pack(cursor))]
            ops += [Put("report_buckets", key, pack(bucket))
                    for key, bucket in fold.buckets.items()]
            for conversation, state in fold.pending.items():
                key = conversation.encode()
                ops.append(Delete("report_pending", key) if state is None
                           else Put("report_pending", key, pack(state)))
            await store.write(ops)
            self.cursor = cursor
            return counted


async def rebuild(data: Path, keys: dict[str, bytes] | None = None) -> dict[str, int]:
    """Replay the whole event log into fresh counters (``octim reports rebuild``): the
    engine must be stopped (it holds the data directory's engine lock while it runs)."""
    from octim.store import open_store
    from octim.store.env import ENGINE_LOCK_FILE, hold_lock

    lock = hold_lock(data, exclusive=True, name=ENGINE_LOCK_FILE, holder="an engine")
    try:
        async with open_store(data, keys=keys) as store:
            dropped = 0
            for db in ("report_buckets", "report_pending"):
                keys_of = [key for key, _ in store.scan(db)]
                for at in range(0, len(keys_of), READ_BATCH):
                    await store.write([Delete(db, key) for key in keys_of[at:at + READ_BATCH]])
                dropped += len(keys_of)
            await store.write([Put("meta", CURSOR_KEY, pack(0))])
            reports = Reports(store)
            counted = 0
            while True:
                step = await reports.catch_up()
                if not step:
                    break
                counted += step
            return {"records": counted, "dropped": dropped,
                    "buckets": sum(1 for _ in store.scan("report_buckets"))}
    finally:
        lock.close()
