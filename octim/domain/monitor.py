"""The live monitor's numbers: today's figures per shop and the last hour per minute.

Today's figures come from the report counters (octim/domain/reports, the definitions in
docs/reports.md), brought up to date with the log before a snapshot (at most once a
second for all the screens): the monitor and the reports page never disagree, and
"today" is the shop's day in its time zone.

What the monitor counts itself is the chart of the last hour: conversations opened per
minute. :class:`Monitor` reads the durable event log (database ``log``, in commit order)
through a cursor and keeps per shop and UTC day the opened count and the minutes, in the
``stats`` database (``shop \\0 YYYY-MM-DD``), written together with the cursor (``meta``:
``monitor_cursor``) in one commit, so every logged event is counted exactly once, across
restarts and crashes. Live state (agents, queue, longest wait) comes from the dispatcher
when a snapshot is asked for.
"""

from __future__ import annotations

import datetime
import functools
import logging
import time
from typing import TYPE_CHECKING, Any

import trio

from octim.domain import peak
from octim.domain.conversations.model import pair_key
from octim.domain.reports.counting import CHANNELS, DIMENSIONS
from octim.domain.reports.feeder import shop_zone
from octim.domain.reports.read import report
from octim.domain.routing.messages import DISPATCHER, DISPATCHER_ID, MonitorView
from octim.store import Put, pack

if TYPE_CHECKING:
    from octim.engine import Engine

log = logging.getLogger("octim.monitor")

MINUTES = 60  # the chart's window
CURSOR_KEY = b"monitor_cursor"  # in ``meta``: the last log number counted
READ_BATCH = 5000  # log records read per store read while catching up


@functools.lru_cache(maxsize=64)
def _day(day_number: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day_number * 86_400))


