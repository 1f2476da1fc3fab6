"""Reading reports: sums of hourly buckets over a range, grouped by period in a time zone,
and the metrics derived from them (definitions: docs/reports.md)."""

from __future__ import annotations

import datetime
from typing import Any
from zoneinfo import ZoneInfo

from octim.domain.conversations.model import pair_key
from octim.domain.reports.counting import (
    BINS_MS,
    BY_CATEGORY,
    COUNTS,
    DICTS,
    HOUR_MS,
    LATENCIES,
    bucket_key,
    day_key,
    empty_bucket,
)
from octim.errors import InvalidInput

GRANULARITIES = ("hour", "day", "week", "month")
#: The figures each named report keeps (``overview``: all of them).
VIEWS: dict[str, tuple[str, ...]] = {
    "conversion": ("conversations", "buyers", "inquiries", "assigned", "converted",
                   "conversion_rate", "same_day_conversion_rate", "sales"),
    "queue": ("conversations", "handoffs", "assigned", "queue_wait", "abandoned",
              "messages_left"),
    "tickets": ("tickets_created", "tickets_solved", "backlog", "backlog_change",
                "ticket_resolution_time", "sla", "sla_breaches", "messages_left"),
}


def merge(into: dict[str, Any], bucket: dict[str, Any]) -> None:
    for name in COUNTS:
        into[name] += bucket.get(name, 0)
    for field in DICTS:
        for name, n in (bucket.get(field) or {}).items():
            into[field][name] = into[field].get(name, 0) + n
    for name in LATENCIES:
        count, total, bins, *rest = bucket.get(name) or (0, 0, [], 0)
        entry = into[name]
        entry[0] += count
        entry[1] += total
        for i, n in enumerate(bins):
            entry[2][i] += n
        entry[3] = max(entry[3], rest[0] if rest else BINS_MS[-1] * 10)  # unknown: no cap


def percentile(entry: list[Any], q: float) -> float | None:
    """The ``q`` quantile in seconds, read off the bins (linear inside one); the open
    last bin answers its lower bound."""
    count, bins, top = int(entry[0]), [int(n) for n in entry[2]], int(entry[3])
    if not count:
        return None
    rank = q * count
    seen = 0
    for i, n in enumerate(bins):
        if n and seen + n >= rank:
            low = BINS_MS[i - 1] if i else 0
            if i >= len(BINS_MS):
                return float(min(low, top)) / 1000
            high = BINS_MS[i]
            value = min(low + (high - low) * (rank - seen) / n, float(top))
            return round(value / 1000.0, 3)
        seen += n
    return None


