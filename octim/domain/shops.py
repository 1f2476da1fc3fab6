"""Shops: the ShopActor owns one shop's record, its open-conversation rule and queue.

A shop is a virtual actor: activated from the ``shops`` database on its first
message, passivated when idle. Every change is written durably before the
actor answers, so a crash right after an answer loses nothing.

Opening conversations goes through the shop actor so that one buyer has at
most one open conversation per shop, even when two devices open at once.
Waiting and assignment belong to the dispatcher (``octim.domain.routing``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from octim.actors import Actor, ActorKind, Message, record, thaw
from octim.domain import peak
from octim.domain.bot import BotSettings, bot_starts
from octim.domain.context import EngineContext
from octim.domain.conversations.messages import CONVERSATION, AdoptContext
from octim.domain.conversations.model import (
    BOT,
    CLOSED,
    QUEUED,
    ConversationMeta,
    StoredMessage,
    card_from_context,
    event_frame,
    log_op,
    new_conversation_id,
    pair_key,
)
from octim.domain.routing.dispatcher import ID as DISPATCHER_ID
from octim.domain.routing.dispatcher import KIND as DISPATCHER
from octim.domain.routing.messages import ShopChanged, ShopOnline
from octim.errors import ClientError, InvalidInput, NotFound, VersionConflict
from octim.store import Delete, Op, Put, pack

KIND = "shop"
MAX_NAME_CHARS = 200


class ShopSuspended(ClientError):
    """The platform suspended the shop: no new conversations (open ones go on)."""

    code = "shop_suspended"
    status = 403


@record
class UpsertShop(Message):
    """Create or replace a shop's record (idempotent)."""

    shop_id: str
    name: str
    settings: Mapping[str, Any]
    categories: tuple[str, ...] = ()
    routing: Mapping[str, Any] | None = None  # a RoutingPolicy as a map (validated by the API)
    bot: Mapping[str, Any] | None = None  # BotSettings as a map (validated by the API)


@record
class PatchShop(Message):
    """Change some of a shop's settings (``name``, ``categories``, ``routing``, ``bot``,
    and keys of ``settings``), refused with ``version_conflict`` when
    ``expected_version`` is given and the record has moved on since."""

    shop_id: str
    changes: Mapping[str, Any]
    expected_version: int | None = None


@record
class GetShop(Message):
    """Ask for a shop's record."""

    shop_id: str


@record
class DeleteShop(Message):
    """Remove a shop (idempotent)."""

    shop_id: str


@record
class OpenConversation(Message):
    """A buyer opens (or returns to) their conversation with this shop."""

    shop_id: str
    buyer: str
    level: int
    context: Mapping[str, Any]


def shop_key(shop_id: str) -> bytes:
    """The ``shops`` database key of a shop."""
    return shop_id.encode()


def validate_shop_id(shop_id: str) -> str:
    """Shop ids are 1-128 characters of letters, digits, ``-``, ``_`` and ``.``."""
    if not (1 <= len(shop_id) <= 128) or not all(c.isalnum() or c in "-_." for c in shop_id):
        raise InvalidInput("shop id must be 1-128 letters, digits, '-', '_' or '.'")
    return shop_id


