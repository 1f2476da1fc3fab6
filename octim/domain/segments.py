"""Segments: groups of buyers by tags or by rules over their orders.

A segment is ``{"id", "name", "shop", "rule"}``; ``shop`` null means
platform-wide (all shops' orders count), otherwise only that shop's orders
and tags count. Rules (all given conditions must hold):

* ``tags_any``: the buyer carries one of these tags (platform tags, and the
  shop's own tags for a shop segment);
* ``level_at_least``: platform level;
* ``min_orders``, ``min_spent``: paid-and-kept orders and their total;
* ``min_returns``: orders refunded or being refunded;
* ``stages_any``: the buyer's lifecycle stage with the segment's shop is one of these
  (``new``, ``active``, ``at_risk``, ``lost``, or ``prospect``: never paid there;
  octim/domain/reports/lifecycle.py), read against ``now_ms``; shop segments only.

Routing reads them (``routing.vip_segments``: members are served as VIP), and
later proactive messages will.
"""

from __future__ import annotations

from typing import Any

from octim.domain.conversations.model import pair_key
from octim.domain.reports import lifecycle
from octim.store import Store

KEPT = ("paid", "shipped", "delivered")
RETURNED = ("refunding", "refunded")


def facts(store: Store, customer: str, shop: str | None, now_ms: int | None = None
          ) -> dict[str, Any]:
    """What the rules look at, for one buyer (and one shop, or all)."""
    prefix = (f"{customer}\0{shop}\0" if shop else f"{customer}\0").encode()
    orders: list[dict[str, Any]] = []
    for key, _ in store.scan("idx_customer_orders", prefix, prefix[:-1] + b"\x01"):
        order = store.get("orders", key.decode().rsplit("\0", 1)[1].encode())
        if order is not None and (shop is None or order["shop"] == shop):
            orders.append(order)
    profile = store.get("customers", customer.encode()) or {}
    tags = set(profile.get("tags", []))
    if shop:
        tags |= set((store.get("shop_customers", pair_key(shop, customer)) or {}).get("tags", []))
    kept = [o for o in orders if o["status"] in KEPT]
    stage = None
    if shop and now_ms is not None:
        found = lifecycle.of_buyer(store, shop, customer, now_ms)
        stage = "prospect" if found is None else found["stage"]
    return {"level": profile.get("level", 0), "tags": tags, "orders": len(kept), "stage": stage,
            "spent": sum(i["price"] * i.get("quantity", 1) for o in kept for i in o["items"]),
            "returns": sum(1 for o in orders if o["status"] in RETURNED)}


def matches(rule: dict[str, Any], f: dict[str, Any]) -> bool:
    """Whether a buyer's facts satisfy every condition of a rule."""
    if rule.get("tags_any") and not f["tags"] & set(rule["tags_any"]):
        return False
    if rule.get("stages_any") and f.get("stage") not in rule["stages_any"]:
        return False
    return bool(f["level"] >= rule.get("level_at_least", 0)
                and f["orders"] >= rule.get("min_orders", 0)
                and f["spent"] >= rule.get("min_spent", 0)
                and f["returns"] >= rule.get("min_returns", 0))


def is_member(store: Store, segment: dict[str, Any], customer: str,
              now_ms: int | None = None) -> bool:
    return matches(segment["rule"], facts(store, customer, segment.get("shop"), now_ms))


def members(store: Store, segment: dict[str, Any], limit: int, now_ms: int | None = None
            ) -> list[str]:
    """Buyers in the segment (a scan of all customers, and of the shop's paying buyers
    for a shop segment: for tools, not hot paths)."""
    candidates = dict.fromkeys(key.decode() for key, _ in store.scan("customers"))
    if segment.get("shop"):
        prefix = lifecycle.rfm_key(segment["shop"], "").encode()
        candidates.update(dict.fromkeys(
            key[len(prefix):].decode() for key, _ in store.scan(
                "report_pending", prefix, prefix[:-1] + b"\x01")))
    found = []
    for customer in candidates:
        if is_member(store, segment, customer, now_ms):
            found.append(customer)
            if len(found) >= limit:
                break
    return found
