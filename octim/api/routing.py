"""Platform API for routing: agents, skill groups, routing policy, traces.

Idempotent upserts with the API key; the same operations exist in the Python
API as dispatcher messages. Routing traces are also readable by the shop's
admins with their JWT.
"""

# No ``from __future__ import annotations``: FastAPI evaluates these annotations.
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from octim.api.auth import require_staff_of
from octim.auth import Principal
from octim.domain.conversations.model import ConversationMeta, Forbidden
from octim.domain.routing.dispatcher import ID, KIND, PLATFORM
from octim.domain.routing.messages import (
    DeleteAgent,
    DeleteGroup,
    ForceAssign,
    ListAgents,
    ListGroups,
    MonitorView,
    UpsertAgent,
    UpsertGroup,
)
from octim.errors import NotFound

if TYPE_CHECKING:
    from octim.api.auth import Auth
    from octim.engine import Engine

Name = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
Ref = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]


class KeywordRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keywords: list[Annotated[str, Field(min_length=1, max_length=32)]] = Field(min_length=1)
    group: Ref


class RuleBody(BaseModel):
    """One targeting rule: when the conversation's ``kind`` is one of ``values``
    (``keywords``: any of them is in the first message; ``vip``: no values), target
    ``group``."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["channel", "page", "category", "keywords", "vip"]
    values: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=100)
    group: Ref

    @model_validator(mode="after")
    def _values(self) -> "RuleBody":
        if self.kind != "vip" and not self.values:
            raise ValueError(f"a {self.kind} rule needs at least one value")
        return self


class RoutingPolicyBody(BaseModel):
    """A shop's routing policy (docs/routing.md); every field is optional."""

    model_config = ConfigDict(extra="forbid")
    ranking: Literal["least_load", "free_ratio", "longest_idle", "weighted"] = "least_load"
    sticky_days: float = Field(3.0, ge=0, le=365)
    sticky_wait: float = Field(0.0, ge=0, le=3600)
    channel_groups: dict[Annotated[str, Field(min_length=1, max_length=64)], Ref] = {}
    context_groups: dict[Literal["product", "order", "logistics", "shop"], Ref] = {}
    category_groups: dict[Annotated[str, Field(max_length=64)], Ref] = {}
    keyword_groups: list[KeywordRule] | None = None
    vip_level: int = Field(1, ge=0, le=100)
    vip_group: Ref | None = None
    vip_segments: list[Ref] = []
    group_costs: dict[Ref, Annotated[int, Field(ge=1, le=100)]] = {}
    sla_seconds: float = Field(180.0, gt=0)
    vip_sla_seconds: float = Field(60.0, gt=0)
    no_reply_seconds: float = Field(180.0, ge=0)
    requeue_on_offline: bool = True
    dedicated: dict[Ref, Ref] = {}
    transfer_wait: float = Field(60.0, ge=0, le=3600)
    overflow_to_platform: bool = False
    # The ordered targeting rules; when given they replace the four maps above and
    # the VIP group (docs/routing.md).
    rules: list[RuleBody] | None = Field(None, max_length=200)

    def as_record(self) -> dict[str, Any]:
        data = self.model_dump(exclude_none=True)
        if self.keyword_groups is None:
            data.pop("keyword_groups", None)  # keep the built-in keyword rules
        return data


class AgentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    shops: list[Ref | Literal["*"]] = Field(min_length=1)  # "*": platform overflow agent
    groups: list[Ref] = []
    max_concurrent: int = Field(5, ge=1, le=100)
    weight: float = Field(1.0, ge=0, le=100)
    disabled: bool = False  # takes no routed conversations (the sub-account is kept)


class GroupBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)


class AssignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent: Ref