def day_of(ms: int) -> str:
    """The UTC day of a time in ms, as YYYY-MM-DD."""
    return _day(ms // 86_400_000)


def empty_day() -> dict[str, Any]:
    return {"opened": 0, "minutes": {}}


class Monitor:
    """See the module docstring."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.cursor = 0  # the last log number counted (and written with the days)
        self.lock = trio.Lock()
        self.days: dict[tuple[str, str], dict[str, Any]] = {}
        self.dirty: set[tuple[str, str]] = set()

    # -- feeding -------------------------------------------------------------------

    def open(self) -> None:
        """Load the cursor (engine start)."""
        stored = self.engine.store.get("meta", CURSOR_KEY)
        self.cursor = int(stored) if stored is not None else 0

    async def catch_up(self) -> None:
        """Count every log record after the cursor; then write the changed day records
        and the cursor in one commit."""
        async with self.lock:
            store = self.engine.store
            cursor = self.cursor
            while True:
                records = store.read_log("log", cursor, READ_BATCH)
                for number, record in records:
                    try:
                        self.observe(record)
                    except Exception as exc:  # a bad record must not stop the monitor
                        log.error("monitor could not count an event", exc_info=exc,
                                  extra={"log": number})
                if records:
                    cursor = records[-1][0]
                if len(records) < READ_BATCH:
                    break
            if cursor == self.cursor:
                return
            ops = [Put("meta", CURSOR_KEY, pack(cursor))]
            for key in self.dirty:
                record = self.days.get(key)
                if record is not None:
                    ops.append(Put("stats", pair_key(*key), pack(
                        {**record, "minutes": {str(k): v for k, v in record["minutes"].items()}})))
            self.dirty.clear()
            try:
                await store.write(ops)
            except Exception:
                # Not counted after all: forget the days, reread them from the store
                # and the log from the cursor next time (never counted twice).
                self.days.clear()
                raise
            self.cursor = cursor
            newest = max((day for _, day in self.days), default="")
            for old in [k for k in self.days if k[1] < newest]:
                del self.days[old]  # written; nothing counts into an earlier day now

    def _day(self, shop: str, ms: int) -> dict[str, Any]:
        key = (shop, day_of(ms))
        record = self.days.get(key)
        if record is None:
            stored = self.engine.store.get("stats", pair_key(*key))
            record = dict(stored) if stored is not None else empty_day()
            record["minutes"] = {int(k): v for k, v in record.get("minutes", {}).items()}
            self.days[key] = record
        self.dirty.add(key)
        return record

    def observe(self, record: dict[str, Any]) -> None:
        """Count one event of the log."""
        if record["event"] == "opened":
            ts = int(record["ts"])
            day = self._day(record["shop"], ts)
            day["opened"] += 1
            minute = ts // 60_000
            day["minutes"][minute] = day["minutes"].get(minute, 0) + 1

    # -- reading -------------------------------------------------------------------

    async def snapshot(self, shops: list[str]) -> dict[str, Any]:
        """What the monitor screen shows for ``shops`` (counted up to the last commit)."""
        await self.catch_up()
        if self.engine.reports is not None:
            await self.engine.reports.fresh()
        now = self.engine.context.now_ms()
        live = await self.engine.directory.ref(DISPATCHER, DISPATCHER_ID).ask(
            MonitorView(tuple(shops)))
        store = self.engine.store
        today, minute = day_of(now), now // 60_000
        out = []
        for shop in shops:
            day = self.days.get((shop, today))
            if day is None:
                stored = store.get("stats", pair_key(shop, today))
                day = empty_day() if stored is None else {
                    **stored, "minutes": {int(k): v for k, v in stored["minutes"].items()}}
            record = store.get("shops", shop.encode()) or {}
            out.append({
                "shop": shop, "name": record.get("name", shop), **live[shop],
                # peak mode (大促): what switched it on, "shop" or "platform", or None
                "peak": peak.state(store, shop, now).source,
                "today": self._today(shop, now),
                # opened per minute, oldest first, the current minute last
                "last_hour": [day["minutes"].get(m, 0) if day_of(m * 60_000) == today
                              else self._earlier(shop, m)
                              for m in range(minute - MINUTES + 1, minute + 1)],
            })
        admission = self.engine.admission
        return {"type": "monitor", "ts": now, "day": today, "shops": out,
                # The engine's own budget (admission control, docs/operations.md).
                "engine": {"overloaded": admission.overloaded(),
                           "shed": sum(admission.sheds.values()),
                           "loop_lag_ms": round(admission.loop_lag() * 1000, 1)}}

    def _today(self, shop: str, now: int) -> dict[str, Any]:
        """The shop's figures since its midnight, from the report counters."""
        zone = shop_zone(self.engine.store, shop)
        local = datetime.datetime.fromtimestamp(now / 1000, tz=zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        tomorrow = (midnight + datetime.timedelta(days=1)).replace(tzinfo=None)
        start = int(midnight.timestamp() * 1000)
        end = int(datetime.datetime.combine(tomorrow, datetime.time(), zone).timestamp() * 1000)
        # The whole day: its roll-up is one record (nothing is counted ahead of the clock).
        m = report(self.engine.store, shop, "", start, end, "day", zone, backlog=False)[
            "totals"]
        frt = m["first_response"]
        # Today's conversations by channel (docs/channels.md): one day record per channel.
        by_channel = {}
        for channel in (*CHANNELS, "other"):
            opened = report(self.engine.store, shop, DIMENSIONS["channel"] + channel, start,
                            end, "day", zone, backlog=False)["totals"]["conversations"]
            if opened:
                by_channel[channel] = opened
        return {"opened": m["conversations"], "by_channel": by_channel, "buyers": m["buyers"],
                "resolved": m["resolved"], "buyer_messages": m["buyer_messages"],
                "staff_messages": m["staff_messages"], "first_responses": frt["count"],
                "first_response_seconds": frt["mean_s"], "first_response_p90": frt["p90_s"],
                "within_30s_rate": m["response"]["within_30s_rate"],
                "ratings": m["ratings"], "satisfaction": m["satisfaction"],
                "average_rating": m["average_rating"], "handoffs": m["handoffs"],
                "queue_wait_p90": m["queue_wait"]["p90_s"], "abandoned": m["abandoned"],
                "inquiries": m["inquiries"], "converted": m["converted"],
                "conversion_rate": m["conversion_rate"], "sales": m["sales"],
                "tickets_created": m["tickets_created"], "sla_breaches": m["sla_breaches"]}

    def _earlier(self, shop: str, minute: int) -> int:
        """A minute of the last hour that fell on yesterday (just after midnight UTC)."""
        stored = self.engine.store.get("stats", pair_key(shop, day_of(minute * 60_000)))
        return int(stored["minutes"].get(str(minute), 0)) if stored else 0
