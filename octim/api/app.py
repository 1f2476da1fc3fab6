"""The FastAPI application: health, readiness and the platform API.

Handlers are thin: they authenticate, validate (pydantic) and hand the work
to an actor with ``ask``; the actor owns the state and the write.
"""

# No ``from __future__ import annotations``: FastAPI evaluates these annotations.
import hmac
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Header, Path
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field

from octim._version import __version__
from octim.api import (
    admin,
    calls,
    campaigns,
    canned,
    channels,
    customers,
    kb,
    outreach,
    peak,
    reports,
    routing,
    tickets,
    uploads,
    web,
    webhooks,
)
from octim.api.auth import Auth
from octim.api.errors import error_response, install_error_handlers
from octim.api.guard import RequestGuard, RequestIds
from octim.api.kb import BotSettingsBody
from octim.api.routing import RoutingPolicyBody
from octim.auth import Principal
from octim.domain.conversations.model import ConversationMeta, Forbidden
from octim.domain.shops import KIND as SHOP
from octim.domain.shops import DeleteShop, GetShop, UpsertShop
from octim.errors import NotFound
from octim.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from octim.engine import Engine

ConversationId = Annotated[str, Path(min_length=1, max_length=128,
                                     pattern=r"^[A-Za-z0-9._:-]+$")]
ShopId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")]


class ShopBody(BaseModel):
    """A shop as the platform sends it."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    categories: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict)
    routing: RoutingPolicyBody | None = None
    bot: BotSettingsBody | None = None


class Shop(BaseModel):
    """A shop as stored."""

    id: str
    name: str
    categories: list[str] = []
    settings: dict[str, Any] = {}
    routing: dict[str, Any] = {}
    bot: dict[str, Any] = {}
    created_at: float
    updated_at: float
    version: int = 0
    suspended: bool = False


class Health(BaseModel):
    status: str
    version: str


def create_app(engine: "Engine") -> FastAPI:
    """Build the application bound to one running engine."""
    # /docs (Swagger UI) loads its files from this engine (fastapi-offline ships them),
    # not from a CDN: it works without internet. No /redoc: its page fetches a logo
    # from a CDN whatever the options.
    app = FastAPIOffline(title="OctIM", version=__version__, redoc_url=None,
                         description="Customer-service chat engine for multi-merchant "
                                     "marketplaces.")
    install_error_handlers(app)
    app.add_middleware(RequestGuard, settings=engine.settings,
                       clock=lambda: engine.context.clock())
    app.add_middleware(RequestIds)  # outermost: even a refused request has its id

    auth = Auth(engine.settings)
    platform = auth.platform
    Caller = Annotated[Principal | None, Depends(auth.platform_or_person)]

    app.include_router(uploads.router(engine, auth))
    app.include_router(routing.router(engine, auth))
    app.include_router(kb.router(engine, auth))
    app.include_router(customers.router(engine, auth))
    app.include_router(webhooks.router(engine, auth))
    app.include_router(canned.router(engine, auth))
    app.include_router(tickets.router(engine, auth))
    app.include_router(calls.router(engine, auth))
    app.include_router(reports.router(engine, auth))
    app.include_router(channels.router(engine, auth))
    app.include_router(outreach.router(engine, auth))
    app.include_router(campaigns.router(engine, auth))
    app.include_router(peak.router(engine, auth))
    app.include_router(admin.router(engine, auth))

    @app.get("/healthz", response_model=Health, tags=["ops"])
    async def healthz() -> Health:
        """Liveness: the process and its trio loop answer."""
        return Health(status="ok", version=__version__)

    @app.get("/readyz", response_model=Health, tags=["ops"],
             responses={503: {"description": "starting, shutting down or overloaded"}})
    async def readyz() -> Any:
        """Readiness: store open, actors and both listeners up, not shutting down, and
        not past the engine's budget (admission control: send new buyers elsewhere)."""
        if not engine.ready:
            return error_response(503, "unavailable", "not ready")
        overloaded = engine.admission.overloaded()
        if overloaded:
            return error_response(503, "overloaded", f"overloaded ({overloaded})")
        return Health(status="ready", version=__version__)

    @app.get("/metrics", tags=["ops"], responses={200: {"content": {CONTENT_TYPE: {}}}})
    async def metrics(authorization: Annotated[str | None, Header()] = None) -> Response:
        """The engine in Prometheus' text format (the API key, or ``metrics_token``)."""
        given = (authorization or "").removeprefix("Bearer ")
        tokens = [t for t in (engine.settings.api_key, engine.settings.metrics_token) if t]
        if not any(hmac.compare_digest(given.encode(), t.encode()) for t in tokens):
            return error_response(401, "unauthorized",
                                  "the API key or the metrics token (Authorization: Bearer …)")
        return Response(await engine.metrics.render(), media_type=CONTENT_TYPE)

    @app.put("/api/shops/{shop}", response_model=Shop, tags=["platform"])
    async def put_shop(shop: ShopId, body: ShopBody, who: Caller) -> Any:
        """Create or replace a shop (idempotent): the platform's API key or a platform
        admin."""
        if who is not None and who.role != "platform_admin":
            raise Forbidden("shops are created by the platform")
        ref = engine.directory.ref(SHOP, shop)
        return await ref.ask(UpsertShop(shop, body.name, body.settings, tuple(body.categories),
                                        body.routing.as_record() if body.routing else None,
                                        body.bot.model_dump(exclude_none=True)
                                        if body.bot else None))

    @app.get("/api/shops/{shop}", response_model=Shop, tags=["platform"],
             dependencies=[Depends(platform)])
    async def get_shop(shop: ShopId) -> Any:
        """One shop."""
        return await engine.directory.ref(SHOP, shop).ask(GetShop(shop))

    @app.delete("/api/shops/{shop}", status_code=204, tags=["platform"],
                dependencies=[Depends(platform)])
    async def delete_shop(shop: ShopId) -> JSONResponse:
        """Remove a shop (idempotent)."""
        await engine.directory.ref(SHOP, shop).ask(DeleteShop(shop))
        return JSONResponse(None, status_code=204)

    @app.get("/api/conversations/{conversation}", tags=["platform"],
             dependencies=[Depends(platform)])
    async def get_conversation(conversation: ConversationId) -> Any:
        """A conversation's record: shop, buyer, state, agent, last seq, receipts, rating."""
        meta = ConversationMeta.load(engine.store, conversation)
        if meta is None:
            raise NotFound(f"no conversation {conversation!r}")
        return meta.to_record()

    web.mount(app, engine)
    return app
