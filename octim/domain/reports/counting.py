"""Report counters, folded from the durable event log one record at a time.

Pure: :class:`Fold` takes log records (``{"event", "conversation", "shop", "data",
"ts"}``, docs/architecture.md) and updates hourly **buckets** per shop, per agent of the
shop and for the whole platform (shop ``*``), plus a small **pending** record per
conversation that is still going (when its wait for a person began, whether the bot
served it, who serves it). What the definitions in docs/reports.md need and nothing
more; a report is then a sum of buckets, never a scan of messages.

Latencies are kept as histograms over fixed bins (:data:`BINS_MS`) with their sum, count
and maximum: means are exact, percentiles are read off the bins (interpolated inside one,
never above the maximum seen).
"""

from __future__ import annotations

import bisect
import datetime
from typing import Any

from octim.domain.reports import lifecycle

#: Upper bounds of the latency bins, in ms; one more bin holds everything longer.
BINS_MS = (1_000, 2_000, 5_000, 10_000, 15_000, 20_000, 30_000, 45_000, 60_000, 90_000,
           120_000, 180_000, 300_000, 600_000, 1_800_000, 3_600_000, 14_400_000,
           86_400_000)
FAST_MS = 30_000  # "answered within 30 s" (30秒应答率)
PLATFORM = "*"
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

COUNTS = ("conversations", "bot_conversations", "handoffs", "bot_resolved", "assigned",
          "buyer_messages", "staff_messages", "bot_messages", "resolved", "reopened",
          "ratings", "ratings_good", "rating_sum", "resp_fast", "tickets_created",
          "tickets_solved", "sla_breaches", "inquiries", "converted", "converted_same_day",
          "sales", "abandoned", "complaints", "buyers", "backlog_change", "messages_left",
          "load_ms")
BY_CATEGORY = "complaint_categories"  # category → complaints (投诉焦点)
#: Counts by a name inside the bucket: complaints by category; SLA targets met on time,
#: fulfilled late and breached, by metric.
DICTS = (BY_CATEGORY, "sla_met", "sla_late", "sla_breached", "kb_hits",
         "notices_sent", "notices_held", "outreach_suppressed")
CONVERSION_MS = 24 * HOUR_MS  # an inquiry converts if the buyer pays within 24 h
LATENCIES = ("frt", "resp", "resolution", "queue_wait", "ticket_resolution")
#: The dimensions a conversation is also counted by, each its own scope in the key's
#: second part: ``~c:<channel>``, ``~e:<entry>``, ``~g:<group>`` (never an agent id:
#: those cannot hold ``~``). Channels and entries are bounded vocabularies, so a buyer's
#: open frame cannot mint buckets.
DIMENSIONS = {"channel": "~c:", "entry": "~e:", "group": "~g:"}
CHANNELS = ("web", "app", "miniprogram", "h5", "pc", "api", "wechat", "email", "phone")
ENTRIES = ("product", "order", "shop", "search", "cart", "home")
ACTIVE_TICKET = ("new", "open", "pending", "on_hold")


def channel_of(value: Any) -> str:
    return value if value in CHANNELS else "web" if not value else "other"


def entry_of(data: dict[str, Any]) -> str:
    """Where the buyer came from: the page they opened from, else what they came about."""
    page = data.get("page")
    if page in ENTRIES:
        return str(page)
    if data.get("product"):
        return "product"
    if data.get("order"):
        return "order"
    return "shop" if not page else "other"


def empty_bucket() -> dict[str, Any]:
    bucket: dict[str, Any] = dict.fromkeys(COUNTS, 0)
    for name in LATENCIES:
        bucket[name] = [0, 0, [0] * (len(BINS_MS) + 1), 0]  # count, sum ms, bins, max ms
    for name in DICTS:
        bucket[name] = {}
    return bucket


