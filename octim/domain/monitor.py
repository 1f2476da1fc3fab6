"""The live monitor's numbers: today's counters per shop and the last hour per minute.

:class:`Monitor` reads the durable event log (database ``log``, in commit order)
through a cursor: whatever it has not counted yet, it reads and counts before every
snapshot and every engine tick. It keeps per shop and UTC day:

* conversations opened, resolved, messages by buyers and by staff;
* first-response time: from a buyer message that waits for a person (not
  answered by the bot) to the first staff reply in that conversation;
* satisfaction: the ratings given.

Day records live in the ``stats`` database (``shop \\0 YYYY-MM-DD``) and are written
together with the cursor (``meta``: ``monitor_cursor``) in one commit, so every logged
event is counted exactly once, across restarts and crashes, and a burst cannot make it
miss any. Times are the events' own. Live state (agents, queue, longest wait) comes
from the dispatcher when a snapshot is asked for. What is kept in memory only is which
conversations still wait for a first response, so a wait that spans a restart is not
counted as a first response.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import trio

from octim.domain.conversations.model import STAFF_ROLES, pair_key
from octim.domain.routing.messages import DISPATCHER, DISPATCHER_ID, MonitorView
from octim.store import Put, pack

if TYPE_CHECKING:
    from octim.engine import Engine

log = logging.getLogger("octim.monitor")

MINUTES = 60  # the chart's window
CURSOR_KEY = b"monitor_cursor"  # in ``meta``: the last log number counted
READ_BATCH = 5000  # log records read per store read while catching up
TRACKED = 100_000  # conversations whose first response is still being watched


@functools.lru_cache(maxsize=64)
def _day(day_number: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day_number * 86_400))


def day_of(ms: int) -> str:
    """The UTC day of a time in ms, as YYYY-MM-DD."""
    return _day(ms // 86_400_000)


def empty_day() -> dict[str, Any]:
    return {"opened": 0, "resolved": 0, "buyer_messages": 0, "staff_messages": 0,
            "frt_sum_ms": 0, "frt_count": 0, "rating_sum": 0, "rating_count": 0,
            "minutes": {}}


class Monitor:
    """See the module docstring."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.cursor = 0  # the last log number counted (and written with the days)
        self.lock = trio.Lock()
        self.days: dict[tuple[str, str], dict[str, Any]] = {}
        self.dirty: set[tuple[str, str]] = set()
        # conversation → ms of the oldest buyer message a person has not answered yet
        self.waiting: OrderedDict[str, int] = OrderedDict()
        self.responded: OrderedDict[str, None] = OrderedDict()

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
        event, shop, data = record["event"], record["shop"], record["data"]
        conversation, ts = record["conversation"], int(record["ts"])
        if event == "opened":
            day = self._day(shop, ts)
            day["opened"] += 1
            minute = ts // 60_000
            day["minutes"][minute] = day["minutes"].get(minute, 0) + 1
        elif event == "resolved":
            self._day(shop, ts)["resolved"] += 1
            self.waiting.pop(conversation, None)
        elif event == "rated":
            day = self._day(shop, ts)
            day["rating_sum"] += int(data.get("score", 0))
            day["rating_count"] += 1
        elif event == "message" and data.get("kind") != "note":  # notes answer nobody
            self._message(shop, conversation, data["role"], ts)

    def _message(self, shop: str, conversation: str, role: str, ts: int) -> None:
        if role == "buyer":
            self._day(shop, ts)["buyer_messages"] += 1
            if conversation not in self.waiting and conversation not in self.responded:
                self.waiting[conversation] = ts
                if len(self.waiting) > TRACKED:
                    self.waiting.popitem(last=False)
        elif role == "bot":
            self.waiting.pop(conversation, None)  # the bot answered; nobody waits for a person
        elif role in STAFF_ROLES:
            day = self._day(shop, ts)
            day["staff_messages"] += 1
            since = self.waiting.pop(conversation, None)
            if since is not None and conversation not in self.responded:
                day["frt_sum_ms"] += max(0, ts - since)
                day["frt_count"] += 1
                self.responded[conversation] = None
                if len(self.responded) > TRACKED:
                    self.responded.popitem(last=False)

    # -- reading -------------------------------------------------------------------

    async def snapshot(self, shops: list[str]) -> dict[str, Any]:
        """What the monitor screen shows for ``shops`` (counted up to the last commit)."""
        await self.catch_up()
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
            frt = day["frt_sum_ms"] / day["frt_count"] / 1000 if day["frt_count"] else None
            rating = day["rating_sum"] / day["rating_count"] if day["rating_count"] else None
            out.append({
                "shop": shop, "name": record.get("name", shop), **live[shop],
                "today": {"opened": day["opened"], "resolved": day["resolved"],
                          "buyer_messages": day["buyer_messages"],
                          "staff_messages": day["staff_messages"],
                          "first_response_seconds": None if frt is None else round(frt, 1),
                          "first_responses": day["frt_count"],
                          "satisfaction": None if rating is None else round(rating, 2),
                          "ratings": day["rating_count"]},
                # opened per minute, oldest first, the current minute last
                "last_hour": [day["minutes"].get(m, 0) if day_of(m * 60_000) == today
                              else self._earlier(shop, m)
                              for m in range(minute - MINUTES + 1, minute + 1)],
            })
        return {"type": "monitor", "ts": now, "day": today, "shops": out}

    def _earlier(self, shop: str, minute: int) -> int:
        """A minute of the last hour that fell on yesterday (just after midnight UTC)."""
        stored = self.engine.store.get("stats", pair_key(shop, day_of(minute * 60_000)))
        return int(stored["minutes"].get(str(minute), 0)) if stored else 0
