"""SLA policies and business hours for tickets, as pure functions.

A shop's policies are ordered (``position``); the first whose conditions match a
ticket (priority, category, the requester's level for VIPs, the source channel)
applies. Its targets, per priority, are minutes to the **first reply**, the **next
reply** and the **resolution**, counted in calendar time or in the shop's business
hours (time zone, weekly hours, holidays).

Each metric of a ticket is a small record: ``state`` (``active``, ``paused``,
``fulfilled``, ``stopped``, or ``untargeted`` while the policy has no target for it),
the ``target`` and the time ``spent`` before the current stretch (business ms when the
policy counts business hours), ``since`` (when the current stretch began), ``due`` (the
ms it breaches at), and ``breached_at``. The due time is always computed from
``spent``, ``since`` and the target, so a policy change recomputes every open ticket's
due times from what is recorded (not from stale dues).

Rules, explicit and tested (tests/test_sla.py):

- first reply: starts at creation; a public staff reply fulfils it; an internal note
  does not;
- next reply: only a public buyer message that waits for an answer starts it (after a
  first staff reply, on a ticket that is not solved or closed once the message is
  in); the next public staff reply fulfils it;
- resolution: starts at creation; ``pending`` and ``on_hold`` pause it; ``solved``
  fulfils it; a reopen resumes it with the time already spent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from octim.errors import InvalidInput

METRICS = ("first_reply", "next_reply", "resolution")
PAUSING = ("pending", "on_hold")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTE = 60_000
HORIZON_DAYS = 3 * 366  # no business-hours sum looks further than this


def _minutes(text: str) -> int:
    hours, _, minutes = text.partition(":")
    value = int(hours) * 60 + int(minutes or 0)
    if not 0 <= value <= 24 * 60:
        raise InvalidInput(f"{text!r} is not a time of day (HH:MM)")
    return value


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """A shop's working time: weekly intervals in its time zone, minus holidays."""

    zone: str = "Asia/Shanghai"
    weekly: tuple[tuple[tuple[int, int], ...], ...] = ((),) * 7  # per weekday, minutes
    holidays: frozenset[dt.date] = frozenset()

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> BusinessHours:
        """From ``{"timezone", "weekly": {"mon": [["09:00", "18:00"]], …},
        "holidays": ["2026-10-01", …]}`` (InvalidInput when malformed)."""
        try:
            ZoneInfo(record.get("timezone") or "Asia/Shanghai")
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidInput(f"unknown time zone {record.get('timezone')!r}") from exc
        weekly: list[tuple[tuple[int, int], ...]] = []
        raw = record.get("weekly") or {}
        if set(raw) - set(DAYS):
            raise InvalidInput(f"weekly hours are keyed by {', '.join(DAYS)}")
        for day in DAYS:
            spans = []
            for start, end in raw.get(day, []):
                a, b = _minutes(start), _minutes(end)
                if a >= b:
                    raise InvalidInput(f"{day}: {start}-{end} ends before it starts")
                spans.append((a, b))
            weekly.append(tuple(sorted(spans)))
        try:
            holidays = frozenset(dt.date.fromisoformat(d) for d in record.get("holidays", []))
        except ValueError as exc:
            raise InvalidInput("holidays are dates (YYYY-MM-DD)") from exc
        if not any(weekly):
            raise InvalidInput("business hours need at least one working interval")
        return cls(record.get("timezone") or "Asia/Shanghai", tuple(weekly), holidays)

    def _spans(self, start_ms: int) -> Iterator[tuple[int, int]]:
        """Working intervals (ms, ms) from the day of ``start_ms`` on, in order."""
        zone = ZoneInfo(self.zone)
        day = dt.datetime.fromtimestamp(start_ms / 1000, zone).date()
        for _ in range(HORIZON_DAYS):
            if day not in self.holidays:
                for a, b in self.weekly[day.weekday()]:
                    midnight = dt.datetime.combine(day, dt.time(), zone)
                    lo = int((midnight + dt.timedelta(minutes=a)).timestamp() * 1000)
                    hi = int((midnight + dt.timedelta(minutes=b)).timestamp() * 1000)
                    if hi > start_ms:
                        yield max(lo, start_ms), hi
            day += dt.timedelta(days=1)

    def add(self, start_ms: int, work_ms: int) -> int:
        """The time at which ``work_ms`` of working time after ``start_ms`` is over."""
        if work_ms <= 0:
            return start_ms
        left = work_ms
        for lo, hi in self._spans(start_ms):
            if hi - lo >= left:
                return lo + left
            left -= hi - lo
        raise InvalidInput("no working time within three years")

    def between(self, a_ms: int, b_ms: int) -> int:
        """Working ms between two times."""
        total = 0
        for lo, hi in self._spans(a_ms):
            if lo >= b_ms:
                break
            total += min(hi, b_ms) - lo
        return total


