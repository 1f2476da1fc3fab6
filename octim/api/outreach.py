"""Proactive messages: order events that become service notices, each shop's notice
templates, and what the gate decided for a buyer (docs/outreach.md)."""

# No ``from __future__ import annotations``: FastAPI evaluates these annotations.
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from octim.api.auth import require_staff_of
from octim.auth import Principal
from octim.domain.conversations.model import Forbidden
from octim.domain.outreach import notices, reminders
from octim.errors import InvalidInput, NotFound
from octim.store import Put, pack

if TYPE_CHECKING:
    from octim.api.auth import Auth
    from octim.engine import Engine

Ref = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
ShopId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")]
CustomerId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
Short = Annotated[str, Field(max_length=200)]
Template = Annotated[str, Field(min_length=1, max_length=1000)]


class OrderEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order: Ref
    shop: Ref
    customer: Ref
    event: Literal["paid", "shipped", "delivered", "delayed", "refund"]
    id: Ref | None = None  # the platform's event id: the same id twice is one notice
    status: Short | None = None  # refund progress (退款中, 已退款…) or a tracking status
    title: Short | None = None
    carrier: Short | None = None
    waybill: Short | None = None
    note: Short | None = None


class OrderEvents(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[OrderEvent] = Field(min_length=1, max_length=500)


class Interest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shop: Ref
    sku: Ref
    kind: Literal["cart", "favourite"]
    price: float | None = Field(None, ge=0, le=1e9)  # what the buyer saw


class Interests(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[Interest] = Field(max_length=200)


class CatalogueChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shop: Ref
    sku: Ref
    title: Short | None = None
    price: float | None = Field(None, ge=0, le=1e9)
    old_price: float | None = Field(None, ge=0, le=1e9)
    in_stock: bool | None = None


class CatalogueChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")
    changes: list[CatalogueChange] = Field(min_length=1, max_length=100)
    window_days: float = Field(7, ge=0, le=365)  # at most one reminder per SKU in this


class NoticeType(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    templates: dict[Literal["zh-CN", "en"], Template] = {}


class NoticeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    types: dict[Literal[notices.TYPES], NoticeType] = {}  # type: ignore[valid-type]


def router(engine: "Engine", auth: "Auth") -> APIRouter:
    api = APIRouter(tags=["outreach"])

    @api.post("/api/events/orders", dependencies=[Depends(auth.platform)])
    async def order_events(body: OrderEvents) -> Any:
        """Order events (bulk, in order): each becomes a service notice in the buyer's
        chat with the shop, once per event; the answer says, per event, what happened."""
        return {"results": await notices.send_notices(
            engine, [event.model_dump() for event in body.events])}

    @api.put("/api/customers/{customer}/interests", dependencies=[Depends(auth.platform)])
    async def put_interests(customer: CustomerId, body: Interests) -> Any:
        """The SKUs this buyer carted or favourited, with the price they saw (replaces
        what was there)."""
        return await reminders.put_interests(engine, customer,
                                             [i.model_dump() for i in body.items])

    async def changed(body: CatalogueChanges, kind: str) -> Any:
        results = []
        for change in body.changes:
            if engine.store.get("shops", change.shop.encode()) is None:
                raise NotFound(f"no shop {change.shop!r}")
            if kind == "back_in_stock" and change.in_stock is not True:
                continue  # only a SKU coming back reminds anyone
            results.append({"shop": change.shop, "sku": change.sku,
                            "reminders": await reminders.remind(
                                engine, kind, change.model_dump(), body.window_days)})
        return {"results": results}

    @api.post("/api/events/price-change", dependencies=[Depends(auth.platform)])
    async def price_change(body: CatalogueChanges) -> Any:
        """New prices: buyers who saw a higher one get a price-drop reminder (marketing:
        the gate decides for each)."""
        return await changed(body, "price_drop")

    @api.post("/api/events/stock-change", dependencies=[Depends(auth.platform)])
    async def stock_change(body: CatalogueChanges) -> Any:
        """SKUs back in stock (``in_stock: true``): interested buyers get a reminder."""
        return await changed(body, "back_in_stock")

    @api.put("/api/shops/{shop}/notices")
    async def put_notices(shop: ShopId, body: NoticeSettings, who: Annotated[
            Principal | None, Depends(auth.platform_or_person)]) -> Any:
        """A shop's notice types: on or off, and its own templates (per language)."""
        if who is not None:
            require_staff_of(who, shop)
            if who.role not in ("shop_admin", "platform_admin"):
                raise Forbidden("shop admins set the notices")
        if engine.store.get("shops", shop.encode()) is None:
            raise NotFound(f"no shop {shop!r}")
        for kind, settings in body.types.items():
            for language, template in settings.templates.items():
                checked = notices.render(kind, language, {}, {"types": {kind: {
                    "templates": {language: template}}}})
                if not checked:
                    raise InvalidInput(f"types.{kind}.templates.{language}: empty")
        record = body.model_dump()
        await engine.store.write((Put("notice_settings", shop.encode(), pack(record)),))
        return record

    @api.get("/api/shops/{shop}/notices")
    async def get_notices(shop: ShopId, who: Annotated[
            Principal | None, Depends(auth.platform_or_person)]) -> Any:
        """Each notice type: on or off, and the template in use per language."""
        if who is not None:
            require_staff_of(who, shop)
        settings = engine.store.get("notice_settings", shop.encode())
        return {"types": {kind: {
            "enabled": notices.enabled(kind, settings),
            "templates": {language: ((settings or {}).get("types", {}).get(kind) or {})
                          .get("templates", {}).get(language)
                          or notices.DEFAULT_TEMPLATES[kind][language]
                          for language in notices.LANGUAGES}} for kind in notices.TYPES}}

    @api.get("/api/customers/{customer}/outreach", dependencies=[Depends(auth.platform)])
    async def outreach(customer: CustomerId) -> Any:
        """What the gate decided for this buyer, newest first: each proactive message,
        sent or not, and why."""
        return notices.decisions(engine.store, customer)

    return api
