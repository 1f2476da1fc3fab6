"""Tickets (工单) over HTTP (docs/tickets.md).

* ``POST /api/tickets``: create (API key, the shop's staff, or a buyer for themself);
  an ``Idempotency-Key`` header makes a repeat answer the same ticket (200, not 201).
* ``GET /api/tickets?shop=&status=&priority=&assignee=&group=&category=&requester=&q=
  &sla=breached|due_soon&order=updated|urgent``: staff list one shop's tickets (``urgent``:
  the queue's order, breached first, then the soonest due); a buyer lists their own.
* ``GET /api/tickets/{id}``: the ticket with its thread (a buyer: public parts only);
  ``GET /api/tickets/{id}/history``: every change (staff).
* ``PATCH /api/tickets/{id}``: staff change fields and status (the status machine).
* ``POST /api/tickets/{id}/comments`` ``{"body", "public"}``: a public reply or an
  internal note (staff); the requester writes public replies (a reply to a closed
  ticket opens a linked follow-up).
* ``POST /api/tickets/{id}/merge`` ``{"into"}``: close a duplicate into another ticket.
* ``PUT /api/sla-policies/{id}``, ``GET /api/sla-policies?shop=``,
  ``DELETE /api/sla-policies/{id}?shop=``: a shop's SLA policies (its admins, the API key).
* ``PUT /api/shops/{shop}/business-hours``: the shop's working hours for SLAs.

Staff of other shops get ``not_found`` (no probing); every staff read is audited.
"""

# No ``from __future__ import annotations``: FastAPI evaluates these annotations.
import logging
from typing import TYPE_CHECKING, Annotated, Any, Literal

import filetype
import msgspec
import trio
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from octim.api.auth import require_staff_of
from octim.auth import Principal
from octim.domain import audit, uploads
from octim.domain.conversations.model import (
    STAFF_ROLES,
    ConversationMeta,
    Forbidden,
    TooLarge,
    may_transfer_to,
    pair_key,
)
from octim.domain.tickets.desk import KIND as DESK
from octim.domain.tickets.desk import (
    CommentTicket,
    CreateTicket,
    EscalateTicket,
    GetRules,
    GetSettings,
    GetTicket,
    InboundEmail,
    ListPolicies,
    ListTickets,
    MergeTicket,
    PutBusinessHours,
    PutPolicy,
    PutRules,
    PutSettings,
    UpdateTicket,
)
from octim.domain.tickets.fields import buyer_labels
from octim.domain.tickets.mail import parse as parse_mail
from octim.domain.tickets.model import PLATFORM, Ticket
from octim.errors import InvalidInput, NotFound, OctimError
from octim.store.blobs import BlobStore
from octim.values import check_storable

if TYPE_CHECKING:
    from octim.api.auth import Auth
    from octim.engine import Engine

log = logging.getLogger("octim.tickets")

Id = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
ShopId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^(\*|[A-Za-z0-9._-]+)$")]
UserId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$")]
Short = Annotated[str, Field(min_length=1, max_length=128)]
Key = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Filter = Annotated[str, Query(max_length=128)]
Type = Literal["question", "incident", "problem", "task"]
Priority = Literal["low", "normal", "high", "urgent"]
Status = Literal["new", "open", "pending", "on_hold", "solved", "closed"]
BUYER_FIELDS = {"shop", "subject", "description", "order", "sku", "source"}
BOT_LEFT = "已为您登记留言，工单号 {label}。客服上线后会尽快回复，进度可在“我的工单”查看。"
MAX_EMAIL_BYTES = 10 << 20  # with its attachments (each becomes an upload)


class SourceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["chat", "api", "email", "phone", "form", "bot"] = "api"
    conversation: Annotated[str, Field(max_length=64)] | None = None
    seq_from: Annotated[int, Field(ge=1)] | None = None
    seq_to: Annotated[int, Field(ge=1)] | None = None


class TicketBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shop: ShopId
    subject: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=20_000)] = ""
    type: Type = "question"
    category: Short | None = None
    priority: Priority = "normal"
    requester: UserId | None = None
    assignee: UserId | None = None
    group: Short | None = None
    order: Short | None = None
    sku: Short | None = None
    tags: list[Short] = Field(default_factory=list, max_length=20)
    fields: dict[Short, str | int | float | bool | None] = Field(default_factory=dict,
                                                                  max_length=50)
    due: Annotated[int, Field(ge=0)] | None = None
    source: SourceBody = Field(default_factory=SourceBody)


class TicketPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    description: Annotated[str, Field(max_length=20_000)] | None = None
    type: Type | None = None
    category: Short | None = None
    priority: Priority | None = None
    status: Status | None = None
    assignee: UserId | None = None
    group: Short | None = None
    order: Short | None = None
    sku: Short | None = None
    tags: list[Short] | None = Field(default=None, max_length=20)
    fields: dict[Short, str | int | float | bool | None] | None = Field(default=None,
                                                                         max_length=50)
    due: Annotated[int, Field(ge=0)] | None = None
    followers: list[UserId] | None = Field(default=None, max_length=50)
    custom_status: Key | None = None


class CommentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: Annotated[str, Field(min_length=1, max_length=10_000)]
    public: bool = False


Minutes = Annotated[int, Field(ge=1, le=525_600)]


class TargetsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    first_reply: Minutes | None = None
    next_reply: Minutes | None = None
    resolution: Minutes | None = None


class ConditionsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    priority: list[Priority] = Field(default_factory=list, max_length=4)
    category: list[Short] = Field(default_factory=list, max_length=50)
    source: list[Literal["chat", "api", "email", "phone", "form", "bot"]] = Field(
        default_factory=list, max_length=6)
    min_level: Annotated[int, Field(ge=0, le=100)] = 0


class PolicyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shop: ShopId
    name: Annotated[str, Field(min_length=1, max_length=100)]
    position: Annotated[int, Field(ge=0, le=10_000)] = 0
    conditions: ConditionsBody = Field(default_factory=ConditionsBody)
    targets: dict[Priority, TargetsBody]
    business_hours: bool = False
    escalate_to: Priority | None = None


Clock = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")]


class HoursBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timezone: Annotated[str, Field(min_length=1, max_length=64)] = "Asia/Shanghai"
    weekly: dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                 Annotated[list[tuple[Clock, Clock]], Field(max_length=6)]]
    holidays: list[Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]] = Field(
        default_factory=list, max_length=400)


class RuleConditions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    priority: list[Priority] = Field(default_factory=list, max_length=4)
    category: list[Short] = Field(default_factory=list, max_length=50)
    source: list[Literal["chat", "api", "email", "phone", "form", "bot"]] = Field(
        default_factory=list, max_length=6)
    keywords: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=50)
    min_level: Annotated[int, Field(ge=0, le=100)] = 0


class AssignRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=100)]
    conditions: RuleConditions = Field(default_factory=RuleConditions)
    group: Short | None = None
    assignee: UserId | None = None
    priority: Priority | None = None

    @model_validator(mode="after")
    def does_something(self) -> "AssignRule":
        if not (self.group or self.assignee or self.priority):
            raise ValueError("a rule sets a group, an assignee or a priority")
        return self


class RulesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[AssignRule] = Field(max_length=100)


class EscalateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to_shop: ShopId  # another shop, or "*": the platform (平台介入)
    group: Short | None = None
    note: Annotated[str, Field(max_length=2000)] = ""


class FieldDef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: Key
    label: Annotated[str, Field(min_length=1, max_length=100)]
    type: Literal["text", "number", "choice", "date"]
    choices: list[Short] = Field(default_factory=list, max_length=100)
    required: bool = False

    @model_validator(mode="after")
    def choices_for_choice(self) -> "FieldDef":
        if (self.type == "choice") != bool(self.choices):
            raise ValueError("a choice field lists its choices (and only a choice field)")
        return self


class StatusDef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: Key
    label: Annotated[str, Field(min_length=1, max_length=50)]
    buyer_label: Annotated[str, Field(min_length=1, max_length=50)]
    maps_to: Literal["open", "pending", "on_hold", "solved"]


class SettingsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fields: list[FieldDef] = Field(default_factory=list, max_length=50)
    categories: list[Short] = Field(default_factory=list, max_length=100)
    statuses: list[StatusDef] = Field(default_factory=list, max_length=30)

    @model_validator(mode="after")
    def unique(self) -> "SettingsBody":
        for name, keys in (("field", [f.key for f in self.fields]),
                           ("status", [s.key for s in self.statuses]),
                           ("category", self.categories)):
            if len(set(keys)) != len(keys):
                raise ValueError(f"each {name} once")
        return self


class MergeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    into: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


def _staff_may(who: Principal | None, shop: str) -> None:
    """The API key, or staff of ``shop`` (platform tickets: platform admins)."""
    if who is None:
        return
    if shop == PLATFORM and who.role != "platform_admin" and "*" not in who.shops:
        raise NotFound("not found") if who.role in STAFF_ROLES else Forbidden("staff only")
    require_staff_of(who, shop)


def router(engine: "Engine", auth: "Auth") -> APIRouter:
    api = APIRouter(tags=["tickets"])
    blobs = BlobStore(engine.settings.data / "blobs", engine.store.sealer)
    Caller = Annotated[Principal | None, Depends(auth.platform_or_person)]

    def desk(shop: str) -> Any:
        return engine.directory.ref(DESK, shop)

    def custom_labels(shop: str) -> dict[str, tuple[str, str]]:
        return buyer_labels(engine.store.get("ticket_settings", shop.encode()) or {})

    def stored(ticket: str) -> Ticket:
        raw = engine.store.get("tickets", ticket.encode())
        if raw is None:
            raise NotFound(f"no ticket {ticket!r}")
        return Ticket.from_record(raw)

    def visible(ticket: str, who: Principal | None) -> tuple[Ticket, bool]:
        """The ticket and whether the caller is its requester (a buyer), or not_found."""
        found = stored(ticket)
        if who is not None and who.role == "buyer":
            if found.requester != who.user:
                raise NotFound(f"no ticket {ticket!r}")
            return found, True
        try:
            _staff_may(who, found.shop)
        except (NotFound, Forbidden):
            raise NotFound(f"no ticket {ticket!r}") from None
        return found, False

    def actor(who: Principal | None) -> tuple[str, str]:
        return ("api", "api") if who is None else (who.user, who.role)

    async def audited(who: Principal | None, request: Request, ticket: Ticket) -> None:
        if who is not None and ticket.requester:
            source = request.client.host if request.client else None
            await audit.record(engine.store, who.user, who.role, "ticket", source,
                               now=engine.context.clock(), ticket=ticket.id,
                               customer=ticket.requester, shop=ticket.shop)

    @api.post("/api/tickets", status_code=201)
    async def create_ticket(body: TicketBody, who: Caller, idempotency_key: Annotated[
            str | None, Header(max_length=128, pattern=r"^[\x21-\x7e]+$")] = None) -> Any:
        """Create a ticket (a repeat with the same Idempotency-Key answers the same one)."""
        values = body.model_dump(exclude_unset=True)
        values.setdefault("source", {"kind": "api"})
        if who is not None and who.role == "buyer":
            extra = set(values) - BUYER_FIELDS
            if extra:
                raise Forbidden(f"a buyer does not set {', '.join(sorted(extra))}")
            values["requester"] = who.user
            values["source"] = {**values["source"], "kind": values["source"].get("kind")
                                if values["source"].get("kind") in ("form", "bot") else "form"}
        else:
            _staff_may(who, body.shop)
        conversation = values["source"].get("conversation")
        if conversation:
            meta = ConversationMeta.load(engine.store, conversation)
            if meta is None or meta.shop != body.shop or (
                    who is not None and not meta.visible_to(who.user, who.role, who.shops)):
                raise NotFound(f"no conversation {conversation!r} in shop {body.shop!r}")
            if values.get("requester", meta.buyer) != meta.buyer:
                raise InvalidInput("the requester of a ticket from a chat is its buyer")
            values["requester"] = meta.buyer
        if body.shop != PLATFORM and engine.store.get("shops", body.shop.encode()) is None:
            raise NotFound(f"no shop {body.shop!r}")
        by, role = actor(who)
        key = f"{by}\x1f{idempotency_key}" if idempotency_key else ""
        created = await desk(body.shop).ask(CreateTicket(values, by, role, key))
        answer = dict(created)
        fresh = not answer.pop("repeated")
        if fresh and conversation and values["source"].get("kind") == "bot":
            # 留言: nobody could serve; the bot tells the buyer in the chat what became of it.
            try:
                await engine.post_message(conversation, BOT_LEFT.format(label=answer["label"]),
                                          as_="bot")
            except OctimError as exc:  # the ticket stands even if the chat has closed
                log.info("leave-a-message line not posted", extra={"error": repr(exc)})
        if who is not None and who.role == "buyer":
            answer = Ticket.from_record({k: v for k, v in answer.items() if k != "label"}
                                        ).buyer_view(custom_labels(body.shop))
        return JSONResponse(answer, status_code=201 if fresh else 200)

    @api.get("/api/tickets")
    async def list_tickets(who: Caller, shop: Filter = "", status: Filter = "",
                           priority: Filter = "", assignee: Filter = "", group: Filter = "",
                           category: Filter = "", requester: Filter = "", q: Filter = "",
                           sla: Filter = "",
                           order: Annotated[Literal["updated", "urgent"], Query()] = "updated",
                           limit: Annotated[int, Query(ge=1, le=500)] = 100) -> Any:
        """One shop's tickets for its staff (or the API key); a buyer's own tickets."""
        if who is not None and who.role == "buyer":
            prefix = pair_key(who.user, "")
            mine = []
            for key, _ in engine.store.scan("idx_requester_tickets", prefix,
                                            prefix[:-1] + b"\x01"):
                raw = engine.store.get("tickets", key[len(prefix):])
                if raw is not None and (not shop or raw["shop"] == shop):
                    mine.append(Ticket.from_record(raw).buyer_view(custom_labels(raw["shop"])))
            mine.sort(key=lambda t: t["updated"], reverse=True)
            return mine[:limit]
        if not shop:
            raise InvalidInput("give ?shop= (one shop's tickets)")
        _staff_may(who, shop)
        # Straight to JSON: the rows are plain data already (no jsonable_encoder pass),
        # and msgspec encodes a page of 100 rows in a third of json.dumps's time.
        rows = await desk(shop).ask(ListTickets(
            status, priority, assignee, group, category, requester, q, limit, sla,
            "urgent" if order == "urgent" else ""))
        return Response(msgspec.json.encode(rows), media_type="application/json")

    @api.get("/api/tickets/{ticket}")
    async def get_ticket(ticket: Id, who: Caller, request: Request) -> Any:
        """The ticket and its thread (the requester sees public replies only)."""
        found, requester = visible(ticket, who)
        thread = [entry for _, entry in engine.store.scan_scope("ticket_comments", found.id)]
        if requester:
            return {**found.buyer_view(custom_labels(found.shop)), "thread": [
                {k: e[k] for k in ("n", "by", "role", "body", "at")}
                for e in thread if e["public"]]}
        await audited(who, request, found)
        current = await desk(found.shop).ask(GetTicket(found.id))
        return {**current, "thread": thread}

    @api.get("/api/tickets/{ticket}/history")
    async def ticket_history(ticket: Id, who: Caller, request: Request) -> Any:
        """Every change of the ticket, oldest first (staff)."""
        found, requester = visible(ticket, who)
        if requester:
            raise NotFound(f"no ticket {ticket!r}")
        await audited(who, request, found)
        return [entry for _, entry in engine.store.scan_scope("ticket_history", found.id)]

    @api.patch("/api/tickets/{ticket}")
    async def patch_ticket(ticket: Id, body: TicketPatch, who: Caller) -> Any:
        """Change fields or status (staff)."""
        found, requester = visible(ticket, who)
        if requester:
            raise Forbidden("buyers do not edit tickets")
        by, role = actor(who)
        return await desk(found.shop).ask(UpdateTicket(found.id, body.model_dump(
            exclude_unset=True), by, role))

    @api.post("/api/tickets/{ticket}/comments", status_code=201)
    async def comment_ticket(ticket: Id, body: CommentBody, who: Caller) -> Any:
        """A public reply or an internal note."""
        found, requester = visible(ticket, who)
        if requester and not body.public:
            raise Forbidden("buyers write public replies")
        by, role = actor(who)
        answer = dict(await desk(found.shop).ask(CommentTicket(found.id, body.body,
                                                               body.public, by, role)))
        if requester:
            view = Ticket.from_record({k: v for k, v in answer["ticket"].items()
                                       if k != "label"}).buyer_view(custom_labels(found.shop))
            return {**answer, "ticket": view}
        return answer

    @api.post("/api/tickets/{ticket}/merge")
    async def merge_ticket(ticket: Id, body: MergeBody, who: Caller) -> Any:
        """Close a duplicate into another ticket of the same shop (staff)."""
        found, requester = visible(ticket, who)
        survivor, _ = visible(body.into, who)
        if requester:
            raise Forbidden("buyers do not merge tickets")
        if survivor.shop != found.shop:
            raise InvalidInput("merge into a ticket of the same shop")
        by, role = actor(who)
        return await desk(found.shop).ask(MergeTicket(found.id, survivor.id, by, role))

    @api.post("/api/tickets/{ticket}/escalate")
    async def escalate_ticket(ticket: Id, body: EscalateBody, who: Caller) -> Any:
        """Escalate to another shop or the platform (平台介入): a linked ticket there."""
        found, requester = visible(ticket, who)
        if requester:
            raise Forbidden("buyers do not escalate tickets")
        if body.to_shop != PLATFORM:
            if engine.store.get("shops", body.to_shop.encode()) is None or (
                    who is not None and not may_transfer_to(who.role, who.shops, body.to_shop,
                                                            engine.settings)):
                raise Forbidden(f"you may not escalate to shop {body.to_shop!r}")
        by, role = actor(who)
        return await desk(found.shop).ask(EscalateTicket(found.id, body.to_shop,
                                                         body.group or "", body.note, by,
                                                         role))

    @api.put("/api/shops/{shop}/ticket-settings")
    async def put_settings(shop: Annotated[str, Path(max_length=128,
                                                     pattern=r"^(\*|[A-Za-z0-9._-]+)$")],
                           body: SettingsBody, who: Caller) -> Any:
        """The shop's custom ticket fields, categories and custom statuses."""
        admin_of(who, shop)
        return await desk(shop).ask(PutSettings(body.model_dump()))

    @api.get("/api/shops/{shop}/ticket-settings")
    async def get_settings(shop: Annotated[str, Path(max_length=128,
                                                     pattern=r"^(\*|[A-Za-z0-9._-]+)$")],
                           who: Caller) -> Any:
        """What the shop's tickets take (the workbench builds its form from it)."""
        _staff_may(who, shop)
        return await desk(shop).ask(GetSettings())

    @api.put("/api/shops/{shop}/ticket-rules")
    async def put_rules(shop: Annotated[str, Path(max_length=128,
                                                  pattern=r"^(\*|[A-Za-z0-9._-]+)$")],
                        body: RulesBody, who: Caller) -> Any:
        """The shop's ordered assignment rules (the first that fits a new ticket)."""
        admin_of(who, shop)
        return await desk(shop).ask(PutRules(tuple(
            r.model_dump(exclude_none=True) for r in body.rules)))

    @api.get("/api/shops/{shop}/ticket-rules")
    async def get_rules(shop: Annotated[str, Path(max_length=128,
                                                  pattern=r"^(\*|[A-Za-z0-9._-]+)$")],
                        who: Caller) -> Any:
        """The shop's assignment rules, in order."""
        _staff_may(who, shop)
        return await desk(shop).ask(GetRules())

    def admin_of(who: Principal | None, shop: str) -> None:
        """The API key, the shop's admins or platform admins; the shop must exist."""
        if who is not None and who.role not in ("shop_admin", "platform_admin"):
            raise Forbidden("ticket settings are for shop admins")
        _staff_may(who, shop)
        if shop != PLATFORM and engine.store.get("shops", shop.encode()) is None:
            raise NotFound(f"no shop {shop!r}")

    @api.put("/api/sla-policies/{policy}")
    async def put_policy(policy: Id, body: PolicyBody, who: Caller) -> Any:
        """Create or replace an SLA policy; open tickets' due times follow at once."""
        admin_of(who, body.shop)
        record = body.model_dump(exclude_none=True)
        record["targets"] = {p: t.model_dump(exclude_none=True)
                             for p, t in body.targets.items()}
        return await desk(body.shop).ask(PutPolicy(policy, record))

    @api.get("/api/sla-policies")
    async def list_policies(who: Caller, shop: Annotated[str, Query(max_length=128)]) -> Any:
        """A shop's SLA policies in the order they are tried (its staff)."""
        _staff_may(who, shop)
        return await desk(shop).ask(ListPolicies())

    @api.delete("/api/sla-policies/{policy}", status_code=204)
    async def delete_policy(policy: Id, who: Caller,
                            shop: Annotated[str, Query(max_length=128)]) -> JSONResponse:
        """Remove an SLA policy (idempotent)."""
        admin_of(who, shop)
        await desk(shop).ask(PutPolicy(policy, None))
        return JSONResponse(None, status_code=204)

    @api.post("/api/inbound/email", dependencies=[Depends(auth.platform)],
              openapi_extra={"requestBody": {"content": {"message/rfc822": {}}}})
    async def inbound_email(request: Request,
                            shop: Annotated[str, Query(max_length=128,
                                                       pattern=r"^(\*|[A-Za-z0-9._-]+)$")]
                            ) -> Any:
        """A raw RFC 5322 message from the mail provider's inbound hook (the API key):
        threaded into the sender's ticket, or opening one (docs/tickets.md)."""
        if shop != PLATFORM and engine.store.get("shops", shop.encode()) is None:
            raise NotFound(f"no shop {shop!r}")
        chunks, size = [], 0
        async for chunk in request.stream():  # a raw body: its own limit, while streaming
            size += len(chunk)
            if size > MAX_EMAIL_BYTES:
                raise TooLarge(f"an email is limited to {MAX_EMAIL_BYTES} bytes")
            chunks.append(chunk)
        # Parsing a large message (base64 attachments) takes a while: not on the loop.
        mail = await trio.to_thread.run_sync(parse_mail, b"".join(chunks))
        names = [name for name, _ in mail.attachments]
        # A sender whose address the platform linked to a buyer (PUT /api/customers/{id}/
        # identities) writes as that buyer: one requester across chat and mail.
        linked = engine.context.channels.buyer_by("email", mail.sender)
        requester = linked or mail.requester
        check_storable([mail.message_id, *mail.refs, requester, mail.subject, mail.text,
                        *names], where="email")
        files: list[dict[str, Any]] = []
        if engine.store.get("ticket_mail", pair_key(shop, mail.message_id)) is None:
            for name, data in mail.attachments:  # a redelivery stores nothing again
                guessed = filetype.guess(data[:8192])
                mime = guessed.mime if guessed is not None else "application/octet-stream"
                digest = await trio.to_thread.run_sync(blobs.put, data)
                record = await uploads.create(engine.store, requester, "file", mime,
                                              len(data), digest, engine.context.now_ms(),
                                              name=name)
                files.append({"upload": record["id"], "name": name, "mime": mime,
                              "size": len(data), "url": f"/api/uploads/{record['id']}"})
        return await desk(shop).ask(InboundEmail(mail.message_id, mail.refs, requester,
                                                 mail.subject, mail.text, mail.token,
                                                 tuple(files), also=mail.requester))

    @api.put("/api/shops/{shop}/business-hours")
    async def put_hours(shop: Annotated[str, Path(max_length=128,
                                                  pattern=r"^(\*|[A-Za-z0-9._-]+)$")],
                        body: HoursBody, who: Caller) -> Any:
        """The shop's working hours (time zone, weekly intervals, holidays)."""
        admin_of(who, shop)
        return await desk(shop).ask(PutBusinessHours(body.model_dump()))

    @api.get("/api/shops/{shop}/business-hours")
    async def get_hours(shop: Annotated[str, Path(max_length=128,
                                                  pattern=r"^(\*|[A-Za-z0-9._-]+)$")],
                        who: Caller) -> Any:
        """The shop's working hours as set (``null`` when none are: SLA clocks run
        around the clock)."""
        _staff_may(who, shop)
        if shop != PLATFORM and engine.store.get("shops", shop.encode()) is None:
            raise NotFound(f"no shop {shop!r}")
        return engine.store.get("business_hours", shop.encode())

    return api