def _latency(entry: list[Any]) -> dict[str, Any]:
    count, total = entry[0], entry[1]
    return {"count": count, "mean_s": round(total / count / 1000, 3) if count else None,
            "p50_s": percentile(entry, 0.5), "p90_s": percentile(entry, 0.9)}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def metrics(b: dict[str, Any]) -> dict[str, Any]:
    """The report's figures of one summed bucket (docs/reports.md defines each)."""
    response = _latency(b["resp"])
    response["within_30s_rate"] = _rate(b["resp_fast"], b["resp"][0])
    return {
        "conversations": b["conversations"], "assigned": b["assigned"],
        "buyer_messages": b["buyer_messages"], "staff_messages": b["staff_messages"],
        "bot_messages": b["bot_messages"],
        "first_response": _latency(b["frt"]), "response": response,
        "resolved": b["resolved"], "resolution_rate": _rate(b["resolved"], b["conversations"]),
        "resolution_time": _latency(b["resolution"]),
        "reopened": b["reopened"], "reopen_rate": _rate(b["reopened"], b["resolved"]),
        "bot_conversations": b["bot_conversations"], "handoffs": b["handoffs"],
        "handoff_rate": _rate(b["handoffs"], b["bot_conversations"]),
        "bot_resolved": b["bot_resolved"],
        "bot_resolution_rate": _rate(b["bot_resolved"], b["bot_conversations"]),
        "ratings": b["ratings"], "satisfaction": _rate(b["ratings_good"], b["ratings"]),
        "rated_share": _rate(b["ratings"], b["conversations"]),
        "average_rating": round(b["rating_sum"] / b["ratings"], 2) if b["ratings"] else None,
        "buyers": b["buyers"],
        "tickets_created": b["tickets_created"], "tickets_solved": b["tickets_solved"],
        "sla_breaches": b["sla_breaches"], "backlog_change": b["backlog_change"],
        "ticket_resolution_time": _latency(b["ticket_resolution"]),
        "sla": {name: {"met": b["sla_met"].get(name, 0), "late": b["sla_late"].get(name, 0),
                       "breached": b["sla_breached"].get(name, 0),
                       "attainment": _rate(b["sla_met"].get(name, 0),
                                           b["sla_met"].get(name, 0) +
                                           b["sla_breached"].get(name, 0))}
                for name in sorted({*b["sla_met"], *b["sla_breached"]})},
        "messages_left": b["messages_left"], "load_s": b["load_ms"] // 1000,
        "inquiries": b["inquiries"], "converted": b["converted"],
        "conversion_rate": _rate(b["converted"], b["inquiries"]),
        "same_day_conversion_rate": _rate(b["converted_same_day"], b["inquiries"]),
        "sales": round(b["sales"] / 100, 2),
        "queue_wait": _latency(b["queue_wait"]), "abandoned": b["abandoned"],
        "complaints": b["complaints"],
        # Proactive messages (docs/outreach.md): sent by type (service notices, reminders,
        # campaigns), and held back by the gate, by type and by reason.
        "outreach": {"sent": dict(sorted(b["notices_sent"].items())),
                     "held": dict(sorted(b["notices_held"].items())),
                     "held_by_reason": dict(sorted(b["outreach_suppressed"].items()))},
    }


def period_of(hour: int, granularity: str, zone: ZoneInfo) -> str:
    local = datetime.datetime.fromtimestamp(hour * 3600, tz=zone)
    if granularity == "hour":
        return local.strftime("%Y-%m-%dT%H:00")
    if granularity == "day":
        return local.strftime("%Y-%m-%d")
    if granularity == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.strftime("%Y-%m")


def _by_day(store: Any, shop: str, agent: str, start_ms: int, end_ms: int,
            zone: ZoneInfo, any_zone: bool = False
            ) -> list[tuple[datetime.date, dict[str, Any]]] | None:
    """The day roll-ups of the range's days in ``zone``, if every one was counted in
    ``zone`` or ``any_zone`` (else None: the caller sums hours)."""
    first = datetime.datetime.fromtimestamp(start_ms / 1000, tz=zone).date()
    last = datetime.datetime.fromtimestamp((end_ms - 1) / 1000, tz=zone).date()
    low = day_key(shop, agent, first.strftime("%Y%m%d"))
    high = day_key(shop, agent, (last + datetime.timedelta(days=1)).strftime("%Y%m%d"))
    found = []
    for key, bucket in store.scan("report_buckets", low, high):
        if bucket.get("tz") != zone.key and not any_zone:
            return None
        day = key.rsplit(b"\0D", 1)[1].decode()
        found.append((datetime.date(int(day[:4]), int(day[4:6]), int(day[6:])), bucket))
    return found


def _day_period(day: datetime.date, granularity: str) -> str:
    if granularity == "day":
        return day.isoformat()
    if granularity == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return day.strftime("%Y-%m")


