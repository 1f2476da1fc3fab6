"""Phone calls in (来电弹屏): the platform's telephony posts a call; the agent's
workbench pops up who is calling, with their profile and open tickets (docs/tickets.md).

* ``POST /api/inbound/call`` ``{"shop", "call", "phone"?, "buyer"?, "agent"?}`` (the API
  key): the caller is the buyer named, or the buyer whose profile has that phone number
  (``idx_customer_phone``). The ``call`` frame goes to ``agent`` (who answers it; an
  agent of the shop) or, when none is named, to the shop's agents who are connected.
  Answers what the pop-up shows, and whom it reached.

A ticket opened from the pop-up is an ordinary ``POST /api/tickets`` with source
``phone``. Every pop-up that shows a buyer's data is audited (``what: "call"``).
"""

# No ``from __future__ import annotations``: FastAPI evaluates these annotations.
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from octim.domain import audit
from octim.domain.customer_context import PROFILE
from octim.domain.customers import find_by_phone
from octim.domain.tickets.desk import KIND as DESK
from octim.domain.tickets.desk import ListTickets
from octim.errors import InvalidInput, NotFound
from octim.values import check_storable

if TYPE_CHECKING:
    from octim.api.auth import Auth
    from octim.engine import Engine

Ref = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$")]


class CallBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shop: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")]
    call: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
    phone: Annotated[str, Field(pattern=r"^\+?[0-9]{3,20}$")] | None = None
    buyer: Ref | None = None
    agent: Ref | None = None

    @model_validator(mode="after")
    def someone_calls(self) -> "CallBody":
        if self.phone is None and self.buyer is None:
            raise ValueError("give the caller's phone or buyer id")
        return self


def router(engine: "Engine", auth: "Auth") -> APIRouter:
    api = APIRouter(tags=["tickets"])

    @api.post("/api/inbound/call", dependencies=[Depends(auth.platform)])
    async def inbound_call(body: CallBody, request: Request) -> Any:
        """A call is ringing: pop the caller's profile and open tickets up."""
        store = engine.store
        if store.get("shops", body.shop.encode()) is None:
            raise NotFound(f"no shop {body.shop!r}")
        check_storable(body.model_dump(), where="call")
        if body.agent is not None:
            agent = store.get("agents", body.agent.encode())
            if agent is None or body.shop not in agent["shops"]:
                raise InvalidInput(f"{body.agent!r} is not an agent of shop {body.shop!r}")
            reach = {body.agent}
        else:
            reach = {a["id"] for _, a in store.scan("agents") if body.shop in a["shops"]}
        buyer = body.buyer
        if buyer is None and body.phone is not None:
            buyer = find_by_phone(store, engine.settings.secret, body.phone)
        raw = store.get("customers", buyer.encode()) if buyer else None
        profile = {k: raw[k] for k in PROFILE if raw and raw.get(k) is not None} if raw \
            else None
        tickets: list[dict[str, Any]] = []
        if buyer is not None:
            found = await engine.directory.ref(DESK, body.shop).ask(ListTickets(
                "", "", "", "", "", buyer, "", 20, "", "urgent"))
            tickets = [{k: t.get(k) for k in ("id", "label", "subject", "status", "priority",
                                             "assignee", "updated", "sla")} for t in found]
        popup = {"call": body.call, "shop": body.shop, "phone": body.phone, "buyer": buyer,
                 "profile": profile, "tickets": tickets}
        reached = sorted(u for u in reach if engine.fanout.connections_of(u))
        engine.fanout.publish({"type": "call", **popup}, reached)
        if buyer is not None and raw is not None:
            source = request.client.host if request.client else None
            await audit.record(store, body.agent or "api", "agent" if body.agent else "api",
                               "call", source, now=engine.context.clock(), customer=buyer,
                               shop=body.shop, call=body.call)
        return {**popup, "reached": reached}

    return api