def router(engine: "Engine", auth: "Auth") -> APIRouter:
    """The routing routes."""
    api = APIRouter(tags=["routing"])
    platform = auth.platform

    def dispatcher() -> Any:
        return engine.directory.ref(KIND, ID)

    def platform_side(who: Annotated[Principal | None, Depends(auth.platform_or_person)]
                      ) -> None:
        """The platform's API key or a platform admin."""
        if who is not None and who.role != "platform_admin":
            raise Forbidden("this is the platform's; shop admins use /api/shops/{shop}/agents")

    @api.put("/api/agents/{agent}", dependencies=[Depends(platform_side)])
    async def put_agent(agent: Name, body: AgentBody) -> Any:
        """Create or replace an agent (sub-account): shops, groups, capacity, weight."""
        return await dispatcher().ask(UpsertAgent(agent, body.name, tuple(body.shops),
                                                  tuple(body.groups), body.max_concurrent,
                                                  body.weight, body.disabled))

    @api.get("/api/agents/{agent}", dependencies=[Depends(platform_side)])
    async def get_agent(agent: Name) -> Any:
        """An agent with live routing state (status, load, conversations) and presence
        (connections, chosen status, today's seconds online, busy and away)."""
        return await engine.agent(agent)

    @api.delete("/api/agents/{agent}", status_code=204, dependencies=[Depends(platform_side)])
    async def delete_agent(agent: Name) -> JSONResponse:
        """Remove an agent; its conversations go back to the queue."""
        await dispatcher().ask(DeleteAgent(agent))
        return JSONResponse(None, status_code=204)

    Caller = Annotated[Principal | None, Depends(auth.platform_or_person)]

    def admin_of(who: Principal | None, shop: str) -> None:
        """The platform, platform admins, or the shop's admins (another shop is
        ``not_found`` to them)."""
        if who is None or who.role == "platform_admin":
            return
        if shop not in who.shops:
            raise NotFound(f"no shop {shop!r}")
        if who.role != "shop_admin":
            raise Forbidden("skill groups are managed by shop admins")

    @api.put("/api/shops/{shop}/groups/{group}")
    async def put_group(shop: Name, group: Name, body: GroupBody, who: Caller) -> Any:
        """Create or replace a skill group (售前 pre-sales, 售后 after-sales, 物流 logistics…)."""
        admin_of(who, shop)
        if engine.store.get("shops", shop.encode()) is None:
            raise NotFound(f"no shop {shop!r}")
        return await dispatcher().ask(UpsertGroup(shop, group, body.name))

    @api.get("/api/shops/{shop}/groups")
    async def list_groups(shop: Name, who: Caller) -> Any:
        """The shop's skill groups."""
        admin_of(who, shop)
        return await dispatcher().ask(ListGroups(shop))

    @api.get("/api/platform/agents", dependencies=[Depends(platform_side)])
    async def platform_agents() -> Any:
        """The platform's overflow agents (``shops: ["*"]``) with status and load."""
        return await dispatcher().ask(ListAgents(PLATFORM))

    @api.get("/api/shops/{shop}/team")
    async def team(shop: Name,
                   who: Annotated[Principal | None, Depends(auth.platform_or_person)]) -> Any:
        """Who works the shop right now (agents with status and load) and its skill
        groups: what the workbench offers as transfer targets. The shop's staff only."""
        if who is not None:
            require_staff_of(who, shop)
        if engine.store.get("shops", shop.encode()) is None:
            raise NotFound(f"no shop {shop!r}")
        view = (await dispatcher().ask(MonitorView((shop,))))[shop]
        return {"shop": shop, "agents": view["agents"],
                "groups": await dispatcher().ask(ListGroups(shop))}

    @api.get("/api/shops/{shop}/groups/{group}")
    async def get_group(shop: Name, group: Name, who: Caller) -> Any:
        """One skill group."""
        admin_of(who, shop)
        for found in await dispatcher().ask(ListGroups(shop)):
            if found["id"] == group:
                return found
        raise NotFound(f"no group {group!r} in shop {shop!r}")

    @api.delete("/api/shops/{shop}/groups/{group}", status_code=204)
    async def delete_group(shop: Name, group: Name, who: Caller) -> JSONResponse:
        """Remove a skill group."""
        admin_of(who, shop)
        await dispatcher().ask(DeleteGroup(shop, group))
        return JSONResponse(None, status_code=204)

    @api.post("/api/conversations/{conversation}/assign", dependencies=[Depends(platform)])
    async def assign(conversation: Name, body: AssignBody) -> Any:
        """Assign directly (a supervisor override; capacity is not checked)."""
        return await dispatcher().ask(ForceAssign(conversation, body.agent))

    @api.get("/api/conversations/{conversation}/routing")
    async def routing_trace(
            conversation: Name,
            who: Annotated[Principal | None, Depends(auth.platform_or_person)]) -> Any:
        """Why the conversation went where it went: every routing decision, newest last."""
        meta = ConversationMeta.load(engine.store, conversation)
        if meta is None:
            raise NotFound(f"no conversation {conversation!r}")
        if who is not None:
            if who.role != "platform_admin" and meta.shop not in who.shops:
                raise NotFound(f"no conversation {conversation!r}")
            if who.role not in ("shop_admin", "platform_admin"):
                raise Forbidden("routing traces are for shop admins")
        entry = engine.store.get("routing", conversation.encode()) or {}
        return {"conversation": conversation, "shop": meta.shop, "state": meta.state,
                "agent": meta.agent, "waiting": entry.get("waiting"),
                "traces": entry.get("traces", [])}

    return api
