"""The knowledge base (知识库): entries, validation, and asking.

Entries are ``{"id", "question", "similar", "answer", "category", "shop"}``
(``shop`` null = platform-wide) plus ``enabled`` and ``updated``. The
:class:`KbActor` owns the in-memory index and is the only writer of the
``kb`` database; the CLI (``octim kb``) reads and imports with the engine
stopped or running (a running engine sees imports after a restart).
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from octim.actors import Actor, ActorKind, Address, Message, record, thaw
from octim.domain.context import EngineContext
from octim.domain.conversations.model import event_frame
from octim.domain.kb.matcher import Match, Matcher, normalise
from octim.errors import InvalidInput, NotFound
from octim.store import Delete, Put, pack

log = logging.getLogger("octim.kb")
UNANSWERED_CACHE = 10_000  # unanswered-question rows kept in memory (latest touched)

KIND, ID = "kb", "main"
FIELDS = ("id", "question", "similar", "answer", "category", "shop", "visibility")
#: ``public``: the bot may tell buyers; ``internal``: that shop's staff only (agent
#: assist, workbench search), or every shop's staff for a platform-wide entry.
VISIBILITIES = ("public", "internal")
SHOP_BOOST = 1.1  # a shop's own entries win ties against platform-wide ones


def validate_entry(raw: Any, now_ms: int) -> dict[str, Any]:
    """A clean entry, or InvalidInput saying which field is wrong (``now_ms``: its
    ``updated`` time unless it carries one)."""
    if not isinstance(raw, dict):
        raise InvalidInput("an entry must be a JSON object")
    unknown = set(raw) - {*FIELDS, "enabled", "updated"}
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}")

    def text(field: str, limit: int, *, optional: bool = False) -> str | None:
        value = raw.get(field)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            raise InvalidInput(f"{field} must be a non-empty string of at most {limit} characters")
        return value.strip()

    entry_id = text("id", 128)
    assert entry_id is not None
    if not all(c.isalnum() or c in "-_.:" for c in entry_id):
        raise InvalidInput("id may hold letters, digits, '-', '_', '.' and ':' only")
    similar = raw.get("similar", [])
    if not isinstance(similar, list) or len(similar) > 50 or not all(
            isinstance(s, str) and s.strip() and len(s) <= 200 for s in similar):
        raise InvalidInput("similar must be a list of at most 50 non-empty strings")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise InvalidInput("enabled must be true or false")
    visibility = raw.get("visibility") or "public"
    if visibility not in VISIBILITIES:
        raise InvalidInput("visibility must be 'public' or 'internal'")
    return {"id": entry_id, "question": text("question", 200),
            "similar": [s.strip() for s in similar], "answer": text("answer", 5000),
            "category": text("category", 64, optional=True), "shop": text("shop", 128,
                                                                          optional=True),
            "visibility": visibility, "enabled": enabled,
            "updated": raw.get("updated") or now_ms}


def validate_synonyms(raw: Any) -> dict[str, str]:
    """A clean synonym list ``{word: canonical}`` (at most 2,000 pairs), or InvalidInput."""
    if not isinstance(raw, dict) or len(raw) > 2000:
        raise InvalidInput("synonyms must be an object of at most 2000 word: canonical pairs")
    clean = {}
    for word, canonical in raw.items():
        if not (isinstance(word, str) and isinstance(canonical, str)
                and 0 < len(word.strip()) <= 32 and 0 < len(canonical.strip()) <= 32):
            raise InvalidInput("each synonym maps a word of 1-32 characters to one of 1-32")
        clean[word.strip()] = canonical.strip()
    return clean


def is_public(entry: Mapping[str, Any]) -> bool:
    """Whether the bot may tell buyers this entry (entries stored before visibility are)."""
    return bool(entry.get("visibility", "public") == "public")


def export_line(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The import/export form: exactly the six fields."""
    return {field: entry.get(field) for field in FIELDS}


ALL, PLATFORM = "\0all", "\0platform"  # view keys that no shop id can take
PLATFORM_SYNONYMS = "*"  # the key of the platform's synonym list (and its proposals)
STAFF = "\0staff"  # suffix of the views that include internal entries


