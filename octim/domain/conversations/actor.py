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

from octim import logs
from octim.actors import Actor, ActorKind, Address, Message, Reply, thaw
from octim.domain.context import EngineContext
from octim.domain.conversations import rules
from octim.domain.conversations.bot import BotTurns
from octim.domain.conversations.messages import (
    CONVERSATION,
    AdoptContext,
    AssignConversation,
    CloseIfIdle,
    DescribeConversation,
    Feedback,
    Invite,
    MarkRead,
    Post,
    PostNotice,
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
    NOTE,
    UPLOAD_PATH,
    ConversationMeta,
    InvalidBody,
    StoredMessage,
    coalesce_key,
    event_frame,
    may_transfer_to,
    message_key,
    pair_key,
    takes_part,
    validate_body,
)
from octim.domain.customers import KIND as CUSTOMER
from octim.domain.customers import OptOut
from octim.domain.kb.knowledge import RecordFeedback
from octim.domain.mentions import mentioned
from octim.domain.routing.dispatcher import ID as DISPATCHER_ID
from octim.domain.routing.dispatcher import KIND as DISPATCHER
from octim.domain.routing.messages import AgentReplied, ConversationReleased, RouteConversation
from octim.errors import NotFound, StoreError
from octim.store import Op, Put, pack

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
    "Invite",
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
ACK_CACHE = 4096  # client ids kept in memory: all while there are this few, else the latest
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
        self.complete = False  # ``acked`` holds every client id in the store

    @property
    def id(self) -> str:
        return self.address.id

    async def on_start(self) -> None:
        record = self.context.store.get("conversations", self.id.encode())
        if record is None:
            raise NotFound(f"no conversation {self.id!r}")
        self.meta = ConversationMeta.from_record(record)
        logs.bind(shop=self.meta.shop)  # on every line this actor logs, beside its id
        # Every client id this conversation ever acked, if there are few enough: then a
        # send whose id is not among them is new without a store read.
        prefix = pair_key(self.id, "")
        stored = self.context.store.scan("client_ids", prefix, prefix[:-1] + b"\x01",
                                         limit=ACK_CACHE + 1)
        for key, (seq, ts) in stored[:ACK_CACHE]:
            self.acked[key[len(prefix):].decode()] = (seq, ts)
        self.complete = len(stored) <= ACK_CACHE

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
            case AssignConversation(agent=agent, rule=rule, group=group):
                return await self._assign(agent, rule, group)
            case Unassign(reason=reason):
                return await self._unassign(reason)
            case Transfer():
                return await self._transfer(message)
            case Invite():
                return await self._invite(message)
            case Post(role=role, text=text):
                return await self._post(role, text)
            case PostNotice():
                return await self._notice(message)
            case AdoptContext(context=context, level=level, card=card):
                if not self.meta.routed and self.meta.context.get("origin") == "notice":
                    out = rules.adopt_context(self.meta, thaw(context), level,
                                              None if card is None else
                                              (card[0], thaw(card[1])), self.context.now_ms())
                    done: Reply[Any] = Reply()
                    await self._adopt(out, done)
                    await done.wait()
                return None
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
        users = {self.meta.buyer, *self.meta.helpers}
        if self.meta.agent:
            users.add(self.meta.agent)
        return users

    async def _commit(self, ops: list[Op], frames: list[Any],
                      done: Reply[Any] | None = None, result: Any = None,
                      settle: Callable[[bool], None] | None = None,
                      also: tuple[str, ...] = (),
                      direct: list[tuple[dict[str, Any], tuple[str, ...]]] | None = None
                      ) -> None:
        """Submit ``ops``; once durable publish ``frames`` and fill ``done`` with ``result``.

        ``settle(ok)`` runs first, with whether the commit succeeded. These
        callbacks run on the actor's trio thread between its awaits and touch
        only the ack bookkeeping. ``also`` adds recipients (a transferred-away agent).
        A private note's frame goes to staff only; ``direct`` frames to the users named.
        """
        users = self._participants() | set(also)
        staff = users - {self.meta.buyer}
        # Webhooks, and what goes out to the buyer's api channel, are queued in this very
        # commit: durable exactly when the change is (octim.events, octim.courier).
        events: list[tuple[str, dict[str, Any]]] = []
        replies: list[dict[str, Any]] = []
        for frame, _ in frames:
            if frame["type"] == "msg":
                if frame["kind"] == NOTE:
                    continue  # never a webhook: the platform might relay it to the buyer
                events.append(("message.sent", {**frame, "shop": self.meta.shop}))
                if frame["role"] != "buyer" and self.meta.reply_via:
                    replies.append(frame)
            elif frame["type"] == "event" and frame["event"] in WEBHOOK_EVENTS:
                events.append((WEBHOOK_EVENTS[frame["event"]], {
                    "conversation": self.id, "shop": self.meta.shop,
                    "buyer": self.meta.buyer, **frame["data"]}))
        staged = self.context.stage(events)
        if replies and self.context.channels is not None:
            self.context.channels.stage_replies(self.meta, replies, staged)
        if staged.ops:
            ops = [*ops, *staged.ops]

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
                if frame["type"] == "msg" and frame["kind"] == NOTE:
                    self.context.fanout.publish(frame, staff, exclude=exclude)
                    continue
                self.context.fanout.publish(frame, users, exclude=exclude)
            for frame, named in direct or ():
                self.context.fanout.publish(frame, named)
            self.context.publish(staged)  # the outside world: webhooks, embedders

        await self.context.store.submit(ops, durable)

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
        attached: list[Op] = []
        if m.kind in ("image", "voice"):
            attached = self._attach_upload(m.user, body["upload"], m.kind, body)
        elif str(body.get("image", "")).startswith(UPLOAD_PATH):  # a card with our picture
            attached = self._attach_upload(m.user, body["image"][len(UPLOAD_PATH):], "image",
                                           {})
        if m.kind == NOTE:
            body["mentions"] = mentioned(self.context.store, self.meta.shop, body["text"])
        elif m.role != "buyer" and self.meta.reply_via and self.context.channels is not None:
            self.context.channels.check_kind(self.meta.reply_via, m.kind)
        try:
            out = rules.send(self.meta, m.user, m.role, m.kind, body, m.client_id, dedupe,
                             self.context.now_ms(),
                             int(self.context.settings.reopen_window * 1000),
                             exclude=m.origin or None, via=m.via or None,
                             reply_to=m.via_user or None, sent_at=m.sent_at or None)
        except rules.ReopenExpired:
            await self._close("resolved")
            raise
        self.meta = out.meta
        assert out.said is not None
        seq, ts = out.said.seq, out.said.ts
        if m.inbound_key:  # an external message id: stored once, whatever comes after
            out.ops.append(Put("channel_inbound", m.inbound_key, pack([self.id, seq, ts])))
        self.pending[dedupe] = reply

        def settle(ok: bool) -> None:
            self.pending.pop(dedupe, None)
            if ok:
                self.acked[dedupe] = (seq, ts)
                if len(self.acked) > ACK_CACHE:
                    self.acked.popitem(last=False)
                    self.complete = False  # older ids are only in the store now

        await self._commit(attached + out.ops, out.frames, reply,
                           self._ack(m.client_id, seq, ts), settle, direct=out.direct)
        if out.route:
            await self._dispatcher(self._route(
                out.route, prefer=(self.meta.last_agent or "") if out.route == "reopened"
                else ""))
        elif out.replied:
            await self._dispatcher(AgentReplied(self.id))
        if m.role == "buyer" and m.kind == "text" and rules.unsubscribes(body["text"]):
            await self._unsubscribe()  # 退订 / TD: the shop's marketing stops, said in chat
            return reply
        if m.role == "buyer" and m.kind == "text":
            if self.meta.state == BOT:
                await self._bot_turn(out.said)
            elif self.meta.state == ASSIGNED and self.meta.agent:
                await self._assist(out.said)
        return reply

    async def _post(self, role: str, text: str) -> dict[str, Any]:
        out = rules.post(self.meta, role, text, self.context.now_ms())
        self.meta = out.meta
        assert out.said is not None
        done: Reply[Any] = Reply()
        await self._commit(out.ops, out.frames, done, out.said.to_record())
        return dict(await done.wait())

    async def _unsubscribe(self) -> None:
        assert self.context.directory is not None
        await self.context.directory.ref(CUSTOMER, self.meta.buyer).ask(
            OptOut(f"marketing:{self.meta.shop}"))
        await self._post("system", rules.UNSUBSCRIBED)

    async def _notice(self, m: PostNotice) -> dict[str, Any]:
        sent = self.context.store.get("notices_sent", m.sent_key)
        if sent is not None:  # the same event twice at once: the first one's notice
            said = self._message(sent[1])
            assert said is not None
            return said.to_record()
        out = rules.notice(self.meta, thaw(m.body), self.context.now_ms())
        self.meta = out.meta
        assert out.said is not None
        record = out.said.to_record()
        out.ops += [Put("notices_sent", m.sent_key, pack([self.id, out.said.seq])),
                    Put("outreach_log", m.log_key, pack({**thaw(m.log), "sent": True,
                                                          "conversation": self.id,
                                                          "seq": out.said.seq}))]
        done: Reply[Any] = Reply()
        await self._commit(out.ops, out.frames, done, record)
        return dict(await done.wait())

    def _seen(self, dedupe: str) -> tuple[int, int] | Reply[dict[str, Any]] | None:
        """An earlier send with this ``sender \x1f client id``: pending, or (seq, ts)."""
        if dedupe in self.pending:
            return self.pending[dedupe]
        if dedupe in self.acked:
            return self.acked[dedupe]
        if self.complete:  # ``acked`` holds every id ever stored: this one is new
            return None
        stored = self.context.store.get("client_ids", pair_key(self.id, dedupe))
        return None if stored is None else (stored[0], stored[1])

    def _ack(self, client_id: str, seq: int, ts: int) -> dict[str, Any]:
        return {"type": "ack", "id": client_id, "conversation": self.id, "seq": seq, "ts": ts}

    def _attach_upload(self, user: str, ref: str, kind: str, body: dict[str, Any]
                       ) -> list[Op]:
        return rules.attach_upload(self.context.store.get("uploads", ref.encode()), ref, user,
                                   kind, self.id, body)

    # -- receipts, recall, lifecycle -------------------------------------------

    async def _mark_read(self, m: MarkRead) -> None:
        self._check_member(m.user, m.role, m.shops)
        out = rules.mark_read(self.meta, m.user, m.upto)
        if out is not None:
            await self._adopt(out)

    async def _recall(self, m: Recall) -> Reply[Any]:
        self._check_member(m.user, m.role, m.shops)
        done: Reply[Any] = Reply()
        await self._adopt(rules.recall(self.meta, self._message(m.seq), m.seq, m.user,
                                       self.context.now_ms(),
                                       int(self.context.settings.recall_window * 1000)), done)
        return done

    async def _resolve(self, m: Resolve) -> Reply[Any]:
        self._check_member(m.user, m.role, m.shops)
        done: Reply[Any] = Reply()
        await self._adopt(rules.resolve(self.meta, m.user, self.context.now_ms()), done)
        await self._dispatcher(ConversationReleased(self.id))
        if m.role != "buyer":
            await self._learn_from_handoff()
        return done

    async def _rate(self, m: Rate) -> Reply[Any]:
        self._check_member(m.user, m.role, m.shops)
        done: Reply[Any] = Reply()
        await self._adopt(rules.rate(self.meta, m.role, m.score, m.comment,
                                     self.context.now_ms()), done)
        return done

    async def _assign(self, agent: str, rule: str, group: str | None) -> None:
        profile = self.context.store.get("agents", agent.encode())
        previous = self.meta.agent
        out = rules.assign(self.meta, agent, rule,
                           None if profile is None else profile["name"], self.context.now_ms(),
                           group)
        if out is None:
            # Raced with a resolve or close: hand the capacity straight back.
            await self._dispatcher(ConversationReleased(self.id))
            return
        log.info("conversation assigned", extra={"agent": agent, "rule": rule,
                                                 "previous": previous})
        await self._adopt(out, also=(previous,) if previous else ())

    async def _unassign(self, reason: str) -> None:
        agent = self.meta.agent
        out = rules.unassign(self.meta, reason, self.context.now_ms())
        if out is not None:
            await self._adopt(out, also=(agent,) if agent else ())

    async def _adopt(self, out: rules.Outcome, done: Reply[Any] | None = None,
                     also: tuple[str, ...] = ()) -> None:
        """Take a rule's outcome: its meta now, its operations submitted, its frames
        (and ``done``, filled with None) for once they are durable."""
        self.meta = out.meta
        await self._commit(out.ops, out.frames, done, None, also=also)

    async def _transfer(self, m: Transfer) -> Reply[Any]:
        self._check_member(m.user, m.role, m.shops)
        store, old_shop = self.context.store, self.meta.shop
        shop = m.to_shop or old_shop
        agent = store.get("agents", m.to_agent.encode()) if m.to_agent else None
        customer = self.meta.buyer
        facts = rules.TransferFacts(
            may_enter=may_transfer_to(m.role, m.shops, shop, self.context.settings),
            shop_exists=shop == old_shop or store.get("shops", shop.encode()) is not None,
            group_exists=not m.to_group or
            store.get("groups", pair_key(shop, m.to_group)) is not None,
            agent_shops=None if agent is None else tuple(agent["shops"]),
            current_in_old=store.get("idx_customer_conversations",
                                     pair_key(customer, old_shop)) == self.id,
            open_in_new=store.get("idx_customer_conversations",
                                  pair_key(customer, shop)) is not None)
        previous = self.meta.agent
        out = rules.transfer(self.meta, m.user, m.role, m.to_agent, m.to_group, m.to_shop,
                             m.note, facts, self.context.now_ms())
        done: Reply[Any] = Reply()
        await self._adopt(out, done, also=(previous,) if previous else ())
        await self._dispatcher(ConversationReleased(self.id))
        await self._dispatcher(self._route("transfer", group=m.to_group, prefer=m.to_agent))
        return done

    async def _invite(self, m: Invite) -> Reply[Any]:
        self._check_member(m.user, m.role, m.shops)
        agent = self.context.store.get("agents", m.agent.encode())
        out = rules.invite(self.meta, m.user, m.role, m.agent,
                           None if agent is None else tuple(agent["shops"]), m.remove,
                           self.context.now_ms())
        done: Reply[Any] = Reply()
        await self._adopt(out, done, also=(m.agent,))  # a colleague let go hears it too
        return done

    async def _close(self, reason: str) -> None:
        current = self.context.store.get("idx_customer_conversations",
                                         pair_key(self.meta.buyer, self.meta.shop)) == self.id
        done: Reply[Any] = Reply()
        await self._adopt(rules.close(self.meta, reason, self.context.now_ms(), current=current),
                          done)
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
