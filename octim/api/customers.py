"""Customer 360: the platform pushes buyers and orders in; staff read the context.

Platform calls (API key): customers, orders, logistics (single and bulk),
the sharing policy, the audit log. Staff calls (their JWT): a conversation's
context, and their shop's notes and tags on a buyer. Every staff read of
buyer data writes an audit row (who, what, when, from where).
"""

# No ``from __future__ import annotations``: FastAPI evaluates these annotations.
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from octim.api.auth import require_staff_of
from octim.auth import Principal
from octim.domain.audit import record as audit_record
from octim.domain.conversations.model import ConversationMeta, Forbidden
from octim.domain.customer_context import SHAREABLE, SHARING_KEY, build_context, shared_fields
from octim.domain.customers import KIND as CUSTOMER
from octim.domain.customers import (
    ORDER_STATUSES,
    AddLogistics,
    AddNote,
    SetTags,
    UpsertCustomer,
    UpsertOrder,
)
from octim.domain.outreach import notices
from octim.domain.segments import members
from octim.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from octim.api.auth import Auth
    from octim.engine import Engine

Ref = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
Text = Annotated[str, Field(max_length=200)]
EmailAddress = Annotated[str, Field(max_length=254,
                                    pattern=r"^[^@\s<>\"]{1,64}@[A-Za-z0-9.-]{1,253}$")]
AUDIT_PAGE = 500


class CustomerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nickname: Text | None = None
    # Where public ticket replies are emailed (docs/tickets.md); staff see it, audited.
    email: EmailAddress | None = None
    phone: Annotated[str, Field(pattern=r"^\+?[0-9]{3,20}$")] | None = None  # 来电弹屏
    level: int = Field(0, ge=0, le=100)
    language: Text | None = None
    region: Text | None = None
    tags: list[Text] = Field(default_factory=list, max_length=100)
    attributes: dict[Text, Any] = Field(default_factory=dict)
    opt_outs: list[Text] = Field(default_factory=list, max_length=20)


class CustomerBulk(CustomerBody):
    id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku: Text
    name: Text
    category: Text | None = None
    price: float = Field(ge=0)
    quantity: int = Field(1, ge=1)


class OrderBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shop: Annotated[str, Field(min_length=1, max_length=128)]
    customer: Annotated[str, Field(min_length=1, max_length=128)]
    items: list[Item] = Field(default_factory=list, max_length=200)
    status: Literal[ORDER_STATUSES] = "paid"  # type: ignore[valid-type]
    times: dict[Literal["created", "paid", "shipped", "delivered", "closed"],
                int] = Field(default_factory=dict)


class OrderBulk(OrderBody):
    id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]


class TrackingEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    time: int = Field(ge=0)
    place: Text = ""
    status: Text


class LogisticsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[TrackingEvent] = Field(min_length=1, max_length=500)


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, Field(min_length=1, max_length=2000)]


class TagsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tags: list[Annotated[str, Field(min_length=1, max_length=32)]] = Field(max_length=50)


class SegmentRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tags_any: list[Text] = Field(default_factory=list, max_length=50)
    level_at_least: int = Field(0, ge=0, le=100)
    min_orders: int = Field(0, ge=0)
    min_spent: float = Field(0, ge=0)
    min_returns: int = Field(0, ge=0)
    stages_any: list[Literal["new", "active", "at_risk", "lost", "prospect"]] = Field(
        default_factory=list, max_length=5)


class SegmentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=100)]
    shop: Annotated[str, Field(max_length=128)] | None = None
    # A platform segment (no shop) that shops' campaigns may target (docs/outreach.md).
    shared: bool = False
    rule: SegmentRule


class SharingBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fields: list[Annotated[str, Field(max_length=64)]]


