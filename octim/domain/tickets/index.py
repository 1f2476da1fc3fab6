"""A shop's open tickets in memory, indexed for the ticket queue's lists and filters.

The TicketDesk keeps every ticket of its shop that is not closed here: per indexed
field (status, priority, assignee, group, category, requester) the set of ticket ids
with each value, the tickets in order of their last update (so "newest first" needs
no sort), each ticket's folded search text (in the Rust :class:`octim._core.TextIndex`,
by slot: a substring search over all of them is one SIMD scan of their bytes), the open
tickets' next SLA due times in order, and which have breached. A text query becomes one
more candidate set. A list with a small candidate set intersects and sorts it; otherwise
it walks the tickets in order (newest first, or soonest due) and stops when the page is
full.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from octim._core import TextIndex
from octim.domain.tickets import sla
from octim.domain.tickets.model import Ticket

INDEXED = ("status", "priority", "assignee", "group", "category", "requester")
SMALL = 2000  # a candidate set this small is intersected and sorted; a bigger one is
# checked ticket by ticket in update order until the list is full


def _text(ticket: Ticket) -> str:
    return f"{ticket.label}\n{ticket.subject}\n{ticket.description[:500]}".casefold()


class OpenTickets:
    """See the module docstring."""

    def __init__(self) -> None:
        self.by_id: dict[str, Ticket] = {}
        self.by: dict[str, dict[Any, set[str]]] = {name: {} for name in INDEXED}
        self.recent: OrderedDict[str, None] = OrderedDict()  # oldest update first
        self.text = TextIndex()
        self.slot: dict[str, int] = {}  # ticket → its slot in ``text``
        self.at_slot: list[str | None] = []  # slot → ticket
        self.free: list[int] = []
        self.next_due: dict[str, int] = {}
        self.dues: list[tuple[int, str]] = []  # (next due, ticket), sorted
        self.breached: set[str] = set()

    def __len__(self) -> int:
        return len(self.by_id)

    def get(self, ticket_id: str) -> Ticket | None:
        return self.by_id.get(ticket_id)

    def values(self) -> Iterator[Ticket]:
        return iter(list(self.by_id.values()))

    def load(self, tickets: list[Ticket]) -> None:
        """Fill from the store at start-up (in update order)."""
        for ticket in sorted(tickets, key=lambda t: (t.updated, t.number)):
            self.put(ticket)

    def put(self, ticket: Ticket) -> None:
        """Add or replace a ticket (it has just been updated: it goes to the front)."""
        self.remove(ticket.id)
        self.by_id[ticket.id] = ticket
        for name in INDEXED:
            self.by[name].setdefault(getattr(ticket, name), set()).add(ticket.id)
        self.recent[ticket.id] = None
        slot = self.free.pop() if self.free else len(self.at_slot)
        if slot == len(self.at_slot):
            self.at_slot.append(ticket.id)
        else:
            self.at_slot[slot] = ticket.id
        self.slot[ticket.id] = slot
        self.text.set(slot, _text(ticket))
        dues = [due for _, due in sla.due_times(ticket.sla)]
        if dues:
            self.next_due[ticket.id] = min(dues)
            bisect.insort(self.dues, (min(dues), ticket.id))
        if sla.breached(ticket.sla):
            self.breached.add(ticket.id)

    def remove(self, ticket_id: str) -> None:
        old = self.by_id.pop(ticket_id, None)
        if old is None:
            return
        for name in INDEXED:
            ids = self.by[name].get(getattr(old, name))
            if ids is not None:
                ids.discard(ticket_id)
                if not ids:
                    del self.by[name][getattr(old, name)]
        self.recent.pop(ticket_id, None)
        slot = self.slot.pop(ticket_id, None)
        if slot is not None:
            self.text.remove(slot)
            self.at_slot[slot] = None
            self.free.append(slot)
        due = self.next_due.pop(ticket_id, None)
        if due is not None:
            at = bisect.bisect_left(self.dues, (due, ticket_id))
            if at < len(self.dues) and self.dues[at] == (due, ticket_id):
                del self.dues[at]
        self.breached.discard(ticket_id)

    def query(self, equal: dict[str, str], q: str, sla_filter: str, now: int,
              within_ms: int, limit: int, urgent: bool = False) -> list[Ticket]:
        """Tickets whose indexed fields equal ``equal``, whose text holds ``q`` and that
        pass ``sla_filter`` (``breached``, ``due_soon`` or ''): the soonest due first for
        ``due_soon``; with ``urgent`` (the queue's order) the breached first (the earliest
        breach first), then the soonest due, then the rest newest first; else the most
        recently updated first."""
        sets = [self.by[name].get(value, set()) for name, value in equal.items() if value]
        if sla_filter == "breached":
            sets.append(self.breached)
        if q:
            at_slot = self.at_slot
            sets.append({at_slot[s] for s in self.text.find(q.casefold())})  # type: ignore[misc]

        def ok(ticket_id: str) -> bool:
            return all(ticket_id in s for s in sets)

        found: list[Ticket] = []
        if urgent and sla_filter != "due_soon":
            return self._urgent(ok, sla_filter == "breached", limit)
        if sla_filter == "due_soon":
            start = bisect.bisect_left(self.dues, (now, ""))
            for due, ticket_id in self.dues[start:]:
                if due > now + within_ms or len(found) >= limit:
                    break
                if ok(ticket_id):
                    found.append(self.by_id[ticket_id])
            return found
        if sets and min(len(s) for s in sets) <= SMALL:
            sets.sort(key=len)
            ids = [i for i in sets[0] if ok(i)]
            return heapq.nlargest(limit, (self.by_id[i] for i in ids),
                                  key=lambda t: (t.updated, t.number))
        newest = reversed(self.recent)  # newest first, stop at the limit
        matching = (i for i in newest if ok(i)) if sets else newest
        for ticket_id in matching:
            found.append(self.by_id[ticket_id])
            if len(found) >= limit:
                break
        return found

    def _urgent(self, ok: Callable[[str], bool], only_breached: bool,
                limit: int) -> list[Ticket]:
        late = heapq.nsmallest(limit, (i for i in self.breached if ok(i)),
                               key=lambda i: sla.first_breach(self.by_id[i].sla))
        if only_breached or len(late) >= limit:
            return [self.by_id[i] for i in late]
        seen = set(late)
        rest = itertools.chain((i for _, i in self.dues), reversed(self.recent))
        for ticket_id in rest:
            if ticket_id not in seen and ok(ticket_id):
                seen.add(ticket_id)
                late.append(ticket_id)
                if len(late) >= limit:
                    break
        return [self.by_id[i] for i in late]
