"""Client frames of protocol v1 and their validation (pydantic, strict types).

Unknown fields are ignored so clients can be newer than the server; wrong
types or values are ``invalid_body`` errors naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from octim.domain.conversations.model import InvalidBody

Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
# Printable ASCII: client ids become part of store keys, which have a byte limit.
ClientId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
Seq = Annotated[int, Field(ge=0, le=2**63 - 1)]


class ClientFrame(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class Open(ClientFrame):
    shop: Id
    ref: Any = None
    context: dict[str, Any] = Field(default_factory=dict)


class Send(ClientFrame):
    conversation: Id
    id: ClientId
    kind: Annotated[str, Field(min_length=1, max_length=32)]
    body: dict[str, Any]


class Sync(ClientFrame):
    conversation: Id
    after: Seq = 0
    limit: Annotated[int, Field(ge=1, le=500)] = 200


class Inbox(ClientFrame):
    pass


class Typing(ClientFrame):
    conversation: Id


class Read(ClientFrame):
    conversation: Id
    upto: Seq


class Recall(ClientFrame):
    conversation: Id
    seq: Annotated[int, Field(ge=1, le=2**63 - 1)]


class Resolve(ClientFrame):
    conversation: Id


class Rate(ClientFrame):
    conversation: Id
    score: Annotated[int, Field(ge=1, le=5)]
    comment: Annotated[str, Field(max_length=1000)] = ""


class Presence(ClientFrame):
    status: Literal["online", "busy", "away"]


class Ping(ClientFrame):
    pass


class Transfer(ClientFrame):
    conversation: Id
    to_agent: Annotated[str, Field(max_length=128)] = ""
    to_group: Annotated[str, Field(max_length=128)] = ""
    to_shop: Annotated[str, Field(max_length=128)] = ""
    note: Annotated[str, Field(max_length=1000)] = ""


class InviteFrame(ClientFrame):
    conversation: Id
    agent: Id
    remove: bool = False


class FeedbackFrame(ClientFrame):
    conversation: Id
    seq: Annotated[int, Field(ge=1, le=2**63 - 1)]
    helpful: bool


class MonitorFrame(ClientFrame):
    shops: Annotated[list[Id], Field(max_length=500)] = Field(default_factory=list)


FRAMES: dict[str, type[ClientFrame]] = {
    "open": Open, "send": Send, "sync": Sync, "inbox": Inbox, "typing": Typing,
    "read": Read, "recall": Recall, "resolve": Resolve, "rate": Rate,
    "presence": Presence, "ping": Ping, "transfer": Transfer, "feedback": FeedbackFrame,
    "monitor": MonitorFrame, "invite": InviteFrame,
}


def parse(kind: str, frame: dict[str, Any]) -> ClientFrame:
    """Validate a decoded frame of a known type; raises InvalidBody naming the field."""
    try:
        return FRAMES[kind].model_validate(frame)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or kind
        raise InvalidBody(f"{where}: {first['msg']}") from None
