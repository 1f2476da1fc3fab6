"""A conversation's rules as pure functions: (state, command, now) → Outcome.

Each rule takes the current :class:`~.model.ConversationMeta`, the command's values
and the engine's time, and returns an :class:`Outcome`: the meta after the change (a
copy; the argument is never touched), the store operations that make it durable, and
the frames to publish once they are. A refusal is raised as the client error it is.
The ConversationActor only sequences them: check membership, call the rule, submit
the operations, adopt the new meta, publish after the commit. They need no actor, no
store and no sockets, so their tests run in milliseconds (tests/test_conversation_rules.py).

Every change of a conversation is a rule here: a send (with its reopen), a post,
read marks, recall, resolve, rate, close, assignment and unassignment, transfer, and
the bot's turns (an answer, a miss, a hand-off). What a rule needs from elsewhere (the
upload record, whether a shop exists, the agent's display name, the transcript) the
actor reads first and passes in as plain values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import msgspec

from octim.domain import uploads
from octim.domain.bot import ANGER
from octim.domain.conversations.model import (
    ASSIGNED,
    BOT,
    CLOSED,
    NOTE,
    NOTICE,
    QUEUED,
    RESOLVED,
    STAFF_ROLES,
    ConversationClosed,
    ConversationMeta,
    Forbidden,
    InvalidBody,
    InvalidState,
    StoredMessage,
    event_frame,
    log_op,
    pair_key,
    preview,
)
from octim.errors import NotFound
from octim.store import Delete, Op, Put, pack

#: Frames to publish after the commit, each with the name of the connection to leave out
#: (the sender's, which gets an ack instead; None for none).
Frames = list[tuple[dict[str, Any], str | None]]


def log_event(meta: ConversationMeta, event: str, data: dict[str, Any], now: int,
              frames: Frames) -> Op:
    """Count an event in ``meta``, queue its frame, and return its event-log record."""
    meta.events += 1
    frames.append((event_frame(meta.id, event, data), None))
    return log_op(meta.id, meta.shop, event, data, now)


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
    said: StoredMessage | None = None  # the message it appended, if any
    route: str = ""  # why the conversation now (re)enters routing ("" for no)
    replied: bool = False  # the assigned agent's first reply: its no-reply timer stops
    direct: list[tuple[dict[str, Any], tuple[str, ...]]] = field(default_factory=list)
    # frames for named users only (a mention), published with the others after the commit


class ReopenExpired(ConversationClosed):
    """A buyer wrote to a resolved conversation after the reopen window: the actor
    closes it (:func:`close`, reason ``resolved``) and refuses the message."""


def _copy(meta: ConversationMeta, **changes: Any) -> ConversationMeta:
    """A copy to change; containers a rule changes are replaced, never edited."""
    return msgspec.structs.replace(meta, **changes)


def append(meta: ConversationMeta, sender: str, role: str, kind: str, body: dict[str, Any],
           now: int, frames: Frames, *, msg_id: str = "", exclude: str | None = None,
           via: str | None = None, sent_at: int | None = None
           ) -> tuple[StoredMessage, list[Op]]:
    """The one way a message joins a conversation: the next seq in ``meta`` (changed),
    the engine's time, the store operations (the record, and its entry in the event
    log), and its ``msg`` frame queued for after the commit (``exclude``: the sender's
    connection, which gets an ack instead). ``msg_id`` defaults to ``<role>-<seq>``
    for server-written messages."""
    seq = meta.last_seq + 1
    said = StoredMessage(seq, msg_id or f"{role}-{seq}", sender, role, kind, body, now,
                         via=via, sent_at=sent_at)
    meta.last_seq = seq
    put, frame = said.written(meta.id)
    frames.append((frame, exclude))
    return said, [put, message_logged(meta.id, meta.shop, said)]


def _note(meta: ConversationMeta, sender: str, role: str, body: dict[str, Any],
          client_id: str, dedupe: str, now: int, exclude: str | None) -> Outcome:
    """A private note among staff: a message in the thread that the buyer never gets
    (the actor sends it to staff only; sync leaves it out for the buyer). It answers
    nobody: no preview, no waiting clock, no first response, no routing. Colleagues it
    names (``body["mentions"]``, resolved by the actor) hear of it."""
    if role not in STAFF_ROLES:
        raise Forbidden("private notes are for staff")
    after = _copy(meta, reads={**meta.reads})
    out = Outcome(after)
    said, written = append(after, sender, role, NOTE, body, now, out.frames,
                           msg_id=client_id, exclude=exclude)
    out.said = said
    after.notes = [*meta.notes, said.seq]
    after.reads[sender] = max(after.reads.get(sender, 0), said.seq)
    mentioned = tuple(u for u in body.get("mentions", ()) if u != sender)
    if mentioned:
        out.direct.append((event_frame(meta.id, "mentioned", {
            "seq": said.seq, "by": sender, "excerpt": str(body.get("text", ""))[:200]}),
            mentioned))
    out.ops += [*written, Put("client_ids", pair_key(meta.id, dedupe), pack([said.seq, now])),
                after.put()]
    return out


def invite(meta: ConversationMeta, by: str, role: str, agent: str,
           agent_shops: tuple[str, ...] | None, remove: bool, now: int) -> Outcome:
    """Staff invite a colleague of the shop to assist (协助): they get the conversation's
    frames and find it in their inbox, may reply and write notes; it takes none of their
    capacity (routing counts the owner only). ``remove`` lets them go again."""
    if role not in STAFF_ROLES:
        raise Forbidden("only staff invite colleagues")
    if meta.state == CLOSED:
        raise ConversationClosed(f"conversation {meta.id} is closed")
    if agent_shops is None or not (meta.shop in agent_shops or "*" in agent_shops):
        raise NotFound(f"no agent {agent!r} in this shop")
    if agent == meta.agent:
        raise InvalidState(f"{agent} already owns this conversation")
    if remove == (agent not in meta.helpers):
        raise InvalidState(f"{agent} is {'not ' if remove else ''}assisting already")
    helpers = [h for h in meta.helpers if h != agent] if remove else [*meta.helpers, agent]
    after = _copy(meta, helpers=helpers)
    out = Outcome(after)
    if not remove:  # the colleague's inbox index names it from now on
        out.ops.append(Put("idx_user_conversations", pair_key(agent, meta.id),
                           pack(meta.shop)))
    out.ops.append(log_event(after, "uninvited" if remove else "invited",
                             {"agent": agent, "by": by}, now, out.frames))
    out.ops.append(after.put())
    return out


def message_logged(conversation: str, shop: str, said: StoredMessage) -> Op:
    """A message's entry in the event log (no body: the message record holds that; a bot
    answer names the knowledge-base entry it gave, for the reports' top entries)."""
    data = {"seq": said.seq, "role": said.role, "from": said.sender, "kind": said.kind}
    if said.role == "bot" and isinstance(said.body.get("kb"), str):
        data["kb"] = said.body["kb"]
    elif said.kind == NOTICE:  # what the reports count of proactive messages, by type
        data["notice"] = str(said.body.get("notice") or "")
    elif said.role == "buyer" and said.kind == "text":
        text = str(said.body.get("text", "")).lower()
        if any(word in text for word in ANGER):  # a complaint cue (投诉焦点), whoever serves
            data["cue"] = "complaint"
    return log_op(conversation, shop, "message", data, said.ts)


