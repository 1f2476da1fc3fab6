"""What the admin console (``/admin``) needs beyond the feature APIs: shop admins' own
settings with versions, their team, the routing simulator and replay, and knowledge-base
import (docs/admin.md).

Every route takes the platform's API key or a person's JWT; a shop admin reaches only
their shops (another shop is ``not_found``: its existence is not told), agents only
``forbidden``. A person's change to a versioned record (the shop's settings, an agent)
must send ``If-Match`` with the version it read (``0`` to create an agent): a record
that moved on since is refused with ``version_conflict`` (412), never overwritten.
"""

# No ``from __future__ import annotations``: FastAPI evaluates these annotations.
import hashlib
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from octim.api.guard import NDJSON_BODIES
from octim.api.kb import BotSettingsBody, EntryBody
from octim.api.routing import AgentBody, RoutingPolicyBody
from octim.auth import Principal
from octim.domain.conversations.model import ConversationMeta, Forbidden, TooLarge
from octim.domain.kb.knowledge import ID as KB_ID
from octim.domain.kb.knowledge import KIND as KB
from octim.domain.kb.knowledge import GetEntry, UpsertEntry
from octim.domain.routing.dispatcher import ID, KIND
from octim.domain.routing.messages import (
    DeleteAgent,
    GetAgent,
    ListAgents,
    SimulateRoute,
    UpsertAgent,
)
from octim.domain.routing.policy import RoutingPolicy
from octim.domain.shops import KIND as SHOP
from octim.domain.shops import GetShop, PatchShop
from octim.errors import InvalidInput, NotFound, OctimError, PreconditionRequired
from octim.values import loads_json

if TYPE_CHECKING:
    from octim.api.auth import Auth
    from octim.engine import Engine

ShopId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")]
Name = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
Ref = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
MAX_IMPORT_BYTES = NDJSON_BODIES["/api/kb/import"]
MAX_IMPORT_LINES = 5000


class ShopPatch(BaseModel):
    """The shop settings a console saves; every field optional. ``name``,
    ``categories``, ``settings`` and ``suspended`` are the platform's (its API key or a platform
    admin); a shop admin changes ``routing`` and ``bot``."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    categories: list[Annotated[str, Field(max_length=64)]] | None = None
    settings: dict[str, Any] | None = None
    suspended: bool | None = None  # the platform's: no new conversations while true
    routing: RoutingPolicyBody | None = None
    bot: BotSettingsBody | None = None


class SimulateContext(BaseModel):
    model_config = ConfigDict(extra="forbid")
    page: str | None = Field(None, max_length=64)
    category: str | None = Field(None, max_length=64)
    product: str | None = Field(None, max_length=128)
    order: str | None = Field(None, max_length=128)
    channel: str | None = Field(None, max_length=64)


class SimulateBody(BaseModel):
    """A buyer who would open a conversation: who, from where, saying what, when."""

    model_config = ConfigDict(extra="forbid")
    buyer: Ref = "simulated-buyer"
    level: int = Field(0, ge=0, le=100)
    context: SimulateContext | None = None
    text: str = Field("", max_length=1000)
    at: float | None = Field(None, ge=0, le=32503680000)  # epoch seconds; default now


def parse_if_match(value: str | None) -> int | None:
    """The version an ``If-Match`` header names (``"3"``, ``W/"3"`` or ``3``)."""
    if value is None:
        return None
    raw = value.strip().removeprefix("W/").strip('"')
    if not raw.isdigit() or len(raw) > 12:
        raise InvalidInput('If-Match must be the version you read, e.g. "3"')
    return int(raw)


def expected_version(who: Principal | None, if_match: str | None) -> int | None:
    """People must say which version they edit; the platform's API key may overwrite."""
    version = parse_if_match(if_match)
    if version is None and who is not None:
        raise PreconditionRequired('send If-Match with the version you read ("0" to create)')
    return version


def with_etag(record: dict[str, Any]) -> JSONResponse:
    return JSONResponse(record, headers={"ETag": f'"{record.get("version", 0)}"'})