class ShopActor(Actor[EngineContext]):
    """Owns one shop's record."""

    def __init__(self, address: Any, context: EngineContext) -> None:
        super().__init__(address, context)
        self.record: dict[str, Any] | None = None

    async def on_start(self) -> None:
        self.record = self.context.store.get("shops", shop_key(self.address.id))

    def may_passivate(self) -> bool:
        """Stay active through a peak (pre-warmed before its window)."""
        return not self.context.is_warm(self.address.id)

    async def receive(self, message: Message) -> Any:
        match message:
            case UpsertShop(shop_id=shop_id, name=name, settings=settings):
                shop = await self._upsert(shop_id, name, thaw(settings), list(message.categories),
                                          thaw(message.routing) if message.routing else {},
                                          thaw(message.bot) if message.bot else {})
                assert self.context.directory is not None
                await self.context.directory.ref(DISPATCHER, DISPATCHER_ID).tell(
                    ShopChanged(shop_id))
                return shop
            case PatchShop(changes=changes, expected_version=expected):
                if self.record is None:
                    raise NotFound(f"no shop {self.address.id!r}")
                if expected is not None and expected != self.record.get("version", 0):
                    raise VersionConflict(
                        "the shop's settings were changed by someone else since you loaded "
                        "them: reload, then save again")
                current, changes = self.record, thaw(changes)
                settings = {**current.get("settings", {}), **changes.get("settings", {})}
                shop = await self._upsert(
                    self.address.id, changes.get("name", current["name"]), settings,
                    list(changes.get("categories", current.get("categories", []))),
                    changes.get("routing", current.get("routing", {})),
                    changes.get("bot", current.get("bot", {})), changes.get("suspended"))
                assert self.context.directory is not None
                await self.context.directory.ref(DISPATCHER, DISPATCHER_ID).tell(
                    ShopChanged(self.address.id))
                return shop
            case GetShop():
                if self.record is None:
                    raise NotFound(f"no shop {self.address.id!r}")
                return self.record
            case DeleteShop(shop_id=shop_id):
                await self.context.store.write((Delete("shops", shop_key(shop_id)),))
                self.record = None
                return None
            case OpenConversation(buyer=buyer, level=level, context=context):
                return await self._open(buyer, level, thaw(context))
        raise InvalidInput(f"shop actor cannot handle {type(message).__name__}")

    async def _open(self, buyer: str, level: int, context: dict[str, Any]) -> dict[str, Any]:
        if self.record is None:
            raise NotFound(f"no shop {self.address.id!r}")
        store, shop = self.context.store, self.address.id
        current = store.get("idx_customer_conversations", pair_key(buyer, shop))
        if current is not None:
            meta = ConversationMeta.load(store, current)
            if meta is not None and meta.state != CLOSED:
                if not meta.routed and meta.context.get("origin") == "notice":
                    assert self.context.directory is not None  # the page they came from
                    await self.context.directory.ref(CONVERSATION, current).ask(AdoptContext(
                        current, _routing_context(context), level,
                        card_from_context(context, self.context.image_hosts)))
                return {"conversation": current, "state": meta.state, "created": False}
        if self.record.get("suspended"):
            raise ShopSuspended(f"shop {shop!r} is suspended: it takes no new conversations")
        card = card_from_context(context, self.context.image_hosts)
        now = self.context.now_ms()
        conversation = new_conversation_id(now / 1000)
        settings = BotSettings.from_record(self.record.get("bot"))
        online = settings.mode == "when_no_agent" and await self._agents_online()
        # Peak mode (大促): every new conversation starts with the bot (octim/domain/peak.py).
        state = BOT if peak.state(store, shop, now).on or bot_starts(
            settings, now / 1000, online) else QUEUED
        ops, card_message = _open_ops(shop, buyer, level, context, conversation, now, card,
                                      state)
        staged = self.context.stage([("conversation.opened", {
            "conversation": conversation, "shop": shop, "buyer": buyer, "state": state})])
        await store.write([*ops, *staged.ops])
        fanout = self.context.fanout
        fanout.publish(event_frame(conversation, "opened", {"shop": shop}), [buyer])
        self.context.publish(staged)
        if card_message is not None:
            fanout.publish(card_message.frame(conversation), [buyer])
        return {"conversation": conversation, "state": state, "created": True}

    async def _agents_online(self) -> bool:
        assert self.context.directory is not None
        return bool(await self.context.directory.ref(DISPATCHER, DISPATCHER_ID).ask(
            ShopOnline(self.address.id)))

    async def _upsert(self, shop_id: str, name: str, settings: dict[str, Any],
                      categories: list[str], routing: dict[str, Any],
                      bot: dict[str, Any], suspended: bool | None = None) -> dict[str, Any]:
        if not name.strip() or len(name) > MAX_NAME_CHARS:
            raise InvalidInput(f"shop name must be 1-{MAX_NAME_CHARS} characters")
        now = self.context.clock()
        created = self.record["created_at"] if self.record else now
        version = (self.record.get("version", 0) if self.record else 0) + 1
        if suspended is None:  # a replace keeps the platform's suspension as it was
            suspended = bool(self.record and self.record.get("suspended"))
        new = {"id": shop_id, "name": name, "settings": settings, "categories": categories,
               "routing": routing, "bot": bot, "created_at": created, "updated_at": now,
               "version": version, "suspended": suspended}
        await self.context.store.write((Put("shops", shop_key(shop_id), pack(new)),))
        self.record = new
        return new


SHOP_KIND: ActorKind[EngineContext] = ActorKind(KIND, ShopActor, idle_timeout=300.0)


def _open_ops(shop: str, buyer: str, level: int, context: dict[str, Any], conversation: str,
              now: int, card: tuple[str, dict[str, Any]] | None, state: str
              ) -> tuple[list[Op], StoredMessage | None]:
    """Everything a new conversation writes, in one atomic commit, and the context card
    it opens with (seq 1), if any."""
    meta = ConversationMeta(conversation, shop, buyer, state, created=now, updated=now,
                            level=level, context=_routing_context(context))
    ops: list[Op] = []
    card_message = None
    if card is not None:
        kind, body = card
        card_message = StoredMessage(1, f"card-{conversation}", buyer, "buyer", kind, body, now)
        meta.last_seq = 1
        meta.reads = {buyer: 1}
        ops.append(card_message.put(conversation))
    # "opened" carries what reports count a consult by (buyer, entry page, first state);
    # the card is the page the buyer came from, not a message: it is not logged as one.
    opened: dict[str, Any] = {"buyer": buyer, "state": state}
    opened.update((k, v) for k, v in meta.context.items()
                  if k in ("page", "category", "product", "order", "channel", "via",
                           "origin"))
    ops.append(log_op(conversation, shop, "opened", opened, now))
    meta.events = 1
    ops += [
        meta.put(),
        Put("idx_customer_conversations", pair_key(buyer, shop), pack(conversation)),
        Put("idx_user_conversations", pair_key(buyer, conversation), pack(shop)),
        Put("idx_shop_conversations", pair_key(shop, conversation), pack(state)),
        Put("idx_open_conversations", conversation.encode(), pack(now)),
    ]
    return ops, card_message


def _routing_context(context: dict[str, Any]) -> dict[str, Any]:
    """The part of the open context routing reads (entry page, SKU category, references)."""
    kept = {k: context[k] for k in ("page", "category", "product", "order", "channel", "via",
                                    "origin")
            if isinstance(context.get(k), str) and len(context[k]) <= 128}
    return kept
