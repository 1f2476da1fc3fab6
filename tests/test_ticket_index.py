"""The ticket desk's in-memory index answers exactly what a brute-force filter of the
same tickets answers (hypothesis): filters, the text search through the Rust index
(slots reused after removals), and the orders (newest, urgent)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from octim.domain.tickets import sla
from octim.domain.tickets.index import OpenTickets
from octim.domain.tickets.model import Source, Ticket

WORDS = ["快递", "退款", "破损", "发票", "Refund", "ÄRGER", "ss"]

ticket_st = st.builds(
    lambda n, words, status, priority, assignee, updated, due, late: Ticket(
        f"tk_{n}", "s1", n, " ".join(words) or "x", status, 0, updated,
        priority=priority, assignee=assignee, source=Source(),
        sla=None if due is None else {"policy": "p", "business_hours": False, "metrics": {
            "first_reply": {"state": "active", "target": 1, "spent": 0, "since": 0,
                            "due": due, "breached_at": due if late else None}}}),
    st.integers(1, 40), st.lists(st.sampled_from(WORDS), max_size=3),
    st.sampled_from(["new", "open", "pending"]), st.sampled_from(["low", "high"]),
    st.sampled_from([None, "a1", "a2"]), st.integers(0, 1000),
    st.none() | st.integers(0, 1000), st.booleans())


def brute(tickets: dict[str, Ticket], equal: dict[str, Any], q: str) -> list[Ticket]:
    q = q.casefold()
    return [t for t in tickets.values()
            if all(not v or getattr(t, k) == v for k, v in equal.items())
            and (not q or q in f"{t.label}\n{t.subject}\n{t.description[:500]}".casefold())]


@settings(max_examples=300, deadline=None)
@given(puts=st.lists(ticket_st, max_size=30), removes=st.lists(st.integers(1, 40),
                                                               max_size=10),
       again=st.lists(ticket_st, max_size=10),
       status=st.sampled_from(["", "open"]), assignee=st.sampled_from(["", "a1"]),
       q=st.sampled_from(["", "快递", "refund", "äRGER", "SS", "t-1", "无"]),
       limit=st.integers(1, 50))
def test_the_index_answers_like_a_brute_force_filter(
        puts: list[Ticket], removes: list[int], again: list[Ticket], status: str,
        assignee: str, q: str, limit: int) -> None:
    index = OpenTickets()
    kept: dict[str, Ticket] = {}
    clock = iter(range(1, 1000))  # a put is an update: its time moves on
    for ticket in puts:
        ticket.updated = next(clock)
        index.put(ticket)
        kept[ticket.id] = ticket
    for n in removes:
        index.remove(f"tk_{n}")
        kept.pop(f"tk_{n}", None)
    for ticket in again:  # reuses freed slots
        ticket.updated = next(clock)
        index.put(ticket)
        kept[ticket.id] = ticket
    equal = {"status": status, "assignee": assignee}
    expected = brute(kept, equal, q)
    found = index.query(equal, q, "", 0, 0, limit)
    assert {t.id for t in found} <= {t.id for t in expected}
    assert len(found) == min(limit, len(expected))
    newest_first = sorted(expected, key=lambda t: (t.updated, t.number), reverse=True)
    assert [t.id for t in found] == [t.id for t in newest_first[:limit]]
    urgent = index.query(equal, q, "", 0, 0, 1000, urgent=True)
    assert {t.id for t in urgent} == {t.id for t in expected}
    late = [t for t in urgent if sla.breached(t.sla)]
    assert urgent[:len(late)] == late  # the breached first
    assert [sla.first_breach(t.sla) for t in late] == sorted(
        sla.first_breach(t.sla) for t in late)