@dataclass(frozen=True, slots=True)
class Policy:
    """One SLA policy of a shop (``PUT /api/sla-policies/{id}``)."""

    id: str
    position: int
    priorities: frozenset[str] = frozenset()  # empty: any
    categories: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()
    min_level: int = 0  # VIPs: the requester's level at least this
    targets: dict[str, dict[str, int]] = field(default_factory=dict)  # priority → metric → min
    business_hours: bool = False
    escalate_to: str | None = None  # raise the priority to this on a breach

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Policy:
        when = record.get("conditions") or {}
        return cls(record["id"], int(record.get("position", 0)),
                   frozenset(when.get("priority", ())), frozenset(when.get("category", ())),
                   frozenset(when.get("source", ())), int(when.get("min_level", 0)),
                   dict(record.get("targets") or {}), bool(record.get("business_hours")),
                   record.get("escalate_to"))

    def matches(self, priority: str, category: str | None, source: str, level: int) -> bool:
        return ((not self.priorities or priority in self.priorities)
                and (not self.categories or category in self.categories)
                and (not self.sources or source in self.sources)
                and level >= self.min_level)

    def target_ms(self, priority: str, metric: str) -> int | None:
        minutes = (self.targets.get(priority) or {}).get(metric)
        return None if minutes is None else int(minutes) * MINUTE


def choose(policies: list[Policy], priority: str, category: str | None, source: str,
           level: int) -> Policy | None:
    """The first policy (by position, then id) whose conditions match."""
    for policy in sorted(policies, key=lambda p: (p.position, p.id)):
        if policy.matches(priority, category, source, level):
            return policy
    return None


@dataclass(slots=True)
class Clock:
    """How a policy counts: business hours, or calendar time when None."""

    hours: BusinessHours | None

    def add(self, start: int, work: int) -> int:
        return start + work if self.hours is None else self.hours.add(start, work)

    def between(self, a: int, b: int) -> int:
        return b - a if self.hours is None else self.hours.between(a, b)


def start(target: int, now: int, clock: Clock) -> dict[str, Any]:
    return {"state": "active", "target": target, "spent": 0, "since": now,
            "due": clock.add(now, target), "breached_at": None}


def pause(metric: dict[str, Any], now: int, clock: Clock) -> None:
    if metric["state"] == "active":
        metric["spent"] += clock.between(metric["since"], now)
        metric.update(state="paused", since=now, due=None)


def resume(metric: dict[str, Any], now: int, clock: Clock) -> None:
    if metric["state"] == "paused":
        metric.update(state="active", since=now,
                      due=clock.add(now, max(0, metric["target"] - metric["spent"])))


def finish(metric: dict[str, Any], now: int, clock: Clock, state: str = "fulfilled") -> None:
    if metric["state"] == "active":
        metric["spent"] += clock.between(metric["since"], now)
    if metric["state"] in ("active", "paused"):
        metric.update(state=state, since=now, due=None)


def retarget(metric: dict[str, Any], target: int | None, now: int, clock: Clock) -> None:
    """A new target (policy or priority changed): the due time from what is spent."""
    if target is None:  # no target now: it waits, with its time, for one (untargeted)
        finish(metric, now, clock, "untargeted")
        return
    if metric["state"] == "untargeted":
        metric.update(state="active", since=now)
    if metric["state"] not in ("active", "paused"):
        return
    metric["target"] = target
    if metric["state"] == "active":
        metric["due"] = clock.add(metric["since"], max(0, target - metric["spent"]))


