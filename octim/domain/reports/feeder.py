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
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import trio

from octim.domain.reports.counting import Fold, compact
from octim.store import Delete, Put, pack

if TYPE_CHECKING:
    from octim.store import Store

log = logging.getLogger("octim.reports")

CURSOR_KEY = b"reports_cursor"
DEFAULT_TZ = "Asia/Shanghai"


def shop_zone(store: Any, shop: str) -> ZoneInfo:
    """A shop's time zone (``settings.timezone``), else Asia/Shanghai (the platform too)."""
    name = ((store.get("shops", shop.encode()) or {}).get("settings") or {}).get(
        "timezone") if shop != "*" else None
    try:
        return ZoneInfo(str(name or DEFAULT_TZ))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TZ)
READ_BATCH = 5000
KEEP_BUCKETS = 20_000  # buckets kept between catch-ups (the live hours of busy shops)
KEEP_PENDING = 100_000  # pending records of open conversations kept between catch-ups


class Reports:
    """See the module docstring."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lock = trio.Lock()
        self.cursor = 0
        self.zones: dict[str, ZoneInfo] = {}
        self.last_run = float("-inf")
        # Buckets and pending records as the store holds them, kept between catch-ups
        # (the current hours' and the open conversations'), so live traffic reads none.
        self.known: OrderedDict[bytes, dict[str, Any]] = OrderedDict()
        self.pending: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def zone_of(self, shop: str) -> ZoneInfo:
        """The zone a shop's days are counted in (its ``settings.timezone``)."""
        zone = self.zones.get(shop)
        if zone is None:
            zone = self.zones[shop] = shop_zone(self.store, shop)
        return zone

    def due(self, now: float, interval: float) -> bool:
        """Whether the background catch-up should run now (every ``interval`` seconds):
        the cost of the counters is per bucket a catch-up touches, so folding ten seconds
        of traffic at once costs a tenth per record of folding each second. A report
        read catches up first whatever the interval, so it is never stale."""
        if now - self.last_run < interval and now >= self.last_run:
            return False
        self.last_run = now
        return True

    def open(self) -> None:
        stored = self.store.get("meta", CURSOR_KEY)
        self.cursor = int(stored) if stored is not None else 0

    async def catch_up(self, *, max_records: int = 50_000) -> int:
        """Fold what the log holds after the cursor (at most ``max_records`` per call, so
        a long replay does not hold the loop); returns how many records were counted."""
        async with self.lock:
            store = self.store
            pending = self.pending
            fold = Fold(lambda key: store.get("report_buckets", key),
                        lambda conversation: pending.get(conversation) or store.get(
                            "report_pending", conversation.encode()),
                        self.zone_of, self.known)
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
            ops += [Put("report_buckets", key, pack(compact(bucket)))
                    for key, bucket in fold.buckets.items()]
            for conversation, state in fold.pending.items():
                key = conversation.encode()
                ops.append(Delete("report_pending", key) if state is None
                           else Put("report_pending", key, pack(state)))
            try:
                await store.write(ops)
            except BaseException:
                # Not counted after all: what the fold changed in place is forgotten and
                # the log is read again from the cursor (never counted twice).
                self.known.clear()
                self.pending.clear()
                raise
            self.cursor = cursor
            for conversation, state in fold.pending.items():
                if state is None:
                    pending.pop(conversation, None)
                else:
                    pending[conversation] = state
                    pending.move_to_end(conversation)
            for key in fold.buckets:
                self.known.move_to_end(key)
            while len(self.known) > KEEP_BUCKETS:
                self.known.popitem(last=False)
            while len(pending) > KEEP_PENDING:
                pending.popitem(last=False)
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
