"""Inbound email for tickets: parse a raw RFC 5322 message and say which ticket it joins.

Parsing is the standard library's (``email`` with the modern policy). The text is the
plain part (or the HTML part's text), without the quoted earlier message (``>`` lines
and what follows an "On … wrote:" line). Threading, in order:

1. ``In-Reply-To`` or ``References`` names a message already in one of the shop's
   tickets (every inbound Message-ID is recorded with its ticket);
2. the subject carries the ticket's label in brackets, ``[T-1024]``;

and in both cases only when the sender is the ticket's requester (``email:<address>``):
anyone else's mail opens a new ticket, so nobody can write into another buyer's ticket
by quoting its number. Otherwise the message opens a new ticket (source ``email``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser

from octim.errors import InvalidInput

TOKEN = re.compile(r"\[T-(\d{1,12})\]")
MSGID = re.compile(r"<[^<>\s]{1,250}>")
WROTE = re.compile(r"^(On .{0,200} wrote:|在.{0,200}写道[：:])\s*$")
MAX_TEXT = 20_000
MAX_ADDRESS = 254  # RFC 5321's longest path
MAX_ATTACHMENTS = 10


@dataclass(frozen=True, slots=True)
class Inbound:
    message_id: str
    refs: tuple[str, ...]  # In-Reply-To first, then References
    sender: str  # the lower-cased address
    name: str
    subject: str
    text: str
    attachments: tuple[tuple[str, bytes], ...] = ()  # (file name, bytes), at most 10

    @property
    def requester(self) -> str:
        return f"email:{self.sender}"

    @property
    def token(self) -> int | None:
        found = TOKEN.search(self.subject)
        return int(found.group(1)) if found else None


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _unquoted(text: str) -> str:
    kept = []
    for line in text.splitlines():
        if WROTE.match(line.strip()):
            break
        if not line.lstrip().startswith(">"):
            kept.append(line.rstrip())
    return "\n".join(kept).strip()[:MAX_TEXT]


def parse(raw: bytes) -> Inbound:
    """The parts of a raw message threading needs (InvalidInput when it has no
    sender or no Message-ID)."""
    message: EmailMessage = BytesParser(policy=policy.default).parsebytes(raw)
    try:
        senders = message["from"].addresses if message["from"] is not None else ()
    except (AttributeError, IndexError, ValueError):
        senders = ()
    if not senders or not isinstance(senders[0], Address) or "@" not in senders[0].addr_spec:
        raise InvalidInput("the message has no From address")
    if len(senders[0].addr_spec) > MAX_ADDRESS:  # it keys the requester's index
        raise InvalidInput(f"the From address is longer than {MAX_ADDRESS} characters")
    message_id = MSGID.findall(str(message.get("message-id", "")))
    if not message_id:
        raise InvalidInput("the message has no Message-ID")
    refs = [*MSGID.findall(str(message.get("in-reply-to", ""))),
            *MSGID.findall(str(message.get("references", "")))]
    body = message.get_body(preferencelist=("plain", "html"))
    text = ""
    if body is not None:
        try:
            content = body.get_content()
        except (LookupError, ValueError):
            content = ""
        if body.get_content_subtype() == "html":
            reader = _Text()
            reader.feed(str(content))
            content = "".join(reader.parts)
        text = _unquoted(str(content))
    subject = " ".join(str(message.get("subject", "")).split())[:200]
    return Inbound(message_id[0], tuple(dict.fromkeys(refs)), senders[0].addr_spec.lower(),
                   senders[0].display_name[:100], subject, text, _attachments(message))


def _attachments(message: EmailMessage) -> tuple[tuple[str, bytes], ...]:
    """The message's attachments: a safe file name (no path) and the decoded bytes."""
    found: list[tuple[str, bytes]] = []
    try:
        parts = list(message.iter_attachments())
    except (LookupError, ValueError, KeyError, AttributeError):
        return ()
    for part in parts:
        if len(found) >= MAX_ATTACHMENTS:
            break
        try:
            content = part.get_content()
        except (LookupError, ValueError, KeyError):
            continue
        data = content.encode("utf-8") if isinstance(content, str) else content
        if not isinstance(data, bytes) or not data:
            continue  # a nested message or an empty part
        name = str(part.get_filename() or "attachment")
        name = " ".join(name.replace("\\", "/").rsplit("/", 1)[-1].split())[:200]
        found.append((name or "attachment", data))
    return tuple(found)
