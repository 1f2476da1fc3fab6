"""Keeps the report counters up to date from the durable event log.

:class:`Reports` reads the ``log`` database after its cursor (``meta``:
``reports_cursor``), folds the records (:mod:`.counting`) and writes the changed hourly
buckets (``report_buckets``) and the cursor **in one commit**: every logged event is
counted exactly once, across restarts and crashes. The engine calls :meth:`catch_up` on
every tick and before a report is read, so a report includes everything committed before
it was asked for. Nothing ever scans messages.

The fold's per-conversation state (``report_pending``) changes with almost every record
but counts nothing by itself, so it is **checkpointed** rather than written each time:
with its own cursor (``reports_pending_cursor``) every :data:`CHECKPOINT_RECORDS`
records. Between checkpoints it lives in memory; after a restart (or a failed commit)
the records between the two cursors are folded again *without counting* to rebuild it,
which gives the same state because the fold is deterministic. The lifecycle's records
(recency, frequency and money per buyer, the shop's histogram) are counts, not state:
they are written with every catch-up and a replay leaves them alone.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import trio

from octim.domain.reports.counting import Fold
from octim.store import Delete, Put, pack

if TYPE_CHECKING:
    from octim.store import Store

log = logging.getLogger("octim.reports")

CURSOR_KEY = b"reports_cursor"
PENDING_CURSOR_KEY = b"reports_pending_cursor"  # the log number report_pending reflects
CHECKPOINT_RECORDS = 100_000  # records folded between two writes of the pending state
#: Pending records that are counts themselves (the lifecycle's): written with every
#: catch-up, and not folded again by a replay.
COUNTED = ("rfm\0", "lifecycle\0")
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
        self.pending_cursor = 0  # what report_pending holds (≤ cursor)
        self.zones: dict[str, ZoneInfo] = {}
        self.last_run = float("-inf")
        # Buckets and clean pending records as the store holds them, kept between
        # catch-ups (the current hours' and the open conversations'), so live traffic
        # reads none; ``dirty``: the pending records changed since the last checkpoint
        # (None: deleted), the authority until the next one.
        self.known: OrderedDict[bytes, dict[str, Any]] = OrderedDict()
        self.pending: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.dirty: dict[str, dict[str, Any] | None] = {}
        self.record_pending_cursor = True  # the store does not say yet where it stands
        self.caught_at = float("-inf")  # trio time of the last catch-up

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
        """Load the cursors and rebuild the pending state past the checkpoint."""
        stored = self.store.get("meta", CURSOR_KEY)
        self.cursor = int(stored) if stored is not None else 0
        stored = self.store.get("meta", PENDING_CURSOR_KEY)
        # None: counters from before checkpoints (their pending state was written with
        # every catch-up, so it is the cursor's), or none yet; the first commit says so.
        self.record_pending_cursor = stored is None
        self.pending_cursor = self.cursor if stored is None else min(int(stored), self.cursor)
        self._replay()

    def _load_pending(self, key: str) -> dict[str, Any] | None:
        if key in self.dirty:
            return self.dirty[key]
        found = self.pending.get(key)
        return found if found is not None else self.store.get("report_pending", key.encode())

    def _fold(self, counting: bool = True) -> Fold:
        store = self.store
        return Fold(lambda key: store.get("report_buckets", key), self._load_pending,
                    self.zone_of, self.known if counting else {}, counting=counting)

    def _replay(self) -> None:
        """Forget the pending state in memory and fold the records between the two
        cursors again without counting: the state as it was at ``cursor``."""
        self.known.clear()
        self.pending.clear()
        self.dirty.clear()
        at = self.pending_cursor
        while at < self.cursor:
            fold = self._fold(counting=False)
            records = self.store.read_log("log", at, READ_BATCH)
            if not records:
                break
            for number, record in records:
                if number > self.cursor:
                    at = self.cursor
                    break
                try:
                    fold.observe(record)
                except Exception as exc:  # counted (or not) as the first time
                    log.error("reports could not replay an event", exc_info=exc,
                              extra={"log": number})
                at = number
            self.dirty.update(fold.pending)

    async def fresh(self, within: float = 1.0) -> None:
        """Catch up unless that was done less than ``within`` seconds ago: what the live
        monitor reads (a snapshot a second per screen), so that many screens do not make
        a commit each; its figures are then at most that old."""
        if trio.current_time() - self.caught_at >= within:
            await self.catch_up()

    async def catch_up(self, *, max_records: int = 50_000) -> int:
        """Fold what the log holds after the cursor (at most ``max_records`` per call, so
        a long replay does not hold the loop); returns how many records were counted."""
        self.caught_at = trio.current_time()
        async with self.lock:
            store = self.store
            fold = self._fold()
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
            ops += [Put("report_buckets", k, pack(bucket)) for k, bucket in fold.buckets.items()]
            dirty = {**self.dirty, **fold.pending}
            checkpoint = cursor - self.pending_cursor >= CHECKPOINT_RECORDS
            if not checkpoint:  # the lifecycle's records count: written with the cursor
                for name, state in fold.pending.items():
                    if name.startswith(COUNTED):
                        ops.append(Put("report_pending", name.encode(), pack(state))
                                   if state is not None else
                                   Delete("report_pending", name.encode()))
            if checkpoint or self.record_pending_cursor:
                ops.append(Put("meta", PENDING_CURSOR_KEY, pack(
                    cursor if checkpoint else self.pending_cursor)))
            if checkpoint:
                for key, state in dirty.items():
                    ops.append(Delete("report_pending", key.encode()) if state is None
                               else Put("report_pending", key.encode(), pack(state)))
            try:
                await store.write(ops)
            except BaseException:
                # Not counted after all: the buckets changed in place are forgotten, the
                # pending state is rebuilt as it was at the cursor, and the log is read
                # again from there (never counted twice).
                self._replay()
                raise
            self.cursor = cursor
            self.record_pending_cursor = False
            if checkpoint:
                self.pending_cursor = cursor
                self.dirty = {}
                for name, state in dirty.items():
                    if state is None:
                        self.pending.pop(name, None)
                    else:
                        self.pending[name] = state
                        self.pending.move_to_end(name)
                while len(self.pending) > KEEP_PENDING:
                    self.pending.popitem(last=False)
            else:
                self.dirty = dirty
            for bucket_key in fold.buckets:
                self.known.move_to_end(bucket_key)
            while len(self.known) > KEEP_BUCKETS:
                self.known.popitem(last=False)
            return counted

    async def checkpoint(self) -> None:
        """Write the pending state now (the engine's stop; a rebuild's end)."""
        async with self.lock:
            if self.pending_cursor == self.cursor and not self.dirty:
                return
            ops: list[Any] = [Put("meta", PENDING_CURSOR_KEY, pack(self.cursor))]
            for key, state in self.dirty.items():
                ops.append(Delete("report_pending", key.encode()) if state is None
                           else Put("report_pending", key.encode(), pack(state)))
            await self.store.write(ops)
            self.pending_cursor = self.cursor
            for key, state in self.dirty.items():
                if state is not None:
                    self.pending[key] = state
            self.dirty = {}


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
            await store.write([Put("meta", CURSOR_KEY, pack(0)),
                               Put("meta", PENDING_CURSOR_KEY, pack(0))])
            reports = Reports(store)
            counted = 0
            while True:
                step = await reports.catch_up()
                if not step:
                    break
                counted += step
            await reports.checkpoint()
            return {"records": counted, "dropped": dropped,
                    "buckets": sum(1 for _ in store.scan("report_buckets"))}
    finally:
        lock.close()
