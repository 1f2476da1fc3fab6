"""Service notices from platform events: an order paid, shipped, delivered, delayed, a
refund moving, a new tracking step. Each goes into the buyer's conversation with the
shop (the open one, or a new one that waits for the buyer: it enters routing only when
they write) as a ``notice`` message with an order card, in the buyer's language, from
the shop's template or the platform's (docs/outreach.md).

Each notice is sent at most once per event key (``notices_sent``, written in the commit
of the message), and the gate's decision is recorded (``outreach_log``) whether it was
sent or not.
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING, Any

from octim.domain.conversations.model import CLOSED, ConversationMeta, log_op, pair_key
from octim.domain.outreach.gate import Counts, GateSettings, buyer_zone, decide
from octim.errors import InvalidInput
from octim.store import Op, Put, pack

if TYPE_CHECKING:
    from octim.engine import Engine

TYPES = ("paid", "shipped", "delivered", "delayed", "refund", "logistics", "price_drop",
         "back_in_stock")
MARKETING = frozenset({"price_drop", "back_in_stock"})  # reminders: the gate's marketing rules
LANGUAGES = ("zh-CN", "en")
#: The platform's templates; a shop's own replace them per type and language. Variables:
#: {order} {title} {status} {carrier} {waybill} {note} {shop}; an unknown one is empty.
DEFAULT_TEMPLATES: dict[str, dict[str, str]] = {
    "paid": {"zh-CN": "您的订单 {order}（{title}）已付款成功，我们会尽快为您发货。",
             "en": "Your order {order} ({title}) is paid. We will ship it soon."},
    "shipped": {"zh-CN": "您的订单 {order}（{title}）已发货：{carrier} {waybill}。",
                "en": "Your order {order} ({title}) has shipped: {carrier} {waybill}."},
    "delivered": {"zh-CN": "您的订单 {order}（{title}）已签收，有问题随时联系我们。",
                  "en": "Your order {order} ({title}) was delivered. Ask us anything."},
    "delayed": {"zh-CN": "抱歉，您的订单 {order}（{title}）发货延迟：{note}",
                "en": "Sorry, your order {order} ({title}) is delayed: {note}"},
    "refund": {"zh-CN": "您的订单 {order} 退款进度：{status}。{note}",
               "en": "Refund for order {order}: {status}. {note}"},
    "logistics": {"zh-CN": "您的订单 {order} 物流更新：{status}（{note}）",
                  "en": "Order {order} tracking: {status} ({note})"},
    "price_drop": {"zh-CN": "您加购的 {title} 降价了：¥{old_price} → ¥{price}。回复 TD 退订",
                   "en": "{title} in your cart is now ¥{price} (was ¥{old_price}). Reply TD "
                         "to opt out"},
    "back_in_stock": {"zh-CN": "您关注的 {title} 到货了，现价 ¥{price}。回复 TD 退订",
                      "en": "{title} is back in stock at ¥{price}. Reply TD to opt out"},
}
_log_counter = itertools.count()
VARIABLE = re.compile(r"\{(\w{1,32})\}")


def language_of(customer: dict[str, Any] | None) -> str:
    """``en`` for a buyer whose language starts with ``en``, else ``zh-CN``."""
    language = str((customer or {}).get("language") or "")
    return "en" if language.lower().startswith("en") else "zh-CN"


def render(kind: str, language: str, values: dict[str, Any],
           settings: dict[str, Any] | None) -> str:
    """The notice's text: the shop's template for this type and language, else the
    platform's. ``{name}`` is replaced by that variable (empty if unknown); nothing else
    in a template is interpreted (no format specs, no attribute access)."""
    own = ((settings or {}).get("types", {}).get(kind) or {}).get("templates") or {}
    template = own.get(language) or DEFAULT_TEMPLATES[kind][language]
    text = VARIABLE.sub(lambda m: str(values.get(m.group(1)) or ""), template)
    return " ".join(text.split())[:1000]


def enabled(kind: str, settings: dict[str, Any] | None) -> bool:
    own = (settings or {}).get("types", {}).get(kind) or {}
    return bool(own.get("enabled", True))


def suppressed_op(shop: str, kind: str, reason: str, now_ms: int) -> Op:
    """The reports' record of a proactive message the gate held back (by type and
    reason); a sent one is counted from its message's own log record."""
    return log_op("", shop, "outreach_suppressed", {"notice": kind, "reason": reason}, now_ms)


def log_key(buyer: str, now_ms: int) -> bytes:
    """``outreach_log`` key: the buyer, the time, a counter (decisions of one ms)."""
    return f"{buyer}\0".encode() + now_ms.to_bytes(8, "big") + \
        (next(_log_counter) % 2**32).to_bytes(4, "big")


