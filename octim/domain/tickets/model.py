"""Tickets (工单): the typed record, its vocabularies and keys.

A ticket belongs to a shop (or the platform, shop ``*``) and has a number per shop
that people can say aloud (``T-1024``). Its record lives in ``tickets`` under its id;
its history (every change: who, when, field, before, after) and its thread (public
replies and internal notes) are ordered scopes of ``ticket_history`` and
``ticket_comments`` under the ticket id. Times are the engine clock's milliseconds.
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

from octim.errors import ClientError
from octim.store import Put
from octim.store.keys import encode_key

NEW, OPEN, PENDING, ON_HOLD, SOLVED, CLOSED = "new", "open", "pending", "on_hold", "solved", \
    "closed"
STATUSES = (NEW, OPEN, PENDING, ON_HOLD, SOLVED, CLOSED)
#: Where each status may go by hand; nothing returns to ``new`` and ``closed`` is final.
TRANSITIONS: dict[str, frozenset[str]] = {
    NEW: frozenset({OPEN, PENDING, ON_HOLD, SOLVED}),
    OPEN: frozenset({PENDING, ON_HOLD, SOLVED}),
    PENDING: frozenset({OPEN, ON_HOLD, SOLVED}),
    ON_HOLD: frozenset({OPEN, PENDING, SOLVED}),
    SOLVED: frozenset({OPEN, CLOSED}),
    CLOSED: frozenset(),
}
TYPES = ("question", "incident", "problem", "task")
PRIORITIES = ("low", "normal", "high", "urgent")
SOURCES = ("chat", "api", "email", "phone", "form", "bot")
#: What a buyer sees of each status (the requester's view).
BUYER_LABELS = {NEW: "已提交", OPEN: "处理中", PENDING: "待您回复", ON_HOLD: "处理中",
                SOLVED: "已解决", CLOSED: "已关闭"}
PLATFORM = "*"  # the shop id of platform tickets (平台介入)
MAX_TAGS = 20
MAX_FOLLOWERS = 50


class TicketClosed(ClientError):
    """The ticket is closed: read-only (a buyer's reply opens a follow-up)."""

    code = "ticket_closed"
    status = 409


class InvalidTransition(ClientError):
    """The ticket's status cannot go there from where it is."""

    code = "invalid_transition"
    status = 409


def new_ticket_id() -> str:
    return "tk_" + secrets.token_urlsafe(12)


def scope_key(ticket: str, n: int) -> bytes:
    """The key of entry ``n`` of a ticket's history or thread (ordered per ticket)."""
    return encode_key(ticket, n)


class Source(msgspec.Struct):
    """Where the ticket came from, with a link back."""

    kind: str = "api"
    conversation: str | None = None
    seq_from: int | None = None
    seq_to: int | None = None


class Ticket(msgspec.Struct):
    """A ticket's record (database ``tickets``), owned by its shop's TicketDesk."""

    id: str
    shop: str
    number: int
    subject: str
    status: str
    created: int
    updated: int
    requester: str | None = None  # the buyer
    description: str = ""
    type: str = "question"
    category: str | None = None
    priority: str = "normal"
    assignee: str | None = None
    group: str | None = None
    order: str | None = None
    sku: str | None = None
    tags: list[str] = []
    fields: dict[str, Any] = {}  # the shop's custom fields
    due: int | None = None
    source: Source = msgspec.field(default_factory=Source)
    followers: list[str] = []
    history: int = 0  # entries in ticket_history
    comments: int = 0  # entries in ticket_comments
    first_public_reply: int | None = None
    solved_at: int | None = None
    closed_at: int | None = None
    merged_into: str | None = None
    follow_up_of: str | None = None
    custom_status: str | None = None  # the shop's own status name (tickets/fields.py)
    escalated_to: str | None = None  # the linked ticket of another shop or the platform
    escalated_from: str | None = None  # the ticket this one was escalated from
    sla: dict[str, Any] | None = None  # {"policy", "business_hours", "metrics"} (sla.py)
    attachments: list[dict[str, Any]] = []  # uploads it came with: {upload, name, mime, size}
    mail_ids: list[str] = []  # the Message-IDs of its email thread, oldest first (≤ 20)

    @property
    def label(self) -> str:
        """``T-<number>``: what people say aloud."""
        return f"T-{self.number}"

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Ticket:
        return msgspec.convert(record, cls)

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = msgspec.to_builtins(self)
        return record

    def view(self) -> dict[str, Any]:
        """The staff view (the record with its label)."""
        return {**self.to_record(), "label": self.label}

    def buyer_view(self, custom: dict[str, tuple[str, str]] | None = None) -> dict[str, Any]:
        """What the requester sees: no assignee, group, tags, fields or followers. The
        shop's custom status shows its buyer label while the ticket is in its status
        (``custom``: key → (buyer label, status), tickets/fields.py)."""
        label = BUYER_LABELS[self.status]
        shown = (custom or {}).get(self.custom_status or "")
        if shown is not None and shown[1] == self.status:
            label = shown[0]
        return {"id": self.id, "label": self.label, "shop": self.shop,
                "subject": self.subject, "status": self.status,
                "status_label": label, "created": self.created,
                "updated": self.updated, "order": self.order}

    def put(self) -> Put:
        return Put("tickets", self.id.encode(), _ENCODER.encode(self))


_ENCODER = msgspec.msgpack.Encoder()
