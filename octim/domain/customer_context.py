"""What an agent sees beside a conversation: the buyer's 360° context.

Built from the store for one conversation, from the point of view of its shop:
the buyer's profile, their orders with *this* shop (latest first, with
tracking), their earlier conversations with this shop, this shop's private
notes and tags, and only those cross-shop signals the platform marks as
shared. Nothing of another shop (orders, notes, tags, conversations) is read.
"""

from __future__ import annotations

from typing import Any

import jieba

from octim.domain.conversations.model import ConversationMeta, pair_key
from octim.domain.customers import order_index_key
from octim.domain.reports import lifecycle
from octim.store import Store

#: Cross-shop signals shared by default; the platform changes it with
#: ``PUT /api/platform/sharing``. ``attributes.X`` shares one attribute.
DEFAULT_SHARED = ("level", "attributes.sizes", "attributes.style", "total_orders")
SHAREABLE = ("level", "language", "region", "tags", "attributes", "total_orders")
SHARING_KEY = b"sharing"
PROFILE = ("id", "nickname", "email", "phone", "level", "language", "region", "opt_outs")
WHERE_WORDS = ("到哪", "物流", "快递", "发货", "单号", "签收", "没收到", "到了吗")
REFUND_WORDS = ("退款", "退货", "退钱", "售后", "换货")


def shared_fields(store: Store) -> tuple[str, ...]:
    found = store.get("meta", SHARING_KEY)
    return tuple(found) if found is not None else DEFAULT_SHARED


def _orders(store: Store, customer: str, shop: str) -> list[dict[str, Any]]:
    prefix = order_index_key(customer, shop, "")
    keyed = store.scan("idx_customer_orders", prefix, prefix[:-1] + b"\x01")
    orders = [store.get("orders", key[len(prefix):]) for key, _ in keyed]
    found = [o for o in orders if o is not None and o["shop"] == shop]
    return sorted(found, key=lambda o: (o.get("times") or {}).get("created", 0), reverse=True)


def _total_orders(store: Store, customer: str) -> int:
    prefix = f"{customer}\0".encode()
    return len(store.scan("idx_customer_orders", prefix, prefix[:-1] + b"\x01"))


def highlight(orders: list[dict[str, Any]], texts: list[str],
              context: dict[str, Any]) -> dict[str, Any] | None:
    """The order the buyer most likely means, and why (None when nothing points to one)."""
    if context.get("order") and any(o["id"] == context["order"] for o in orders):
        return {"order": context["order"], "reason": "opened from this order's page"}
    text = " ".join(texts)
    if not text or not orders:
        return None
    words = {w for w in jieba.lcut(text) if len(w) > 1}
    best: tuple[int, int, str, str] | None = None
    for rank, order in enumerate(orders):  # latest first: ties go to the newest
        score, why = 0, list[str]()
        if order["id"] in text:
            score, why = score + 10, [*why, "order id mentioned"]
        names = {w for item in order.get("items", []) for field in ("name", "category")
                 for w in jieba.lcut(str(item.get(field, ""))) if len(w) > 1}
        if names & words:
            score, why = score + 3, [*why, f"mentions {sorted(names & words)[0]}"]
        if any(w in text for w in WHERE_WORDS) and order.get("status") == "shipped":
            score, why = score + 2, [*why, "asks where a shipped order is"]
        if any(w in text for w in REFUND_WORDS) and order.get("status") in (
                "delivered", "refunding"):
            score, why = score + 2, [*why, "asks about a refund"]
        if score and (best is None or score > best[0]):
            best = (score, -rank, order["id"], ", ".join(why))
    if best is None:
        return None
    return {"order": best[2], "reason": best[3]}


def _identity(store: Store, identity: dict[str, Any]) -> dict[str, Any]:
    """A linked identity as staff see it: its type and channel, never the value (an
    openid or a phone number is the platform's to know)."""
    if identity["type"] != "channel":
        return {"type": identity["type"]}
    record = store.get("channels", identity["channel"].encode()) or {}
    return {"type": "channel", "channel": identity["channel"],
            "name": record.get("name", identity["channel"])}


def build_context(store: Store, meta: ConversationMeta, texts: list[str],
                  now_ms: int | None = None) -> dict[str, Any]:
    """The context of one conversation for its shop's staff (``now_ms``: the engine's
    clock, for the buyer's lifecycle stage with the shop)."""
    buyer, shop = meta.buyer, meta.shop
    customer = store.get("customers", buyer.encode()) or {"id": buyer}
    orders = _orders(store, buyer, shop)
    earlier: list[dict[str, Any]] = []
    # One buyer across channels: the history of buyer ids merged into this one by
    # identity linking (docs/channels.md) is theirs too.
    aliases = [str(a) for a in store.get("customer_aliases", buyer.encode()) or []]
    for who in (buyer, *aliases):
        prefix = pair_key(who, "")
        for key, _ in store.scan("idx_user_conversations", prefix, prefix[:-1] + b"\x01"):
            other = ConversationMeta.load(store, key[len(prefix):].decode())
            if other is not None and other.shop == shop and other.id != meta.id:
                earlier.append({"conversation": other.id, "state": other.state,
                                "created": other.created, "messages": other.last_seq,
                                "agent": other.last_agent or other.agent,
                                "rating": (other.rating or {}).get("score"),
                                "channel": other.context.get("channel") or "web",
                                "via": other.context.get("via")})
    earlier.sort(key=lambda c: c["created"], reverse=True)
    private = store.get("shop_customers", pair_key(shop, buyer)) or {"notes": [], "tags": []}
    shared: dict[str, Any] = {}
    for field in shared_fields(store):
        if field == "total_orders":
            shared[field] = _total_orders(store, buyer)
        elif field.startswith("attributes."):
            name = field.split(".", 1)[1]
            if name in (customer.get("attributes") or {}):
                shared.setdefault("attributes", {})[name] = customer["attributes"][name]
        elif field in customer:
            shared[field] = customer[field]
    return {
        "conversation": meta.id, "shop": shop,
        "profile": {k: customer[k] for k in PROFILE if k in customer},
        "card": {k: v for k, v in meta.context.items()
                 if k in ("product", "order", "page", "category")} or None,
        "orders": orders, "highlight": highlight(orders, texts, meta.context),
        "earlier_conversations": earlier, "notes": private["notes"], "tags": private["tags"],
        "shared": shared,
        "channel": meta.context.get("channel") or "web",
        "identities": [_identity(store, i)
                       for i in store.get("customer_identities", buyer.encode()) or []],
        "aliases": aliases,
        "lifecycle": None if now_ms is None else lifecycle.of_buyer(store, shop, buyer, now_ms),
    }
