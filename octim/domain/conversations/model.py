"""Conversation data: states, message kinds and their validation, store keys, and the
typed records :class:`ConversationMeta` and :class:`StoredMessage`.

Pure functions, constants and records; the ConversationActor applies them.
"""

from __future__ import annotations

import re
import secrets
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msgspec

from octim.errors import ClientError
from octim.store import Append, Put, pack
from octim.store.keys import encode_key

# States and the order they normally follow.
BOT, QUEUED, ASSIGNED, RESOLVED, CLOSED = "bot", "queued", "assigned", "resolved", "closed"
STATES = (BOT, QUEUED, ASSIGNED, RESOLVED, CLOSED)
OPEN_STATES = (BOT, QUEUED, ASSIGNED, RESOLVED)

STAFF_ROLES = ("agent", "shop_admin", "platform_admin")
CLIENT_KINDS = ("text", "image", "voice", "link", "product", "order", "note")
NOTE = "note"  # a private note: staff only, never to the buyer (docs/protocol.md)
NOTICE = "notice"  # a service notice from a platform event (docs/outreach.md): server only
KINDS = (*CLIENT_KINDS, "system", NOTICE)
MAX_ID_CHARS = 128
UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
UPLOAD_PATH = "/api/uploads/"
MAX_FIELD_CHARS = 500


class Forbidden(ClientError):
    """The caller may not do this (not a participant, wrong role, not the author)."""

    code = "forbidden"
    status = 403


class InvalidBody(ClientError):
    """A frame's fields have the wrong types or values."""

    code = "invalid_body"
    status = 422


class UnknownKind(ClientError):
    """A message kind OctIM does not know; the message is not stored."""

    code = "unknown_kind"
    status = 422


class TooLarge(ClientError):
    """A message body is over its size limit."""

    code = "too_large"
    status = 413


class ConversationClosed(ClientError):
    """The conversation is closed; open a new one."""

    code = "conversation_closed"
    status = 409


class InvalidState(ClientError):
    """The conversation is not in a state that allows this."""

    code = "invalid_state"
    status = 409


def coalesce_key(*parts: str) -> int:
    """A stable 64-bit key for coalescing droppable frames (typing of one user in one chat)."""
    data = "\0".join(parts).encode()
    return (zlib.crc32(data) << 32) | zlib.adler32(data)


def new_conversation_id(now: float) -> str:
    """Time-sortable, unguessable conversation id."""
    return f"c{int(now * 1000):x}{secrets.token_hex(5)}"


def new_upload_id() -> str:
    """Unguessable upload id."""
    return "u" + secrets.token_hex(12)


def pair_key(first: str, second: str) -> bytes:
    """``first \\0 second`` for the two-part index keys."""
    return f"{first}\0{second}".encode()


def message_key(conversation: str, seq: int) -> bytes:
    """Key of a message in the ``messages`` database."""
    return encode_key(conversation, seq)


def log_op(conversation: str, shop: str, event: str, data: dict[str, Any], ts: int) -> Append:
    """One record of the durable event log (database ``log``, in commit order): what
    happened to a conversation, in which shop, when. Reports and the monitor read the
    log through a cursor (docs/architecture.md); a message's record carries its seq,
    role, sender and kind, never its body."""
    return Append("log", pack({"event": event, "conversation": conversation, "shop": shop,
                               "data": data, "ts": ts}))


def _text(body: dict[str, Any], field: str, limit: int, *, required: bool = True) -> str | None:
    value = body.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidBody(f"body.{field} must be a non-empty string")
    if len(value) > limit:
        raise TooLarge(f"body.{field} is {len(value)} characters, the limit is {limit}")
    return value


def _url(body: dict[str, Any], field: str, *, required: bool = True) -> str | None:
    url = _text(body, field, 2048, required=required)
    if url is not None and (urlsplit(url).scheme not in ("http", "https") or
                            not urlsplit(url).netloc):
        raise InvalidBody(f"body.{field} must be an http(s) URL")
    return url


