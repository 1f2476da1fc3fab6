"""Price-drop and back-in-stock reminders (marketing): buyers' interests, and catalogue
changes that remind the buyers interested in a SKU (docs/outreach.md).

The platform pushes what each buyer carted or favourited (``interests``: per shop and
SKU, with the price they saw) and catalogue changes. A price below the one the buyer saw,
or a SKU back in stock, reminds each interested buyer. Each buyer's own actor decides
(:class:`~octim.domain.customers.Reserve`: the gate, at most one reminder per SKU per
``window`` days, the caps counted in the same commit), then the reminder is posted as a
``notice`` with the product card. Every decision is logged, sent or not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from octim.domain.customers import KIND as CUSTOMER
from octim.domain.customers import Reserve
from octim.domain.outreach.notices import (
    deliver,
    language_of,
    log_key,
    render,
    suppressed_op,
)
from octim.store import Delete, Op, Put, pack

if TYPE_CHECKING:
    from octim.engine import Engine

DAY_MS = 86_400_000


def interest_key(shop: str, sku: str, buyer: str) -> bytes:
    return f"{shop}\0{sku}\0{buyer}".encode()


async def put_interests(engine: Engine, buyer: str, items: list[dict[str, Any]]
                        ) -> dict[str, Any]:
    """Replace the buyer's interests (carted and favourited SKUs, with the price seen)."""
    store, now = engine.store, engine.context.now_ms()
    ops: list[Op] = [Delete("interests", interest_key(shop, sku, buyer))
                     for shop, sku in store.get("customer_interests", buyer.encode()) or []]
    mine = []
    for item in items:
        ops.append(Put("interests", interest_key(item["shop"], item["sku"], buyer), pack(
            {"kind": item["kind"], "price": item.get("price"), "at": now})))
        mine.append([item["shop"], item["sku"]])
    ops.append(Put("customer_interests", buyer.encode(), pack(mine)))
    await store.write(ops)
    return {"customer": buyer, "interests": len(mine)}


def interested(store: Any, shop: str, sku: str) -> list[tuple[str, dict[str, Any]]]:
    prefix = f"{shop}\0{sku}\0".encode()
    return [(key[len(prefix):].decode(), dict(value))
            for key, value in store.scan("interests", prefix, prefix[:-1] + b"\x01")]


async def remind(engine: Engine, kind: str, change: dict[str, Any], window_days: float
                 ) -> list[dict[str, Any]]:
    """Remind every buyer interested in ``change``'s SKU (``price_drop``: whose seen price
    is above the new one; ``back_in_stock``: all), each through the gate."""
    store = engine.store
    shop, sku, price = change["shop"], change["sku"], change.get("price")
    results = []
    for buyer, interest in interested(store, shop, sku):
        if kind == "price_drop":
            seen = interest.get("price") if interest.get("price") is not None else \
                change.get("old_price")
            if seen is None or price is None or price >= seen:
                continue  # not cheaper than what this buyer saw
        else:
            seen = interest.get("price")
        reserved = await engine.directory.ref(CUSTOMER, buyer).ask(
            Reserve(shop, kind, sku, int(window_days * DAY_MS)))
        now = engine.context.now_ms()
        log = {"shop": shop, "category": "marketing", "type": kind, "ref": f"sku:{sku}",
               "reason": reserved["reason"], "at": now}
        entry = log_key(buyer, now)
        if not reserved["allowed"]:
            await store.write((Put("outreach_log", entry, pack({**log, "sent": False})),
                               suppressed_op(shop, kind, reserved["reason"], now)))
            results.append({"customer": buyer, "sent": False, "reason": reserved["reason"]})
            continue
        customer = store.get("customers", buyer.encode())
        title = change.get("title") or sku
        text = render(kind, language_of(customer), {
            "title": title, "price": _money(price), "old_price": _money(seen)},
            store.get("notice_settings", shop.encode()))
        card: dict[str, Any] = {"product": sku, "title": title}
        if price is not None:
            card["price"] = price
        body = {"notice": kind, "text": text, "product": card}
        sent_key = f"{buyer}\0{shop}\0{sku}\0{kind}\0{now}".encode()
        delivered = await deliver(engine, shop, buyer, customer, body, sent_key, entry, log,
                                  sku=sku)
        results.append({"customer": buyer, **delivered})
    return results


def _money(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)