def router(engine: "Engine", auth: "Auth") -> APIRouter:
    """The admin console's routes."""
    api = APIRouter(tags=["admin"])
    Caller = Annotated[Principal | None, Depends(auth.platform_or_person)]
    IfMatch = Annotated[str | None, Header(max_length=40)]

    def dispatcher() -> Any:
        return engine.directory.ref(KIND, ID)

    def admin_of(who: Principal | None, shop: str) -> None:
        """The platform, platform admins, or the shop's own admins."""
        if who is None or who.role == "platform_admin":
            return
        if shop not in who.shops:
            raise NotFound(f"no shop {shop!r}")
        if who.role != "shop_admin":
            raise Forbidden("shop settings are for shop admins")

    async def shop_view(shop: str) -> dict[str, Any]:
        record = dict(await engine.directory.ref(SHOP, shop).ask(GetShop(shop)))
        policy = RoutingPolicy.from_record(record.get("routing"))
        record["routing_rules"] = policy.ordered_rules()
        record.setdefault("version", 0)
        return record

    @api.get("/api/shops/{shop}/config")
    async def get_config(shop: ShopId, who: Caller) -> Any:
        """The shop's settings as the console edits them, with ``version`` (also the
        ``ETag``) and ``routing_rules``: the targeting rules in force, in order."""
        admin_of(who, shop)
        return with_etag(await shop_view(shop))

    @api.patch("/api/shops/{shop}/config")
    async def patch_config(shop: ShopId, body: ShopPatch, who: Caller,
                           if_match: IfMatch = None) -> Any:
        """Change the shop's routing policy or bot (a shop admin), or also its name,
        categories and settings (the platform). Refused with ``version_conflict`` if
        the record changed since the version in ``If-Match``."""
        admin_of(who, shop)
        version = expected_version(who, if_match)
        changes: dict[str, Any] = {}
        if body.routing is not None:
            changes["routing"] = body.routing.as_record()
        if body.bot is not None:
            changes["bot"] = body.bot.model_dump(exclude_none=True)
        platform_only = {"name": body.name, "categories": body.categories,
                         "settings": body.settings, "suspended": body.suspended}
        for field, value in platform_only.items():
            if value is None:
                continue
            if who is not None and who.role != "platform_admin":
                raise Forbidden(f"{field} is set by the platform")
            changes[field] = value
        await engine.directory.ref(SHOP, shop).ask(PatchShop(shop, changes, version))
        return with_etag(await shop_view(shop))

    @api.get("/api/shops")
    async def list_shops(who: Caller, after: Annotated[str, Query(max_length=128)] = "",
                         limit: Annotated[int, Query(ge=1, le=500)] = 100) -> Any:
        """The platform's shops in id order, ``limit`` after ``after`` (the platform's
        API key or a platform admin)."""
        if who is not None and who.role != "platform_admin":
            raise Forbidden("the list of shops is the platform's")
        start = (after + "\0").encode() if after else b""
        return [{"id": r["id"], "name": r["name"], "categories": r.get("categories", []),
                 "suspended": bool(r.get("suspended")), "version": r.get("version", 0),
                 "created_at": r["created_at"]}
                for _, r in engine.store.scan("shops", start, limit=limit)]

    # -- the team ----------------------------------------------------------------------

    @api.get("/api/shops/{shop}/agents")
    async def list_agents(shop: ShopId, who: Caller) -> Any:
        """The shop's agents (sub-accounts): profile, ``version``, ``status`` (who is
        online now), ``load`` and ``capacity``."""
        admin_of(who, shop)
        if engine.store.get("shops", shop.encode()) is None:
            raise NotFound(f"no shop {shop!r}")
        return await dispatcher().ask(ListAgents(shop))

    def agent_admin(who: Principal | None, shops: list[str] | tuple[str, ...]) -> None:
        if who is None or who.role == "platform_admin":
            return
        if who.role != "shop_admin":
            raise Forbidden("agents are managed by shop admins")
        if not shops or not set(shops) <= set(who.shops) or "*" in shops:
            raise Forbidden("a shop admin manages agents of their own shops only")

    @api.put("/api/shops/{shop}/agents/{agent}")
    async def put_shop_agent(shop: ShopId, agent: Name, body: AgentBody, who: Caller,
                             if_match: IfMatch = None) -> Any:
        """Create or change an agent of the shop (``disabled`` stops routing to them
        and hands their unanswered conversations to others). ``If-Match: "0"``
        creates; another version must be the one read."""
        admin_of(who, shop)
        if shop not in body.shops:
            raise InvalidInput("the agent must serve the shop it is saved under")
        agent_admin(who, body.shops)
        if engine.store.get("shops", shop.encode()) is None:
            raise NotFound(f"no shop {shop!r}")
        only = None if who is None or who.role == "platform_admin" else who.shops
        record = await dispatcher().ask(UpsertAgent(
            agent, body.name, tuple(body.shops), tuple(body.groups), body.max_concurrent,
            body.weight, body.disabled, expected_version(who, if_match), only))
        return with_etag(record)

    async def agent_of(shop: str, agent: str) -> dict[str, Any]:
        record: dict[str, Any] = await dispatcher().ask(GetAgent(agent))
        if shop not in record["shops"]:
            raise NotFound(f"no agent {agent!r}")
        return record

    @api.get("/api/shops/{shop}/agents/{agent}")
    async def get_shop_agent(shop: ShopId, agent: Name, who: Caller) -> Any:
        """One agent of the shop, with its ``version`` (also the ``ETag``)."""
        admin_of(who, shop)
        return with_etag(await agent_of(shop, agent))

    @api.delete("/api/shops/{shop}/agents/{agent}", status_code=204)
    async def delete_shop_agent(shop: ShopId, agent: Name, who: Caller) -> JSONResponse:
        """Remove an agent who serves only the caller's shops; their conversations go
        back to the queue."""
        admin_of(who, shop)
        record = await agent_of(shop, agent)
        agent_admin(who, record["shops"])
        await dispatcher().ask(DeleteAgent(agent))
        return JSONResponse(None, status_code=204)

    # -- the routing simulator ----------------------------------------------------------

    @api.post("/api/shops/{shop}/routing/simulate")
    async def simulate(shop: ShopId, body: SimulateBody, who: Caller) -> Any:
        """What routing would do with this buyer now (or at ``at``): the rule that
        fires, every candidate agent with its score and verdict, the winner or the
        queue position and estimated wait, whether the bot would greet first. Computed
        by the dispatcher's own code on its current state; nothing changes."""
        admin_of(who, shop)
        context = body.context.model_dump(exclude_none=True) if body.context else {}
        at = engine.context.clock() if body.at is None else body.at
        return await dispatcher().ask(SimulateRoute(shop, body.buyer, body.level, context,
                                                    body.text, at))

    @api.get("/api/conversations/{conversation}/routing/replay")
    async def replay(conversation: Name, who: Caller) -> Any:
        """A past conversation's recorded routing traces beside what today's rules and
        agents would do with the same buyer, entry and first message."""
        meta = ConversationMeta.load(engine.store, conversation)
        if meta is None:
            raise NotFound(f"no conversation {conversation!r}")
        if who is not None and who.role != "platform_admin" and meta.shop not in who.shops:
            raise NotFound(f"no conversation {conversation!r}")
        admin_of(who, meta.shop)
        entry = engine.store.get("routing", conversation.encode()) or {}
        today = await dispatcher().ask(SimulateRoute(
            meta.shop, meta.buyer, meta.level, meta.context, meta.first_text or "",
            engine.context.clock()))
        return {"conversation": conversation, "shop": meta.shop, "buyer": meta.buyer,
                "context": meta.context, "first_text": meta.first_text,
                "recorded": entry.get("traces", []), "today": today}

    # -- knowledge-base import -----------------------------------------------------------

    @api.post("/api/kb/import",
              openapi_extra={"requestBody": {"content": {"application/x-ndjson": {}}}})
    async def kb_import(request: Request, who: Caller,
                        shop: Annotated[str | None, Query(
                            max_length=128, pattern=r"^[A-Za-z0-9._-]+$")] = None,
                        mode: Literal["all_or_nothing"] = "all_or_nothing") -> Any:
        """Entries as JSON Lines, one entry per line (``id`` optional: derived from the
        question). Every line is checked first; if any is bad, nothing is imported
        and the answer lists each bad line with its error (``invalid_lines``)."""
        if shop is None:
            if who is not None and who.role != "platform_admin":
                raise Forbidden("platform-wide entries need a platform admin; name a shop")
        else:
            admin_of(who, shop)
        raw = await request.body()
        if len(raw) > MAX_IMPORT_BYTES:
            raise TooLarge(f"an import is at most {MAX_IMPORT_BYTES} bytes")
        lines = raw.decode("utf-8", errors="replace").splitlines()
        if len(lines) > MAX_IMPORT_LINES:
            raise TooLarge(f"an import is at most {MAX_IMPORT_LINES} lines")
        kb = engine.directory.ref(KB, KB_ID)
        good: list[dict[str, Any]] = []
        bad: list[dict[str, Any]] = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                data = loads_json(line, where=f"line {number}")
                if not isinstance(data, dict):
                    raise InvalidInput("a line must be a JSON object")
                entry_id = data.pop("id", None)
                if data.get("shop", shop) != shop:
                    raise InvalidInput(f"shop must be {shop!r} (or left out)")
                data["shop"] = shop
                body = EntryBody.model_validate(data)
                if entry_id is None:
                    entry_id = "kb-" + hashlib.sha256(
                        f"{shop}\0{body.question}".encode()).hexdigest()[:16]
                check_entry_id(entry_id)
                try:
                    current = await kb.ask(GetEntry(entry_id))
                except NotFound:
                    current = None
                if current is not None and current["shop"] != shop:
                    raise InvalidInput(f"id {entry_id!r} is taken")
                good.append({"id": entry_id, **body.model_dump()})
            except ValidationError as exc:
                bad.append({"line": number, "error": "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())})
            except OctimError as exc:  # not JSON, not storable, or not a valid entry
                bad.append({"line": number, "error": str(exc)})
        if bad:
            return JSONResponse({"error": {
                "code": "invalid_lines", "message": f"{len(bad)} bad line(s): nothing imported",
                "lines": bad[:200]}}, status_code=422)
        for entry in good:
            await kb.ask(UpsertEntry(entry))
        return {"imported": len(good), "ids": [e["id"] for e in good]}

    return api


def check_entry_id(value: Any) -> None:
    """An entry id as the path parameter takes it."""
    if not isinstance(value, str) or not 0 < len(value) <= 128 or not all(
            c.isalnum() or c in "._:-" for c in value) or not value.isascii():
        raise InvalidInput("id must be 1-128 letters, digits, '.', '_', ':' or '-'")
