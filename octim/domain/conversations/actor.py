"""The ConversationActor: one conversation's sequence numbers, state and receipts.

It owns the conversation's meta record and is the only writer of its
messages. A send is validated, deduplicated by the client's message id,
given the next sequence number and handed to the store with
:meth:`~octim.store.Store.submit`; the actor goes on with its next message
at once (pipelining). When the commit is synced, callbacks run in sequence
order: the sender's pending ack is filled and the ``msg`` frame is published
to every participant connection. Nothing is acknowledged or delivered before
it is durable.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from octim.actors import Actor, ActorKind, Address, Message, Reply, thaw
from octim.domain.context import EngineContext
from octim.domain.conversations import rules
from octim.domain.conversations.bot import BotTurns
from octim.domain.conversations.messages import (
    CONVERSATION,
    AssignConversation,
    CloseIfIdle,
    DescribeConversation,
    Feedback,
    MarkRead,
    Post,
    Rate,
    Recall,
    Resolve,
    SendMessage,
    Transfer,
    Typing,
    Unassign,
)
from octim.domain.conversations.model import (
    ASSIGNED,
    BOT,
    CLOSED,
    QUEUED,
    RESOLVED,
    STAFF_ROLES,
    UPLOAD_PATH,
    ConversationClosed,
    ConversationMeta,
    Forbidden,
    InvalidBody,
    InvalidState,
    StoredMessage,
    coalesce_key,
    event_frame,
    may_transfer_to,
    message_key,
    pair_key,
    preview,
    takes_part,
    validate_body,
)
from octim.domain.kb.knowledge import RecordFeedback
from octim.domain.routing.dispatcher import ID as DISPATCHER_ID
from octim.domain.routing.dispatcher import KIND as DISPATCHER
from octim.domain.routing.messages import AgentReplied, ConversationReleased, RouteConversation
from octim.errors import NotFound, StoreError
from octim.store import Delete, Op, Put, pack

log = logging.getLogger("octim.conversations")

KIND = CONVERSATION
__all__ = [
    "CONVERSATION_KIND",
    "KIND",
    "AssignConversation",
    "CloseIfIdle",
    "ConversationActor",
    "DescribeConversation",
    "Feedback",
    "MarkRead",
    "Post",
    "Rate",
    "Recall",
    "Resolve",
    "SendMessage",
    "Transfer",
    "Typing",
    "Unassign",
]
ACK_CACHE = 4096  # recent client ids remembered in memory (older ones: the store)
WEBHOOK_EVENTS = {"assigned": "conversation.assigned", "transferred": "conversation.transferred",
                  "resolved": "conversation.resolved", "closed": "conversation.closed",
                  "rated": "rating.given"}


class ConversationActor(BotTurns, Actor[EngineContext]):
    """See the module docstring."""

    def __init__(self, address: Address, context: EngineContext) -> None:
        super().__init__(address, context)
        self.meta: ConversationMeta
        self.acked: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self.pending: dict[str, Reply[dict[str, Any]]] = {}
        self.broken: BaseException | None = None

    @property
    def id(self) -> str:
        return self.address.id

    async def on_start(self) -> None:
        record = self.context.store.get("conversations", self.id.encode())
        if record is None:
            raise NotFound(f"no conversation {self.id!r}")
        self.meta = ConversationMeta.from_record(record)

    async def receive(self, message: Message) -> Any:
        if self.broken is not None:
            # A write of ours failed: our in-memory sequence is ahead of the
            # store. Crash so the supervisor restarts us from the store.
            raise RuntimeError("a conversation write failed") from self.broken
        match message:
            case SendMessage():
                return await self._send(message)
            case MarkRead():
                return await self._mark_read(message)
            case Typing():
                self._check_member(message.user, message.role, message.shops)
                self.context.fanout.publish(
                    event_frame(self.id, "typing", {"user": message.user}),
                    self._participants() - {message.user}, droppable=True,
                    key=coalesce_key(self.id, message.user, "typing"))
                return None
            case Recall():
                return await self._recall(message)
            case Resolve():
                return await self._resolve(message)
            case Rate():
                return await self._rate(message)
            case AssignConversation(agent=agent, rule=rule):
                return await self._assign(agent, rule)
            case Unassign(reason=reason):
                return await self._unassign(reason)
            case Transfer():
                return await self._transfer(message)
            case Post(role=role, text=text):
                return await self._post(role, text)
            case Feedback(seq=seq, helpful=helpful):
                self._check_member(message.user, message.role, message.shops)
                said = self._message(seq)
                if message.role != "buyer" or said is None or said.role != "bot" or \
                        "kb" not in said.body:
                    raise InvalidBody("feedback is for the buyer, on a bot answer")
                await self._kb_tell(RecordFeedback(said.body["kb"], helpful))
                return None
            case CloseIfIdle():
                limit = self.context.settings.auto_close_after * 1000
                if self.meta.state != CLOSED and \
                        self.context.now_ms() - self.meta.updated >= limit:
                    await self._close("inactive")
                return None
            case DescribeConversation():
                return self.meta.to_record()
        raise InvalidBody(f"conversation actor cannot handle {type(message).__name__}")

    # -- helpers --------------------------------------------------------------

    def _check_member(self, user: str, role: str, shops: tuple[str, ...]) -> None:
        if not takes_part(self.meta.buyer, self.meta.shop, user, role, shops):
            # Same answer as for a conversation that does not exist: no probing.
            raise NotFound(f"no conversation {self.id!r}")

    def _message(self, seq: int) -> StoredMessage | None:
        record = self.context.store.get("messages", message_key(self.id, seq))
        return None if record is None else StoredMessage.from_record(record)

    def _participants(self) -> set[str]:
        users = {self.meta.buyer}
        if self.meta.agent:
            users.add(self.meta.agent)
        return users

    def _meta_op(self) -> Put:
        return self.meta.put()

    def _event(self, event: str, data: dict[str, Any], frames: list[Any]) -> list[Op]:
        """Record an event in the log and queue its frame for after the commit."""
        return [rules.log_event(self.meta, event, data, self.context.now_ms(), frames)]

    def _set_state(self, state: str) -> list[Op]:
        return [rules.set_state(self.meta, state)]

    def _append(self, sender: str, role: str, kind: str, body: dict[str, Any],
                frames: list[Any], *, msg_id: str = "", exclude: int | None = None
                ) -> tuple[StoredMessage, Op]:
        """The one way a message joins the conversation: the next seq, the engine's
        time, the record's store operation, and its ``msg`` frame queued for after the
        commit (``exclude``: the sender's connection, which gets an ack instead).
        ``msg_id`` defaults to ``<role>-<seq>`` for server-written messages."""
        seq = self.meta.last_seq + 1
        said = StoredMessage(seq, msg_id or f"{role}-{seq}", sender, role, kind, body,
                             self.context.now_ms())
        self.meta.last_seq = seq
        put, frame = said.written(self.id)
        frames.append((frame, exclude))
        return said, put

    async def _commit(self, ops: list[Op], frames: list[Any],
                      done: Reply[Any] | None = None, result: Any = None,
                      settle: Callable[[bool], None] | None = None,
                      also: tuple[str, ...] = ()) -> None:
        """Submit ``ops``; once durable publish ``frames`` and fill ``done`` with ``result``.

        ``settle(ok)`` runs first, with whether the commit succeeded. These
        callbacks run on the actor's trio thread between its awaits and touch
        only the ack bookkeeping. ``also`` adds recipients (a transferred-away agent).
        """
        users = self._participants() | set(also)

        def durable(error: str | None) -> None:
            if settle is not None:
                settle(error is None)
            if error is not None:
                self.broken = StoreError(error)
                log.error("conversation write failed", extra={"conversation": self.id,
                                                              "error": error})
                if done is not None:
                    done.fill(error=StoreError(error))
                return
            if done is not None:
                done.fill(result)
            for frame, exclude in frames:
                self.context.fanout.publish(frame, users, exclude=exclude)
                self._emit(frame)

        await self.context.store.submit(ops, durable)

    def _emit(self, frame: dict[str, Any]) -> None:
        """Tell the outside world (webhooks, embedders) about a durable change."""
        if frame["type"] == "msg":
            self.context.emit("message.sent", {**frame, "shop": self.meta.shop})
        elif frame["type"] == "event" and frame["event"] in WEBHOOK_EVENTS:
            self.context.emit(WEBHOOK_EVENTS[frame["event"]], {
                "conversation": self.id, "shop": self.meta.shop,
                "buyer": self.meta.buyer, **frame["data"]})

    # -- sending ----------------------------------------------------------------

    async def _send(self, m: SendMessage) -> Reply[dict[str, Any]]:
        self._check_member(m.user, m.role, m.shops)
        reply: Reply[dict[str, Any]] = Reply()
        # Dedupe per (sender, client id): one participant can never collide with,
        # or learn about, another's message ids. Client ids are printable ASCII,
        # so the separator cannot occur in them.
        dedupe = f"{m.user}\x1f{m.client_id}"
        seen = self._seen(dedupe)
        if seen is not None:
            if isinstance(seen, Reply):
                return seen
            reply.fill(self._ack(m.client_id, *seen))
            return reply
        # Everything that can refuse the message comes before any change of state.
        body = validate_body(m.kind, thaw(m.body), self.context.settings.max_text_chars,
                             self.context.image_hosts)
        ops: list[Op] = []
        if m.kind in ("image", "voice"):
            ops += self._attach_upload(m, body)
        elif str(body.get("image", "")).startswith(UPLOAD_PATH):  # a card with our picture
            ops += self._attach_upload(m, {"upload": body["image"][len(UPLOAD_PATH):]},
                                       kind="image")
        frames: list[Any] = []
        ops += await self._prepare_state_for_send(m.role, frames)
        # frames holds the reopened event if this send reopened the conversation.
        route_after_reopen = self._route("reopened", prefer=self.meta.last_agent or "") \
            if frames else None
        stored, put = self._append(m.user, m.role, m.kind, body, frames, msg_id=m.client_id,
                                   exclude=m.conn)
        seq, ts = stored.seq, stored.ts
        self.meta.updated = ts
        self.meta.preview = preview(m.kind, body)
        if m.role == "buyer":  # the oldest buyer message nobody has answered yet
            if self.meta.waiting_since is None:
                self.meta.waiting_since = ts
        elif m.role in STAFF_ROLES:
            self.meta.waiting_since = None
        reads = self.meta.reads
        reads[m.user] = max(reads.get(m.user, 0), seq)  # one's own message is read
        if m.role in STAFF_ROLES and self.meta.first_response is None:
            self.meta.first_response = ts
        replied_now = m.role in STAFF_ROLES and not self.meta.agent_replied
        if replied_now:
            self.meta.agent_replied = True
        route = route_after_reopen
        if m.role == "buyer" and not self.meta.routed and self.meta.state == QUEUED:
            # Routing starts with the buyer's first message: a window opened
            # and left empty takes no agent's capacity, and the keywords of
            # the first question can pick the group.
            self.meta.routed = True
            self.meta.first_text = body.get("text", "")[:500]
            route = self._route("first_message")
        ops += [
            put,
            Put("client_ids", pair_key(self.id, dedupe), pack([seq, ts])),
            Put("idx_open_conversations", self.id.encode(), pack(ts)),
            self._meta_op(),
        ]
        self.pending[dedupe] = reply
        client_id = m.client_id

        def settle(ok: bool) -> None:
            self.pending.pop(dedupe, None)
            if ok:
                self.acked[dedupe] = (seq, ts)
                if len(self.acked) > ACK_CACHE:
                    self.acked.popitem(last=False)

        await self._commit(ops, frames, reply, self._ack(client_id, seq, ts), settle)
        if route is not None:
            await self._dispatcher(route)
        elif m.role in STAFF_ROLES and m.user == self.meta.agent and replied_now:
            await self._dispatcher(AgentReplied(self.id))
        if m.role == "buyer" and m.kind == "text":
            if self.meta.state == BOT:
                await self._bot_turn(stored)
            elif self.meta.state == ASSIGNED and self.meta.agent:
                await self._assist(stored)
        return reply

    async def _post(self, role: str, text: str) -> dict[str, Any]:
        if role not in ("system", "bot") or not text.strip() or len(text) > 5000:
            raise InvalidBody("post as 'system' or 'bot', with 1-5000 characters")
        if self.meta.state == CLOSED:
            raise ConversationClosed(f"conversation {self.id} is closed")
        frames: list[Any] = []
        said, put = self._append(role, role, "system" if role == "system" else "text",
                                 {"text": text}, frames)
        done: Reply[Any] = Reply()
        await self._commit([put, self._meta_op()], frames, done, said.to_record())
        return dict(await done.wait())

    def _seen(self, dedupe: str) -> tuple[int, int] | Reply[dict[str, Any]] | None:
        """An earlier send with this ``sender \x1f client id``: pending, or (seq, ts)."""
        if dedupe in self.pending:
            return self.pending[dedupe]
        if dedupe in self.acked:
            return self.acked[dedupe]
        stored = self.context.store.get("client_ids", pair_key(self.id, dedupe))
        return None if stored is None else (stored[0], stored[1])

    def _ack(self, client_id: str, seq: int, ts: int) -> dict[str, Any]:
        return {"type": "ack", "id": client_id, "conversation": self.id, "seq": seq, "ts": ts}

    async def _prepare_state_for_send(self, role: str, frames: list[Any]) -> list[Op]:
        state = self.meta.state
        if state == CLOSED:
            raise ConversationClosed(f"conversation {self.id} is closed; open a new one")
        if state != RESOLVED or role != "buyer":
            return []
        window = self.context.settings.reopen_window * 1000
        if self.context.now_ms() - (self.meta.resolved_at or 0) > window:
            await self._close("resolved")
            raise ConversationClosed(f"conversation {self.id} is closed; open a new one")
        # A buyer writing soon after resolve reopens the conversation; the
        # dispatcher prefers the last agent, but only if they are online now.
        ops = self._set_state(QUEUED)
        self.meta.agent = None
        ops += self._event("reopened", {"state": QUEUED}, frames)
        return ops

    def _attach_upload(self, m: SendMessage, body: dict[str, Any], kind: str = "") -> list[Op]:
        """Check the sender owns the upload, of the right kind, and let the other
        participants read it (they are allowed through its conversations)."""
        kind = kind or m.kind
        upload = self.context.store.get("uploads", body["upload"].encode())
        if upload is None or upload["owner"] != m.user:
            raise NotFound(f"no upload {body['upload']!r} of yours")
        if upload["kind"] != kind:
            raise InvalidBody(f"upload {body['upload']!r} is a {upload['kind']}, not a {kind}")
        body.update({"mime": upload["mime"], "size": upload["size"],
                     "url": f"/api/uploads/{upload['id']}"})
        if self.id in upload["conversations"]:
            return []
        upload["conversations"].append(self.id)
        return [Put("uploads", upload["id"].encode(), pack(upload))]

    # -- receipts, recall, lifecycle -------------------------------------------

    async def _mark_read(self, m: MarkRead) -> None:
        self._check_member(m.user, m.role, m.shops)
        out = rules.mark_read(self.meta, m.user, m.upto)
        if out is not None:
            self.meta = out.meta
            await self._commit(out.ops, out.frames)

    async def _recall(self, m: Recall) -> Reply[Any]:
        self._check_member(m.user, m.role, m.shops)
        out = rules.recall(self.meta, self._message(m.seq), m.seq, m.user,
                           self.context.now_ms(), int(self.context.settings.recall_window * 1000))
        self.meta = out.meta
        done: Reply[Any] = Reply()
        await self._commit(out.ops, out.frames, done, None)
        return done

    async def _resolve(self, m: Resolve) -> Reply[Any]:
        self._check_member(m.user, m.role, m.shops)
        out = rules.resolve(self.meta, m.user, self.context.now_ms())
        self.meta = out.meta
        done: Reply[Any] = Reply()
        await self._commit(out.ops, out.frames, done, None)
        await self._dispatcher(ConversationReleased(self.id))
        return done

    async def _rate(self, m: Rate) -> Reply[Any]:
        self._check_member(m.user, m.role, m.shops)
        out = rules.rate(self.meta, m.role, m.score, m.comment, self.context.now_ms())
        self.meta = out.meta
        done: Reply[Any] = Reply()
        await self._commit(out.ops, out.frames, done, None)
        return done

    async def _assign(self, agent: str, rule: str) -> None:
        state, previous = self.meta.state, self.meta.agent
        if state in (RESOLVED, CLOSED):
            # Raced with a resolve or close: hand the capacity straight back.
            await self._dispatcher(ConversationReleased(self.id))
            return
        frames: list[Any] = []
        ops = self._set_state(ASSIGNED)
        meta = self.meta
        meta.agent = meta.last_agent = agent
        meta.agent_replied, meta.assigned_at = False, self.context.now_ms()
        if previous and previous != agent:
            ops += self._event("transferred", {"from": previous, "to": agent}, frames)
        assigned: dict[str, Any] = {"agent": agent, "rule": rule}
        profile = self.context.store.get("agents", agent.encode())
        if profile is not None:  # the name a buyer sees ("客服小美"), not the account id
            assigned["agent_name"] = profile["name"]
        if self.meta.handoff:
            # The agent sees the bot's hand-off first: reason, guesses, transcript.
            assigned["handoff"], self.meta.handoff = self.meta.handoff, None
        ops += self._event("assigned", assigned, frames)
        ops += [Put("idx_user_conversations", pair_key(agent, self.id),
                    pack(self.meta.shop)), self._meta_op()]
        await self._commit(ops, frames, also=(previous,) if previous else ())

    async def _unassign(self, reason: str) -> None:
        agent = self.meta.agent
        if self.meta.state != ASSIGNED or not agent:
            return
        frames: list[Any] = []
        ops = self._set_state(QUEUED)
        self.meta.agent = None
        ops += self._event("unassigned", {"agent": agent, "reason": reason}, frames)
        ops.append(self._meta_op())
        await self._commit(ops, frames, also=(agent,))

    async def _transfer(self, m: Transfer) -> Reply[Any]:
        self._check_member(m.user, m.role, m.shops)
        if m.role not in STAFF_ROLES:
            raise Forbidden("only staff transfer conversations")
        if self.meta.state not in (QUEUED, ASSIGNED):
            raise InvalidState(f"conversation is {self.meta.state}")
        store, old_shop = self.context.store, self.meta.shop
        shop = m.to_shop or old_shop
        if shop != old_shop:
            # Checked before existence, with the same answer for both, so that
            # no agent can probe which shop ids exist.
            if not may_transfer_to(m.role, m.shops, shop, self.context.settings):
                raise Forbidden(f"you may not transfer to shop {shop!r}")
            if store.get("shops", shop.encode()) is None:
                raise Forbidden(f"you may not transfer to shop {shop!r}")
        if m.to_group and store.get("groups", pair_key(shop, m.to_group)) is None:
            raise NotFound(f"no group {m.to_group!r} in shop {shop!r}")
        if m.to_agent:
            agent = store.get("agents", m.to_agent.encode())
            if agent is None or shop not in agent["shops"]:
                raise NotFound(f"no agent {m.to_agent!r} serving shop {shop!r}")
        if not (m.to_agent or m.to_group or (m.to_shop != old_shop and m.to_shop)):
            raise InvalidBody("transfer needs to_agent, to_group or another to_shop")
        frames: list[Any] = []
        previous = self.meta.agent
        ops = self._set_state(QUEUED)
        if shop != old_shop:
            ops += self._move_shop(old_shop, shop)
        self.meta.agent = None
        data = {"from": previous, "to": m.to_agent or None, "group": m.to_group or None,
                "from_shop": old_shop, "to_shop": shop, "by": m.user, "note": m.note}
        ops += self._event("transferred", data, frames)
        seq = self.meta.last_seq + 1
        _, put = self._append(m.user, "system", "system", {"text": m.note, "transfer": data},
                              frames, msg_id=f"transfer-{seq}")
        ops += [put, self._meta_op()]
        done: Reply[Any] = Reply()
        await self._commit(ops, frames, done, None, also=(previous,) if previous else ())
        await self._dispatcher(ConversationReleased(self.id))
        await self._dispatcher(self._route("transfer", group=m.to_group, prefer=m.to_agent))
        return done

    def _move_shop(self, old: str, new: str) -> list[Op]:
        buyer = self.meta.buyer
        self.meta.shop = new
        ops: list[Op] = [Delete("idx_shop_conversations", pair_key(old, self.id)),
                         Put("idx_shop_conversations", pair_key(new, self.id), pack(QUEUED))]
        if self.context.store.get("idx_customer_conversations", pair_key(buyer, old)) == self.id:
            ops.append(Delete("idx_customer_conversations", pair_key(buyer, old)))
        if self.context.store.get("idx_customer_conversations", pair_key(buyer, new)) is None:
            ops.append(Put("idx_customer_conversations", pair_key(buyer, new), pack(self.id)))
        return ops

    async def _close(self, reason: str) -> None:
        current = self.context.store.get("idx_customer_conversations",
                                         pair_key(self.meta.buyer, self.meta.shop)) == self.id
        out = rules.close(self.meta, reason, self.context.now_ms(), current=current)
        self.meta = out.meta
        done: Reply[Any] = Reply()
        await self._commit(out.ops, out.frames, done, None)
        await done.wait()
        await self._dispatcher(ConversationReleased(self.id))

    def _route(self, reason: str, *, group: str = "", prefer: str = "",
               exclude: str = "") -> RouteConversation:
        m = self.meta
        return RouteConversation(self.id, m.shop, m.buyer, m.level, m.context, m.first_text,
                                 reason, group, prefer or "", exclude)

    async def _dispatcher(self, message: Message) -> None:
        assert self.context.directory is not None
        await self.context.directory.ref(DISPATCHER, DISPATCHER_ID).tell(message)


CONVERSATION_KIND: ActorKind[EngineContext] = ActorKind(KIND, ConversationActor,
                                                        mailbox_size=512, idle_timeout=120.0)
