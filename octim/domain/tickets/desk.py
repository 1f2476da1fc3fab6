"""The TicketDesk: one shop's tickets (one actor per shop; ``*`` is the platform's).

It is the one writer of its shop's tickets: it numbers them (``T-1``, ``T-2``… per
shop, the counter written in the same commit as the ticket), remembers idempotency
keys (a repeated ``POST /api/tickets`` answers the same ticket), keeps the tickets
that are not closed in memory for listing and filtering, applies the pure rules of
:mod:`~octim.domain.tickets.rules` and emits the webhook events once durable. A
solved ticket closes itself after the shop's time (a timer on the engine's clock).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from octim.actors import Actor, ActorKind, Address, Message, record, thaw
from octim.domain.context import EngineContext
from octim.domain.conversations.model import pair_key
from octim.domain.tickets import rules
from octim.domain.tickets.model import (
    CLOSED,
    PRIORITIES,
    SOLVED,
    STATUSES,
    Ticket,
    TicketClosed,
    new_ticket_id,
)
from octim.errors import InvalidInput, NotFound
from octim.store import Put, pack

log = logging.getLogger("octim.tickets")

KIND = "tickets"
MAX_LIST = 500


@record
class CreateTicket(Message):
    """A new ticket; ``idempotency_key`` ('' for none) makes a repeat answer the same one."""

    values: Mapping[str, Any]
    by: str
    role: str
    idempotency_key: str


@record
class UpdateTicket(Message):
    ticket: str
    changes: Mapping[str, Any]
    by: str
    role: str


@record
class CommentTicket(Message):
    ticket: str
    body: str
    public: bool
    by: str
    role: str


@record
class MergeTicket(Message):
    ticket: str
    into: str
    by: str
    role: str


@record
class GetTicket(Message):
    ticket: str


@record
class ListTickets(Message):
    """The shop's tickets matching every given filter ('' for any), newest first."""

    status: str
    priority: str
    assignee: str
    group: str
    category: str
    requester: str
    q: str
    limit: int


@record
class AutoClose(Message):
    ticket: str


def idempotency_key(shop: str, key: str) -> bytes:
    return pair_key(shop, key)


