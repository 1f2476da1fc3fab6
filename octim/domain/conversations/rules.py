"""A conversation's rules as pure functions: (state, command, now) → Outcome.

Each rule takes the current :class:`~.model.ConversationMeta`, the command's values
and the engine's time, and returns an :class:`Outcome`: the meta after the change (a
copy; the argument is never touched), the store operations that make it durable, and
the frames to publish once they are. A refusal is raised as the client error it is.
The ConversationActor only sequences them: check membership, call the rule, submit
the operations, adopt the new meta, publish after the commit. They need no actor, no
store and no sockets, so their tests run in milliseconds (tests/test_conversation_rules.py).

Rules so far: read marks, resolve, rate, recall, close. Sends, assignment, transfer and
the bot's turns still decide inside the actor (docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import msgspec

from octim.domain.conversations.model import (
    ASSIGNED,
    BOT,
    CLOSED,
    QUEUED,
    RESOLVED,
    ConversationMeta,
    Forbidden,
    InvalidBody,
    InvalidState,
    StoredMessage,
    event_frame,
    event_key,
    pair_key,
)
from octim.errors import NotFound
from octim.store import Delete, Op, Put, pack

#: Frames to publish after the commit, each with the connection to leave out (or None).
Frames = list[tuple[dict[str, Any], int | None]]


def log_event(meta: ConversationMeta, event: str, data: dict[str, Any], now: int,
              frames: Frames) -> Op:
    """Count an event in ``meta``, queue its frame, and return its event-log record."""
    meta.events += 1
    frames.append((event_frame(meta.id, event, data), None))
    return Put("events", event_key(now, meta.id, meta.events),
               pack({"conversation": meta.id, "shop": meta.shop, "event": event,
                     "data": data, "ts": now}))


def set_state(meta: ConversationMeta, state: str) -> Op:
    """Move ``meta`` to ``state``; the shop's index of its conversations follows."""
    meta.state = state
    return Put("idx_shop_conversations", pair_key(meta.shop, meta.id), pack(state))


@dataclass(slots=True)
class Outcome:
    """What a rule decided: the new meta, the operations, the frames for after."""

    meta: ConversationMeta
    ops: list[Op] = field(default_factory=list)
    frames: Frames = field(default_factory=list)


def _copy(meta: ConversationMeta, **changes: Any) -> ConversationMeta:
    """A copy to change; containers a rule changes are replaced, never edited."""
    return msgspec.structs.replace(meta, **changes)


def mark_read(meta: ConversationMeta, user: str, upto: int) -> Outcome | None:
    """``user`` has read up to ``upto`` (clamped to the last message); None when that
    moves nothing (read marks only go forward)."""
    upto = min(upto, meta.last_seq)
    if upto <= meta.reads.get(user, 0):
        return None
    after = _copy(meta, reads={**meta.reads, user: upto})
    return Outcome(after, [after.put()],
                   [(event_frame(meta.id, "read", {"user": user, "upto": upto}), None)])


def resolve(meta: ConversationMeta, by: str, now: int) -> Outcome:
    """Resolve an open conversation: its agent's capacity is freed (by the caller) and
    the buyer may still reopen it within the reopen window."""
    if meta.state not in (BOT, QUEUED, ASSIGNED):
        raise InvalidState(f"conversation is {meta.state}, not open")
    after = _copy(meta, resolved_at=now, updated=now)
    if after.agent:
        after.last_agent = after.agent
    out = Outcome(after)
    out.ops.append(set_state(after, RESOLVED))
    out.ops.append(log_event(after, "resolved", {"by": by}, now, out.frames))
    out.ops += [after.put(), Put("idx_open_conversations", meta.id.encode(), pack(now))]
    return out


def rate(meta: ConversationMeta, role: str, score: int, comment: str, now: int) -> Outcome:
    """The buyer's one rating of a resolved (or closed) conversation."""
    if role != "buyer":
        raise Forbidden("only the buyer rates a conversation")
    if meta.state not in (RESOLVED, CLOSED):
        raise InvalidState("a conversation can be rated once it is resolved")
    if meta.rating is not None:
        raise InvalidState("this conversation is already rated")
    if not 1 <= score <= 5 or len(comment) > 1000:
        raise InvalidBody("score must be 1-5 and the comment at most 1000 characters")
    after = _copy(meta, rating={"score": score, "comment": comment, "ts": now})
    out = Outcome(after)
    out.ops.append(log_event(after, "rated", {"score": score}, now, out.frames))
    out.ops.append(after.put())
    return out


def recall(meta: ConversationMeta, said: StoredMessage | None, seq: int, user: str,
           now: int, window_ms: int) -> Outcome:
    """The author takes back message ``seq`` (``said``, as stored) within the window;
    a tombstone keeps its place, author and time."""
    if said is None:
        raise NotFound(f"no message {seq} in {meta.id}")
    if said.sender != user:
        raise Forbidden("only the author may recall a message")
    if said.recalled_at is not None:
        raise InvalidState(f"message {seq} is already recalled")
    if now - said.ts > window_ms:
        raise InvalidState("the recall window has passed")
    tombstone = dataclasses.replace(said, body={}, recalled_at=now)
    after = _copy(meta)
    out = Outcome(after, [tombstone.put(meta.id)])
    out.ops.append(log_event(after, "recalled", {"seq": seq, "by": user}, now, out.frames))
    out.ops.append(after.put())
    return out


def close(meta: ConversationMeta, reason: str, now: int, *, current: bool) -> Outcome:
    """Close for good (``reason``: inactive, resolved). ``current``: the buyer's index
    still names this conversation as the open one with its shop, so it is cleared and
    the buyer's next ``open`` starts a new conversation."""
    after = _copy(meta, closed_at=now)
    out = Outcome(after)
    out.ops.append(set_state(after, CLOSED))
    out.ops.append(log_event(after, "closed", {"reason": reason}, now, out.frames))
    out.ops += [after.put(), Delete("idx_open_conversations", meta.id.encode())]
    if current:
        out.ops.append(Delete("idx_customer_conversations", pair_key(meta.buyer, meta.shop)))
    return out


__all__ = ["Frames", "Outcome", "close", "log_event", "mark_read", "rate", "recall", "resolve",
           "set_state"]