class KnowledgeBase:
    """Entries plus their indexes; owned by one actor (or one CLI process).

    A buyer of shop S is answered from S's entries and the platform's, so each
    shop with entries has its own index over exactly those (its IDF reflects
    what that buyer can get, and a question only touches that shop's
    postings: latency does not grow with the number of shops). Shops without
    entries share the platform index; ``ALL`` indexes everything (tools, and
    asking without a shop).
    """

    def __init__(self, entries: Iterable[Mapping[str, Any]] = (), *,
                 synonyms: Mapping[str, Mapping[str, str]] | None = None,
                 **matcher: Any) -> None:
        self._matcher_options = matcher
        self.entries = {e["id"]: dict(e) for e in entries}
        #: synonym lists: ``PLATFORM_SYNONYMS`` (the platform's) and one per shop, on top
        #: of the matcher's defaults
        self.synonyms: dict[str, dict[str, str]] = {k: dict(v) for k, v in
                                                    (synonyms or {}).items()}
        self.views: dict[str, Matcher] = {}
        # Bulk load: one pass per shop view instead of one per entry.
        for shop in {e["shop"] for e in self.entries.values() if e["shop"] is not None}:
            self._view(shop)

    @property
    def matcher(self) -> Matcher:
        """The index over every entry."""
        return self._view(ALL)

    def _view(self, key: str) -> Matcher:
        """The index of one view: ``scope`` (a shop, PLATFORM or ALL) for buyers and
        the bot (public entries only), ``scope + STAFF`` for staff (all entries)."""
        view = self.views.get(key)
        if view is None:
            scope = key.removesuffix(STAFF)
            table = {**self.synonyms.get(PLATFORM_SYNONYMS, {}), **self.synonyms.get(scope, {})}
            view = self.views[key] = Matcher(synonyms=table, **self._matcher_options)
            for entry in self.entries.values():
                if self._belongs(entry, key):
                    self._index(view, entry)
        return view

    @staticmethod
    def _belongs(entry: Mapping[str, Any], key: str) -> bool:
        scope, staff = key.removesuffix(STAFF), key.endswith(STAFF)
        if not staff and not is_public(entry):
            return False
        return scope == ALL or entry["shop"] is None or entry["shop"] == scope

    @staticmethod
    def _index(view: Matcher, entry: Mapping[str, Any]) -> None:
        if entry.get("enabled", True):
            view.upsert(entry["id"], [entry["question"], *entry["similar"]], entry["answer"])
        else:
            view.remove(entry["id"])

    def put(self, entry: dict[str, Any]) -> None:
        """Add or replace an entry (disabled entries are kept but not indexed)."""
        old = self.entries.get(entry["id"])
        self.entries[entry["id"]] = entry
        if entry["shop"] is not None:
            self._view(entry["shop"])
        for key, view in self.views.items():
            if self._belongs(entry, key):
                self._index(view, entry)
            elif old is not None and self._belongs(old, key):
                view.remove(entry["id"])  # e.g. made internal: out of the buyers' views

    def set_synonyms(self, scope: str, table: Mapping[str, str]) -> None:
        """Replace a shop's synonym list (or the platform's, ``PLATFORM_SYNONYMS``): the
        views it reaches are rebuilt."""
        self.synonyms[scope] = dict(table)
        for key in list(self.views):
            if scope == PLATFORM_SYNONYMS or key.removesuffix(STAFF) == scope:
                del self.views[key]
                self._view(key)

    def delete(self, entry_id: str) -> None:
        self.entries.pop(entry_id, None)
        for view in self.views.values():
            view.remove(entry_id)

    def top(self, question: str, shop: str | None, k: int = 3) -> list[dict[str, Any]]:
        """The best ``k`` entries with their answers, internal ones included (agent assist)."""
        result = self.ask(question, shop, suggestions=k, staff=True)
        ids = ([result["id"]] if result["answered"] else []) + [s["id"] for s in
                                                                 result["suggestions"]]
        return [{"id": i, "question": self.entries[i]["question"],
                 "answer": self.entries[i]["answer"]} for i in ids[:k]]

    def visible(self, entry_id: str, shop: str | None, staff: bool = False) -> bool:
        """Whether a buyer (or, ``staff``, the staff) of ``shop`` may get this entry."""
        entry = self.entries.get(entry_id)
        return (entry is not None and entry.get("enabled", True)
                and (shop is None or entry["shop"] in (None, shop))
                and (staff or is_public(entry)))

    def ask(self, question: str, shop: str | None = None, *, suggestions: int = 3,
            staff: bool = False, pick: str | None = None) -> dict[str, Any]:
        """``{"id", "answer", "score", "answered", "suggestions"}`` for one question.

        With a shop: that shop's entries (slightly preferred) and platform-wide ones;
        without: every entry. Public entries only unless ``staff``. Under the
        threshold ``id`` is the best guess (or null) and ``suggestions`` lists
        related questions to offer instead.
        """
        if pick is not None and self.visible(pick, shop, staff):
            chosen = self.entries[pick]  # the buyer chose it: no guessing
            return {"id": pick, "answer": chosen["answer"], "score": 0.0, "answered": True,
                    "confidence": 1.0, "picked": True, "suggestions": []}
        view, found = self.search(question, shop, staff=staff, limit=max(3, 1 + suggestions))
        if view is None:  # nothing to match against
            return {"id": None, "answer": None, "score": 0.0, "answered": False,
                    "confidence": 0.0, "suggestions": []}
        best = found[0] if found else None
        confidence = view.confidence(found)
        answered = confidence >= view.answer_at
        entry = self.entries[best.entry] if best else None
        related = [m.entry for m in (found if not answered else found[1:])][:suggestions]
        if not related and not answered:
            # Nothing related: offer the first questions the buyer can ask about.
            related = sorted(e["id"] for e in self.entries.values()
                             if e.get("enabled", True) and e["shop"] in (None, shop)
                             and (staff or is_public(e))
                             )[:suggestions]
        return {"id": entry["id"] if entry else None,
                "answer": entry["answer"] if entry and answered else None,
                "score": round(best.score, 3) if best else 0.0, "answered": answered,
                "confidence": round(confidence, 3),
                "suggestions": [{"id": i, "question": self.entries[i]["question"]}
                                for i in related]}

    def search(self, question: str, shop: str | None = None, *, staff: bool = False,
               limit: int = 3) -> tuple[Matcher | None, list[Match]]:
        """The view a buyer of ``shop`` is answered from (None when it is empty) and its
        best ``limit`` matches for ``question``."""
        suffix = STAFF if staff else ""
        if shop is None:
            view, boost = self._view(ALL + suffix), None
        else:
            own = shop + suffix
            platform = self._view(PLATFORM + suffix)
            existing = self.views.get(own)
            if existing is None:  # a shop with entries always has its public view
                existing = self._view(own) if shop in self.views else platform
            view = existing
            boost = {entry_id: SHOP_BOOST for entry_id, e in self.entries.items()
                     if e["shop"] == shop} if view is not platform else {}
        if not len(view):  # nothing to match against: skip segmenting the question
            return None, []
        return view, view.search(question, boost=boost, limit=limit)