class TicketDesk(Actor[EngineContext]):
    """See the module docstring."""

    def __init__(self, address: Address, context: EngineContext) -> None:
        super().__init__(address, context)
        self.tickets: dict[str, Ticket] = {}  # not closed
        self.next_number = 1

    @property
    def shop(self) -> str:
        return self.address.id

    async def on_start(self) -> None:
        store = self.context.store
        counter = store.get("ticket_counters", self.shop.encode())
        self.next_number = int(counter or 0) + 1
        prefix = pair_key(self.shop, "")
        for key, status in store.scan("idx_shop_tickets", prefix, prefix[:-1] + b"\x01"):
            if status == CLOSED:
                continue
            raw = store.get("tickets", key[len(prefix):])
            if raw is not None:
                ticket = Ticket.from_record(raw)
                self.tickets[ticket.id] = ticket
                if ticket.status == SOLVED:
                    self._schedule_close(ticket)

    def _close_after_ms(self) -> int:
        shop = self.context.store.get("shops", self.shop.encode()) or {}
        hours = (shop.get("settings") or {}).get("ticket_auto_close_hours")
        seconds = float(hours) * 3600 if isinstance(hours, (int, float)) and hours > 0 \
            else self.context.settings.ticket_auto_close
        return int(seconds * 1000)

    def _schedule_close(self, ticket: Ticket) -> None:
        assert ticket.solved_at is not None
        self.context.timers.at((ticket.solved_at + self._close_after_ms()) / 1000, KIND,
                               self.shop, AutoClose(ticket.id))

    def _ticket(self, ticket_id: str) -> Ticket:
        ticket = self.tickets.get(ticket_id)
        if ticket is not None:
            return ticket
        raw = self.context.store.get("tickets", ticket_id.encode())
        if raw is None or raw["shop"] != self.shop:
            raise NotFound(f"no ticket {ticket_id!r}")
        return Ticket.from_record(raw)

    async def receive(self, message: Message) -> Any:
        now = self.context.now_ms()
        match message:
            case CreateTicket(values=values, by=by, role=role, idempotency_key=key):
                return await self._create(thaw(values), by, role, key, now)
            case UpdateTicket(ticket=ticket_id, changes=changes, by=by, role=role):
                out = rules.update(self._ticket(ticket_id), thaw(changes), by, role, now)
                return (await self._apply(out)).view()
            case CommentTicket(ticket=ticket_id, body=body, public=public, by=by, role=role):
                ticket = self._ticket(ticket_id)
                try:
                    out = rules.comment(ticket, by, role, body, public, now)
                except TicketClosed:
                    if role != "buyer":
                        raise
                    return await self._follow_up(ticket, body, by, now)
                return {"ticket": (await self._apply(out)).view(), "comment": out.ticket.comments}
            case MergeTicket(ticket=ticket_id, into=into, by=by, role=role):
                out = rules.merge(self._ticket(ticket_id), self._ticket(into), by, role, now)
                return (await self._apply(out)).view()
            case GetTicket(ticket=ticket_id):
                return self._ticket(ticket_id).view()
            case ListTickets():
                return self._list(message)
            case AutoClose(ticket=ticket_id):
                solved = self.tickets.get(ticket_id)
                if solved is not None:
                    closing = rules.auto_close(solved, now, self._close_after_ms())
                    if closing is not None:
                        await self._apply(closing)
                return None
        raise InvalidInput(f"the ticket desk cannot handle {type(message).__name__}")

    async def _create(self, values: dict[str, Any], by: str, role: str, key: str, now: int,
                      follow_up_of: str | None = None) -> dict[str, Any]:
        store = self.context.store
        if key:
            known = store.get("ticket_idem", idempotency_key(self.shop, key))
            if known is not None:
                return {**self._ticket(known).view(), "created": False}
        number = self.next_number
        out = rules.create(new_ticket_id(), self.shop, number, values, by, role, now,
                           follow_up_of=follow_up_of)
        out.ops.append(Put("ticket_counters", self.shop.encode(), pack(number)))
        if key:
            out.ops.append(Put("ticket_idem", idempotency_key(self.shop, key),
                               pack(out.ticket.id)))
        self.next_number += 1
        try:
            ticket = await self._apply(out)
        except BaseException:
            self.next_number = number  # nothing was written: the number is free again
            raise
        return {**ticket.view(), "created": True}

    async def _follow_up(self, closed: Ticket, body: str, by: str, now: int
                         ) -> dict[str, Any]:
        """A buyer wrote to a closed ticket: a new ticket linked to it, with the reply."""
        values = {"subject": f"Re: {closed.subject}"[:200], "requester": closed.requester,
                  "type": closed.type, "category": closed.category,
                  "priority": closed.priority, "order": closed.order, "sku": closed.sku,
                  "source": {"kind": closed.source.kind,
                             "conversation": closed.source.conversation}}
        created = await self._create(values, by, "buyer", "", now, follow_up_of=closed.id)
        out = rules.comment(self._ticket(created["id"]), by, "buyer", body, True, now)
        return {"ticket": (await self._apply(out)).view(), "comment": out.ticket.comments,
                "follow_up_of": closed.id}

    async def _apply(self, out: rules.Outcome) -> Ticket:
        """Commit a rule's outcome, then adopt it and tell the outside world."""
        await self.context.store.write(out.ops)
        ticket = out.ticket
        previous = self.tickets.get(ticket.id)
        if ticket.status == CLOSED:
            self.tickets.pop(ticket.id, None)
        else:
            self.tickets[ticket.id] = ticket
        if ticket.status == SOLVED and (previous is None or previous.status != SOLVED):
            self._schedule_close(ticket)
        for event, data in out.events:
            self.context.emit(event, data)
        return ticket

    def _list(self, m: ListTickets) -> list[dict[str, Any]]:
        if m.status and m.status not in STATUSES:
            raise InvalidInput(f"status is one of {', '.join(STATUSES)}")
        if m.priority and m.priority not in PRIORITIES:
            raise InvalidInput(f"priority is one of {', '.join(PRIORITIES)}")
        if m.status == CLOSED:
            prefix = pair_key(self.shop, "")
            found = [Ticket.from_record(raw) for key, status in self.context.store.scan(
                         "idx_shop_tickets", prefix, prefix[:-1] + b"\x01") if status == CLOSED
                     if (raw := self.context.store.get("tickets", key[len(prefix):]))]
        else:
            found = list(self.tickets.values())
        q = m.q.casefold()
        chosen = [t for t in found
                  if (not m.status or t.status == m.status)
                  and (not m.priority or t.priority == m.priority)
                  and (not m.assignee or t.assignee == m.assignee)
                  and (not m.group or t.group == m.group)
                  and (not m.category or t.category == m.category)
                  and (not m.requester or t.requester == m.requester)
                  and (not q or q in t.subject.casefold() or q in t.label.casefold()
                       or q in t.description.casefold())]
        chosen.sort(key=lambda t: (t.updated, t.number), reverse=True)
        return [t.view() for t in chosen[:min(m.limit, MAX_LIST)]]


TICKET_DESK_KIND: ActorKind[EngineContext] = ActorKind(KIND, TicketDesk, idle_timeout=600.0)