def router(engine: "Engine", auth: "Auth") -> APIRouter:
    """The customer-360 routes."""
    api = APIRouter(tags=["customers"])
    platform = auth.platform
    Caller = Annotated[Principal | None, Depends(auth.platform_or_person)]

    def customer(customer_id: str) -> Any:
        return engine.directory.ref(CUSTOMER, customer_id)

    async def audit(who: Principal, what: str, request: Request, **about: Any) -> None:
        source = request.client.host if request.client else None
        await audit_record(engine.store, who.user, who.role, what, source,
                           now=engine.context.clock(), **about)

    @api.put("/api/customers/{customer_id}", dependencies=[Depends(platform)])
    async def put_customer(customer_id: Ref, body: CustomerBody) -> Any:
        """Create or replace a buyer (one id across every shop)."""
        return await customer(customer_id).ask(UpsertCustomer(body.model_dump()))

    @api.post("/api/customers/bulk", dependencies=[Depends(platform)])
    async def put_customers(body: list[CustomerBulk]) -> Any:
        """Upsert many buyers."""
        for one in body:
            await customer(one.id).ask(UpsertCustomer(one.model_dump(exclude={"id"})))
        return {"upserted": len(body)}

    @api.get("/api/customers/{customer_id}", dependencies=[Depends(platform)])
    async def get_customer(customer_id: Ref) -> Any:
        """A buyer's platform profile."""
        found = engine.store.get("customers", customer_id.encode())
        if found is None:
            raise NotFound(f"no customer {customer_id!r}")
        return found

    @api.put("/api/orders/{order_id}", dependencies=[Depends(platform)])
    async def put_order(order_id: Ref, body: OrderBody) -> Any:
        """Create or replace an order (its shop and customer cannot change)."""
        return await customer(body.customer).ask(UpsertOrder({"id": order_id,
                                                              **body.model_dump()}))

    @api.post("/api/orders/bulk", dependencies=[Depends(platform)])
    async def put_orders(body: list[OrderBulk]) -> Any:
        """Upsert many orders."""
        for one in body:
            await customer(one.customer).ask(UpsertOrder(one.model_dump()))
        return {"upserted": len(body)}

    @api.post("/api/orders/{order_id}/logistics", dependencies=[Depends(platform)])
    async def post_logistics(order_id: Ref, body: LogisticsBody) -> Any:
        """Add tracking events to an order (repeats are ignored); a newer tracking step
        than the order had becomes a ``logistics`` notice in the buyer's chat
        (docs/outreach.md)."""
        order = engine.store.get("orders", order_id.encode())
        if order is None:
            raise NotFound(f"no order {order_id!r}")
        latest = max((e["time"] for e in order.get("logistics") or []), default=-1)
        events = tuple(e.model_dump() for e in body.events)
        updated = await customer(order["customer"]).ask(AddLogistics(order_id, events))
        step = updated["logistics"][-1] if updated["logistics"] else None
        if step is not None and step["time"] > latest:
            await notices.send_notice(engine, {
                "order": order_id, "shop": order["shop"], "customer": order["customer"],
                "event": "logistics", "id": str(step["time"]), "status": step["status"],
                "note": step.get("place") or ""})
        return updated

    @api.post("/api/shops/{shop}/customers/{customer_id}/notes")
    async def add_note(shop: Ref, customer_id: Ref, body: NoteBody, who: Caller) -> Any:
        """A private note of this shop's staff about a buyer."""
        if who is None:
            raise InvalidInput("notes are written by staff with their token")
        require_staff_of(who, shop)
        return await customer(customer_id).ask(AddNote(shop, who.user, body.text))

    @api.put("/api/shops/{shop}/customers/{customer_id}/tags")
    async def set_tags(shop: Ref, customer_id: Ref, body: TagsBody, who: Caller) -> Any:
        """This shop's tags on a buyer (the API key or the shop's staff)."""
        if who is not None:
            require_staff_of(who, shop)
        return await customer(customer_id).ask(SetTags(shop, tuple(body.tags)))

    @api.get("/api/conversations/{conversation}/context")
    async def context(conversation: Ref, who: Caller, request: Request) -> Any:
        """The buyer's context for this conversation's shop (docs/customers.md)."""
        meta = ConversationMeta.load(engine.store, conversation)
        if meta is None:
            raise NotFound(f"no conversation {conversation!r}")
        if who is not None:
            if who.role == "buyer" or not meta.visible_to(who.user, who.role, who.shops):
                raise NotFound(f"no conversation {conversation!r}")
        recent = engine.store.scan_scope("messages", conversation,
                                         after=max(0, meta.last_seq - 20))
        texts = [m["body"].get("text", "") for _, m in recent if m["role"] == "buyer"][-5:]
        if engine.reports is not None:  # the lifecycle stage counts every payment logged
            await engine.reports.catch_up()
        built = build_context(engine.store, meta, texts, engine.context.now_ms())
        if who is not None:
            await audit(who, "context", request, conversation=conversation,
                        customer=meta.buyer, shop=meta.shop)
        return built

    def may_define(who: Principal | None, segment: str, shop: str | None) -> None:
        """The platform defines any segment; a shop admin only their shop's own."""
        if who is None:
            return
        if who.role == "platform_admin":
            return
        if who.role != "shop_admin" or not shop:
            raise Forbidden("the platform, or a shop admin for their own shop's segments")
        require_staff_of(who, shop)
        found = engine.store.get("segments", segment.encode())
        if found is not None and found.get("shop") != shop:
            raise NotFound(f"no segment {segment!r}")  # another shop's, or the platform's

    @api.put("/api/segments/{segment}")
    async def put_segment(segment: Ref, body: SegmentBody, who: Caller) -> Any:
        """Define a segment of buyers (docs/customers.md); routing can serve it as VIP,
        campaigns target it (docs/outreach.md)."""
        may_define(who, segment, body.shop)
        if body.rule.stages_any and not body.shop:
            raise InvalidInput("a lifecycle stage is a buyer's with one shop: give the shop")
        if body.shared and body.shop:
            raise InvalidInput("only a platform segment (no shop) is shared with shops")
        if body.shop and engine.store.get("shops", body.shop.encode()) is None:
            raise NotFound(f"no shop {body.shop!r}")
        record = {"id": segment, **body.model_dump()}
        await engine.store.put("segments", segment.encode(), record)
        return record

    @api.get("/api/segments")
    async def list_segments(who: Caller, shop: Annotated[str | None, Query(
            max_length=128, pattern=r"^[A-Za-z0-9._-]+$")] = None) -> Any:
        """The segments a shop's campaigns may target (its own and the platform's shared
        ones); every segment for the platform without ``shop``."""
        if shop is None:
            if who is not None and who.role != "platform_admin":
                raise InvalidInput("give the shop")
            return [row for _, row in engine.store.scan("segments")]
        if who is not None:
            require_staff_of(who, shop)
        return [row for _, row in engine.store.scan("segments")
                if row.get("shop") == shop or (not row.get("shop") and row.get("shared"))]

    @api.get("/api/segments/{segment}/members", dependencies=[Depends(platform)])
    async def segment_members(segment: Ref,
                              limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> Any:
        """The buyers in a segment now."""
        found = engine.store.get("segments", segment.encode())
        if found is None:
            raise NotFound(f"no segment {segment!r}")
        return {"segment": segment,
                "members": members(engine.store, found, limit, engine.context.now_ms())}

    @api.put("/api/platform/sharing")
    async def put_sharing(body: SharingBody, who: Caller) -> Any:
        """Which cross-shop signals shops may see (e.g. level, attributes.sizes): the
        platform's API key or a platform admin."""
        if who is not None and who.role != "platform_admin":
            raise Forbidden("the sharing policy is the platform's")
        for field in body.fields:
            if field.split(".", 1)[0] not in SHAREABLE:
                raise InvalidInput(f"{field!r} is not shareable; choose from {SHAREABLE}")
        await engine.store.put("meta", SHARING_KEY, body.fields)
        return {"fields": body.fields}

    @api.get("/api/platform/sharing")
    async def get_sharing(who: Caller) -> Any:
        """The cross-shop signals shops may see, and what could be shared."""
        if who is not None and who.role != "platform_admin":
            raise Forbidden("the sharing policy is the platform's")
        return {"fields": list(shared_fields(engine.store)), "shareable": list(SHAREABLE)}

    @api.get("/api/audit")
    async def get_audit(who: Caller,
                        user: Annotated[str | None, Query(max_length=128)] = None,
                        customer_id: Annotated[str | None, Query(alias="customer",
                                                                 max_length=128)] = None,
                        since: Annotated[int, Query(ge=0)] = 0) -> Any:
        """Staff reads of buyer data, oldest first (the platform or a platform admin)."""
        if who is not None and who.role != "platform_admin":
            raise Forbidden("the audit log is for platform admins")
        rows = [row for _, row in engine.store.scan(
            "audit", (since * 1_000_000).to_bytes(8, "big"))]
        return [r for r in rows if (user is None or r["who"] == user) and
                (customer_id is None or r.get("customer") == customer_id)][:AUDIT_PAGE]

    return api

