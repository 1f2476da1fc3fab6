"""The TicketDesk: one shop's tickets (one actor per shop; ``*`` is the platform's).

It is the one writer of its shop's tickets: it numbers them (``T-1``, ``T-2``… per
shop, the counter written in the same commit as the ticket), remembers idempotency
keys (a repeated ``POST /api/tickets`` answers the same ticket), keeps the tickets
that are not closed in memory for listing and filtering, applies the pure rules of
:mod:`~octim.domain.tickets.rules` and emits the webhook events once durable. A
solved ticket closes itself after the shop's time (a timer on the engine's clock).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Mapping
from typing import Any

import msgspec

from octim.actors import Actor, ActorKind, Address, Message, record, thaw
from octim.domain.context import EngineContext
from octim.domain.conversations.model import log_op, pair_key
from octim.domain.mentions import mentioned
from octim.domain.tickets import assign, fields, outmail, rules, sla
from octim.domain.tickets.index import OpenTickets
from octim.domain.tickets.model import (
    CLOSED,
    NEW,
    ON_HOLD,
    OPEN,
    PENDING,
    PRIORITIES,
    SOLVED,
    STATUSES,
    InvalidTransition,
    Ticket,
    TicketClosed,
    new_ticket_id,
)
from octim.errors import InvalidInput, NotFound
from octim.store import Delete, Put, pack

log = logging.getLogger("octim.tickets")

KIND = "tickets"
UPLOAD_TICKETS = "idx_upload_tickets"
MAX_LIST = 500
FREEZE_AFTER = 10_000  # open tickets loaded at once that are worth a gc.freeze()
DUE_SOON_MS = 3_600_000  # "due soon": an SLA metric due within the hour


@record
class CreateTicket(Message):
    """A new ticket; ``idempotency_key`` ('' for none) makes a repeat answer the same one."""

    values: Mapping[str, Any]
    by: str
    role: str
    idempotency_key: str
    required: bool = True  # the shop's required fields must be given (staff, the API)


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
    sla: str = ""  # "breached" or "due_soon" (due within the hour)
    order: str = ""  # "urgent": the queue's order (breached, then soonest due); else newest


@record
class AutoClose(Message):
    ticket: str


@record
class SlaDue(Message):
    """Metric ``metric`` of ``ticket`` breaches at ``due`` (stale if the due moved)."""

    ticket: str
    metric: str
    due: int


@record
class PutPolicy(Message):
    """Create or replace an SLA policy of this shop (``None`` record: delete ``policy``)."""

    policy: str
    record: Mapping[str, Any] | None


@record
class ListPolicies(Message):
    pass


@record
class PutRules(Message):
    """Replace the shop's ordered assignment rules (``assign.py``)."""

    rules: tuple[Mapping[str, Any], ...]


@record
class GetRules(Message):
    pass


@record
class PutSettings(Message):
    """Replace the shop's ticket settings: custom fields, categories, custom statuses."""

    settings: Mapping[str, Any]


@record
class GetSettings(Message):
    pass


@record
class EscalateTicket(Message):
    """Escalate to another shop or the platform (平台介入): a linked ticket there; this
    one waits on hold for it."""

    ticket: str
    to_shop: str
    group: str
    note: str
    by: str
    role: str


@record
class PutBusinessHours(Message):
    hours: Mapping[str, Any]


@record
class InboundEmail(Message):
    """A parsed inbound email (octim.domain.tickets.mail): it joins a ticket or opens one."""

    message_id: str
    refs: tuple[str, ...]
    requester: str
    subject: str
    text: str
    token: int | None
    attachments: tuple[Mapping[str, Any], ...] = ()  # stored uploads: {upload, name, mime, size}
    also: str = ""  # ``email:<address>`` when the requester is the buyer it is linked to


def attached(files: tuple[dict[str, Any], ...], ticket: str) -> list[Put]:
    """The rows that let the ticket's staff and requester read its attachments."""
    return [Put(UPLOAD_TICKETS, pair_key(f["upload"], ticket), pack(1)) for f in files]


def idempotency_key(shop: str, key: str) -> bytes:
    return pair_key(shop, key)


