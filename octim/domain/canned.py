"""Canned replies (快捷回复): per shop, kept by its admins, and personal, per agent.

Stored in the ``canned`` database under ``scope \\0 id`` where the scope is
``shop:<shop>`` or ``user:<user>``. Each write replaces one record, so there
is no state to own beyond the store: the functions write directly.
"""

from __future__ import annotations

from typing import Any

from octim.domain.conversations.model import pair_key
from octim.errors import InvalidInput, NotFound
from octim.store import Delete, Put, Store, pack

MAX_PER_SCOPE = 500


def scope_of(shop: str | None, user: str) -> str:
    return f"shop:{shop}" if shop else f"user:{user}"


def list_scope(store: Store, scope: str) -> list[dict[str, Any]]:
    prefix = pair_key(scope, "")
    return [dict(value) for _, value in store.scan("canned", prefix, prefix[:-1] + b"\x01")]


def visible(store: Store, user: str, shops: tuple[str, ...]) -> list[dict[str, Any]]:
    """The shop replies of ``shops`` (sorted by shop, title) then the user's own."""
    found = []
    for shop in sorted(shops):
        found += sorted(list_scope(store, scope_of(shop, user)), key=lambda r: r["title"])
    if user:
        found += sorted(list_scope(store, scope_of(None, user)), key=lambda r: r["title"])
    return found


async def put(store: Store, reply_id: str, *, shop: str | None, user: str, title: str,
              text: str, now_ms: int) -> dict[str, Any]:
    scope = scope_of(shop, user)
    key = pair_key(scope, reply_id)
    if store.get("canned", key) is None and len(list_scope(store, scope)) >= MAX_PER_SCOPE:
        raise InvalidInput(f"at most {MAX_PER_SCOPE} canned replies per shop or person")
    record = {"id": reply_id, "scope": "shop" if shop else "personal", "shop": shop,
              "owner": None if shop else user, "title": title, "text": text,
              "updated": now_ms}
    await store.write((Put("canned", key, pack(record)),))
    return record


async def delete(store: Store, reply_id: str, *, shop: str | None, user: str) -> None:
    key = pair_key(scope_of(shop, user), reply_id)
    if store.get("canned", key) is None:
        raise NotFound(f"no canned reply {reply_id!r}")
    await store.write((Delete("canned", key),))