@record
class AssistKb(Message):
    """The top entries, with answers, for an agent's one-click use: sent with ``tell``;
    the knowledge base pushes them to ``agent`` as a ``suggestions`` event itself, so
    the conversation never waits for the lookup."""

    question: str
    shop: str | None
    conversation: str
    for_seq: int
    agent: str


@record
class RecordUnanswered(Message):
    """A question the bot could not answer (or handed over): a candidate entry."""

    question: str
    shop: str
    handed_off: bool


@record
class RecordFeedback(Message):
    """A buyer said a bot answer helped, or did not."""

    entry_id: str
    helpful: bool


@record
class Candidates(Message):
    """Unanswered questions of a shop grouped and ranked by frequency."""

    shop: str | None
    limit: int


@record
class Propose(Message):
    """Traffic taught the bot something: ``question`` is a similar question for
    ``entry`` (a buyer clicked it among the choices; an agent answered a hand-off with
    its answer), or, with ``answer``, a new entry (an agent's own reply to a hand-off)."""

    shop: str
    question: str
    entry: str | None
    answer: str | None
    source: str  # "click" | "handoff"


@record
class ListProposals(Message):
    shop: str | None
    limit: int


@record
class DecideProposal(Message):
    """A shop admin approves (the index updates at once) or rejects a proposal."""

    proposal: str
    approve: bool
    shops: tuple[str, ...] | None  # the admin's shops; None: the platform


@record
class PutSynonyms(Message):
    scope: str  # a shop, or PLATFORM_SYNONYMS
    synonyms: Mapping[str, str]


@record
class GetSynonyms(Message):
    scope: str


@record
class UpsertEntry(Message):
    entry: Mapping[str, Any]


@record
class DeleteEntry(Message):
    entry_id: str


@record
class GetEntry(Message):
    entry_id: str


@record
class ListEntries(Message):
    shop: str | None


@record
class AskKb(Message):
    question: str
    shop: str | None
    staff: bool = False  # internal entries too (the caller is that shop's staff)
    pick: str | None = None  # the buyer chose this entry among the bot's choices