async def send_notices(engine: Engine, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Order events (validated by the API), in order; all are checked first: an order
    OctIM knows must be that shop's and that buyer's, or nothing is sent."""
    for event in events:
        known = engine.store.get("orders", event["order"].encode())
        if known is not None and (known.get("shop") != event["shop"] or
                                  known.get("customer") != event["customer"]):
            raise InvalidInput(f"order {event['order']!r} is another shop's or buyer's")
    return [await send_notice(engine, event) for event in events]


async def send_notice(engine: Engine, event: dict[str, Any]) -> dict[str, Any]:
    """One order event (validated by the API) → its notice, or why there is none."""
    store, now = engine.store, engine.context.now_ms()
    shop, buyer, order, kind = event["shop"], event["customer"], event["order"], event["event"]
    if store.get("shops", shop.encode()) is None:
        return {"order": order, "event": kind, "sent": False, "reason": "no_shop"}
    key = "\0".join((shop, order, kind, str(event.get("id") or event.get("status") or "")))
    sent = store.get("notices_sent", key.encode())
    if sent is not None:
        return {"order": order, "event": kind, "sent": True, "duplicate": True,
                "conversation": sent[0], "seq": sent[1]}
    customer = store.get("customers", buyer.encode())
    settings = store.get("notice_settings", shop.encode())
    shop_record = store.get("shops", shop.encode()) or {}
    zone = buyer_zone(customer, (shop_record.get("settings") or {}).get("timezone")
                      or "Asia/Shanghai")
    decision = decide(category="service", kind=kind, shop=shop, customer=customer,
                      now_ms=now, zone=zone,
                      settings=GateSettings.from_record(
                          (shop_record.get("settings") or {}).get("outreach")),
                      counts=Counts(), open_issue=False, enabled=enabled(kind, settings))
    stored = store.get("orders", order.encode()) or {}
    items = stored.get("items") or []
    values = {"order": order, "shop": shop_record.get("name", shop),
              "title": event.get("title") or (items[0]["name"] if items else ""),
              "status": event.get("status") or "", "carrier": event.get("carrier") or "",
              "waybill": event.get("waybill") or "", "note": event.get("note") or ""}
    log = {"shop": shop, "category": "service", "type": kind, "ref": f"order:{order}",
           "reason": decision.reason, "at": now}
    entry = log_key(buyer, now)
    if not decision.allowed:
        await store.write((Put("outreach_log", entry, pack({**log, "sent": False})),
                           suppressed_op(shop, kind, decision.reason, now)))
        return {"order": order, "event": kind, "sent": False, "reason": decision.reason}
    text = render(kind, language_of(customer), values, settings)
    card = {"order": order, "title": values["title"], "status": kind}
    for field in ("carrier", "waybill"):
        if values[field]:
            card[field] = values[field]
    body = {"notice": kind, "text": text, "order": card}
    return {"order": order, "event": kind, **await deliver(
        engine, shop, buyer, customer, body, key.encode(), entry, log, order=order)}


async def deliver(engine: Engine, shop: str, buyer: str, customer: dict[str, Any] | None,
                  body: dict[str, Any], sent_key: bytes, entry: bytes, log: dict[str, Any],
                  *, emit: bool = True, **about: str) -> dict[str, Any]:
    """Post a notice (a service notice or a reminder) into the buyer's open conversation
    with the shop, else a new one that waits for the buyer."""
    from octim.domain.conversations.actor import KIND as CONVERSATION
    from octim.domain.conversations.messages import PostNotice
    from octim.domain.shops import KIND as SHOP
    from octim.domain.shops import OpenConversation

    store = engine.store
    found = store.get("idx_customer_conversations", pair_key(buyer, shop))
    current = str(found) if found else ""
    meta = ConversationMeta.load(store, current) if current else None
    if meta is None or meta.state == CLOSED:
        # A new conversation that waits for the buyer: routing starts with their first
        # message, and reports count it as a consultation only then.
        opened = await engine.directory.ref(SHOP, shop).ask(OpenConversation(
            shop, buyer, int((customer or {}).get("level") or 0), {"origin": "notice"}))
        current = str(opened["conversation"])
    said = await engine.directory.ref(CONVERSATION, current).ask(PostNotice(
        current, body, sent_key, entry, log))
    if emit:  # (a campaign's messages are told once, by ``campaign.finished``)
        engine.events.emit("notice.sent", {"shop": shop, "buyer": buyer, "notice": body["notice"],
                                           "conversation": current, "seq": said["seq"],
                                           **about})
    return {"sent": True, "duplicate": False, "conversation": current, "seq": said["seq"]}


def decisions(store: Any, buyer: str, limit: int = 200) -> list[dict[str, Any]]:
    """The buyer's most recent gate decisions, newest first."""
    prefix = f"{buyer}\0".encode()
    rows = store.scan("outreach_log", prefix, prefix[:-1] + b"\x01")
    return [dict(v) for _, v in rows[::-1][:limit]]
