"""Peak mode (大促模式): switched for the platform or a shop, now or for windows
(octim/domain/peak.py, docs/operations.md)."""

# No ``from __future__ import annotations``: FastAPI evaluates these annotations.
import logging
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from octim.api.auth import require_staff_of
from octim.auth import Principal
from octim.domain import peak
from octim.domain.conversations.model import Forbidden
from octim.errors import NotFound
from octim.store import Put, pack

if TYPE_CHECKING:
    from octim.api.auth import Auth
    from octim.engine import Engine

log = logging.getLogger("octim.peak")
ShopId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")]
Ms = Annotated[int, Field(ge=0, le=10**13)]


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    start: Ms = Field(alias="from")
    end: Ms = Field(alias="to")

    @model_validator(mode="after")
    def _ordered(self) -> "Window":
        if self.end <= self.start:
            raise ValueError("a window ends after it starts")
        return self


class PeakBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    on: StrictBool = False
    windows: list[Window] = Field(default_factory=list, max_length=50)
    capacity_factor: float = Field(1.0, ge=1.0, le=5.0)
    queue_cap: int | None = Field(None, ge=1, le=100_000)
    vip_first: StrictBool = True
    priority: Literal["after_sales", "pre_sales"] | None = None
    recent_order_days: int = Field(7, ge=1, le=90)


def router(engine: "Engine", auth: "Auth") -> APIRouter:
    api = APIRouter(tags=["peak"])
    Caller = Annotated[Principal | None, Depends(auth.platform_or_person)]

    async def save(scope: str, body: PeakBody) -> dict[str, Any]:
        from octim.domain.routing.dispatcher import ID, KIND
        from octim.domain.routing.messages import PeakChanged

        record = {"on": body.on, "windows": [[w.start, w.end] for w in body.windows],
                  "capacity_factor": body.capacity_factor, "queue_cap": body.queue_cap,
                  "vip_first": body.vip_first, "priority": body.priority,
                  "recent_order_days": body.recent_order_days}
        await engine.store.write((Put("peak", scope.encode(), pack(record)),))
        log.info("peak mode set", extra={"scope": scope, "on": body.on,
                                         "windows": len(body.windows)})
        await engine.directory.ref(KIND, ID).ask(PeakChanged())
        engine.peak.changed()  # a new window's edges, or pre-warm now
        return described(scope)

    def described(scope: str) -> dict[str, Any]:
        record = {**PeakBody.model_validate({}).model_dump(exclude={"windows"}), "windows": [],
                  **(engine.store.get("peak", scope.encode()) or {})}
        now = engine.context.now_ms()
        out = {**record, "windows": [{"from": a, "to": b} for a, b in record["windows"]],
               "active": peak.active(record, now),
               "prewarmed_at": engine.peak.warmed.get(scope)}
        if scope != peak.PLATFORM:
            out["state"] = peak.state(engine.store, scope, now).source
        return out

    @api.put("/api/platform/peak")
    async def put_platform(body: PeakBody, who: Caller) -> Any:
        """The platform's peak mode (every shop): on now, or for windows."""
        if who is not None and who.role != "platform_admin":
            raise Forbidden("the platform sets its peak mode")
        return await save(peak.PLATFORM, body)

    @api.get("/api/platform/peak")
    async def get_platform(who: Caller) -> Any:
        if who is not None and who.role != "platform_admin":
            raise Forbidden("the platform's peak mode is for platform admins")
        return described(peak.PLATFORM)

    @api.put("/api/shops/{shop}/peak")
    async def put_shop(shop: ShopId, body: PeakBody, who: Caller) -> Any:
        """A shop's peak mode, its agents' capacity factor and its queue cap."""
        if who is not None:
            require_staff_of(who, shop)
            if who.role not in ("shop_admin", "platform_admin"):
                raise Forbidden("shop admins set peak mode")
        if engine.store.get("shops", shop.encode()) is None:
            raise NotFound(f"no shop {shop!r}")
        return await save(shop, body)

    @api.get("/api/shops/{shop}/peak")
    async def get_shop(shop: ShopId, who: Caller) -> Any:
        """The shop's own peak record, whether it is active, and what makes the shop
        peak now (``state``: ``shop``, ``platform`` or null)."""
        if who is not None:
            require_staff_of(who, shop)
        if engine.store.get("shops", shop.encode()) is None:
            raise NotFound(f"no shop {shop!r}")
        return described(shop)

    return api
