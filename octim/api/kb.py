"""Knowledge-base HTTP API: entries with permissions, and asking.

Writes: the platform (API key) for any entry; a shop admin (JWT) for their
shop's entries; a platform admin (JWT) for platform-wide ones. Reads: the
platform and staff (platform-wide entries, or their shops' entries).
Asking (``POST /api/kb/ask``): buyers ask one shop and are answered from its
*public* entries and the platform's, like the bot; staff ask their own shops
and also get *internal* entries; only the platform (API key) and platform
admins may ask another shop's internal entries or every shop at once
(``shop: null``). Staff asking a shop they do not serve get ``forbidden``.
"""

# No ``from __future__ import annotations``: FastAPI evaluates these annotations.
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from octim.auth import Principal
from octim.domain.conversations.model import Forbidden
from octim.domain.kb.knowledge import (
    ID,
    KIND,
    PLATFORM_SYNONYMS,
    AskKb,
    Candidates,
    DecideProposal,
    DeleteEntry,
    GetEntry,
    GetSynonyms,
    ListEntries,
    ListProposals,
    PutSynonyms,
    UpsertEntry,
)
from octim.errors import NotFound

if TYPE_CHECKING:
    from octim.api.auth import Auth
    from octim.engine import Engine

EntryId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
ProposalId = Annotated[str, Path(pattern=r"^pr-[0-9a-f]{16}$")]
ShopQuery = Annotated[str | None, Query(max_length=128, pattern=r"^[A-Za-z0-9._-]+$")]
STAFF = ("agent", "shop_admin", "platform_admin")


class EntryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=200)
    similar: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=50)
    answer: str = Field(min_length=1, max_length=5000)
    category: str | None = Field(None, max_length=64)
    shop: str | None = Field(None, max_length=128)
    visibility: Literal["public", "internal"] = "public"
    enabled: bool = True


