"""Channels (沟通渠道): where a shop's buyers reach it, one buyer identity across them.

A channel belongs to one shop and has a type: ``web``, ``app``, ``miniprogram``, ``h5``
and ``pc`` speak the WebSocket protocol; ``api`` is for external adapters (WeChat,
Weibo, QQ, SMS, a marketplace's own app) that post signed messages in and receive the
shop's replies at their outbound URL; ``email`` and ``phone`` come with tickets.

* **Inbound** (:meth:`Channels.inbound`): a signed message of an external user opens or
  continues that user's conversation with the channel's shop, routed like any other,
  stored once per external message id (``channel_inbound``, written in the same commit
  as the message), its external time kept as ``sent_at`` (the seq is arrival order).
* **One buyer**: an external user is an identity (``channel`` type: the channel and the
  user's id there). An unknown one gets a buyer id of its own (``ch.<channel>.<hash>``);
  the platform links identities to its buyer ids (:meth:`Channels.link`), which merges
  the earlier buyer id's history into the linked buyer's (``customer_aliases``).
* **Outbound** (:meth:`Channels.stage_replies`): what the buyer should see in a
  conversation whose buyer last wrote through an ``api`` channel goes to that channel's
  outbound URL through the courier, queued in the commit of the message itself; its
  state (``queued`` → ``sent`` → ``delivered`` → ``read``, or ``failed``) is kept in
  ``deliveries`` and shown to staff live (an ``event`` frame ``delivery``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import TYPE_CHECKING, Any

from octim.courier import entry, outbox_key
from octim.domain.conversations.model import (
    NOTE,
    ConversationMeta,
    event_frame,
    message_key,
)
from octim.errors import ClientError, InvalidInput, NotFound
from octim.store import Op, Put, pack

if TYPE_CHECKING:
    from octim.courier import Courier
    from octim.domain.context import EngineContext
    from octim.events import Staged

TYPES = ("web", "app", "miniprogram", "h5", "pc", "api", "email", "phone")
SOCKET_TYPES = ("web", "app", "miniprogram", "h5", "pc")  # the WebSocket protocol
PLATFORMS = ("wechat", "weibo", "qq", "sms", "douyin", "other")  # what an api channel fronts
ALL_KINDS = ("text", "image", "voice", "link", "product", "order")
DEFAULT_KINDS = {"api": ("text", "link"), "email": ("text",), "phone": ("text",)}
CONVERTIBLE = ("link", "product", "order", "image")  # into text, where the channel says so
IDENTITY_TYPES = ("channel", "wechat_unionid", "phone", "email", "app_user")
CHANNEL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Delivery states in the order they happen; a receipt never moves a message back (a
# failed one that is re-sent goes on from failed to sent).
STATES = ("queued", "retrying", "sent", "failed", "delivered", "read")
RANK = {"queued": 0, "retrying": 1, "sent": 2, "failed": 3, "delivered": 4, "read": 5}


class UnsupportedKind(ClientError):
    """The buyer's channel cannot carry this kind of message."""

    code = "unsupported_kind"
    status = 422


def report_channel(record: dict[str, Any]) -> str:
    """What reports count a channel's conversations as: its type, or for an ``api``
    channel the platform it fronts (``wechat``…) when reports know it."""
    from octim.domain.reports.counting import CHANNELS

    if record["type"] == "api":
        platform = record.get("platform") or "api"
        return platform if platform in CHANNELS else "api"
    return str(record["type"])


def delivery_id(conversation: str, seq: int) -> str:
    """The delivery id of a message's reply on its channel (stable across retries)."""
    return f"{conversation}.{seq}"


def parse_delivery_id(delivery: str) -> tuple[str, int] | None:
    conversation, _, seq = delivery.rpartition(".")
    if not conversation or not seq.isdigit() or len(seq) > 12:
        return None
    return conversation, int(seq)


def as_text(kind: str, body: dict[str, Any], product_url: str) -> str:
    """A card or link for a channel that only carries text (``convert``)."""
    title = str(body.get("title") or "")
    if kind == "link":
        return f"{title} {body['url']}".strip()
    if kind == "image":
        return f"[图片] {body.get('url', '')}".strip()
    label = {"product": "商品", "order": "订单"}[kind]
    price = body.get("price")
    line = f"【{label}】{title or body.get(kind, '')}"
    if price is not None:
        line += f" ¥{price:g}" if isinstance(price, float) else f" ¥{price}"
    if body.get("status"):
        line += f" · {body['status']}"
    if kind == "product" and product_url:
        line += " " + product_url.replace("{product}", str(body.get("product", "")))
    return line