class KbActor(Actor[EngineContext]):
    """Owns the knowledge base index; the only writer of the ``kb`` database."""

    def __init__(self, address: Address, context: EngineContext) -> None:
        super().__init__(address, context)
        self.kb = KnowledgeBase()
        # Rows this actor wrote lately: a read-modify-write never reads a row whose last
        # write is still being committed, and the actor never waits for a commit (every
        # bot answer of the engine goes through it).
        self.unanswered: OrderedDict[bytes, dict[str, Any]] = OrderedDict()
        self.grouper = Matcher()  # tokens for grouping unanswered questions

    async def on_start(self) -> None:
        store = self.context.store
        self.kb = KnowledgeBase((entry for _, entry in store.scan("kb")), synonyms={
            key.decode(): row["synonyms"] for key, row in store.scan("kb_synonyms")})

    async def receive(self, message: Message) -> Any:
        match message:
            case UpsertEntry(entry=raw):
                entry = validate_entry(thaw(raw), self.context.now_ms())
                await self.context.store.write((Put("kb", entry["id"].encode(), pack(entry)),))
                self.kb.put(entry)
                return entry
            case DeleteEntry(entry_id=entry_id):
                await self.context.store.write((Delete("kb", entry_id.encode()),))
                self.kb.delete(entry_id)
                return None
            case GetEntry(entry_id=entry_id):
                if entry_id not in self.kb.entries:
                    raise NotFound(f"no knowledge-base entry {entry_id!r}")
                return self.kb.entries[entry_id]
            case ListEntries(shop=shop):
                return [e for e in self.kb.entries.values() if shop is None or e["shop"] == shop]
            case AskKb(question=question, shop=shop, staff=staff, pick=pick):
                return self.kb.ask(question, shop, staff=staff, pick=pick)
            case AssistKb(question=question, shop=shop):
                items = self.kb.top(question, shop)
                if items:
                    self.context.fanout.publish(event_frame(
                        message.conversation, "suggestions",
                        {"for_seq": message.for_seq, "items": items}), [message.agent])
                return None
            case RecordUnanswered(question=question, shop=shop, handed_off=handed_off):
                await self._record_unanswered(question, shop, handed_off)
                return None
            case RecordFeedback(entry_id=entry_id, helpful=helpful):
                stats = self.context.store.get("kb_stats", entry_id.encode()) or {
                    "helpful": 0, "unhelpful": 0}
                stats["helpful" if helpful else "unhelpful"] += 1
                await self.context.store.write((Put("kb_stats", entry_id.encode(),
                                                    pack(stats)),))
                return stats
            case Propose():
                return await self._propose(message)
            case ListProposals(shop=shop, limit=limit):
                prefix = f"{shop}\0".encode() if shop else b""
                rows = [row for _, row in self.context.store.scan(
                    "kb_proposals", prefix, prefix[:-1] + b"\x01" if shop else None)
                    if row["status"] == "proposed"]
                rows.sort(key=lambda r: (-r["count"], -r["last"], r["id"]))
                return rows[:limit]
            case DecideProposal():
                return await self._decide(message)
            case PutSynonyms(scope=scope, synonyms=table):
                clean = validate_synonyms(thaw(table))
                await self.context.store.write((Put("kb_synonyms", scope.encode(),
                                                    pack({"synonyms": clean})),))
                self.kb.set_synonyms(scope, clean)
                return {"shop": None if scope == PLATFORM_SYNONYMS else scope,
                        "synonyms": clean}
            case GetSynonyms(scope=scope):
                return {"shop": None if scope == PLATFORM_SYNONYMS else scope,
                        "synonyms": self.kb.synonyms.get(scope, {})}
            case Candidates(shop=shop, limit=limit):
                prefix = f"{shop}\0".encode() if shop else b""
                found = dict(self.context.store.scan(
                    "kb_unanswered", prefix, prefix[:-1] + b"\x01" if shop else None))
                found.update((k, v) for k, v in self.unanswered.items()
                             if k.startswith(prefix))
                rows = list(found.values())
                rows.sort(key=lambda r: (-r["count"], r["key"]))
                return rows[:limit]
        raise InvalidInput(f"the knowledge base cannot handle {type(message).__name__}")


    async def _propose(self, m: Propose) -> dict[str, Any] | None:
        """Count a learned example (one proposal per shop, entry and question)."""
        question = m.question.strip()[:200]
        if m.entry is None and m.answer:  # the agent sent an entry's answer: its question
            m = Propose(m.shop, m.question, next(
                (e["id"] for e in self.kb.entries.values()
                 if e["answer"].strip() == m.answer.strip()
                 and self.kb.visible(e["id"], m.shop, staff=True)), None),
                m.answer, m.source)
        entry = self.kb.entries.get(m.entry) if m.entry else None
        if not question or (m.entry and entry is None):
            return None
        if entry is not None and normalise(question) in {
                normalise(q) for q in (entry["question"], *entry["similar"])}:
            return None  # it knows that phrasing already
        digest = hashlib.sha256(f"{m.entry or ''}\0{normalise(question)}".encode())
        proposal_id = f"pr-{digest.hexdigest()[:16]}"
        # A similar question of a platform-wide entry is the platform's to approve.
        scope = m.shop if entry is None or entry["shop"] is not None else PLATFORM_SYNONYMS
        key = f"{scope}\0{proposal_id}".encode()
        now = self.context.now_ms()
        row = self.context.store.get("kb_proposals", key) or {
            "id": proposal_id, "shop": None if scope == PLATFORM_SYNONYMS else scope,
            "asked_at": m.shop, "kind": "similar" if m.entry else "entry",
            "entry": m.entry, "question": question,
            "answer": None if m.entry else (m.answer or "")[:5000],
            "status": "proposed", "count": 0, "sources": {}, "first": now}
        if row["status"] != "proposed":
            return row  # decided already: a rejected one is not proposed again
        row = {**row, "count": row["count"] + 1, "last": now,
               "sources": {**row["sources"], m.source: row["sources"].get(m.source, 0) + 1}}
        await self.context.store.write((Put("kb_proposals", key, pack(row)),))
        return row

    async def _decide(self, m: DecideProposal) -> dict[str, Any]:
        found = None  # the platform decides any; a shop admin their shops' only
        for shop in ([*m.shops] if m.shops is not None else [None]):
            prefix = f"{shop}\0".encode() if shop else b""
            for key, row in self.context.store.scan("kb_proposals", prefix,
                                                    prefix[:-1] + b"\x01" if shop else None):
                if row["id"] == m.proposal:
                    found = (key, row)
                    break
            if found:
                break
        if found is None or found[1]["status"] != "proposed":
            raise NotFound(f"no open proposal {m.proposal!r}")
        key, row = found
        now = self.context.now_ms()
        decided = {**row, "status": "approved" if m.approve else "rejected", "decided": now}
        ops = [Put("kb_proposals", key, pack(decided))]
        entry = None
        if m.approve:
            if row["kind"] == "similar":
                current = self.kb.entries.get(row["entry"])
                if current is None:
                    raise NotFound(f"no knowledge-base entry {row['entry']!r}")
                similar = [*current["similar"], row["question"]][-50:]
                entry = validate_entry({**current, "similar": similar, "updated": now}, now)
            else:
                entry = validate_entry({
                    "id": f"learned-{row['id'][3:]}", "question": row["question"],
                    "answer": row["answer"] or "", "shop": row["shop"],
                    "category": None, "visibility": "public"}, now)
            ops.append(Put("kb", entry["id"].encode(), pack(entry)))
        await self.context.store.write(tuple(ops))
        if entry is not None:
            self.kb.put(entry)  # the index answers with it from the next question on
        return {"proposal": decided, "entry": entry}

    async def _record_unanswered(self, question: str, shop: str, handed_off: bool) -> None:
        # Group phrasings that share their words, whatever the order or particles (an
        # empty matcher's tokens: never the index over every entry, slow to build).
        words = sorted({t for t in self.grouper.tokens(question)
                        if not t.startswith(("py:", "in:"))} - {""})
        key = " ".join(w for w in words if len(w) > 1) or question.strip()[:50]
        db_key = f"{shop}\0{key}".encode()[:500]
        row = self.unanswered.pop(db_key, None) or self.context.store.get(
            "kb_unanswered", db_key) or {
            "key": key, "shop": shop, "count": 0, "handed_off": 0, "examples": []}
        row = {**row, "count": row["count"] + 1,
               "handed_off": row["handed_off"] + int(handed_off),
               "last": self.context.now_ms(), "examples": list(row["examples"])}
        if question not in row["examples"] and len(row["examples"]) < 5:
            row["examples"].append(question[:200])
        self.unanswered[db_key] = row
        if len(self.unanswered) > UNANSWERED_CACHE:
            self.unanswered.popitem(last=False)
        await self.context.store.submit((Put("kb_unanswered", db_key, pack(row)),),
                                        _log_failure)


def _log_failure(error: str | None) -> None:
    if error is not None:
        log.error("unanswered question not recorded", extra={"error": error})


KB_KIND: ActorKind[EngineContext] = ActorKind(KIND, KbActor)
