"""The ticket's status machine as a property: any sequence of changes, replies, merges
and closes keeps its invariants. Pure rules: no actor, store or socket."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from octim.domain.tickets.model import (
    CLOSED,
    NEW,
    STATUSES,
    TRANSITIONS,
    InvalidTransition,
    Ticket,
    TicketClosed,
)
from octim.domain.tickets.rules import auto_close, comment, create, merge, update
from octim.errors import InvalidInput
from octim.store import unpack

step = st.one_of(
    st.tuples(st.just("status"), st.sampled_from(STATUSES)),
    st.tuples(st.just("assign"), st.sampled_from(["a1", "a2", None])),
    st.tuples(st.just("priority"), st.sampled_from(["low", "normal", "high", "urgent"])),
    st.tuples(st.just("reply"), st.sampled_from(["buyer", "agent"]), st.booleans()),
    st.tuples(st.just("wait"), st.integers(0, 100_000)),
    st.just(("merge",)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(step, max_size=30))
def test_no_sequence_breaks_the_status_machine(steps: list[tuple[Any, ...]]) -> None:
    now = 1_000
    ticket = create("t1", "s1", 7, {"subject": "x", "requester": "b1"}, "a1", "agent",
                    now).ticket
    other = create("t2", "s1", 8, {"subject": "y"}, "a1", "agent", now).ticket
    history = ticket.history
    for action in steps:
        now += 1
        before = ticket
        try:
            match action:
                case ("status", status):
                    out = update(ticket, {"status": status}, "a1", "agent", now)
                case ("assign", agent):
                    out = update(ticket, {"assignee": agent}, "a1", "agent", now)
                case ("priority", priority):
                    out = update(ticket, {"priority": priority}, "a1", "agent", now)
                case ("reply", role, public):
                    out = comment(ticket, "b1" if role == "buyer" else "a1", role, "hi",
                                  public, now)
                case ("wait", ms):
                    now += ms
                    closing = auto_close(ticket, now, 50_000)
                    if closing is None:
                        continue
                    out = closing
                case _:
                    out = merge(ticket, other, "a1", "agent", now)
        except (InvalidTransition, InvalidInput):
            assert before.status != CLOSED  # refusals of a closed ticket say so
            continue
        except TicketClosed:
            assert before.status == CLOSED or action[0] == "merge"
            continue
        if not out.ops:  # nothing differed: nothing written, nothing changed
            assert out.ticket == before
            continue
        ticket = out.ticket
        # The argument is never changed, and a closed ticket never changes.
        assert before.status != CLOSED
        if ticket.status != before.status:
            assert ticket.status != NEW  # nothing returns to new
            if action[0] == "status":
                assert ticket.status in TRANSITIONS[before.status]
        if before.status == "solved" and action[0] == "reply" and action[1] == "buyer":
            assert ticket.status == "open"  # a buyer's reply reopens
        if action[0] == "merge":
            assert ticket.status == CLOSED and ticket.merged_into == "t2"
        # Every change leaves one immutable history entry per changed field, in order.
        entries = [unpack(op.value) for op in out.ops if op.db == "ticket_history"]
        assert [e["n"] for e in entries] == list(range(history + 1, ticket.history + 1))
        history = ticket.history
        written = [op for op in out.ops if op.db == "tickets"]
        assert len(written) == 1
        assert Ticket.from_record(unpack(written[0].value)) == ticket
    assert (ticket.closed_at is not None) == (ticket.status == CLOSED)