class TicketDesk(Actor[EngineContext]):
    """See the module docstring."""

    def __init__(self, address: Address, context: EngineContext) -> None:
        super().__init__(address, context)
        self.tickets = OpenTickets()  # the shop's tickets that are not closed
        self.next_number = 1
        self.policies: dict[str, sla.Policy] = {}
        self.policy_records: dict[str, dict[str, Any]] = {}
        self.hours: sla.BusinessHours | None = None
        self.rules: list[dict[str, Any]] = []  # assignment rules, in order
        self.settings: dict[str, Any] = {}  # custom fields, categories, statuses (fields.py)

    @property
    def shop(self) -> str:
        return self.address.id

    async def on_start(self) -> None:
        store = self.context.store
        counter = store.get("ticket_counters", self.shop.encode())
        self.next_number = int(counter or 0) + 1
        prefix = pair_key(self.shop, "")
        for _, policy in store.scan("sla_policies", prefix, prefix[:-1] + b"\x01"):
            self.policy_records[policy["id"]] = policy
            self.policies[policy["id"]] = sla.Policy.from_record(policy)
        self.rules = list((store.get("ticket_rules", self.shop.encode()) or {}).get("rules", []))
        self.settings = store.get("ticket_settings", self.shop.encode()) or {}
        hours = store.get("business_hours", self.shop.encode())
        self.hours = None if hours is None else sla.BusinessHours.from_record(hours)
        loaded: list[Ticket] = []
        for key, status in store.scan("idx_shop_tickets", prefix, prefix[:-1] + b"\x01"):
            if status == CLOSED:
                continue
            raw = store.get("tickets", key[len(prefix):])
            if raw is not None:
                loaded.append(Ticket.from_record(raw))
        self.tickets.load(loaded)
        for ticket in loaded:
            if ticket.status == SOLVED:
                self._schedule_close(ticket)
            self._schedule_sla(ticket)
        if len(loaded) >= FREEZE_AFTER and self.context.settings.gc_freeze:
            # A big desk's tickets live as long as the desk: out of the collector's
            # sight, as start-up's objects are (engine.tune_interpreter), so full
            # collections stop rescanning them (a 150-250 ms pause at 100,000 tickets).
            gc.freeze()

    def may_passivate(self) -> bool:
        """A desk with open tickets stays: their index and SLA timers live here."""
        return len(self.tickets) == 0

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

    def _schedule_sla(self, ticket: Ticket) -> None:
        for metric, due in sla.due_times(ticket.sla):
            self.context.timers.at(due / 1000, KIND, self.shop, SlaDue(ticket.id, metric, due))

    def _clock(self, policy: sla.Policy) -> sla.Clock:
        return sla.Clock(self.hours if policy.business_hours else None)

    def _policy_for(self, ticket: Ticket) -> sla.Policy | None:
        return sla.choose(list(self.policies.values()), ticket.priority, ticket.category,
                          ticket.source.kind, self._level(ticket))

    def _track(self, before: Ticket | None, out: rules.Outcome, change: str, role: str,
               public: bool, now: int) -> None:
        """Bring the outcome's SLA record up to date with the change (sla.track)."""
        after = out.ticket
        policy = self._policy_for(after)
        if policy is None and not after.sla:
            return
        tracked = None if policy is None else sla.track(
            None if before is None else {"status": before.status, "priority": before.priority,
                                         "sla": before.sla},
            {"status": after.status, "priority": after.priority}, change, role, public,
            policy, self._clock(policy), now)
        if tracked != after.sla:
            old = (after.sla or {}).get("metrics", {})
            new = {} if tracked is None else tracked["metrics"]
            # The targets this change fulfilled, on time or late (reports' SLA attainment).
            done = [name for name, m in new.items() if m["state"] == "fulfilled"
                    and (old.get(name) or {}).get("state") != "fulfilled"]
            after.sla = tracked
            out.ops += [after.put(), log_op(after.id, after.shop, "ticket_sla", {
                "ticket": after.id, "policy": None if tracked is None else tracked["policy"],
                "metrics": {name: {"state": m["state"], "due": m["due"]}
                            for name, m in new.items()},
                "met": [n for n in done if new[n].get("breached_at") is None],
                "late": [n for n in done if new[n].get("breached_at") is not None]}, now)]

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
            case CreateTicket(values=values, by=by, role=role, idempotency_key=key,
                              required=required):
                self._check_people(values)
                # A buyer's ticket (a form, 留言) cannot fill staff fields: none required.
                fields.check_values(self.settings, thaw(values),
                                    creating=required and role != "buyer")
                created = await self._create(thaw(values), by, role, key, now)
                if not created["repeated"]:
                    self._tell(self._ticket(created["id"]), "created", by, None)
                return created
            case UpdateTicket(ticket=ticket_id, changes=changes, by=by, role=role):
                self._check_people(changes)
                before = self._ticket(ticket_id)
                wanted = self._custom_status(before, thaw(changes))
                fields.check_values(self.settings, wanted, creating=False)
                out = rules.update(before, wanted, by, role, now)
                if out.ops:
                    self._track(before, out, "updated", role, False, now)
                after = await self._apply(out)
                if out.ops:
                    self._tell(after, "updated", by, before.assignee)
                return after.view()
            case CommentTicket(ticket=ticket_id, body=body, public=public, by=by, role=role):
                return await self._comment(ticket_id, body, public, by, role, now)
            case MergeTicket(ticket=ticket_id, into=into, by=by, role=role):
                duplicate = self._ticket(ticket_id)
                out = rules.merge(duplicate, self._ticket(into), by, role, now)
                self._track(duplicate, out, "updated", role, False, now)
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
                        self._track(solved, closing, "updated", "system", False, now)
                        await self._apply(closing)
                return None
            case SlaDue(ticket=ticket_id, metric=metric, due=due):
                return await self._sla_due(ticket_id, metric, due, now)
            case PutPolicy(policy=policy_id, record=policy_record):
                return await self._put_policy(policy_id, policy_record, now)
            case ListPolicies():
                return sorted(self.policy_records.values(),
                              key=lambda p: (p.get("position", 0), p["id"]))
            case InboundEmail():
                return await self._email(message, now)
            case PutRules(rules=rules_):
                self.rules = [thaw(r) for r in rules_]
                await self.context.store.write((Put("ticket_rules", self.shop.encode(),
                                                    pack({"rules": self.rules})),))
                return {"rules": self.rules}
            case GetRules():
                return {"rules": self.rules}
            case PutSettings(settings=settings):
                self.settings = thaw(settings)
                await self.context.store.write((Put("ticket_settings", self.shop.encode(),
                                                    pack(self.settings)),))
                return self.settings
            case GetSettings():
                return self.settings
            case EscalateTicket():
                return await self._escalate(message, now)
            case PutBusinessHours(hours=hours):
                parsed = sla.BusinessHours.from_record(thaw(hours))
                await self.context.store.write((Put("business_hours", self.shop.encode(),
                                                    pack(thaw(hours))),))
                self.hours = parsed
                await self._recompute(now)
                return thaw(hours)
        raise InvalidInput(f"the ticket desk cannot handle {type(message).__name__}")

    async def _create(self, values: dict[str, Any], by: str, role: str, key: str, now: int,
                      follow_up_of: str | None = None, mail_in: str | None = None
                      ) -> dict[str, Any]:
        store = self.context.store
        if key:
            known = store.get("ticket_idem", idempotency_key(self.shop, key))
            if known is not None:
                return {**self._ticket(known).view(), "repeated": True}
        number = self.next_number
        rule = None
        if self.rules and not values.get("assignee") and not values.get("group"):
            rule, values = self._assign(values, number, now)
        out = rules.create(new_ticket_id(), self.shop, number, values, by, role, now,
                           follow_up_of=follow_up_of, rule=rule)
        out.ops += attached(tuple(out.ticket.attachments), out.ticket.id)
        self._track(None, out, "created", role, False, now)
        out.ops.append(Put("ticket_counters", self.shop.encode(), pack(number)))
        if key:
            out.ops.append(Put("ticket_idem", idempotency_key(self.shop, key),
                               pack(out.ticket.id)))
        self.next_number += 1
        try:
            ticket = await self._apply(out, (mail_in, None) if mail_in else None)
        except BaseException:
            self.next_number = number  # nothing was written: the number is free again
            raise
        return {**ticket.view(), "repeated": False}

    async def _comment(self, ticket_id: str, body: str, public: bool, by: str, role: str,
                       now: int, mail_in: str | None = None,
                       attachments: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
        """A public reply or an internal note; ``mail_in``: the Message-ID it came in."""
        ticket = self._ticket(ticket_id)
        try:
            out = rules.comment(ticket, by, role, body, public, now, attachments)
        except TicketClosed:
            if role != "buyer":
                raise
            return await self._follow_up(ticket, body, by, now, mail_in, attachments)
        out.ops += attached(attachments, ticket.id)
        self._track(ticket, out, "commented", role, public, now)
        mail: tuple[str, dict[str, Any] | None] | None = (mail_in, None) if mail_in else None
        if public and role != "buyer":
            mail = self._mail_out(out.ticket, body, by, now) or mail
        after = await self._apply(out, mail)
        self._tell(after, "commented", by, after.assignee)
        if not public and role != "buyer":
            self._mention(after, body, by)
        return {"ticket": after.view(), "comment": out.ticket.comments}

    def _mail_to(self, ticket: Ticket) -> str | None:
        """The requester's email address: theirs by email, else their profile's."""
        if ticket.requester is None:
            return None
        if ticket.requester.startswith("email:"):
            return ticket.requester[len("email:"):]
        profile = self.context.store.get("customers", ticket.requester.encode()) or {}
        address = profile.get("email")
        if isinstance(address, str) and "@" in address:
            return address
        linked = self.context.store.get("customer_identities", ticket.requester.encode()) or []
        return next((i["value"] for i in linked if i.get("type") == "email"), None)

    def _mail_out(self, ticket: Ticket, body: str, by: str, now: int
                  ) -> tuple[str, dict[str, Any]] | None:
        """A public staff reply as an email to the requester (when email goes out)."""
        settings = self.context.settings
        to = self._mail_to(ticket)
        if not outmail.enabled(settings) or to is None:
            return None
        shop = self.context.store.get("shops", self.shop.encode()) or {}
        sender = str((shop.get("settings") or {}).get("email_from") or settings.smtp_from)
        message_id = outmail.new_message_id(ticket.id, ticket.comments, sender)
        raw = outmail.compose(sender=sender, sender_name=str(shop.get("name") or self.shop),
                              to=to, subject=ticket.subject, label=ticket.label, body=body,
                              message_id=message_id, thread=ticket.mail_ids,
                              now=now / 1000)
        return message_id, {"id": message_id, "ticket": ticket.id, "shop": self.shop,
                            "from": sender, "to": to, "raw": raw, "by": by,
                            "attempts": 0, "next_at": now / 1000, "error": None}

    async def _follow_up(self, closed: Ticket, body: str, by: str, now: int,
                         mail_in: str | None = None,
                         attachments: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
        """A buyer wrote to a closed ticket: a new ticket linked to it, with the reply."""
        values = {"subject": f"Re: {closed.subject}"[:200], "requester": closed.requester,
                  "type": closed.type, "category": closed.category,
                  "priority": closed.priority, "order": closed.order, "sku": closed.sku,
                  "source": {"kind": closed.source.kind,
                             "conversation": closed.source.conversation}}
        created = await self._create(values, by, "buyer", "", now, follow_up_of=closed.id)
        fresh = self._ticket(created["id"])
        out = rules.comment(fresh, by, "buyer", body, True, now, attachments)
        out.ops += attached(attachments, fresh.id)
        self._track(fresh, out, "commented", "buyer", True, now)
        after = await self._apply(out, (mail_in, None) if mail_in else None)
        return {"ticket": after.view(), "comment": out.ticket.comments,
                "follow_up_of": closed.id}

    async def _apply(self, out: rules.Outcome,
                     mail: tuple[str, dict[str, Any] | None] | None = None) -> Ticket:
        """Commit a rule's outcome, then adopt it and tell the outside world. ``mail``: a
        Message-ID that joins the ticket's email thread in the same commit, with the
        outbox item that sends it (None for one that came in)."""
        ticket = out.ticket
        if mail is not None:
            message_id, outbox = mail
            ticket.mail_ids = [*ticket.mail_ids, message_id][-outmail.MAX_REFS:]
            out.ops += [ticket.put(),  # the later put of the same key wins in the commit
                        Put("ticket_mail", pair_key(self.shop, message_id), pack(ticket.id))]
            if outbox is not None:
                out.ops.append(Put("mail_outbox", outmail.outbox_key(
                    int(outbox["next_at"] * 1000), message_id), pack(outbox)))
        staged = self.context.stage(list(out.events))
        await self.context.store.write([*out.ops, *staged.ops])
        if mail is not None and mail[1] is not None:
            assert self.context.directory is not None
            self.context.directory.ref(outmail.KIND, outmail.ID).tell_nowait(outmail.Kick())
        previous = self.tickets.get(ticket.id)
        if ticket.status == CLOSED:
            self.tickets.remove(ticket.id)
        else:
            self.tickets.put(ticket)
        if ticket.status == SOLVED and (previous is None or previous.status != SOLVED):
            self._schedule_close(ticket)
        if ticket.sla != (previous.sla if previous is not None else None):
            self._schedule_sla(ticket)
        self.context.publish(staged)
        return ticket

    async def _email(self, m: InboundEmail, now: int) -> dict[str, Any]:
        """Thread an email into the requester's ticket, or open a ticket with it."""
        store = self.context.store
        known = store.get("ticket_mail", pair_key(self.shop, m.message_id))
        if known is not None:  # the same message delivered again: nothing twice
            return {"ticket": known, "label": self._ticket(known).label, "threaded": None,
                    "duplicate": True}
        target = next((tid for ref in m.refs
                       if (tid := store.get("ticket_mail", pair_key(self.shop, ref)))), None)
        if target is None and m.token is not None:
            target = next((t.id for t in self.tickets.values() if t.number == m.token), None)
        if target is not None and self._ticket(target).requester not in (m.requester,
                                                                          m.also or None):
            target = None  # only the requester's own mail joins a ticket
        # The Message-ID is recorded in the commit that threads or opens the ticket: a
        # redelivery after any crash finds it, or finds nothing done.
        files = tuple(thaw(a) for a in m.attachments)
        if target is not None:
            answer = await self._comment(target, m.text or m.subject or "-", True,
                                         self._ticket(target).requester or m.requester,
                                         "buyer", now, mail_in=m.message_id,
                                         attachments=files)
            ticket_id = answer["ticket"]["id"]
        else:
            created = await self._create(
                {"subject": m.subject or "(无主题)", "description": m.text,
                 "requester": m.requester, "source": {"kind": "email"},
                 "attachments": list(files)},
                m.requester, "buyer", "", now, mail_in=m.message_id)
            ticket_id = created["id"]
        return {"ticket": ticket_id, "label": self._ticket(ticket_id).label,
                "threaded": target is not None, "duplicate": False}

    async def _sla_due(self, ticket_id: str, metric: str, due: int, now: int) -> None:
        """A metric's due time came: breach it (history, log, webhook, escalation,
        and a ``ticket`` frame to the assignee and the group's agents online)."""
        ticket = self.tickets.get(ticket_id)
        if ticket is None or not ticket.sla:
            return
        changed = sla.breach(ticket.sla, metric, due, now)
        if changed is None:
            return
        policy = self.policies.get(ticket.sla["policy"])
        out = rules.breached(ticket, metric, changed,
                             policy.escalate_to if policy is not None else None, now)
        if out.ticket.priority != ticket.priority and policy is not None:
            # A higher priority may have shorter targets: the other metrics' dues follow.
            self._track(msgspec.structs.replace(ticket, sla=changed), out, "updated",
                        "system", False, now)
        await self._apply(out)
        frame = {"type": "ticket", "event": "sla_breached", "ticket": ticket.id,
                 "label": ticket.label, "shop": self.shop, "metric": metric, "due": due}
        self.context.fanout.publish(frame, self._notified(out.ticket))

    def _assign(self, values: dict[str, Any], number: int, now: int
                ) -> tuple[str | None, dict[str, Any]]:
        """The first assignment rule that fits the new ticket: its changes to ``values``."""
        draft = rules.create("draft", self.shop, number, values, "", "", now).ticket
        store = self.context.store
        prefix = pair_key(self.shop, "")
        groups = {k[len(prefix):].decode()
                  for k, _ in store.scan("groups", prefix, prefix[:-1] + b"\x01")}
        staff = {a["id"] for _, a in store.scan("agents")
                 if self.shop in a["shops"] or "*" in a["shops"]}
        chosen = assign.choose(self.rules, draft, self._level(draft), groups, staff)
        if chosen is None:
            return None, values
        name, changes = chosen
        return name, {**values, **changes}

    def _level(self, ticket: Ticket) -> int:
        if not ticket.requester:
            return 0
        return int((self.context.store.get("customers", ticket.requester.encode())
                    or {}).get("level") or 0)

    async def _escalate(self, m: EscalateTicket, now: int) -> dict[str, Any]:
        """A linked ticket in the other desk (idempotent per ticket and target), then
        this one on hold with ``escalated_to`` and a history entry."""
        ticket = self._ticket(m.ticket)
        if ticket.status == CLOSED:
            raise TicketClosed(f"ticket {ticket.label} is closed")
        if m.to_shop == self.shop:
            raise InvalidInput("escalate to another shop or the platform")
        if ticket.escalated_to is not None:
            raise InvalidTransition(f"{ticket.label} was escalated already")
        assert self.context.directory is not None
        shop = self.context.store.get("shops", self.shop.encode()) or {}
        values: dict[str, Any] = {
            "subject": ticket.subject, "type": ticket.type, "category": ticket.category,
            "priority": ticket.priority, "requester": ticket.requester,
            "order": ticket.order, "sku": ticket.sku, "escalated_from": ticket.id,
            "description": f"{shop.get('name') or self.shop} {ticket.label}: {m.note}".strip()
            if m.note else f"{shop.get('name') or self.shop} {ticket.label}",
            "source": {"kind": ticket.source.kind,
                       "conversation": ticket.source.conversation}}
        if m.group:
            values["group"] = m.group
        made = await self.context.directory.ref(KIND, m.to_shop).ask(CreateTicket(
            values, m.by, m.role, f"escalate\x1f{ticket.id}", required=False))
        changes: dict[str, Any] = {}
        if ticket.status in (NEW, OPEN, PENDING):
            changes["status"] = ON_HOLD  # waiting for the other side (a third party)
        out = rules.update(ticket, changes, m.by, m.role, now)
        out.ticket.escalated_to = made["id"]
        rules.record(out, m.by, m.role, now, "escalated_to", None,
                     {"ticket": made["id"], "shop": m.to_shop, "label": made["label"]})
        out.ops.append(out.ticket.put())
        self._track(ticket, out, "updated", m.role, False, now)
        after = await self._apply(out)
        self._tell(after, "updated", m.by, ticket.assignee)
        return {"ticket": after.view(), "escalated": made}

    def _custom_status(self, ticket: Ticket, changes: dict[str, Any]) -> dict[str, Any]:
        """A custom status brings its status; a plain status change that leaves the
        custom one's status drops it."""
        key = changes.get("custom_status")
        if key:
            status = fields.custom_status(self.settings, key)["maps_to"]
            if changes.get("status", status) != status:
                raise InvalidInput(f"custom status {key!r} is {status}")
            if status != ticket.status:
                changes["status"] = status
        elif "status" in changes and ticket.custom_status and "custom_status" not in changes:
            changes["custom_status"] = None
        return changes

    def _check_people(self, values: Mapping[str, Any]) -> None:
        """An assignee and followers are staff of this shop; a group is one of its groups."""
        store = self.context.store
        for user in (values.get("assignee"), *(values.get("followers") or ())):
            if not user:
                continue
            agent = store.get("agents", str(user).encode())
            if agent is None or not (self.shop in agent["shops"] or "*" in agent["shops"]):
                raise InvalidInput(f"{user!r} is not staff of this shop")
        group = values.get("group")
        if group and store.get("groups", pair_key(self.shop, str(group))) is None:
            raise InvalidInput(f"no group {group!r} in this shop")

    def _tell(self, ticket: Ticket, event: str, by: str, assigned_before: str | None) -> None:
        """A live ``ticket`` frame to whoever works the ticket (not to who did it), so
        their queues follow; a new assignee hears ``assigned``."""
        frame = {"type": "ticket", "event": event, "ticket": ticket.id, "label": ticket.label,
                 "shop": self.shop, "status": ticket.status, "by": by}
        users = self._notified(ticket) - {by}
        if ticket.assignee in users and assigned_before != ticket.assignee:
            users.discard(ticket.assignee)
            self.context.fanout.publish({**frame, "event": "assigned"}, {ticket.assignee})
        if users:
            self.context.fanout.publish(frame, users)

    def _mention(self, ticket: Ticket, body: str, by: str) -> None:
        """``@id`` or ``@name`` of a colleague in an internal note tells them."""
        users = set(mentioned(self.context.store, self.shop, body)) - {by}
        if users:
            self.context.fanout.publish(
                {"type": "ticket", "event": "mentioned", "ticket": ticket.id,
                 "label": ticket.label, "shop": self.shop, "status": ticket.status, "by": by,
                 "excerpt": body[:200]}, users)

    def _notified(self, ticket: Ticket) -> set[str]:
        """Who hears of a breach: the assignee, the followers, the group's agents."""
        users = {u for u in (ticket.assignee, *ticket.followers) if u}
        if ticket.group:
            for _, agent in self.context.store.scan("agents"):
                if self.shop in agent["shops"] and ticket.group in agent["groups"]:
                    users.add(agent["id"])
        return users

    async def _put_policy(self, policy_id: str, policy_record: Mapping[str, Any] | None,
                          now: int) -> Any:
        key = pair_key(self.shop, policy_id)
        if policy_record is None:
            await self.context.store.write((Delete("sla_policies", key),))
            self.policies.pop(policy_id, None)
            self.policy_records.pop(policy_id, None)
        else:
            stored = {**thaw(policy_record), "id": policy_id, "shop": self.shop}
            parsed = sla.Policy.from_record(stored)
            await self.context.store.write((Put("sla_policies", key, pack(stored)),))
            self.policies[policy_id], self.policy_records[policy_id] = parsed, stored
        await self._recompute(now)
        return None if policy_record is None else self.policy_records[policy_id]

    async def _recompute(self, now: int) -> None:
        """Policies or hours changed: every open ticket's SLA again, from its record."""
        for ticket in list(self.tickets.values()):
            out = rules.Outcome(msgspec.structs.replace(ticket))
            self._track(ticket, out, "updated", "system", False, now)
            if out.ops:
                await self._apply(out)

    def _list(self, m: ListTickets) -> list[dict[str, Any]]:
        if m.status and m.status not in STATUSES:
            raise InvalidInput(f"status is one of {', '.join(STATUSES)}")
        now = self.context.now_ms()
        if m.sla and m.sla not in ("breached", "due_soon"):
            raise InvalidInput("sla is breached or due_soon")
        if m.priority and m.priority not in PRIORITIES:
            raise InvalidInput(f"priority is one of {', '.join(PRIORITIES)}")
        if m.status == CLOSED:
            prefix = pair_key(self.shop, "")
            found = [Ticket.from_record(raw) for key, status in self.context.store.scan(
                         "idx_shop_tickets", prefix, prefix[:-1] + b"\x01") if status == CLOSED
                     if (raw := self.context.store.get("tickets", key[len(prefix):]))]
        else:
            equal = {"status": m.status, "priority": m.priority, "assignee": m.assignee,
                     "group": m.group, "category": m.category, "requester": m.requester}
            return [t.view() for t in self.tickets.query(
                equal, m.q, m.sla, now, DUE_SOON_MS, min(m.limit, MAX_LIST),
                urgent=m.order == "urgent")]
        q = m.q.casefold()
        chosen = [t for t in found
                  if (not m.status or t.status == m.status)
                  and (not m.priority or t.priority == m.priority)
                  and (not m.assignee or t.assignee == m.assignee)
                  and (not m.group or t.group == m.group)
                  and (not m.category or t.category == m.category)
                  and (not m.requester or t.requester == m.requester)
                  and (not q or q in t.subject.casefold() or q in t.label.casefold()
                       or q in t.description.casefold())
                  and (m.sla != "breached" or sla.breached(t.sla))
                  and (m.sla != "due_soon" or sla.due_soon(t.sla, now, DUE_SOON_MS))]
        if m.sla == "breached" or m.sla == "due_soon":  # the most urgent first
            chosen.sort(key=lambda t: min((d for _, d in sla.due_times(t.sla)),
                                          default=0))
            return [t.view() for t in chosen[:min(m.limit, MAX_LIST)]]
        chosen.sort(key=lambda t: (t.updated, t.number), reverse=True)
        return [t.view() for t in chosen[:min(m.limit, MAX_LIST)]]


TICKET_DESK_KIND: ActorKind[EngineContext] = ActorKind(KIND, TicketDesk, idle_timeout=600.0)
