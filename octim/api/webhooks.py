"""Webhook endpoints and dead letters: the platform's API key or a platform admin (every
event of every shop goes through them; shop staff never reach these routes)."""

# No ``from __future__ import annotations``: FastAPI evaluates these annotations.
import ipaddress
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from octim.auth import Principal
from octim.domain.conversations.model import Forbidden
from octim.errors import InvalidInput
from octim.webhooks import TargetPolicy

if TYPE_CHECKING:
    from octim.api.auth import Auth
    from octim.engine import Engine

Ref = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]


class EndpointBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: AnyHttpUrl
    events: list[str] = Field(min_length=1)
    secret: str = Field(min_length=16, max_length=256)


def router(engine: "Engine", auth: "Auth") -> APIRouter:
    """The webhook routes (docs/embedding.md describes deliveries)."""
    def platform_only(who: Annotated[
            Principal | None, Depends(auth.platform_or_person)]) -> None:
        if who is not None and who.role != "platform_admin":
            raise Forbidden("webhooks are the platform's")

    api = APIRouter(tags=["webhooks"], dependencies=[Depends(platform_only)])

    policy = TargetPolicy.from_setting(engine.settings.webhook_allow)

    @api.put("/api/webhooks/{endpoint}")
    async def put_endpoint(endpoint: Ref, body: EndpointBody) -> Any:
        """Register (or replace) an endpoint for some events (``*`` = all). A URL whose
        host is a non-public address is refused now; a host name is checked (and pinned)
        at every delivery, since what it resolves to can change."""
        host = body.url.host or ""
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            pass  # a name: checked when delivering
        else:
            if not policy.allowed(host.strip("[]"), host):
                raise InvalidInput(f"url: {host} is not a public address (allow it with the "
                                   "webhook_allow setting)")
        return await engine.events.put_endpoint(endpoint, str(body.url), body.events,
                                                body.secret)

    @api.get("/api/webhooks")
    async def list_endpoints() -> Any:
        """The registered endpoints (secrets hidden)."""
        return list(engine.events.endpoints().values())

    @api.delete("/api/webhooks/{endpoint}", status_code=204)
    async def delete_endpoint(endpoint: Ref) -> JSONResponse:
        """Stop delivering to an endpoint."""
        await engine.events.delete_endpoint(endpoint)
        return JSONResponse(None, status_code=204)

    @api.get("/api/webhooks/{endpoint}/dead")
    async def dead(endpoint: Ref) -> Any:
        """Deliveries that failed every attempt."""
        return engine.events.dead(endpoint)

    @api.post("/api/webhooks/{endpoint}/dead/{delivery}/resend", status_code=202)
    async def resend(endpoint: Ref, delivery: Ref) -> Any:
        """Try a dead delivery again (with fresh attempts)."""
        await engine.events.resend(endpoint, delivery)
        return {"resent": delivery}

    return api