def report(store: Any, shop: str, agent: str, start_ms: int, end_ms: int,
           granularity: str, zone: ZoneInfo, *, backlog: bool = True) -> dict[str, Any]:
    """Totals and a series by period for ``[start_ms, end_ms)`` of one shop (``*``: the
    platform) or one of its agents. Whole days in the zone the days were counted in come
    from the day roll-ups (one record a day); anything else sums the hours."""
    total = empty_bucket()
    periods: dict[str, dict[str, Any]] = {}
    days = None
    if agent:  # an agent or a dimension: kept by the shop's days only
        if granularity == "hour":
            raise InvalidInput("by hour: a shop's or the platform's figures only")
        days = _by_day(store, shop, agent, start_ms, end_ms, zone, any_zone=True)
    elif granularity != "hour" and _whole_days(start_ms, end_ms, zone):
        days = _by_day(store, shop, agent, start_ms, end_ms, zone)
    if days is not None:
        for day, bucket in days:
            merge(total, bucket)
            merge(periods.setdefault(_day_period(day, granularity), empty_bucket()), bucket)
    else:
        first, last = start_ms // HOUR_MS, (end_ms - 1) // HOUR_MS
        prefix_len = len(bucket_key(shop, agent, 0)) - 10
        for key, bucket in store.scan("report_buckets", bucket_key(shop, agent, first),
                                      bucket_key(shop, agent, last + 1)):
            hour = int(key[prefix_len:])
            merge(total, bucket)
            merge(periods.setdefault(period_of(hour, granularity, zone), empty_bucket()),
                  bucket)
    totals, series = metrics(total), [{"period": p, **metrics(b)}
                                      for p, b in sorted(periods.items())]
    # The ticket backlog at the end of each period: what the changes before the range
    # left, plus the changes up to then.
    if backlog:  # (a read of the history's days: the live monitor goes without)
        left = _backlog_before(store, shop, agent, start_ms, zone)
        for row in series:
            left += row["backlog_change"]
            row["backlog"] = left
        totals["backlog"] = left
    return {"shop": shop, "agent": agent or None, "from": start_ms, "to": end_ms,
            "granularity": granularity, "tz": zone.key, "totals": totals, "series": series}


