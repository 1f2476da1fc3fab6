"""Proactive messages: order events that become service notices, each shop's notice
templates, and what the gate decided for a buyer (docs/outreach.md)."""

# No ``from __future__ import annotations``: FastAPI evaluates these annotations.
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from octim.api.auth import require_staff_of
from octim.auth import Principal
from octim.domain.conversations.model import Forbidden
from octim.domain.outreach import notices
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