def track(before: dict[str, Any] | None, after: dict[str, Any], change: str, role: str,
          public: bool, policy: Policy | None, clock: Clock, now: int) -> dict[str, Any] | None:
    """The ticket's SLA record after one change (``before``/``after``: the ticket's
    status, priority and ``sla`` before and after the rule; ``change``: ``created``,
    ``updated`` or ``commented``). Returns the new record (a copy), None without policy."""
    if policy is None:
        return None
    old = (before or {}).get("sla") or {}
    metrics = {name: dict(m) for name, m in (old.get("metrics") or {}).items()}
    priority, status = after["priority"], after["status"]
    for name, metric in metrics.items():
        # The policy, its targets, the priority or the hours may have changed: every
        # due time again from the recorded spent time and stretch.
        retarget(metric, policy.target_ms(priority, name), now, clock)
    if change == "created":
        for name in ("first_reply", "resolution"):
            target = policy.target_ms(priority, name)
            if target is not None:
                metrics[name] = start(target, now, clock)
    staff = role != "buyer"
    if change == "commented" and public:
        if staff:
            for name in ("first_reply", "next_reply"):
                if name in metrics:
                    finish(metrics[name], now, clock)
        elif status not in ("solved", "closed") and "first_reply" in metrics and \
                metrics["first_reply"]["state"] != "active":
            waiting = metrics.get("next_reply")
            target = policy.target_ms(priority, "next_reply")
            if target is not None and (waiting is None or waiting["state"] not in
                                       ("active", "paused")):
                metrics["next_reply"] = start(target, now, clock)
    resolution = metrics.get("resolution")
    if status in PAUSING:
        if resolution is not None:
            pause(resolution, now, clock)
    elif status == "solved":
        if resolution is not None:
            finish(resolution, now, clock)
        if "next_reply" in metrics:
            finish(metrics["next_reply"], now, clock)
    elif status == "closed":
        for metric in metrics.values():
            finish(metric, now, clock, "stopped")
    elif resolution is not None:
        if resolution["state"] == "paused":
            resume(resolution, now, clock)
        elif resolution["state"] == "fulfilled" and before and before["status"] == "solved":
            # Reopened: the resolution clock goes on with the time already spent.
            resolution["state"] = "paused"
            resume(resolution, now, clock)
    return {"policy": policy.id, "business_hours": policy.business_hours, "metrics": metrics}


def breach(sla: dict[str, Any], name: str, due: int, now: int) -> dict[str, Any] | None:
    """The SLA record with metric ``name`` breached, if it is active, ``due`` is its
    current due time (a timer for an older due is stale) and that time has come."""
    metric = (sla.get("metrics") or {}).get(name)
    if metric is None or metric["state"] != "active" or metric["due"] != due or now < due:
        return None
    if metric.get("breached_at") is not None:
        return None
    changed = {**sla, "metrics": {**sla["metrics"], name: {**metric, "breached_at": now}}}
    return changed


def due_times(sla: dict[str, Any] | None) -> list[tuple[str, int]]:
    """(metric, due) of every active metric not yet breached: the timers to set."""
    if not sla:
        return []
    return [(name, m["due"]) for name, m in sla["metrics"].items()
            if m["state"] == "active" and m["due"] is not None and m.get("breached_at") is None]


def breached(sla: dict[str, Any] | None) -> bool:
    return bool(sla) and any(m.get("breached_at") is not None
                             for m in sla["metrics"].values())  # type: ignore[index]


def first_breach(sla: dict[str, Any] | None) -> int:
    """When the ticket's earliest breach happened (a large number when none did)."""
    return min((m["breached_at"] for m in (sla or {}).get("metrics", {}).values()
                if m.get("breached_at") is not None), default=1 << 62)


def due_soon(sla: dict[str, Any] | None, now: int, within_ms: int) -> bool:
    return any(now <= due <= now + within_ms for _, due in due_times(sla))
