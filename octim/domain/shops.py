"""Shops: the ShopActor owns one shop's record (and, later, its policy and queue).

A shop is a virtual actor: activated from the ``shops`` database on its first
message, passivated when idle. Every change is written durably before the
actor answers, so a crash right after an answer loses nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from octim.actors import Actor, ActorKind, Message, record, thaw
from octim.domain.context import EngineContext
from octim.errors import InvalidInput, NotFound
from octim.store import Delete, Put, pack

KIND = "shop"
MAX_NAME_CHARS = 200


@record
class UpsertShop(Message):
    """Create or replace a shop's record (idempotent)."""

    shop_id: str
    name: str
    settings: Mapping[str, Any]


@record
class GetShop(Message):
    """Ask for a shop's record."""

    shop_id: str


@record
class DeleteShop(Message):
    """Remove a shop (idempotent)."""

    shop_id: str


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

    async def receive(self, message: Message) -> Any:
        match message:
            case UpsertShop(shop_id=shop_id, name=name, settings=settings):
                return await self._upsert(shop_id, name, thaw(settings))
            case GetShop():
                if self.record is None:
                    raise NotFound(f"no shop {self.address.id!r}")
                return self.record
            case DeleteShop(shop_id=shop_id):
                await self.context.store.write((Delete("shops", shop_key(shop_id)),))
                self.record = None
                return None
        raise InvalidInput(f"shop actor cannot handle {type(message).__name__}")

    async def _upsert(self, shop_id: str, name: str, settings: dict[str, Any]) -> dict[str, Any]:
        if not name.strip() or len(name) > MAX_NAME_CHARS:
            raise InvalidInput(f"shop name must be 1-{MAX_NAME_CHARS} characters")
        now = time.time()
        created = self.record["created_at"] if self.record else now
        new = {"id": shop_id, "name": name, "settings": settings,
               "created_at": created, "updated_at": now}
        await self.context.store.write((Put("shops", shop_key(shop_id), pack(new)),))
        self.record = new
        return new


SHOP_KIND: ActorKind[EngineContext] = ActorKind(KIND, ShopActor, idle_timeout=300.0)
