"""Campaigns: a shop's message to a segment, previewed, scheduled, paced, paused, resumed,
cancelled, with its results and the click redirect of its links (docs/outreach.md)."""

# No ``from __future__ import annotations``: FastAPI evaluates these annotations.
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from octim.api.auth import require_staff_of
from octim.auth import Principal
from octim.config import host_list
from octim.domain.conversations.model import (
    STAFF_ROLES,
    Forbidden,
    InvalidBody,
    validate_body,
)
from octim.domain.outreach import campaigns
from octim.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from octim.api.auth import Auth
    from octim.engine import Engine

Ref = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
ShopRef = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")]
CampaignId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]
Short = Annotated[str, Field(min_length=1, max_length=200)]
Ms = Annotated[int, Field(ge=0, le=10**13)]


class Coupon(BaseModel):
    """A coupon card: what the buyer gets, and when it applies."""

    model_config = ConfigDict(extra="forbid")
    title: Short
    amount: float = Field(gt=0, le=1e6)  # off, in the shop's currency
    threshold: float = Field(0, ge=0, le=1e9)  # 满 threshold 减 amount (0: no minimum)
    code: Ref | None = None
    expires: Ms | None = None


class Link(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Annotated[str, Field(min_length=8, max_length=2000)]
    title: Annotated[str, Field(max_length=200)] | None = None

    @field_validator("url")
    @classmethod
    def _web(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
            raise ValueError("an http(s) URL with a host and no credentials")
        return url


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, Field(min_length=1, max_length=1000)]
    text_en: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    product: dict[str, Any] | None = None  # a product card, as a message's (validated)
    coupon: Coupon | None = None
    link: Link | None = None


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: Ms | None = None  # first run (ms, engine clock); none: now
    every_hours: float | None = Field(None, ge=1, le=24 * 366)  # recurring
    until: Ms | None = None  # no run starts after this


class CampaignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shop: ShopRef
    name: Annotated[str, Field(min_length=1, max_length=100)]
    segment: Ref
    message: Message
    schedule: Schedule = Schedule(at=None, every_hours=None, until=None)
    rate: float = Field(10, gt=0, le=10_000)  # messages per second (the engine caps it)
    attribution_hours: float = Field(24, gt=0, le=24 * 60)  # an order this soon counts


class PreviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shop: ShopRef
    segment: Ref


def checked(engine: "Engine", body: CampaignBody) -> dict[str, Any]:
    """A new campaign's values, its audience and product card checked (HTTP and the
    Python API)."""
    if engine.store.get("shops", body.shop.encode()) is None:
        raise NotFound(f"no shop {body.shop!r}")
    campaigns.check_audience(engine.store, body.shop, body.segment)
    values = body.model_dump()
    if body.message.product is not None:
        try:
            values["message"]["product"] = validate_body(
                "product", body.message.product, 200,
                host_list(engine.settings.image_hosts), uploads=False)
        except InvalidBody as exc:
            raise InvalidInput(f"message.product: {exc}") from None
    schedule = body.schedule
    if schedule.until is not None and schedule.until < (schedule.at or 0):
        raise InvalidInput("schedule.until is before schedule.at")
    return values


def router(engine: "Engine", auth: "Auth") -> APIRouter:
    api = APIRouter(tags=["campaigns"])
    Caller = Annotated[Principal | None, Depends(auth.platform_or_person)]

    def admin_of(who: Principal | None, shop: str) -> None:
        if who is not None:
            require_staff_of(who, shop)
            if who.role not in ("shop_admin", "platform_admin"):
                raise Forbidden("shop admins run campaigns")
        if engine.store.get("shops", shop.encode()) is None:
            raise NotFound(f"no shop {shop!r}")

    def readable(who: Principal | None, campaign: str) -> dict[str, Any]:
        if who is not None and who.role not in STAFF_ROLES:
            raise Forbidden("staff only")  # before the lookup: no probing of campaign ids
        record = engine.campaigns.get(campaign)
        if who is not None:
            try:
                require_staff_of(who, record["shop"])
            except NotFound:
                raise NotFound(f"no campaign {campaign!r}") from None
        return record

    @api.post("/api/campaigns/preview")
    async def preview(body: PreviewBody, who: Caller) -> Any:
        """How many buyers the segment holds now, and how many the gate would let through
        if the campaign went out now (nothing is sent or reserved)."""
        admin_of(who, body.shop)
        segment = campaigns.check_audience(engine.store, body.shop, body.segment)
        return await campaigns.preview(engine, body.shop, segment,
                                       engine.settings.campaign_max_audience)

    @api.post("/api/campaigns", status_code=201)
    async def create(body: CampaignBody, who: Caller) -> Any:
        """A campaign: its first run starts at ``schedule.at`` (or now)."""
        admin_of(who, body.shop)
        return await engine.campaigns.create(checked(engine, body),
                                             "api" if who is None else who.user)

    @api.get("/api/campaigns")
    async def listing(who: Caller, shop: Annotated[str | None, Query(
            max_length=128, pattern=r"^[A-Za-z0-9._-]+$")] = None) -> Any:
        """A shop's campaigns, newest first (every shop's for the platform)."""
        if who is not None:
            if shop is None:
                if who.role != "platform_admin":
                    raise InvalidInput("give the shop")
            else:
                require_staff_of(who, shop)
        return engine.campaigns.of_shop(shop)

    @api.get("/api/campaigns/{campaign}")
    async def one(campaign: CampaignId, who: Caller,
                  run: Annotated[int | None, Query(ge=1, le=10**6)] = None) -> Any:
        """The campaign, and the results of a run (the latest by default)."""
        record = readable(who, campaign)
        results = await engine.campaigns.results(campaign, run) if record["run"] else None
        return {**record, "results": results}

    @api.get("/api/campaigns/{campaign}/recipients")
    async def recipients(campaign: CampaignId, who: Caller,
                         run: Annotated[int | None, Query(ge=1, le=10**6)] = None,
                         state: Literal["pending", "sent", "suppressed"] | None = None,
                         after: Annotated[str, Query(max_length=128)] = "",
                         limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
        """A run's recipients in buyer order, each with what happened and why (page on
        with ``after``: the last customer of the page before)."""
        record = readable(who, campaign)
        if not record["run"]:
            return []
        return await engine.campaigns.recipients(campaign, run or record["run"], state,
                                                 after, limit)

    @api.post("/api/campaigns/{campaign}/{action}")
    async def control(campaign: CampaignId,
                      action: Literal["pause", "resume", "cancel"], who: Caller) -> Any:
        """Pause (the runner stops after the message in flight), resume, or cancel."""
        record = readable(who, campaign)
        admin_of(who, record["shop"])
        return await engine.campaigns.control(campaign, action)

    @api.get("/c/{token}", include_in_schema=False)
    async def click(token: Annotated[str, Path(max_length=400)]) -> Any:
        """A campaign link: record the click, then go where the campaign points."""
        target = await engine.campaigns.click(token)
        if target is None:
            raise NotFound("no such link")
        return RedirectResponse(target, status_code=302)

    return api
