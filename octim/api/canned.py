"""Canned replies (快捷回复) over HTTP: staff read theirs; shop admins keep their shop's.

* ``GET /api/canned``: a staff token gets its shops' replies and its own; the API
  key passes ``?shop=``.
* ``PUT /api/canned/{id}`` ``{"shop"?, "title", "text"}``: with ``shop``, a reply of
  that shop (its shop admins or the API key); without, the caller's own.
* ``DELETE /api/canned/{id}?shop=…``: the same rules.
"""

# No ``from __future__ import annotations``: FastAPI evaluates these annotations.
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from octim.auth import Principal
from octim.domain import canned
from octim.domain.conversations.model import STAFF_ROLES, Forbidden
from octim.errors import InvalidInput

if TYPE_CHECKING:
    from octim.api.auth import Auth
    from octim.engine import Engine

Ref = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
ShopQuery = Annotated[str | None, Query(max_length=128, pattern=r"^[A-Za-z0-9._-]+$")]


class CannedBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shop: str | None = Field(default=None, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")
    title: str = Field(min_length=1, max_length=50)
    text: str = Field(min_length=1, max_length=2000)


def _may_write(who: Principal | None, shop: str | None) -> str:
    """The owning user for a personal reply; checks who may write a shop reply."""
    if who is None:
        if not shop:
            raise InvalidInput("the API key writes shop replies: give 'shop'")
        return ""
    if who.role not in STAFF_ROLES and who.role != "platform_admin":
        raise Forbidden("canned replies are for staff")
    if shop and not (who.role == "platform_admin" or
                     (who.role == "shop_admin" and shop in who.shops)):
        raise Forbidden("only the shop's admins keep its canned replies")
    return who.user


def router(engine: "Engine", auth: "Auth") -> APIRouter:
    api = APIRouter(tags=["canned replies"])

    @api.get("/api/canned")
    async def list_canned(who: Annotated[Principal | None, Depends(auth.platform_or_person)],
                          shop: ShopQuery = None) -> Any:
        """Shop replies (of the token's shops, or ``?shop=`` with the API key), then personal."""
        if who is None:
            if not shop:
                raise InvalidInput("the API key lists one shop's replies: give ?shop=")
            return canned.visible(engine.store, "", (shop,))
        if who.role not in STAFF_ROLES and who.role != "platform_admin":
            raise Forbidden("canned replies are for staff")
        return canned.visible(engine.store, who.user, who.shops)

    @api.put("/api/canned/{reply}")
    async def put_canned(reply: Ref, body: CannedBody, who: Annotated[
            Principal | None, Depends(auth.platform_or_person)]) -> Any:
        """Create or replace a canned reply."""
        user = _may_write(who, body.shop)
        return await canned.put(engine.store, reply, shop=body.shop, user=user,
                                title=body.title, text=body.text,
                                now_ms=engine.context.now_ms())

    @api.delete("/api/canned/{reply}", status_code=204)
    async def delete_canned(reply: Ref, who: Annotated[
            Principal | None, Depends(auth.platform_or_person)],
                            shop: ShopQuery = None) -> JSONResponse:
        """Remove a canned reply."""
        user = _may_write(who, shop)
        await canned.delete(engine.store, reply, shop=shop, user=user)
        return JSONResponse(None, status_code=204)

    return api