class BusinessHours(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: str = Field("09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field("23:00", pattern=r"^([01]\d|2[0-4]):[0-5]\d$")
    utc_offset: int = Field(480, ge=-720, le=840)


class BotSettingsBody(BaseModel):
    """A shop's bot (docs/bot.md)."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["off", "always", "outside_hours", "when_no_agent"] = "when_no_agent"
    hours: BusinessHours | None = None
    handoff_after: int = Field(2, ge=1, le=20)
    handoff_words: list[Annotated[str, Field(min_length=1, max_length=20)]] = []
    anger_words: list[Annotated[str, Field(min_length=1, max_length=20)]] = []


class SynonymsBody(BaseModel):
    """A synonym list: each word (shorthand, a trade word, a misspelling) maps to the
    word the entries use (docs/bot.md)."""

    model_config = ConfigDict(extra="forbid")
    synonyms: dict[Annotated[str, Field(min_length=1, max_length=32)],
                   Annotated[str, Field(min_length=1, max_length=32)]] = Field(
        max_length=2000)


class AskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=1000)
    shop: str | None = Field(None, max_length=128)


def router(engine: "Engine", auth: "Auth") -> APIRouter:
    """The knowledge-base routes."""
    api = APIRouter(tags=["knowledge base"])
    Caller = Annotated[Principal | None, Depends(auth.platform_or_person)]

    def may_write(who: Principal | None, shop: str | None) -> None:
        if who is None or who.role == "platform_admin":
            return
        if who.role == "shop_admin" and shop is not None and shop in who.shops:
            return
        raise Forbidden("shop admins edit their shop's entries; platform entries need "
                        "a platform admin")

    def may_read(who: Principal | None, entry: dict[str, Any]) -> None:
        if who is None or who.role == "platform_admin":
            return
        if who.role not in STAFF or (entry["shop"] is not None and entry["shop"] not in who.shops):
            raise NotFound(f"no knowledge-base entry {entry['id']!r}")

    def kb() -> Any:
        return engine.directory.ref(KIND, ID)

    @api.put("/api/kb/{entry_id}")
    async def put_entry(entry_id: EntryId, body: EntryBody,
                        who: Caller) -> Any:
        """Create or replace an entry (idempotent)."""
        may_write(who, body.shop)
        try:
            current = await kb().ask(GetEntry(entry_id))
        except NotFound:
            current = None
        if current is not None:
            may_write(who, current["shop"])  # no taking over another shop's entry
        return await kb().ask(UpsertEntry({"id": entry_id, **body.model_dump()}))

    @api.get("/api/kb/{entry_id}")
    async def get_entry(entry_id: EntryId,
                        who: Caller) -> Any:
        """One entry."""
        entry = await kb().ask(GetEntry(entry_id))
        may_read(who, entry)
        return entry

    @api.get("/api/kb")
    async def list_entries(who: Caller,
                           shop: Annotated[str | None, Query(max_length=128)] = None) -> Any:
        """Entries of a shop (``?shop=``) or all the caller may read."""
        entries = await kb().ask(ListEntries(shop))
        visible = []
        for entry in entries:
            try:
                may_read(who, entry)
                visible.append(entry)
            except NotFound:
                pass
        return visible

    @api.delete("/api/kb/{entry_id}", status_code=204)
    async def delete_entry(entry_id: EntryId,
                           who: Caller) -> JSONResponse:
        """Remove an entry."""
        entry = await kb().ask(GetEntry(entry_id))
        may_write(who, entry["shop"])
        await kb().ask(DeleteEntry(entry_id))
        return JSONResponse(None, status_code=204)

    @api.get("/api/kb-candidates")
    async def candidates(who: Caller,
                         shop: Annotated[str | None, Query(max_length=128)] = None,
                         limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
        """Questions the bot could not answer, grouped and ranked by frequency: candidate
        new entries (the platform: any shop or all; a shop admin: their shop)."""
        if who is not None:
            if who.role != "platform_admin" and (shop is None or shop not in who.shops):
                raise NotFound("no candidates")
            if who.role not in ("shop_admin", "platform_admin"):
                raise Forbidden("candidates are for shop admins")
        return await kb().ask(Candidates(shop, limit))

    def admin_of(who: Principal | None, shop: str | None) -> None:
        """The platform, a platform admin, or (for their shop) a shop admin."""
        if who is None or who.role == "platform_admin":
            return
        if shop is None or shop not in who.shops:
            raise NotFound("no such shop")
        if who.role != "shop_admin":
            raise Forbidden("this is for shop admins")

    @api.get("/api/kb-proposals")
    async def proposals(who: Caller, shop: ShopQuery = None,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
        """What traffic taught the bot, waiting for a shop admin: similar questions for
        entries (buyers' clicks, agents' answers to hand-offs) and new entries."""
        admin_of(who, shop)
        return await kb().ask(ListProposals(shop, limit))

    @api.post("/api/kb-proposals/{proposal}/{decision}")
    async def decide(proposal: ProposalId, decision: Literal["approve", "reject"],
                     who: Caller) -> Any:
        """Approve (the entry gains the question, or the new entry is created; the bot
        uses it from the next question on) or reject a proposal."""
        if who is not None and who.role != "platform_admin":
            if who.role != "shop_admin":
                raise Forbidden("proposals are for shop admins")
            shops: tuple[str, ...] | None = tuple(s for s in who.shops if s != "*")
        else:
            shops = None
        return await kb().ask(DecideProposal(proposal, decision == "approve", shops))

    @api.get("/api/kb-synonyms")
    async def get_synonyms(who: Caller, shop: ShopQuery = None) -> Any:
        """A shop's synonym list (``?shop=``), or the platform's (no shop)."""
        if shop is None and who is not None and who.role != "platform_admin":
            raise Forbidden("the platform's list is for platform admins")
        admin_of(who, shop)
        return await kb().ask(GetSynonyms(shop or PLATFORM_SYNONYMS))

    @api.put("/api/kb-synonyms")
    async def put_synonyms(body: SynonymsBody, who: Caller, shop: ShopQuery = None) -> Any:
        """Replace a shop's synonym list (or the platform's): the bot reads questions
        with it from the next one on, on top of the category-neutral defaults."""
        if shop is None and who is not None and who.role != "platform_admin":
            raise Forbidden("the platform's list is for platform admins")
        admin_of(who, shop)
        return await kb().ask(PutSynonyms(shop or PLATFORM_SYNONYMS, body.synonyms))

    @api.post("/api/kb/ask")
    async def ask(body: AskBody, who: Caller) -> Any:
        """``{"id", "answer", "score", "confidence", "answered", "suggestions"}`` for a
        buyer question."""
        if who is None or who.role == "platform_admin":
            staff = True
        elif body.shop is None:
            raise Forbidden("asking every shop at once is for platform admins; name a shop")
        elif who.role == "buyer":
            staff = False
        elif body.shop in who.shops:
            staff = True
        else:
            raise Forbidden("staff ask only the knowledge base of the shops they serve")
        return await kb().ask(AskKb(body.question, body.shop, staff))

    return api