def attach_upload(upload: dict[str, Any] | None, ref: str, user: str, kind: str,
                  conversation: str, body: dict[str, Any]) -> list[Op]:
    """A message carries upload ``ref`` (its record ``upload``, or None): the sender
    must own it and it must be of ``kind``. ``body`` gains its type, size and URL, and
    the conversation's participants may read it from this commit on (an index row:
    the upload's record is never rewritten; octim.domain.uploads)."""
    if upload is None or upload["owner"] != user:
        raise NotFound(f"no upload {ref!r} of yours")
    if upload["kind"] != kind:
        raise InvalidBody(f"upload {ref!r} is a {upload['kind']}, not a {kind}")
    body.update({"mime": upload["mime"], "size": upload["size"],
                 "url": f"/api/uploads/{upload['id']}"})
    return [uploads.attached(upload["id"], conversation)]


def send(meta: ConversationMeta, sender: str, role: str, kind: str, body: dict[str, Any],
         client_id: str, dedupe: str, now: int, reopen_window_ms: int, *,
         exclude: str | None = None, via: str | None = None, reply_to: str | None = None,
         sent_at: int | None = None) -> Outcome:
    """A participant's message (``body`` already validated). A buyer writing to a
    resolved conversation within the reopen window reopens it (``route`` "reopened",
    preferring the last agent); after the window :class:`ReopenExpired`. The buyer's
    first message starts routing (``route`` "first_message", which wins over a
    reopen); staff messages stop the
    waiting clock and count the first response. ``dedupe`` is the client-id key
    (sender and client id) the ack is remembered under. A buyer's ``via`` is the channel
    it came through, with ``reply_to`` their id there for an api channel (then what the
    buyer should see goes out through it); a staff message goes out through the reply
    channel and records it as its ``via``."""
    if meta.state == CLOSED:
        raise ConversationClosed(f"conversation {meta.id} is closed; open a new one")
    if kind == NOTE:
        return _note(meta, sender, role, body, client_id, dedupe, now, exclude)
    after = _copy(meta, reads={**meta.reads})
    out = Outcome(after)
    if meta.state == RESOLVED and role == "buyer":
        if now - (meta.resolved_at or 0) > reopen_window_ms:
            raise ReopenExpired(f"conversation {meta.id} is closed; open a new one")
        # The dispatcher prefers the last agent, but only if they are online now.
        out.ops.append(set_state(after, QUEUED))
        after.agent = None
        out.ops.append(log_event(after, "reopened", {"state": QUEUED}, now, out.frames))
        out.route = "reopened"
    if role == "buyer":
        after.reply_via, after.reply_to = (via, reply_to) if reply_to else (None, None)
    else:
        via = after.reply_via
    said, written = append(after, sender, role, kind, body, now, out.frames,
                           msg_id=client_id, exclude=exclude, via=via, sent_at=sent_at)
    out.said = said
    after.updated = now
    after.preview = preview(kind, body)
    if role == "buyer":  # the oldest buyer message nobody has answered yet
        if after.waiting_since is None:
            after.waiting_since = now
    elif role in STAFF_ROLES:
        after.waiting_since = None
        if after.first_response is None:
            after.first_response = now
        if not after.agent_replied:
            after.agent_replied = True
            out.replied = sender == after.agent
    after.reads[sender] = max(after.reads.get(sender, 0), said.seq)  # one's own is read
    if role == "buyer" and not after.routed and after.state == QUEUED:
        # Routing starts with the buyer's first message: a window opened and left empty
        # takes no agent's capacity, and the first question's keywords can pick the group.
        after.routed = True
        after.first_text = body.get("text", "")[:500]
        out.route = "first_message"
    out.ops += [*written, Put("client_ids", pair_key(meta.id, dedupe), pack([said.seq, now])),
                Put("idx_open_conversations", meta.id.encode(), pack(now)), after.put()]
    return out