class Channels:
    """The engine's channel services (one per engine, on ``context.channels``)."""

    def __init__(self, context: EngineContext) -> None:
        self.context = context

    # -- records --------------------------------------------------------------------

    def get(self, channel: str) -> dict[str, Any] | None:
        record = self.context.store.get("channels", channel.encode())
        return None if record is None else dict(record)

    def check_kind(self, channel: str, kind: str) -> None:
        """Refuse a staff message the buyer's channel can neither carry nor convert."""
        record = self.get(channel)
        if record is None or kind == NOTE or kind in record["kinds"]:
            return
        if record.get("convert") and kind in CONVERTIBLE and "text" in record["kinds"]:
            return
        raise UnsupportedKind(
            f"the buyer's channel {record['name']!r} carries {', '.join(record['kinds'])}"
            f", not {kind}" + ("" if kind not in CONVERTIBLE else
                               " (set convert on the channel to send it as text)"))

    # -- identities -----------------------------------------------------------------

    def identity_key(self, kind: str, value: str, channel: str = "") -> bytes:
        """``identities`` key: a keyed hash (the value, a phone number or an openid,
        never appears in clear in an index key, even in an encrypted store)."""
        if kind == "email":  # one mailbox whatever its case: how mail servers treat it
            value = value.strip().lower()
        raw = f"{kind}\0{channel}\0{value}".encode()
        return hmac.new(self.context.settings.secret.encode(), raw, hashlib.sha256).digest()

    def buyer_of(self, channel: str, user: str) -> str | None:
        found = self.context.store.get("identities", self.identity_key("channel", user, channel))
        return None if found is None else str(found)

    def buyer_by(self, kind: str, value: str) -> str | None:
        """The buyer an identity (``email``, ``phone``, ...) is linked to, if any."""
        found = self.context.store.get("identities", self.identity_key(kind, value))
        return None if found is None else str(found)

    @staticmethod
    def new_buyer_id(channel: str, user: str) -> str:
        digest = hashlib.sha256(f"{channel}\0{user}".encode()).hexdigest()[:16]
        return f"ch.{channel}.{digest}"

    def first_contact_ops(self, channel: str, user: str, buyer: str) -> list[Op]:
        """What the first message of an unknown external user writes: the identity."""
        mine = list(self.context.store.get("customer_identities", buyer.encode()) or [])
        mine.append({"type": "channel", "channel": channel, "value": user})
        return [Put("identities", self.identity_key("channel", user, channel), pack(buyer)),
                Put("customer_identities", buyer.encode(), pack(mine))]

    async def link(self, buyer: str, identities: list[dict[str, str]]) -> dict[str, Any]:
        """Link ``identities`` to ``buyer`` (adding to those it has). An identity that
        belonged to another buyer id moves, and that id's history joins ``buyer``'s."""
        store = self.context.store
        mine = [dict(i) for i in store.get("customer_identities", buyer.encode()) or []]
        aliases = list(store.get("customer_aliases", buyer.encode()) or [])
        ops: list[Op] = []
        merged: list[str] = []
        losers: dict[str, list[dict[str, Any]]] = {}
        for identity in identities:
            if identity["type"] == "channel":
                record = self.get(identity.get("channel", ""))
                if record is None or record["type"] != "api":
                    raise NotFound(f"no api channel {identity.get('channel')!r}")
            key = self.identity_key(identity["type"], identity["value"],
                                    identity.get("channel", ""))
            before = store.get("identities", key)
            if before is not None and before != buyer:
                previous = str(before)
                theirs = losers.setdefault(previous, [
                    dict(i) for i in store.get("customer_identities", previous.encode()) or []])
                theirs[:] = [i for i in theirs if _same(i) != _same(identity)]
                if previous not in aliases:
                    aliases.append(previous)
                    merged.append(previous)
                    aliases += [a for a in store.get("customer_aliases", previous.encode()) or []
                                if a not in aliases and a != buyer]
            if not any(_same(i) == _same(identity) for i in mine):
                mine.append(dict(identity))
            ops.append(Put("identities", key, pack(buyer)))
        for previous, theirs in losers.items():
            ops.append(Put("customer_identities", previous.encode(), pack(theirs)))
        ops += [Put("customer_identities", buyer.encode(), pack(mine)),
                Put("customer_aliases", buyer.encode(), pack(aliases))]
        await store.write(ops)
        return {"customer": buyer, "identities": mine, "aliases": aliases, "merged": merged}

    def identities(self, buyer: str) -> list[dict[str, Any]]:
        return [dict(i) for i in self.context.store.get("customer_identities",
                                                         buyer.encode()) or []]

    def aliases(self, buyer: str) -> list[str]:
        """Buyer ids whose history is ``buyer``'s (merged by linking identities)."""
        return [str(a) for a in self.context.store.get("customer_aliases",
                                                        buyer.encode()) or []]

    # -- outbound -------------------------------------------------------------------

    def stage_replies(self, meta: ConversationMeta, frames: list[dict[str, Any]],
                      staged: Staged) -> None:
        """Queue what the buyer should see (``msg`` frames of staff, bot and system) to
        the conversation's reply channel, with the commit of the messages."""
        channel = meta.reply_via
        if not channel or not meta.reply_to:
            return
        record = self.get(channel)
        # Only the conversation's own shop's channel: not after a transfer to another shop,
        # nor a channel id deleted and then taken by another shop.
        if record is None or not record.get("outbound_url") or record["shop"] != meta.shop:
            return
        now = self.context.clock()
        at = int(now * 1000)
        for frame in frames:
            kind, body = frame["kind"], frame["body"]
            payload: dict[str, Any] = {
                "event": "message", "delivery": delivery_id(meta.id, frame["seq"]),
                "channel": channel, "shop": meta.shop, "conversation": meta.id,
                "seq": frame["seq"], "user": meta.reply_to,
                "from": {"id": frame["from"], "role": frame["role"]}, "ts": frame["ts"]}
            if kind in ("system", "notice"):  # a notice's text carries its order's news
                payload.update(kind="text", body={"text": body.get("text", "")})
                if kind == "notice":
                    payload["notice"] = body.get("notice")
            elif kind in record["kinds"]:
                payload.update(kind=kind, body=body)
            elif kind in CONVERTIBLE and record.get("convert"):
                payload.update(kind="text", body={"text": as_text(
                    kind, body, str(record.get("product_url") or ""))}, converted=kind)
            else:  # checked before it was sent; a bot answer is text
                payload.update(kind="text", body={"text": f"[{kind}]"}, converted=kind)
            raw = json.dumps(payload, ensure_ascii=False).encode()
            delivery = payload["delivery"]
            staged.add(outbox_key(at, delivery), entry(
                delivery, "channel:" + channel, "message", raw, now,
                conversation=meta.id, seq=frame["seq"]))
            staged.ops.append(Put("deliveries", message_key(meta.id, frame["seq"]), pack({
                "channel": channel, "delivery": delivery, "status": "queued", "at": at})))

    # -- delivery state (the courier's hook for channel targets) ---------------------

    def ops(self, item: dict[str, Any], status: str, error: str, now_ms: int) -> list[Op]:
        key = message_key(item["conversation"], item["seq"])
        record = dict(self.context.store.get("deliveries", key) or {})
        if record.get("status") in ("delivered", "read"):
            return []  # a receipt came first (delivered before our commit of "sent")
        record.update(status=status, at=now_ms, attempts=item["attempts"] + 1)
        if error:
            record["error"] = error
        return [Put("deliveries", key, pack(record))]

    def after(self, item: dict[str, Any], status: str, error: str) -> None:
        # What the record says now: a receipt that came first (delivered) stays shown.
        record = self.context.store.get("deliveries", message_key(item["conversation"],
                                                                  item["seq"])) or {}
        self.tell_staff(item["conversation"], item["seq"], record.get("status", status),
                        record.get("error", error) if record.get("status") in
                        ("failed", "retrying") else "")

    def tell_staff(self, conversation: str, seq: int, status: str, error: str = "") -> None:
        meta = ConversationMeta.load(self.context.store, conversation)
        if meta is None:
            return
        staff = {u for u in (meta.agent, *meta.helpers) if u}
        data: dict[str, Any] = {"seq": seq, "status": status}
        if error:
            data["error"] = error
        self.context.fanout.publish(event_frame(conversation, "delivery", data), staff)

    async def receipts(self, channel: str, receipts: list[dict[str, Any]]) -> dict[str, Any]:
        """Delivery callbacks of a channel: ``delivered``, ``failed``, ``read``. A receipt
        for another channel's message, or one unknown, is counted as ignored."""
        store = self.context.store
        ops: list[Op] = []
        told: list[tuple[str, int, str, str]] = []
        ignored = 0
        for receipt in receipts:
            parsed = parse_delivery_id(receipt["delivery"])
            record = None if parsed is None else store.get("deliveries", message_key(*parsed))
            if parsed is None or record is None or record["channel"] != channel:
                ignored += 1
                continue
            status = receipt["status"]
            if RANK[status] <= RANK.get(record["status"], 0):
                continue
            updated = {**record, "status": status, "at": receipt.get("ts") or
                       self.context.now_ms()}
            if receipt.get("error"):
                updated["error"] = receipt["error"]
            ops.append(Put("deliveries", message_key(*parsed), pack(updated)))
            told.append((parsed[0], parsed[1], status, receipt.get("error", "")))
        if ops:
            await store.write(ops)
        for conversation, seq, status, error in told:
            self.tell_staff(conversation, seq, status, error)
        return {"updated": len(told), "ignored": ignored}

    def delivery_states(self, conversation: str, first: int, last: int
                        ) -> dict[int, dict[str, Any]]:
        """The delivery records of a conversation's messages ``first``..``last``."""
        rows = self.context.store.scan("deliveries", message_key(conversation, first),
                                       message_key(conversation, last + 1))
        return {int.from_bytes(key[-8:], "big"): dict(value) for key, value in rows}


def _same(identity: dict[str, Any]) -> tuple[str, str, str]:
    return identity["type"], identity.get("channel", ""), identity["value"]


def install(context: EngineContext, courier: Courier) -> Channels:
    """Put the channel services on the context and their hook on the courier."""
    channels = Channels(context)
    context.channels = channels
    courier.hooks["channel"] = channels
    return channels


def validate_channel_id(channel: str) -> str:
    if not CHANNEL_ID.fullmatch(channel) or channel in TYPES:
        raise InvalidInput("a channel id is 1-64 letters, digits, '-' or '_', and not a "
                           "channel type's name")
    return channel