def image_host_allowed(url: str, hosts: frozenset[str]) -> bool:
    """Whether a card image may load in staff browsers: https on a configured image host
    (``alicdn.com`` also allows its subdomains). Anything else could track when and
    where agents read, or reach into their network."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    return parts.scheme == "https" and not parts.username and any(
        host == allowed or host.endswith("." + allowed) for allowed in hosts)


def validate_body(kind: str, body: Any, max_text_chars: int,
                  image_hosts: frozenset[str] = frozenset(), *,
                  uploads: bool = True) -> dict[str, Any]:
    """The normalised body of a client message, or an error; unknown fields are dropped.

    A card's ``image`` is one of the sender's uploads (``/api/uploads/<id>``, when
    ``uploads``) or an https URL on one of ``image_hosts`` (:func:`image_host_allowed`).
    """
    if kind not in KINDS:
        raise UnknownKind(f"unknown message kind {kind!r}; known: {', '.join(CLIENT_KINDS)}")
    if kind in ("system", NOTICE):
        raise Forbidden(f"{kind} messages come from the server only")
    if not isinstance(body, dict):
        raise InvalidBody("body must be a map")
    out: dict[str, Any] = {}
    if kind in ("text", NOTE):
        out["text"] = _text(body, "text", max_text_chars)
    elif kind in ("image", "voice"):
        upload = body.get("upload")
        if not isinstance(upload, str) or not UPLOAD_ID.fullmatch(upload):
            raise InvalidBody("body.upload must be an upload id from POST /api/uploads")
        out["upload"] = upload
        duration = body.get("duration")
        if kind == "voice" and duration is not None:
            if not isinstance(duration, int | float) or isinstance(duration, bool) or \
                    not 0 < duration <= 600:
                raise InvalidBody("body.duration must be a number of seconds up to 600")
            out["duration"] = duration
    elif kind == "link":
        out["url"] = _url(body, "url")
        title = _text(body, "title", MAX_FIELD_CHARS, required=False)
        if title is not None:
            out["title"] = title
    else:  # product or order card
        out[kind] = _text(body, kind, MAX_ID_CHARS)
        for field in ("title", "status"):
            value = _text(body, field, MAX_FIELD_CHARS, required=False)
            if value is not None:
                out[field] = value
        image = body.get("image")
        if isinstance(image, str) and image.startswith(UPLOAD_PATH) and uploads:
            if not UPLOAD_ID.fullmatch(image[len(UPLOAD_PATH):]):
                raise InvalidBody("body.image: not an upload of POST /api/uploads")
            out["image"] = image  # the actor checks that the sender owns this image
        elif image is not None:
            image = _url(body, "image")
            assert image is not None
            if not image_host_allowed(image, image_hosts):
                raise InvalidBody("body.image must be one of your uploads (/api/uploads/…) "
                                  "or an https URL on one of the platform's image hosts "
                                  "(setting image_hosts)")
            out["image"] = image
        price = body.get("price")
        if price is not None:
            if not isinstance(price, int | float) or isinstance(price, bool) or price < 0:
                raise InvalidBody("body.price must be a non-negative number")
            out["price"] = price
    return out


def card_from_context(context: Any, image_hosts: frozenset[str] = frozenset()
                      ) -> tuple[str, dict[str, Any]] | None:
    """The product or order card a conversation opened from that page carries."""
    if not isinstance(context, dict):
        return None
    for kind in ("order", "product"):
        if kind in context:
            return kind, validate_body(kind, {**context, kind: context[kind]}, MAX_FIELD_CHARS,
                                       image_hosts, uploads=False)
    return None


class ConversationMeta(msgspec.Struct):
    """A conversation's meta record (database ``conversations``), owned by its actor.

    The stored form is the msgpack map of every field (absent values as nil), so a
    reader elsewhere may still take it as a plain dict through ``Store.get``. Times are
    the engine clock's milliseconds.
    """

    id: str
    shop: str
    buyer: str
    state: str
    created: int
    updated: int
    level: int = 0
    context: dict[str, Any] = {}  # the routing context of the page it opened from
    last_seq: int = 0
    reads: dict[str, int] = {}  # user → the highest seq they have read
    events: int = 0  # event-log records written (their per-conversation counter)
    preview: str = ""
    waiting_since: int | None = None  # the oldest buyer message nobody answered yet
    first_response: int | None = None
    agent: str | None = None
    last_agent: str | None = None
    agent_replied: bool = False  # the assigned agent has answered (no-reply timer off)
    assigned_at: int | None = None
    routed: bool = False  # the buyer's first message started routing
    first_text: str = ""
    handoff: dict[str, Any] | None = None  # the bot's hand-off, until an agent gets it
    bot_unanswered: int = 0
    resolved_at: int | None = None
    closed_at: int | None = None
    rating: dict[str, Any] | None = None
    notes: list[int] = []  # the seqs of private notes (the buyer never sees or counts them)
    helpers: list[str] = []  # colleagues invited to assist (no capacity; see rules.invite)
    # The api channel the buyer last wrote through, and their id there: where what the
    # buyer should see is delivered (None: the buyer reads it over the WebSocket).
    reply_via: str | None = None
    reply_to: str | None = None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ConversationMeta:
        """Decode a stored record (as ``Store.get`` returns it)."""
        return msgspec.convert(record, cls)

    @classmethod
    def load(cls, store: Any, conversation: str) -> ConversationMeta | None:
        """The last durable meta of ``conversation`` (None if there is none): how readers
        other than its actor (inboxes, the API, the dispatcher) see it."""
        record = store.get("conversations", conversation.encode())
        return None if record is None else msgspec.convert(record, cls)

    def visible_to(self, user: str, role: str, shops: tuple[str, ...]) -> bool:
        """Whether ``user`` takes part in it now (:func:`takes_part`)."""
        return takes_part(self.buyer, self.shop, user, role, shops)

    def to_record(self) -> dict[str, Any]:
        """The stored map, as a dict (what ``DescribeConversation`` answers)."""
        record: dict[str, Any] = msgspec.to_builtins(self)
        return record

    def put(self) -> Put:
        """The store operation that writes this record."""
        return Put("conversations", self.id.encode(), _META_ENCODER.encode(self))


_META_ENCODER = msgspec.msgpack.Encoder()


@dataclass(slots=True)
class StoredMessage:
    """One message as the ``messages`` database holds it, under (conversation, seq).

    The one encode (:meth:`to_record`) and decode (:meth:`from_record`) of the record;
    ``sender`` is the record's and the frame's ``"from"``. A recalled message stays as
    a tombstone: seq, id, author and time, an empty body, ``recalled_at``.
    """

    seq: int
    id: str
    sender: str
    role: str
    kind: str
    body: dict[str, Any]
    ts: int
    recalled_at: int | None = None
    via: str | None = None  # the channel it came or went through (docs/channels.md)
    sent_at: int | None = None  # an external channel's own time for it (ms)

    def to_record(self) -> dict[str, Any]:
        """The stored (msgpack) form."""
        record = {"seq": self.seq, "id": self.id, "from": self.sender, "role": self.role,
                  "kind": self.kind, "body": self.body, "ts": self.ts}
        if self.recalled_at is not None:
            record.update(recalled=True, recalled_at=self.recalled_at)
        if self.via is not None:
            record["via"] = self.via
        if self.sent_at is not None:
            record["sent_at"] = self.sent_at
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> StoredMessage:
        """Decode what :meth:`to_record` stored."""
        return cls(record["seq"], record["id"], record["from"], record["role"],
                   record["kind"], record["body"], record["ts"], record.get("recalled_at"),
                   record.get("via"), record.get("sent_at"))

    def put(self, conversation: str) -> Put:
        """The store operation that writes this message."""
        return self.written(conversation)[0]

    def frame(self, conversation: str) -> dict[str, Any]:
        """Its ``msg`` frame."""
        return msg_frame(conversation, self.to_record())

    def written(self, conversation: str) -> tuple[Put, dict[str, Any]]:
        """The store operation and the ``msg`` frame, from one record (the send path
        needs both)."""
        record = self.to_record()
        return (Put("messages", message_key(conversation, self.seq), pack(record)),
                msg_frame(conversation, record))


def msg_frame(conversation: str, record: Any) -> dict[str, Any]:
    """The ``msg`` frame of a stored message (tombstones keep seq, author and time)."""
    frame = {"type": "msg", "conversation": conversation, "seq": record["seq"],
             "id": record["id"], "from": record["from"], "role": record["role"],
             "kind": record["kind"], "body": record["body"], "ts": record["ts"]}
    if record.get("recalled"):
        frame["recalled"] = True
    if "via" in record:
        frame["via"] = record["via"]
    if "sent_at" in record:
        frame["sent_at"] = record["sent_at"]
    return frame


def preview(kind: str, body: dict[str, Any]) -> str:
    """A short line for inbox lists: the text, or the kind of a card or attachment."""
    if kind in ("text", "system", NOTICE):
        return str(body.get("text", ""))[:80]
    title = body.get("title")
    return f"[{kind}] {title}"[:80] if title else f"[{kind}]"


def event_frame(conversation: str, event: str, data: dict[str, Any]) -> dict[str, Any]:
    """An ``event`` frame."""
    return {"type": "event", "conversation": conversation, "event": event, "data": data}


def may_transfer_to(role: str, shops: tuple[str, ...], shop: str, settings: Any) -> bool:
    """Whether staff may move a conversation into ``shop``: a shop they serve, any shop
    for platform staff, or any shop when the platform allows it (``cross_shop_transfer``)."""
    if role == "platform_admin" or "*" in shops or settings.cross_shop_transfer:
        return True
    return shop in shops


def takes_part(buyer: str, shop: str, user: str, role: str, shops: tuple[str, ...]) -> bool:
    """Whether a user may read and write the conversation of ``buyer`` with ``shop``:
    that buyer; staff whose token lists the shop; platform admins."""
    if role == "buyer":
        return buyer == user
    if role == "platform_admin" or "*" in shops:  # platform staff (the overflow group)
        return True
    return shop in shops
