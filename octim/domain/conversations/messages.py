"""Messages the ConversationActor handles (immutable records; see octim.actors.messages)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from octim.actors import Message, record

CONVERSATION = "conversation"  # the actor kind of conversations


@record
class SendMessage(Message):
    """Append a message; answers a Reply that fills with the ack once durable."""

    conversation: str
    user: str
    role: str
    shops: tuple[str, ...]
    client_id: str
    kind: str
    body: Mapping[str, Any]
    origin: str  # the sending connection's name (Connection.name), which gets the ack
    # instead of the msg frame; "" when no connection sent it (the API, the demo)
    via: str = ""  # a buyer's channel: a WebSocket type (web, app…) or an api channel's id
    via_user: str = ""  # the buyer's id on that api channel (replies go there)
    inbound_key: bytes = b""  # channel_inbound key: the external message id, stored once
    sent_at: int = 0  # the external channel's time for it (ms), kept beside ours


@record
class AdoptContext(Message):
    """The buyer opened the conversation a notice opened and they have not written to
    yet: it takes their page's routing context (already filtered) and their level."""

    conversation: str
    context: Mapping[str, Any]
    level: int
    card: tuple[str, Mapping[str, Any]] | None = None  # the page's card, as at an open


@record
class PostNotice(Message):
    """A service notice into the conversation; ``sent_key`` (``notices_sent``) and
    ``log`` (an ``outreach_log`` record, its key first) are written in its commit."""

    conversation: str
    body: Mapping[str, Any]
    sent_key: bytes
    log_key: bytes
    log: Mapping[str, Any]


@record
class MarkRead(Message):
    """The user has read everything up to ``upto``."""

    conversation: str
    user: str
    role: str
    shops: tuple[str, ...]
    upto: int


@record
class Typing(Message):
    """The user is typing (coalesced, never stored)."""

    conversation: str
    user: str
    role: str
    shops: tuple[str, ...]


@record
class Recall(Message):
    """The author takes back message ``seq`` (within the recall window)."""

    conversation: str
    user: str
    role: str
    shops: tuple[str, ...]
    seq: int


@record
class Resolve(Message):
    """Mark the conversation resolved."""

    conversation: str
    user: str
    role: str
    shops: tuple[str, ...]


@record
class Rate(Message):
    """The buyer rates a resolved conversation (once)."""

    conversation: str
    user: str
    role: str
    shops: tuple[str, ...]
    score: int
    comment: str


@record
class AssignConversation(Message):
    """The dispatcher gave the conversation to an agent (``rule`` says why)."""

    conversation: str
    agent: str
    rule: str
    group: str | None = None  # the skill group routing chose it for (reports count by it)


@record
class Unassign(Message):
    """The dispatcher took the conversation back from its agent (no reply, offline)."""

    conversation: str
    reason: str


@record
class Transfer(Message):
    """Staff move the conversation to another agent, group or shop, with a note."""

    conversation: str
    user: str
    role: str
    shops: tuple[str, ...]
    to_agent: str
    to_group: str
    to_shop: str
    note: str


@record
class Invite(Message):
    """Staff invite a colleague to assist in the conversation (or let them go)."""

    conversation: str
    user: str
    role: str
    shops: tuple[str, ...]
    agent: str
    remove: bool


@record
class CloseIfIdle(Message):
    """Close the conversation if it has been inactive for the auto-close time."""

    conversation: str


@record
class DescribeConversation(Message):
    """Ask for the conversation's meta record."""

    conversation: str


@record
class Feedback(Message):
    """The buyer says whether a bot answer helped."""

    conversation: str
    user: str
    role: str
    shops: tuple[str, ...]
    seq: int
    helpful: bool


@record
class Post(Message):
    """A message from the platform itself: a ``system`` notice or a ``bot`` line."""

    conversation: str
    role: str
    text: str
