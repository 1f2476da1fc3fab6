"""Customers, their orders and logistics, and what each shop keeps about them.

The platform pushes buyers and orders in (idempotent upserts); shops add
private notes and tags. One CustomerActor per buyer serialises every write
about that buyer, so concurrent notes or order updates never lose each other.
Reads (the agent's context) go straight to the store; see ``context.py``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from octim.actors import Actor, ActorKind, Address, Message, record, thaw
from octim.domain.context import EngineContext
from octim.domain.conversations.model import log_op, pair_key
from octim.errors import InvalidInput, NotFound
from octim.store import Delete, Put, pack

KIND = "customer"
ORDER_STATUSES = ("unpaid", "paid", "shipped", "delivered", "refunding", "refunded", "closed")
MAX_NOTES = 200
PAID = frozenset({"paid", "shipped", "delivered"})  # a status an order reaches once paid
PHONE_INDEX = "idx_customer_phone"


def phone_key(secret: str, phone: str) -> bytes:
    """``idx_customer_phone`` key: a keyed hash of the number, never the number itself
    (index keys stay in clear even when the store is encrypted)."""
    return hmac.new(secret.encode(), b"phone\0" + phone.encode(), hashlib.sha256).digest()


def find_by_phone(store: Any, secret: str, phone: str) -> str | None:
    """The buyer whose profile has this phone number (the last one to claim it)."""
    found = store.get(PHONE_INDEX, phone_key(secret, phone))
    return None if found is None else str(found)


def order_index_key(customer: str, shop: str, order: str) -> bytes:
    """``idx_customer_orders`` key: a buyer's orders grouped by shop."""
    return f"{customer}\0{shop}\0{order}".encode()


@record
class UpsertCustomer(Message):
    customer: Mapping[str, Any]


@record
class OptOut(Message):
    """The buyer opts out (``marketing:<shop>``: a shop's marketing; docs/outreach.md)."""

    opt_out: str


@record
class Reserve(Message):
    """May a marketing message (``kind`` about ``sku``) go to this buyer from ``shop``
    now? The buyer's actor decides (the gate, the reminder window) and, if so, counts it
    against the caps in the same commit: the caps hold however many ask at once."""

    shop: str
    kind: str
    sku: str
    window_ms: int
    #: A campaign's reservation (``sku`` names the campaign and run): asked again, it
    #: answers what it answered the first time, counting nothing twice (a resumed
    #: campaign re-asks for recipients whose send it cannot see).
    once: bool = False


@record
class UpsertOrder(Message):
    order: Mapping[str, Any]


@record
class AddLogistics(Message):
    """Tracking events for one of the customer's orders (merged, in time order)."""

    order_id: str
    events: tuple[Mapping[str, Any], ...]


@record
class AddNote(Message):
    shop: str
    author: str
    text: str


@record
class SetTags(Message):
    shop: str
    tags: tuple[str, ...]