def post(meta: ConversationMeta, role: str, text: str, now: int) -> Outcome:
    """A system notice or a bot line posted through the API."""
    if role not in ("system", "bot") or not text.strip() or len(text) > 5000:
        raise InvalidBody("post as 'system' or 'bot', with 1-5000 characters")
    if meta.state == CLOSED:
        raise ConversationClosed(f"conversation {meta.id} is closed")
    after = _copy(meta)
    out = Outcome(after)
    out.said, written = append(after, role, role, "system" if role == "system" else "text",
                               {"text": text}, now, out.frames)
    out.ops += [*written, after.put()]
    return out


def notice(meta: ConversationMeta, body: dict[str, Any], now: int) -> Outcome:
    """A service notice (``body``: ``notice`` type, ``text``, an ``order`` card): from the
    system, to the buyer. Like a system line it starts no routing and stops no clock."""
    if meta.state == CLOSED:
        raise ConversationClosed(f"conversation {meta.id} is closed")
    after = _copy(meta)
    out = Outcome(after)
    out.said, written = append(after, "system", "system", NOTICE, body, now, out.frames)
    after.updated = now
    after.preview = preview(NOTICE, body)
    out.ops += [*written, after.put()]
    return out


UNSUBSCRIBE_WORDS = frozenset({"退订", "td", "unsubscribe", "取消订阅"})
UNSUBSCRIBED = ("已为您退订本店的营销消息；订单和物流等服务通知不受影响。"
                " You will get no more offers from this shop; order updates continue.")


def unsubscribes(text: str) -> bool:
    """A buyer's whole message asks to stop marketing (退订, TD…; docs/outreach.md)."""
    return text.strip().strip("。.!！").lower() in UNSUBSCRIBE_WORDS