def _backlog_before(store: Any, shop: str, agent: str, start_ms: int, zone: ZoneInfo
                    ) -> int:
    """The sum of the backlog's changes before ``start_ms``: from the day roll-ups when
    the range starts at a midnight of the zone they were counted in (one record a day of
    history), else from the hours."""
    if agent:
        return 0  # tickets count for the shop, not its agents or dimensions
    if _whole_days(start_ms, start_ms, zone):
        first = datetime.datetime.fromtimestamp(start_ms / 1000, tz=zone).date()
        days = store.scan("report_buckets", day_key(shop, agent, "00000000"),
                          day_key(shop, agent, first.strftime("%Y%m%d")))
        if all(b.get("tz") == zone.key for _, b in days):
            return sum(int(b.get("backlog_change", 0)) for _, b in days)
    return sum(int(b.get("backlog_change", 0)) for _, b in store.scan(
        "report_buckets", bucket_key(shop, agent, 0),
        bucket_key(shop, agent, start_ms // HOUR_MS)))


def view(found: dict[str, Any], name: str) -> dict[str, Any]:
    """The named report's figures out of a full one (``overview`` keeps them all)."""
    keep = VIEWS.get(name)
    if keep is None:
        return found
    def pick(row: dict[str, Any]) -> dict[str, Any]:
        return {k: row[k] for k in ("period", *keep) if k in row}
    return {**found, "totals": pick(found["totals"]), "series": [pick(r) for r in
                                                                  found["series"]]}


def values(store: Any, shop: str, prefix: str) -> list[str]:
    """The values a dimension (``~c:`` channel, ``~e:`` entry, ``~g:`` group) has taken
    in the shop: one seek per value, never a scan of its buckets."""
    head = f"{shop}\0{prefix}".encode()
    found: list[str] = []
    low = head
    while True:
        first = store.scan("report_buckets", low, head[:-1] + bytes([head[-1] + 1]), limit=1)
        if not first:
            return found
        name = first[0][0][len(head):].split(b"\0", 1)[0]
        found.append(name.decode())
        low = head + name + b"\x01"


def breakdown(store: Any, shop: str, prefix: str, start_ms: int, end_ms: int,
              zone: ZoneInfo) -> list[dict[str, Any]]:
    """The shop's totals by each value of one dimension (most conversations first)."""
    rows = [{"value": value, **report(store, shop, prefix + value, start_ms, end_ms, "day",
                                      zone)["totals"]}
            for value in values(store, shop, prefix)]
    rows = [r for r in rows if r["conversations"] or r["buyer_messages"] or r["assigned"]]
    rows.sort(key=lambda r: (-r["conversations"], r["value"]))
    return rows


def hot_questions(store: Any, shop: str, start_ms: int, end_ms: int, zone: ZoneInfo,
                  limit: int = 20) -> dict[str, Any]:
    """热点问题 and 投诉焦点: the shop's questions the knowledge base could not answer,
    grouped by their words (the most asked first, those asked within the range), and
    the complaints the bot detected by the category of the page the buyer came from."""
    found = report(store, shop, "", start_ms, end_ms, "day", zone)
    totals = empty_bucket()
    first, last = start_ms // HOUR_MS, (end_ms - 1) // HOUR_MS
    days = _by_day(store, shop, "", start_ms, end_ms, zone) \
        if _whole_days(start_ms, end_ms, zone) else None
    rows = (b for _, b in days) if days is not None else (
        b for _, b in store.scan("report_buckets", bucket_key(shop, "", first),
                                 bucket_key(shop, "", last + 1)))
    for bucket in rows:
        merge(totals, bucket)
    categories = sorted(totals[BY_CATEGORY].items(), key=lambda kv: (-kv[1], kv[0]))
    hits = sorted(totals["kb_hits"].items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    entries = []
    for entry_id, n in hits:
        entry = store.get("kb", entry_id.encode()) or {}
        entries.append({"entry": entry_id, "question": entry.get("question"),
                        "category": entry.get("category"), "answers": n})
    prefix = f"{shop}\0".encode()
    unanswered = [r for _, r in store.scan("kb_unanswered", prefix, prefix[:-1] + b"\x01")
                  if start_ms <= int(r.get("last", 0)) < end_ms]
    unanswered.sort(key=lambda r: (-r["count"], r["key"]))
    return {"shop": shop, "complaints": found["totals"]["complaints"], "top_entries": entries,
            "complaint_categories": [{"category": c or None, "complaints": n}
                                     for c, n in categories[:limit]],
            "unanswered": [{"question": r["key"], "count": r["count"],
                            "handed_off": r.get("handed_off", 0),
                            "examples": r.get("examples", [])} for r in unanswered[:limit]]}


def _whole_days(start_ms: int, end_ms: int, zone: ZoneInfo) -> bool:
    def midnight(ms: int) -> bool:
        local = datetime.datetime.fromtimestamp(ms / 1000, tz=zone)
        return (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0)
    return midnight(start_ms) and midnight(end_ms)


def agents(store: Any, shop: str, start_ms: int, end_ms: int, zone: ZoneInfo
           ) -> list[dict[str, Any]]:
    """Each agent of the shop with their totals over the range (the shop's agents now)."""
    rows = []
    days = [d.isoformat() for d in _utc_days(start_ms, end_ms)]
    for _, record in store.scan("agents"):
        if shop in record["shops"]:
            figures = report(store, shop, record["id"], start_ms, end_ms, "day", zone)
            duty: dict[str, int] = {"online": 0, "busy": 0, "away": 0}
            for day in days:  # the AgentActor's time on duty (UTC days, all shops)
                for status, ms in (store.get("agent_time", pair_key(record["id"], day))
                                   or {}).items():
                    duty[status] = duty.get(status, 0) + int(ms)
            rows.append({"agent": record["id"], "name": record.get("name", record["id"]),
                         **figures["totals"],
                         "online_s": duty["online"] // 1000, "busy_s": duty["busy"] // 1000,
                         "away_s": duty["away"] // 1000,
                         # conversations held at once, on average, while on duty
                         "average_load": round(figures["totals"]["load_s"] * 1000 / on_duty, 2)
                         if (on_duty := duty["online"] + duty["busy"]) else None})
    return rows


def _utc_days(start_ms: int, end_ms: int) -> list[datetime.date]:
    first = datetime.datetime.fromtimestamp(start_ms / 1000, tz=datetime.UTC).date()
    last = datetime.datetime.fromtimestamp((end_ms - 1) / 1000, tz=datetime.UTC).date()
    return [first + datetime.timedelta(days=n) for n in range((last - first).days + 1)]