class CustomerActor(Actor[EngineContext]):
    """Owns the writes about one buyer (profile, orders, the shops' notes and tags)."""

    def __init__(self, address: Address, context: EngineContext) -> None:
        super().__init__(address, context)

    @property
    def id(self) -> str:
        return self.address.id

    async def receive(self, message: Message) -> Any:
        store, now = self.context.store, self.context.now_ms()
        match message:
            case Reserve():
                return await self._reserve(message, now)
            case OptOut(opt_out=opt_out):
                record = dict(store.get("customers", self.id.encode()) or {"id": self.id})
                if opt_out not in (record.get("opt_outs") or []):
                    record["opt_outs"] = [*(record.get("opt_outs") or []), opt_out][-20:]
                    # When (a campaign's results count who opted out after it reached them).
                    times = dict(record.get("opt_out_times") or {})
                    times[opt_out] = now
                    record["opt_out_times"] = {k: v for k, v in times.items()
                                               if k in record["opt_outs"]}
                    record["updated"] = now
                    await store.write((Put("customers", self.id.encode(), pack(record)),))
                return record
            case UpsertCustomer(customer=raw):
                customer = {**thaw(raw), "id": self.id, "updated": now}
                before = store.get("customers", self.id.encode()) or {}
                # What the buyer opted out of in chat (退订) stays: the platform's profile
                # push does not know of it and must not undo it.
                kept = dict(before.get("opt_out_times") or {})
                if kept:
                    customer["opt_outs"] = list(dict.fromkeys(
                        [*(customer.get("opt_outs") or []), *kept]))[-20:]
                    customer["opt_out_times"] = kept
                ops: list[Any] = [Put("customers", self.id.encode(), pack(customer))]
                secret = self.context.settings.secret
                old = before.get("phone")
                phone = customer.get("phone")
                if old and old != phone and find_by_phone(store, secret, old) == self.id:
                    ops.append(Delete(PHONE_INDEX, phone_key(secret, old)))
                if phone:
                    ops.append(Put(PHONE_INDEX, phone_key(secret, phone), pack(self.id)))
                await store.write(ops)
                return customer
            case UpsertOrder(order=raw):
                order = thaw(raw)
                if order["customer"] != self.id:
                    raise InvalidInput("the order belongs to another customer")
                old = store.get("orders", order["id"].encode())
                if old is not None and (old["customer"], old["shop"]) != (self.id, order["shop"]):
                    raise InvalidInput("an order cannot move to another customer or shop")
                order["logistics"] = (old or {}).get("logistics", [])
                order["updated"] = now
                created = (order.get("times") or {}).get("created") or (old or {}).get(
                    "times", {}).get("created") or now
                ops = [
                    Put("orders", order["id"].encode(), pack(order)),
                    Put("idx_customer_orders", order_index_key(self.id, order["shop"],
                                                               order["id"]), pack(created)),
                ]
                if order["status"] in PAID and (old is None or old["status"] not in PAID):
                    # Paid now (once per order): what the reports' conversion counts.
                    paid_at = int((order.get("times") or {}).get("paid") or now)
                    amount = sum(float(i.get("price", 0)) * int(i.get("quantity", 1))
                                 for i in order.get("items", []))
                    ops.append(log_op(order["id"], order["shop"], "order_paid", {
                        "customer": self.id, "order": order["id"],
                        "amount": round(amount, 2)}, paid_at))
                await store.write(ops)
                return order
            case AddLogistics(order_id=order_id, events=events):
                order = store.get("orders", order_id.encode())
                if order is None or order["customer"] != self.id:
                    raise NotFound(f"no order {order_id!r}")
                seen = {(e["time"], e["status"]) for e in order["logistics"]}
                for event in thaw(events):
                    if (event["time"], event["status"]) not in seen:
                        order["logistics"].append(event)
                        seen.add((event["time"], event["status"]))
                order["logistics"].sort(key=lambda e: e["time"])
                order["updated"] = now
                await store.write((Put("orders", order_id.encode(), pack(order)),))
                return order
            case AddNote(shop=shop, author=author, text=text):
                private = self._private(shop)
                private["notes"] = [*private["notes"], {"by": author, "text": text,
                                                        "at": now}][-MAX_NOTES:]
                await store.write((Put("shop_customers", pair_key(shop, self.id),
                                       pack(private)),))
                return private
            case SetTags(shop=shop, tags=tags):
                private = self._private(shop)
                private["tags"] = sorted(set(tags))
                await store.write((Put("shop_customers", pair_key(shop, self.id),
                                       pack(private)),))
                return private
        raise InvalidInput(f"the customer actor cannot handle {type(message).__name__}")

    async def _reserve(self, m: Reserve, now: int) -> dict[str, Any]:
        from octim.domain.outreach import gate
        from octim.domain.tickets.model import NEW, ON_HOLD, OPEN, PENDING

        store = self.context.store
        sent_key = "\0".join((self.id, m.shop, m.sku, m.kind)).encode()
        last = store.get("reminders_sent", sent_key)
        if m.once and last is not None:
            return {"allowed": True, "reason": "ok"}  # reserved (and counted) already
        if last is not None and now - int(last) < m.window_ms:
            return {"allowed": False, "reason": "reminded_recently"}
        customer = store.get("customers", self.id.encode())
        shop_record = store.get("shops", m.shop.encode()) or {}
        settings = shop_record.get("settings") or {}
        zone = gate.buyer_zone(customer, settings.get("timezone") or gate.DEFAULT_ZONE)
        day, week = gate.day_keys(now, zone)
        keys = [f"{self.id}\0{m.shop}\0{day}".encode(), f"{self.id}\0{m.shop}\0{week}".encode(),
                f"{self.id}\0*\0{day}".encode()]
        counts = [int(store.get("outreach_counts", k) or 0) for k in keys]
        prefix = pair_key(self.id, "")
        tickets = store.scan("idx_requester_tickets", prefix, prefix[:-1] + b"\x01")
        open_issue = any(
            shop == m.shop and (store.get("tickets", key[len(prefix):]) or {}).get("status")
            in (NEW, OPEN, PENDING, ON_HOLD) for key, shop in tickets)
        notice_settings = store.get("notice_settings", m.shop.encode())
        own = ((notice_settings or {}).get("types", {}).get(m.kind) or {})
        decision = gate.decide(category="marketing", kind=m.kind, shop=m.shop,
                               customer=customer, now_ms=now, zone=zone,
                               settings=gate.GateSettings.from_record(settings.get("outreach")),
                               counts=gate.Counts(*counts), open_issue=open_issue,
                               enabled=bool(own.get("enabled", True)))
        if decision.allowed:
            await store.write([Put("outreach_counts", k, pack(n + 1))
                               for k, n in zip(keys, counts, strict=True)] +
                              [Put("reminders_sent", sent_key, pack(now))])
        return {"allowed": decision.allowed, "reason": decision.reason}

    def _private(self, shop: str) -> dict[str, Any]:
        found = self.context.store.get("shop_customers", pair_key(shop, self.id))
        return found or {"notes": [], "tags": []}


CUSTOMER_KIND: ActorKind[EngineContext] = ActorKind(KIND, CustomerActor, idle_timeout=60.0)
