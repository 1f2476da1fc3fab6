"""A ticket's rules as pure functions: (ticket, change, who, now) → Outcome.

Like the conversation rules: the argument is never changed; the outcome holds the
ticket after the change, the store operations (the record, one immutable history entry
per changed field, thread entries, the indexes, the event log) and the webhook events
to emit once they are durable. The TicketDesk actor only sequences them.

The status machine (``model.TRANSITIONS``): ``new`` → ``open`` → ``pending`` /
``on_hold`` → ``solved`` → ``closed``. Nothing returns to ``new``; a buyer's public
reply moves ``pending`` or ``solved`` back to ``open``; ``solved`` closes by itself
after the shop's time (:func:`auto_close`); ``closed`` is read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from octim.domain.conversations.model import log_op, pair_key
from octim.domain.tickets.model import (
    CLOSED,
    NEW,
    OPEN,
    PENDING,
    SOLVED,
    TRANSITIONS,
    InvalidTransition,
    Source,
    Ticket,
    TicketClosed,
    scope_key,
)
from octim.errors import InvalidInput
from octim.store import Op, Put, pack

#: Fields a PATCH may change (status goes through the machine; the rest are values).
EDITABLE = ("subject", "description", "type", "category", "priority", "status", "assignee",
            "group", "order", "sku", "tags", "fields", "due", "followers", "custom_status")


@dataclass(slots=True)
class Outcome:
    """What a rule decided."""

    ticket: Ticket
    ops: list[Op] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # webhooks


def _copy(ticket: Ticket, **changes: Any) -> Ticket:
    return msgspec.structs.replace(ticket, **changes)


def record(out: Outcome, by: str, role: str, now: int, name: str, before: Any,
           after: Any) -> None:
    """A history entry for a change a caller made outside these rules (escalation)."""
    _history(out, by, role, now, name, before, after)


def _history(out: Outcome, by: str, role: str, now: int, name: str, before: Any,
             after: Any) -> None:
    """One immutable history entry: who, when, which field, before and after."""
    t = out.ticket
    t.history += 1
    out.ops.append(Put("ticket_history", scope_key(t.id, t.history), pack(
        {"n": t.history, "by": by, "role": role, "at": now, "field": name,
         "before": before, "after": after})))


def _finish(out: Outcome, previous_status: str | None, now: int, event: str,
            data: dict[str, Any]) -> Outcome:
    """The record, the shop's index, the requester's index and the event log."""
    t = out.ticket
    t.updated = now
    out.ops += [t.put(), Put("idx_shop_tickets", pair_key(t.shop, t.id), pack(t.status))]
    if t.requester:
        out.ops.append(Put("idx_requester_tickets", pair_key(t.requester, t.id), pack(t.shop)))
    if previous_status is not None and previous_status != t.status:
        # What the reports' backlog and resolution time need: the move, and the age.
        data = {**data, "status_from": previous_status, "status_to": t.status,
                "opened_at": t.created}
    out.ops.append(log_op(t.id, t.shop, event, {"ticket": t.id, **data}, now))
    webhook = {"ticket": t.id, "shop": t.shop, "label": t.label, "status": t.status, **data}
    out.events.append((f"ticket.{event.removeprefix('ticket_')}", webhook))
    if previous_status != SOLVED and t.status == SOLVED:
        out.events.append(("ticket.solved", webhook))
    return out


def _set_status(t: Ticket, status: str, now: int) -> None:
    if status == SOLVED:
        t.solved_at = now
    elif status == CLOSED:
        t.closed_at = now
    elif t.status == SOLVED:
        t.solved_at = None  # reopened
    t.status = status


def create(ticket_id: str, shop: str, number: int, values: dict[str, Any], by: str,
           role: str, now: int, *, follow_up_of: str | None = None,
           rule: str | None = None) -> Outcome:
    """A new ticket from validated ``values`` (the API's body: subject, description,
    type, category, priority, requester, assignee, group, order, sku, tags, fields,
    due, source). It starts ``new``, or ``open`` when it already has an assignee."""
    source = Source(**values.get("source") or {})
    ticket = Ticket(ticket_id, shop, number, values["subject"], NEW, now, now,
                    source=source, follow_up_of=follow_up_of,
                    **{k: v for k, v in values.items()
                       if k not in ("shop", "subject", "source", "status") and v is not None})
    if ticket.assignee:
        ticket.status = OPEN
    out = Outcome(ticket)
    created: dict[str, Any] = {"status": ticket.status, "subject": ticket.subject,
                               "priority": ticket.priority, "source": source.kind}
    if rule is not None:  # an assignment rule set the group (assignee, priority)
        created.update(rule=rule, group=ticket.group, assignee=ticket.assignee)
    _history(out, by, role, now, "created", None, created)
    return _finish(out, None, now, "ticket_created",
                   {"by": by, "source": source.kind, "priority": ticket.priority})


def update(ticket: Ticket, changes: dict[str, Any], by: str, role: str, now: int) -> Outcome:
    """Staff change fields (only those in ``changes`` that differ); each change is its
    own history entry. A status change must be allowed by the machine."""
    if ticket.status == CLOSED:
        raise TicketClosed(f"ticket {ticket.label} is closed")
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(sorted(unknown))}")
    after = _copy(ticket, tags=list(ticket.tags), fields=dict(ticket.fields),
                  followers=list(ticket.followers))
    out = Outcome(after)
    changed: dict[str, Any] = {}
    for name in EDITABLE:  # a fixed order, so the history reads the same every time
        if name not in changes or changes[name] == getattr(ticket, name):
            continue
        value = changes[name]
        if name == "status":
            if value == NEW or value not in TRANSITIONS[ticket.status]:
                raise InvalidTransition(f"a {ticket.status} ticket cannot become {value}")
            _set_status(after, value, now)
        else:
            setattr(after, name, value)
        _history(out, by, role, now, name, getattr(ticket, name), value)
        changed[name] = value
    if not changed:
        return out
    if after.status == NEW and after.assignee:
        _set_status(after, OPEN, now)  # assigned: somebody works on it
        _history(out, by, role, now, "status", NEW, OPEN)
        changed["status"] = OPEN
    return _finish(out, ticket.status, now, "ticket_updated", {"by": by, "changes": changed})


def comment(ticket: Ticket, by: str, role: str, body: str, public: bool, now: int,
            attachments: tuple[dict[str, Any], ...] = ()) -> Outcome:
    """A public reply (reaches the buyer) or an internal note (staff only). A buyer's
    reply reopens a ``pending`` or ``solved`` ticket; a staff public reply to a ``new``
    one opens it. A closed ticket takes nothing (the caller opens a follow-up)."""
    if ticket.status == CLOSED:
        raise TicketClosed(f"ticket {ticket.label} is closed; a reply opens a follow-up")
    if not body.strip() or len(body) > 10_000:
        raise InvalidInput("a comment has 1-10000 characters")
    buyer = role == "buyer"
    if buyer and not public:
        raise InvalidInput("buyers write public replies only")
    after = _copy(ticket)
    out = Outcome(after)
    after.comments += 1
    entry = {"n": after.comments, "by": by, "role": role, "public": public, "body": body,
             "at": now}
    if attachments:
        entry["attachments"] = list(attachments)
    out.ops.append(Put("ticket_comments", scope_key(after.id, after.comments), pack(entry)))
    if buyer and ticket.status in (PENDING, SOLVED):
        _set_status(after, OPEN, now)
        _history(out, by, role, now, "status", ticket.status, OPEN)
    elif not buyer and public:
        if after.first_public_reply is None:
            after.first_public_reply = now
        if ticket.status == NEW:
            _set_status(after, OPEN, now)
            _history(out, by, role, now, "status", NEW, OPEN)
    data: dict[str, Any] = {"by": by, "role": role, "public": public,
                            "comment": after.comments}
    if public:  # the platform may carry a public reply to the buyer itself
        data["body"] = body
    return _finish(out, ticket.status, now, "ticket_commented", data)


def auto_close(ticket: Ticket, now: int, after_ms: int) -> Outcome | None:
    """A ticket solved at least ``after_ms`` ago closes (None: not yet, or not solved)."""
    if ticket.status != SOLVED or ticket.solved_at is None or now - ticket.solved_at < after_ms:
        return None
    closed = _copy(ticket)
    out = Outcome(closed)
    _set_status(closed, CLOSED, now)
    _history(out, "system", "system", now, "status", SOLVED, CLOSED)
    return _finish(out, SOLVED, now, "ticket_updated",
                   {"by": "system", "changes": {"status": CLOSED}})


def merge(duplicate: Ticket, survivor: Ticket, by: str, role: str, now: int) -> Outcome:
    """Close ``duplicate`` into ``survivor`` (same shop): it points to the survivor."""
    if duplicate.id == survivor.id or duplicate.shop != survivor.shop:
        raise InvalidInput("merge into another ticket of the same shop")
    if duplicate.status == CLOSED:
        raise TicketClosed(f"ticket {duplicate.label} is closed")
    if survivor.status == CLOSED:
        raise TicketClosed(f"ticket {survivor.label} is closed")
    merged = _copy(duplicate, merged_into=survivor.id)
    out = Outcome(merged)
    _set_status(merged, CLOSED, now)
    _history(out, by, role, now, "merged_into", None, survivor.id)
    return _finish(out, duplicate.status, now, "ticket_updated",
                   {"by": by, "changes": {"status": CLOSED, "merged_into": survivor.id}})


def breached(ticket: Ticket, metric: str, sla: dict[str, Any], escalate_to: str | None,
             now: int) -> Outcome:
    """SLA metric ``metric`` breached (``sla``: the record with its breach): history,
    the event log, ``ticket.sla_breached``, and the priority raised to ``escalate_to``
    if that is higher."""
    after = _copy(ticket, sla=sla)
    out = Outcome(after)
    _history(out, "system", "system", now, "sla_breached", None, metric)
    order = ("low", "normal", "high", "urgent")
    if escalate_to in order and order.index(escalate_to) > order.index(ticket.priority):
        after.priority = escalate_to
        _history(out, "system", "system", now, "priority", ticket.priority, escalate_to)
    due = sla["metrics"][metric]["due"]
    return _finish(out, ticket.status, now, "ticket_sla_breached",
                   {"metric": metric, "due": due, "assignee": after.assignee,
                    "group": after.group, "priority": after.priority})


__all__ = ["EDITABLE", "Outcome", "auto_close", "breached", "comment", "create", "merge",
           "update"]
