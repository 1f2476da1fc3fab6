"""SLA as pure functions: business hours across a weekend and a holiday, pause and
resume, the next-reply rules, a policy change recomputing due times from what is
recorded, and a breach only at (and after) its due time."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from octim.domain.tickets.sla import (
    BusinessHours,
    Clock,
    Policy,
    breach,
    choose,
    due_times,
    track,
)
from octim.errors import InvalidInput

SHANGHAI = ZoneInfo("Asia/Shanghai")
HOURS = BusinessHours.from_record({
    "timezone": "Asia/Shanghai",
    "weekly": {day: [["09:00", "12:00"], ["13:00", "18:00"]]
               for day in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": ["2026-12-07"]})  # a Monday


def at(text: str) -> int:
    """Milliseconds of a Shanghai wall time."""
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp() * 1000)


def test_business_hours_skip_nights_lunch_the_weekend_and_holidays() -> None:
    friday_5pm = at("2026-12-04T17:00")
    # 2 working hours from Friday 17:00: one on Friday, the next on Tuesday (Monday is
    # a holiday) from 09:00.
    assert HOURS.add(friday_5pm, 2 * 3_600_000) == at("2026-12-08T10:00")
    assert HOURS.between(friday_5pm, at("2026-12-08T10:00")) == 2 * 3_600_000
    # Lunch is not working time; a start outside the hours waits for them.
    assert HOURS.add(at("2026-12-08T11:30"), 3_600_000) == at("2026-12-08T13:30")
    assert HOURS.add(at("2026-12-05T20:00"), 60_000) == at("2026-12-08T09:01")
    assert HOURS.between(at("2026-12-05T00:00"), at("2026-12-08T00:00")) == 0


@pytest.mark.parametrize("bad", [{"timezone": "Mars/Olympus"}, {"weekly": {"mon": [["18:00",
                                 "09:00"]]}}, {"weekly": {"xyz": []}}, {"weekly": {}},
                                 {"weekly": {"mon": [["09:00", "18:00"]]}, "holidays": ["x"]}])
def test_malformed_hours_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        BusinessHours.from_record(bad)


POLICY = Policy("p1", 0, targets={"normal": {"first_reply": 30, "next_reply": 60,
                                             "resolution": 600},
                                  "urgent": {"first_reply": 5, "resolution": 120}})
CAL = Clock(None)
T0 = 1_000_000


def step(before: dict[str, Any] | None, status: str, change: str, role: str = "agent",
         public: bool = False, now: int = T0, priority: str = "normal",
         policy: Policy = POLICY, clock: Clock = CAL) -> dict[str, Any]:
    tracked = track(before, {"status": status, "priority": priority}, change, role, public,
                    policy, clock, now)
    assert tracked is not None
    return {"status": status, "priority": priority, "sla": tracked}


def metric(state: dict[str, Any], name: str) -> dict[str, Any]:
    return state["sla"]["metrics"][name]  # type: ignore[no-any-return]


def test_first_reply_and_resolution_start_at_creation_and_notes_fulfil_nothing() -> None:
    made = step(None, "new", "created")
    assert metric(made, "first_reply")["due"] == T0 + 30 * 60_000
    assert metric(made, "resolution")["due"] == T0 + 600 * 60_000
    assert "next_reply" not in made["sla"]["metrics"]
    noted = step(made, "new", "commented", public=False, now=T0 + 1000)
    assert metric(noted, "first_reply")["state"] == "active"  # an internal note: no reply
    replied = step(noted, "open", "commented", public=True, now=T0 + 2000)
    assert metric(replied, "first_reply")["state"] == "fulfilled"
    assert "next_reply" not in replied["sla"]["metrics"]  # staff replies start nothing


def test_next_reply_only_from_a_buyer_message_that_waits() -> None:
    made = step(None, "new", "created")
    # A buyer message before any staff reply: the first reply is still what counts.
    early = step(made, "new", "commented", role="buyer", public=True, now=T0 + 1)
    assert "next_reply" not in early["sla"]["metrics"]
    replied = step(early, "open", "commented", public=True, now=T0 + 2)
    asked = step(replied, "open", "commented", role="buyer", public=True, now=T0 + 10)
    assert metric(asked, "next_reply")["due"] == T0 + 10 + 60 * 60_000
    again = step(asked, "open", "commented", role="buyer", public=True, now=T0 + 20)
    assert metric(again, "next_reply")["due"] == T0 + 10 + 60 * 60_000  # still the oldest
    note = step(again, "open", "commented", public=False, now=T0 + 30)
    assert metric(note, "next_reply")["state"] == "active"  # a note does not answer
    answered = step(note, "open", "commented", public=True, now=T0 + 40)
    assert metric(answered, "next_reply")["state"] == "fulfilled"
    # After solved: a buyer message restarts it only if it reopens the ticket.
    solved = step(answered, "solved", "updated", now=T0 + 50)
    stays = step(solved, "solved", "commented", role="buyer", public=True, now=T0 + 60)
    assert metric(stays, "next_reply")["state"] == "fulfilled"
    reopened = step(solved, "open", "commented", role="buyer", public=True, now=T0 + 60)
    assert metric(reopened, "next_reply")["state"] == "active"


def test_pending_and_on_hold_pause_resolution_and_a_reopen_keeps_the_time_spent() -> None:
    made = step(None, "open", "created")
    minute = 60_000
    held = step(made, "on_hold", "updated", now=T0 + 100 * minute)
    assert metric(held, "resolution")["state"] == "paused"
    assert metric(held, "resolution")["spent"] == 100 * minute
    assert due_times(held["sla"]) == [("first_reply", T0 + 30 * minute)]
    back = step(held, "open", "updated", now=T0 + 1000 * minute)
    assert metric(back, "resolution")["due"] == T0 + 1000 * minute + 500 * minute
    solved = step(back, "solved", "updated", now=T0 + 1100 * minute)
    assert metric(solved, "resolution")["state"] == "fulfilled"
    assert metric(solved, "resolution")["spent"] == 200 * minute
    reopened = step(solved, "open", "updated", now=T0 + 2000 * minute)
    assert metric(reopened, "resolution")["due"] == T0 + 2000 * minute + 400 * minute


def test_a_policy_or_priority_change_recomputes_due_times_from_the_record() -> None:
    made = step(None, "open", "created")
    minute = 60_000
    held = step(made, "pending", "updated", now=T0 + 60 * minute)
    back = step(held, "open", "updated", now=T0 + 100 * minute)  # 60 min spent so far
    urgent = step(back, "open", "updated", priority="urgent", now=T0 + 110 * minute)
    assert metric(urgent, "resolution")["due"] == T0 + 100 * minute + 60 * minute
    assert metric(urgent, "first_reply")["due"] == T0 + 5 * minute  # already past: breaches
    stricter = Policy("p1", 0, targets={"normal": {"first_reply": 10, "resolution": 90}})
    changed = step(back, "open", "updated", policy=stricter, now=T0 + 120 * minute)
    assert metric(changed, "resolution")["due"] == T0 + 100 * minute + 30 * minute
    assert metric(changed, "first_reply")["due"] == T0 + 10 * minute
    # In business hours the same record gives business-hour dues.
    hours = step(None, "open", "created", now=at("2026-12-04T17:30"),
                 policy=Policy("p2", 0, targets={"normal": {"resolution": 60}},
                               business_hours=True), clock=Clock(HOURS))
    assert metric(hours, "resolution")["due"] == at("2026-12-08T09:30")


def test_a_breach_happens_at_its_due_time_once_and_never_for_a_stale_timer() -> None:
    made = step(None, "new", "created")
    due = metric(made, "first_reply")["due"]
    assert breach(made["sla"], "first_reply", due, due - 1) is None  # not yet
    done = breach(made["sla"], "first_reply", due, due)
    assert done is not None and done["metrics"]["first_reply"]["breached_at"] == due
    assert breach(done, "first_reply", due, due + 5) is None  # once
    assert breach(made["sla"], "first_reply", due - 1, due) is None  # a stale timer
    assert ("first_reply", due) not in due_times(done)


def test_the_first_matching_policy_applies() -> None:
    vip = Policy("vip", 0, min_level=5, targets={"normal": {"first_reply": 1}})
    complaints = Policy("c", 1, categories=frozenset({"投诉"}))
    fallback = Policy("all", 9)
    policies = [fallback, complaints, vip]
    assert choose(policies, "normal", "投诉", "chat", 7).id == "vip"  # type: ignore[union-attr]
    assert choose(policies, "normal", "投诉", "chat", 1).id == "c"  # type: ignore[union-attr]
    assert choose(policies, "low", None, "email", 0).id == "all"  # type: ignore[union-attr]
    assert choose([vip], "low", None, "email", 0) is None