def add_latency(bucket: dict[str, Any], name: str, ms: int) -> None:
    entry = bucket[name]
    entry[0] += 1
    entry[1] += ms
    entry[2][bisect.bisect_left(BINS_MS, ms)] += 1
    entry[3] = max(entry[3], ms)


def bucket_key(shop: str, agent: str, hour: int) -> bytes:
    """``shop \\0 agent \\0 hour`` ('' agent: the shop as a whole); hours since the epoch,
    zero-padded so a scan of one shop and agent runs in time order."""
    return f"{shop}\0{agent}\0{hour:010d}".encode()


def day_key(shop: str, agent: str, day: str) -> bytes:
    """The day roll-up: ``shop \\0 agent \\0 D<YYYYMMDD>``, the day in the shop's zone
    when it was counted (the bucket says which, in ``tz``)."""
    return f"{shop}\0{agent}\0D{day}".encode()



class Fold:
    """The buckets and pending records a run of log records changes (see module doc).

    ``bucket(key)`` and ``pending(conversation)`` load what the store holds (the caller
    supplies them), so the fold works on a few hours and conversations at a time.
    """

    def __init__(self, load_bucket: Any, load_pending: Any, zone_of: Any = None,
                 known: dict[bytes, dict[str, Any]] | None = None,
                 counting: bool = True) -> None:
        self.counting = counting  # False: only the pending state moves (a replay)
        self._load_bucket = load_bucket
        self._load_pending = load_pending
        self._known = {} if known is None else known  # buckets already loaded (kept live)
        self._zone_of = zone_of  # shop → its ZoneInfo (None: no day roll-ups)
        self._days: dict[tuple[str, int], tuple[str, str]] = {}  # (shop, hour) → day, tz
        self._cache: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
        self._flat: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        self.buckets: dict[bytes, dict[str, Any]] = {}
        self.pending: dict[str, dict[str, Any] | None] = {}  # None: the conversation ended

    def _get(self, key: bytes, tz: str | None = None) -> dict[str, Any]:
        """A bucket as it is stored, sparse (what is not there is zero; a latency's bins
        end at its last sample's), changed in place and stored as it is."""
        found = self.buckets.get(key)
        if found is None:
            found = self._known.get(key)
            if found is None:
                found = self._load_bucket(key) or {}
                if tz is not None:
                    found["tz"] = tz
                self._known[key] = found
            self.buckets[key] = found
        return found

    def _targets(self, shop: str, agent: str, ts: int) -> list[dict[str, Any]]:
        """The hour bucket and the day roll-up an event at ``ts`` counts in; an agent's
        and a dimension's scope keeps the day only (what their reports read, at a third
        of the cost)."""
        hour = ts // HOUR_MS
        cached = self._cache.get((shop, agent, hour))
        if cached is not None:
            return cached
        targets = [] if agent and self._zone_of is not None else [
            self._get(bucket_key(shop, agent, hour))]
        if self._zone_of is not None:
            self._local_day(shop, ts)
            day = self._days[(shop, hour)]
            targets.append(self._get(day_key(shop, agent, day[0]), day[1]))
        self._cache[(shop, agent, hour)] = targets
        return targets

    def _all(self, shop: str, agent: str | None, ts: int,
             dims: dict[str, Any] | None) -> list[dict[str, Any]]:
        """Every bucket an event counts in: the hour and day of the shop, the platform,
        the agent and the conversation's channel, entry and group."""
        values = (None, None, None) if dims is None else (
            dims.get("channel"), dims.get("entry"), dims.get("group"))
        key = (shop, agent, values, ts // HOUR_MS)
        found = self._flat.get(key)
        if found is None:
            scopes = [(shop, ""), (PLATFORM, "")]
            if agent:
                scopes.append((shop, agent))
            scopes += [(shop, prefix + value) for prefix, value in
                       zip(DIMENSIONS.values(), values, strict=True) if value]
            found = self._flat[key] = [b for s, a in scopes for b in self._targets(s, a, ts)]
        return found

    def _count(self, shop: str, agent: str | None, ts: int, name: str, n: int = 1,
               dims: dict[str, Any] | None = None) -> None:
        if not self.counting:
            return
        for bucket in self._all(shop, agent, ts, dims):
            bucket[name] = bucket.get(name, 0) + n

    def _latency(self, shop: str, agent: str | None, ts: int, name: str, ms: int,
                 dims: dict[str, Any] | None = None) -> None:
        if not self.counting:
            return
        ms = max(0, ms)
        index = bisect.bisect_left(BINS_MS, ms)  # once for every bucket it counts in
        for bucket in self._all(shop, agent, ts, dims):
            entry = bucket.get(name)
            if entry is None:
                bucket[name] = [1, ms, [0] * index + [1], ms]
                continue
            entry[0] += 1
            entry[1] += ms
            bins = entry[2]
            if index >= len(bins):
                bins.extend([0] * (index + 1 - len(bins)))
            bins[index] += 1
            if ms > entry[3]:
                entry[3] = ms

    def _by(self, shop: str, ts: int, field: str, name: str,
            dims: dict[str, Any] | None = None) -> None:
        if not self.counting:
            return
        for bucket in self._all(shop, None, ts, dims):
            by = bucket.get(field)
            if by is None:
                by = bucket[field] = {}
            by[name] = by.get(name, 0) + 1

    def _state(self, conversation: str) -> dict[str, Any]:
        if conversation in self.pending:
            state = self.pending[conversation]
        else:
            state = self._load_pending(conversation)
        if state is None:  # logged before reports existed, or already ended: start afresh
            state = {"bot": False, "was_bot": False, "handed": False, "agent": None,
                     "served": False, "start": None, "frt_done": False, "wait": None,
                     "began": None}
        self.pending[conversation] = state
        return state

    def _queue_from(self, state: dict[str, Any], ts: int) -> None:
        """The buyer waits for an agent to be assigned from ``ts`` (once per wait)."""
        if state.get("queued_at") is None and not state["agent"]:
            state["queued_at"] = ts

    def _queue_end(self, state: dict[str, Any], shop: str, agent: str | None, ts: int
                   ) -> None:
        start = state.get("queued_at")
        if start is not None:
            self._latency(shop, agent, ts, "queue_wait", ts - start, dims=state)
            state["queued_at"] = None

    def observe(self, record: dict[str, Any]) -> None:
        event, shop, data = record["event"], record["shop"], record["data"]
        ts = int(record["ts"])
        if event.startswith("ticket_"):
            self._ticket(event, shop, data, ts)
            return
        if event == "order_paid":
            self._paid(shop, data, ts)
            return
        if event == "outreach_suppressed":  # held back by the gate, by type and reason
            self._by(shop, ts, "outreach_suppressed", str(data.get("reason")))
            self._by(shop, ts, "notices_held", str(data.get("notice")))
            return
        conversation = record["conversation"]
        if event == "opened":
            bot = data.get("state") == "bot"
            state = self.pending[conversation] = {
                "bot": bot, "was_bot": bot, "handed": False, "agent": None,
                "served": False, "start": None, "frt_done": False, "wait": None,
                "began": None, "category": data.get("category"),
                "channel": channel_of(data.get("channel")), "entry": entry_of(data)}
            if data.get("origin") == "notice":  # opened by a service notice: it becomes a
                state["deferred"] = str(data.get("buyer"))  # consultation when they write
                return
            self._count(shop, None, ts, "conversations", dims=state)
            if bot:
                self._count(shop, None, ts, "bot_conversations", dims=state)
            self._buyer(shop, str(data.get("buyer")), state, ts)
            return
        state = self._state(conversation)
        if event == "message":
            self._message(state, shop, data, ts)
        elif event == "handoff":
            self._count(shop, None, ts, "handoffs", dims=state)
            if data.get("reason") == "complaint":  # anger or complaint cues (投诉焦点)
                self._complaint(state, shop, ts)
            state.update(bot=False, handed=True, start=ts, frt_done=False, wait=ts)
            self._queue_from(state, ts)
        elif event == "assigned":
            agent = data.get("agent")
            if data.get("group"):
                state["group"] = data["group"]
            self._holder(state, shop, agent, ts)
            if agent and agent != state["agent"]:
                self._count(shop, agent, ts, "assigned", dims=state)
            self._queue_end(state, shop, agent, ts)
            state.update(agent=agent, served=True, bot=False)
            inquiry = state.get("inquiry")
            if inquiry is not None and agent:  # the inquiry converts for who served it
                found = self.pending[inquiry] if inquiry in self.pending else \
                    self._load_pending(inquiry)
                if found is not None and found.get("agent") is None:
                    self.pending[inquiry] = {**found, "agent": agent,
                                             "group": state.get("group")}
        elif event == "transferred":
            state["agent"] = data.get("to")
            self._holder(state, shop, state["agent"], ts)
        elif event == "unassigned":
            state["agent"] = None
            self._holder(state, shop, None, ts)
            self._queue_from(state, ts)
        elif event == "resolved":
            self._holder(state, shop, None, ts)
            self._count(shop, state["agent"], ts, "resolved", dims=state)
            if state["began"] is not None:
                self._latency(shop, state["agent"], ts, "resolution", ts - state["began"],
                              dims=state)
            state.update(start=None, wait=None, queued_at=None)  # not given up: resolved
        elif event == "reopened":
            self._count(shop, state["agent"], ts, "reopened", dims=state)
            state.update(start=ts, frt_done=False, wait=ts)
            if state.get("queued_at") is None:  # routed again (its last agent preferred)
                state["queued_at"] = ts
        elif event == "rated":
            score = int(data.get("score", 0))
            self._count(shop, state["agent"], ts, "ratings", dims=state)
            self._count(shop, state["agent"], ts, "rating_sum", score, dims=state)
            if score >= 4:
                self._count(shop, state["agent"], ts, "ratings_good", dims=state)
        elif event == "closed":
            self._holder(state, shop, None, ts)
            if state["was_bot"] and not state["handed"] and not state["served"]:
                self._count(shop, None, ts, "bot_resolved", dims=state)
            if state.get("queued_at") is not None:  # still waiting for an agent: given up
                self._count(shop, None, ts, "abandoned", dims=state)
            self.pending[conversation] = None

    def _message(self, state: dict[str, Any], shop: str, data: dict[str, Any], ts: int
                 ) -> None:
        role, kind = data.get("role"), data.get("kind")
        if kind == "notice":  # a proactive message went out (docs/outreach.md)
            self._by(shop, ts, "notices_sent", str(data.get("notice")))
        if kind == "note" or role == "system":
            return  # private notes and notices answer nobody
        if role == "bot":
            self._count(shop, None, ts, "bot_messages", dims=state)
            if data.get("kb") and self.counting:  # the entry the bot answered with, for
                for bucket in self._targets(shop, "", ts):  # the shop only
                    hits = bucket.get("kb_hits")
                    if hits is None:
                        hits = bucket["kb_hits"] = {}
                    hits[data["kb"]] = hits.get(data["kb"], 0) + 1
            return
        if role == "buyer":
            if state.get("deferred"):  # the buyer answers a notice: now it is one
                self._count(shop, None, ts, "conversations", dims=state)
                if state["bot"]:
                    self._count(shop, None, ts, "bot_conversations", dims=state)
                self._buyer(shop, state.pop("deferred"), state, ts)
            self._count(shop, None, ts, "buyer_messages", dims=state)
            if data.get("cue") == "complaint" and not state["bot"]:  # a person serves it
                self._complaint(state, shop, ts)
            if state["began"] is None:  # the consultation starts (resolution time)
                state["began"] = ts
                self._inquiry(shop, str(data.get("from")), state, ts)
            if state["bot"]:
                return  # the bot's turn: no person is waited for yet
            self._queue_from(state, ts)
            if state["start"] is None and not state["frt_done"]:
                state["start"] = ts
            if state["wait"] is None:
                state["wait"] = ts
            return
        agent = data.get("from")  # a person of the shop
        self._count(shop, agent, ts, "staff_messages", dims=state)
        if state["start"] is not None and not state["frt_done"]:
            self._latency(shop, agent, ts, "frt", ts - state["start"], dims=state)
            state.update(frt_done=True, start=None)
        if state["wait"] is not None:
            gap = ts - state["wait"]
            self._latency(shop, agent, ts, "resp", gap, dims=state)
            if gap <= FAST_MS:
                self._count(shop, agent, ts, "resp_fast", dims=state)
            state["wait"] = None

    def _complaint(self, state: dict[str, Any], shop: str, ts: int) -> None:
        """A complaint, once per conversation: the bot's complaint hand-off, or a buyer's
        complaint words while a person serves (or is awaited)."""
        if state.get("complained"):
            return
        state["complained"] = True
        self._count(shop, None, ts, "complaints", dims=state)
        self._by(shop, ts, BY_CATEGORY, str(state.get("category") or ""), state)

    def _holder(self, state: dict[str, Any], shop: str, agent: str | None, ts: int) -> None:
        """The conversation now takes a place in ``agent``'s load (None: in nobody's): the
        one it leaves and the one it joins change (average concurrent load)."""
        holder = state.get("holder")
        if holder == agent:
            return
        if holder:
            self._load(shop, holder, ts, -1)
        if agent:
            self._load(shop, agent, ts, 1)
        state["holder"] = agent

    def _load(self, shop: str, agent: str, ts: int, delta: int) -> None:
        """The agent's conversations in the shop change by ``delta`` at ``ts``: the time
        since the last change, times the number held, counts as ``load_ms`` in the hours
        it spanned (at most a week back)."""
        key = f"load\0{shop}\0{agent}"
        held = self.pending[key] if key in self.pending else self._load_pending(key)
        n, since = (0, ts) if held is None else (int(held["n"]), int(held["since"]))
        since = max(since, ts - 7 * DAY_MS)
        while n > 0 and since < ts and self.counting:
            end = min((since // HOUR_MS + 1) * HOUR_MS, ts)
            for bucket in self._targets(shop, agent, since):
                bucket["load_ms"] = bucket.get("load_ms", 0) + n * (end - since)
            since = end
        self.pending[key] = {"n": max(0, n + delta), "since": max(since, ts)}

    def _buyer(self, shop: str, buyer: str, dims: dict[str, Any], ts: int) -> None:
        """A distinct buyer of the shop's day (in its zone): their first conversation of
        the day counts them, by its channel and entry."""
        key = f"buyer\0{shop}\0{buyer}"
        seen = self.pending[key] if key in self.pending else self._load_pending(key)
        day = self._local_day(shop, ts)
        if seen is None or seen.get("day") != day:
            self.pending[key] = {"day": day}
            self._count(shop, None, ts, "buyers", dims=dims)

    def _local_day(self, shop: str, ts: int) -> str:
        if self._zone_of is None:
            return str(ts // DAY_MS)
        hour = ts // HOUR_MS
        day = self._days.get((shop, hour))
        if day is None:
            zone = self._zone_of(shop)
            local = datetime.datetime.fromtimestamp(hour * 3600, tz=zone)
            day = self._days[(shop, hour)] = (local.strftime("%Y%m%d"), zone.key)
        return day[0]

    def _inquiry(self, shop: str, buyer: str, state: dict[str, Any], ts: int) -> None:
        """A buyer asked (询单): remembered per shop and buyer for 24 h, to see whether
        they pay; counted for the shop (its agent is known only once one serves)."""
        self._count(shop, None, ts, "inquiries", dims=state)
        key = f"inquiry\0{shop}\0{buyer}"
        self.pending[key] = {"ts": ts, "agent": None, "converted": False,
                             "channel": state.get("channel"), "entry": state.get("entry")}
        state["inquiry"] = key

    def _paid(self, shop: str, data: dict[str, Any], ts: int) -> None:
        """An order of the shop was paid: it converts the buyer's inquiry of the last 24 h
        (once), counted at the inquiry's time for the agent who served it then."""
        if self.counting:  # counts (written with the cursor): a replay leaves them be
            self._lifecycle(shop, str(data.get("customer")),
                            round(float(data.get("amount", 0)) * 100), ts)
        key = f"inquiry\0{shop}\0{data.get('customer')}"
        inquiry = self.pending[key] if key in self.pending else self._load_pending(key)
        if inquiry is None or inquiry["converted"] or not 0 <= ts - inquiry["ts"] <= \
                CONVERSION_MS:
            return
        self.pending[key] = None  # converted: done with (a second order counts nothing)
        asked = inquiry["ts"]
        agent = inquiry.get("agent")
        self._count(shop, agent, asked, "converted", dims=inquiry)
        self._count(shop, agent, asked, "sales", round(float(data.get("amount", 0)) * 100),
                    dims=inquiry)
        if self._same_day(shop, asked, ts):
            self._count(shop, agent, asked, "converted_same_day", dims=inquiry)

    def _lifecycle(self, shop: str, buyer: str, cents: int, ts: int) -> None:
        """The buyer's recency, frequency and money with the shop, and the shop's
        histogram of last payments (lifecycle.py)."""
        key, hist = lifecycle.rfm_key(shop, buyer), lifecycle.histogram_key(shop)
        old = self.pending[key] if key in self.pending else self._load_pending(key)
        new = lifecycle.paid(old, cents, ts)
        histogram = self.pending[hist] if hist in self.pending else self._load_pending(hist)
        self.pending[key] = new
        self.pending[hist] = lifecycle.move(histogram, old, new)

    def _same_day(self, shop: str, a: int, b: int) -> bool:
        if self._zone_of is None:
            return a // DAY_MS == b // DAY_MS
        zone = self._zone_of(shop)
        return bool(datetime.datetime.fromtimestamp(a / 1000, tz=zone).date() ==
                    datetime.datetime.fromtimestamp(b / 1000, tz=zone).date())

    def _ticket(self, event: str, shop: str, data: dict[str, Any], ts: int) -> None:
        """Tickets: created and solved, the backlog's change (a ticket is in the backlog
        while new, open, pending or on hold), time to resolution (from creation to each
        move to solved), and SLA targets met, fulfilled late or breached, by metric."""
        if event == "ticket_created":
            self._count(shop, None, ts, "tickets_created")
            self._count(shop, None, ts, "backlog_change")
            if data.get("source") in ("bot", "form"):  # 留言: left for when someone is back
                self._count(shop, None, ts, "messages_left")
        elif event == "ticket_updated" and "status_to" in data:
            was, now = data.get("status_from") in ACTIVE_TICKET, \
                data["status_to"] in ACTIVE_TICKET
            if was != now:
                self._count(shop, None, ts, "backlog_change", 1 if now else -1)
            if data["status_to"] == "solved":
                self._count(shop, None, ts, "tickets_solved")
                self._latency(shop, None, ts, "ticket_resolution",
                              ts - int(data.get("opened_at") or ts))
        elif event == "ticket_updated" and (data.get("changes") or {}).get("status") == \
                "solved":  # logged before moves carried their statuses
            self._count(shop, None, ts, "tickets_solved")
        elif event == "ticket_sla":
            for name in data.get("met") or ():
                self._by(shop, ts, "sla_met", str(name))
            for name in data.get("late") or ():
                self._by(shop, ts, "sla_late", str(name))
        elif event == "ticket_sla_breached":
            self._count(shop, None, ts, "sla_breaches")
            self._by(shop, ts, "sla_breached", str(data.get("metric")))