def adopt_context(meta: ConversationMeta, context: dict[str, Any], level: int,
                  card: tuple[str, dict[str, Any]] | None, now: int) -> Outcome:
    """A notice's conversation takes the page the buyer opened it from, with its card
    (as an open adds it: the buyer's, not a logged message), and the level their token
    gives; it stays one a notice opened, for the reports."""
    after = _copy(meta, context={**(context or meta.context), "origin": "notice"},
                  level=level, reads={**meta.reads})
    out = Outcome(after)
    if card is not None:
        seq = after.last_seq + 1
        said = StoredMessage(seq, f"card-{meta.id}-{seq}", meta.buyer, "buyer", card[0],
                             card[1], now)
        after.last_seq = seq
        after.reads[meta.buyer] = seq
        put, frame = said.written(meta.id)
        out.ops.append(put)
        out.frames.append((frame, None))
    out.ops.append(after.put())
    return out


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
    if said.kind == NOTE:  # a recall event would tell the buyer a note existed
        raise InvalidState("a private note is not recalled; write another")
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


def assign(meta: ConversationMeta, agent: str, rule: str, agent_name: str | None,
           now: int, group: str | None = None) -> Outcome | None:
    """Routing gave the conversation to ``agent`` (by ``rule``); None when it raced
    with a resolve or close (the caller hands the capacity back). ``agent_name`` is the
    name a buyer sees ("客服小美"), not the account id. The agent gets the bot's
    hand-off first: reason, guesses, transcript."""
    if meta.state in (RESOLVED, CLOSED):
        return None
    previous = meta.agent
    after = _copy(meta, agent=agent, last_agent=agent, agent_replied=False, assigned_at=now)
    out = Outcome(after)
    out.ops.append(set_state(after, ASSIGNED))
    if previous and previous != agent:
        out.ops.append(log_event(after, "transferred", {"from": previous, "to": agent}, now,
                                 out.frames))
    assigned: dict[str, Any] = {"agent": agent, "rule": rule}
    if group:
        assigned["group"] = group
    if agent_name is not None:
        assigned["agent_name"] = agent_name
    if meta.handoff:
        assigned["handoff"], after.handoff = meta.handoff, None
    out.ops.append(log_event(after, "assigned", assigned, now, out.frames))
    out.ops += [Put("idx_user_conversations", pair_key(agent, meta.id), pack(meta.shop)),
                after.put()]
    return out


def unassign(meta: ConversationMeta, reason: str, now: int) -> Outcome | None:
    """Routing took the conversation back from its agent (offline, no reply, deleted);
    None when it is not assigned any more."""
    if meta.state != ASSIGNED or not meta.agent:
        return None
    after = _copy(meta, agent=None)
    out = Outcome(after)
    out.ops.append(set_state(after, QUEUED))
    out.ops.append(log_event(after, "unassigned", {"agent": meta.agent, "reason": reason}, now,
                             out.frames))
    out.ops.append(after.put())
    return out


@dataclass(frozen=True, slots=True)
class TransferFacts:
    """What a transfer needs to know from the store, read by the actor beforehand."""

    may_enter: bool  # the staff member may move conversations into the target shop
    shop_exists: bool
    group_exists: bool  # the target group (True when none is named)
    agent_shops: tuple[str, ...] | None  # the named agent's shops (None: no such agent)
    current_in_old: bool  # the buyer's index names this conversation as open with old shop
    open_in_new: bool  # the buyer already has an open conversation with the new shop


def transfer(meta: ConversationMeta, by: str, role: str, to_agent: str, to_group: str,
             to_shop: str, note: str, facts: TransferFacts, now: int) -> Outcome:
    """Staff move a waiting or assigned conversation to another agent, group or shop;
    it goes back to routing (``route`` "transfer"). Refusals in the order that lets
    nobody probe which shops exist: a shop one may not enter and one that does not
    exist get the same answer."""
    if role not in STAFF_ROLES:
        raise Forbidden("only staff transfer conversations")
    if meta.state not in (QUEUED, ASSIGNED):
        raise InvalidState(f"conversation is {meta.state}")
    old_shop = meta.shop
    shop = to_shop or old_shop
    if shop != old_shop and not (facts.may_enter and facts.shop_exists):
        raise Forbidden(f"you may not transfer to shop {shop!r}")
    if to_group and not facts.group_exists:
        raise NotFound(f"no group {to_group!r} in shop {shop!r}")
    if to_agent and (facts.agent_shops is None or shop not in facts.agent_shops):
        raise NotFound(f"no agent {to_agent!r} serving shop {shop!r}")
    if not (to_agent or to_group or shop != old_shop):
        raise InvalidBody("transfer needs to_agent, to_group or another to_shop")
    previous = meta.agent
    after = _copy(meta, agent=None)
    out = Outcome(after, route="transfer")
    out.ops.append(set_state(after, QUEUED))
    if shop != old_shop:
        buyer = meta.buyer
        after.shop = shop
        out.ops += [Delete("idx_shop_conversations", pair_key(old_shop, meta.id)),
                    Put("idx_shop_conversations", pair_key(shop, meta.id), pack(QUEUED))]
        if facts.current_in_old:
            out.ops.append(Delete("idx_customer_conversations", pair_key(buyer, old_shop)))
        if not facts.open_in_new:
            out.ops.append(Put("idx_customer_conversations", pair_key(buyer, shop),
                               pack(meta.id)))
    data = {"from": previous, "to": to_agent or None, "group": to_group or None,
            "from_shop": old_shop, "to_shop": shop, "by": by, "note": note}
    out.ops.append(log_event(after, "transferred", data, now, out.frames))
    out.said, written = append(after, by, "system", "system",
                               {"text": note, "transfer": data}, now, out.frames,
                               msg_id=f"transfer-{after.last_seq + 1}")
    out.ops += [*written, after.put()]
    return out


# -- the bot's turns -------------------------------------------------------------------

def bot_answer(meta: ConversationMeta, body: dict[str, Any], now: int) -> Outcome:
    """The bot says ``body`` (an answer, or its "did you mean" suggestions): the
    buyer is answered, so no person is awaited."""
    after = _copy(meta, preview=preview("text", body), waiting_since=None)
    out = Outcome(after)
    out.said, written = append(after, "bot", "bot", "text", body, now, out.frames)
    out.ops += [*written, after.put()]
    return out


def bot_missed(meta: ConversationMeta, suggestions: list[dict[str, Any]], handoff_after: int,
               now: int) -> Outcome | None:
    """The knowledge base had no answer: count the miss and offer ``suggestions``; None
    once the misses reach ``handoff_after`` (the caller hands over, "unanswered")."""
    misses = meta.bot_unanswered + 1
    if misses >= handoff_after:
        return None
    return bot_answer(_copy(meta, bot_unanswered=misses),
                      {"text": "抱歉，我没能理解您的问题。您是想问：", "suggestions": suggestions},
                      now)


def handoff(meta: ConversationMeta, reason: str, guesses: list[dict[str, Any]],
            asked: StoredMessage, transcript: list[dict[str, Any]], now: int) -> Outcome:
    """转人工: the conversation goes to routing (``route`` "bot_handoff") with the
    reason, the bot's guesses and the ``transcript`` (the stored records before the
    buyer's message ``asked``, which is added last), and the buyer is told."""
    fields = ("seq", "from", "role", "kind", "body", "ts")
    shown = [{k: r[k] for k in fields} for r in transcript if r["seq"] < asked.seq]
    shown.append({k: v for k, v in asked.to_record().items() if k in fields})
    after = _copy(meta, routed=True, waiting_since=asked.ts,
                  handoff={"reason": reason, "guesses": guesses, "transcript": shown,
                           "at": now},
                  first_text=asked.body["text"][:500], bot_unanswered=meta.bot_unanswered +
                  (1 if reason == "unanswered" else 0))
    out = Outcome(after, route="bot_handoff")
    out.ops.append(set_state(after, QUEUED))
    out.ops.append(log_event(after, "handoff", {"reason": reason}, now, out.frames))
    notice = {"text": "正在为您转接人工客服，请稍候。", "handoff": {"reason": reason}}
    out.said, written = append(after, "bot", "system", "system", notice, now, out.frames,
                               msg_id=f"handoff-{after.last_seq + 1}")
    out.ops += [*written, after.put()]
    return out


__all__ = [
    "Frames",
    "Outcome",
    "ReopenExpired",
    "TransferFacts",
    "append",
    "assign",
    "attach_upload",
    "bot_answer",
    "bot_missed",
    "close",
    "handoff",
    "log_event",
    "mark_read",
    "message_logged",
    "post",
    "rate",
    "recall",
    "resolve",
    "send",
    "set_state",
    "transfer",
    "unassign",
]
