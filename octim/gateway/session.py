"""One WebSocket connection speaking protocol v1 (see docs/protocol.md).

A session costs one task while idle: the connection's handler task, which is
the **reader** (it validates and rate-limits client frames and dispatches them
to actors, or to the store for reads). Everything else is on demand, so tens of
thousands of idle connections stay cheap (bench: ``octim-bench connections``):

* a **writer** task exists only while the connection's outbox in the fan-out
  hub has frames: actors' pushes (live messages, events) and the answers to
  pipelined sends wake it; it drains the outbox and ends. A client too slow to
  keep up with its outbox is closed with 4008 and catches up with ``sync``.
* **acks** are not awaited by a task: a send's durable reply calls back and the
  ack (or error) goes into the outbox, in the order the commits complete, so
  the reader accepts the next send before the previous one is committed
  (pipelining, at most ``PENDING_ACKS`` in flight per connection).
* the **heartbeat** is the gateway's: one loop pings connections when due and
  closes those that stay idle or stop answering (:mod:`octim.gateway.server`).

Direct replies to reads (``synced``, ``inbox``, errors) are sent by the reader,
so a slow client only ever slows its own reader.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from octim import logs
from octim.actors import Reply
from octim.auth import AuthError, Principal, verify_token
from octim.domain import audit
from octim.domain.agents import KIND as AGENT
from octim.domain.agents import ChoosePresence, Connected, Disconnected
from octim.domain.channels import SOCKET_TYPES
from octim.domain.conversations.actor import KIND as CONVERSATION
from octim.domain.conversations.actor import (
    Feedback,
    Invite,
    MarkRead,
    Rate,
    Recall,
    Resolve,
    SendMessage,
    Transfer,
    Typing,
)
from octim.domain.conversations.inbox import inbox
from octim.domain.conversations.model import (
    CLOSED,
    NOTE,
    STAFF_ROLES,
    ConversationMeta,
    Forbidden,
    InvalidBody,
    msg_frame,
    pair_key,
)
from octim.domain.shops import KIND as SHOP
from octim.domain.shops import OpenConversation
from octim.errors import ActorCrashed, ClientError, MailboxFull, NotFound, OctimError, public_error
from octim.gateway import frames as f
from octim.gateway.codec import FrameCodec
from octim.gateway.fanout import Connection
from octim.gateway.wire import send_messages

if TYPE_CHECKING:
    from octim.engine import Engine

log = logging.getLogger("octim.gateway")

HELLO_TIMEOUT = 10.0
CLOSE_IDLE = 4000
CLOSE_UNAUTHORIZED = 4001
CLOSE_TOO_SLOW = 4008
CLOSE_TOO_MANY = 4009  # the user already has max_connections_per_user sessions
CLOSE_FLOODING = 4029
DRAIN_BATCH = 64
KNOWN_CONVERSATIONS = 256  # membership remembered per connection (then forgotten)
PENDING_ACKS = 256  # sends awaiting their commit per connection; more waits (backpressure)


class Session:
    """See the module docstring."""

    __slots__ = ("client_address", "codec", "conn", "engine", "known", "last_frame",
                 "monitor_scope", "monitoring", "next_ping", "pending", "principal", "refilled",
                 "settings", "tokens", "unblocked", "via", "woken", "writing", "ws")

    def __init__(self, engine: Engine, ws: WebSocketConnection, codec: FrameCodec,
                 client_address: str | None = None) -> None:
        self.engine = engine
        self.client_address = client_address  # for audit records (octim.proxies)
        self.settings = engine.settings
        self.ws = ws
        self.codec = codec
        self.principal: Principal | None = None
        self.conn: Connection | None = None
        self.last_frame = trio.current_time()
        self.next_ping = self.last_frame + self.settings.heartbeat_interval
        self.tokens = float(self.settings.rate_burst)
        self.refilled = self.last_frame
        self.writing = False
        self.woken = 0.0  # when the outbox last got frames for an idle writer
        self.pending = 0  # sends (and other acked frames) awaiting their commit
        self.via = "web"  # the socket channel a buyer's open said it is (docs/channels.md)
        self.unblocked: trio.Event | None = None  # set when pending drops below the bound
        self.monitoring: list[str] | None = None  # the shops this monitor screen watches
        self.monitor_scope: trio.CancelScope | None = None
        self.known: set[str] | None = None  # conversations this connection may use

    # -- lifecycle ---------------------------------------------------------------

    async def run(self) -> None:
        """Authenticate, then read the connection until either side closes it."""
        principal = await self._authenticate()
        if principal is None:
            return
        fanout = self.engine.fanout
        # No await between the connection cap's check and here: the cap is exact.
        self.conn = fanout.attach(principal.user, principal.role, principal.shops, self.codec,
                                  self._wake)
        logs.bind(connection=self.conn.name, user=principal.user)  # on this session's lines
        gateway = self.engine.gateway
        gateway.sessions.add(self)
        try:
            await self.ws.send_message(self.codec.encode(
                {"type": "welcome", "user": principal.user, "role": principal.role}))
            await self._tell_connections(opened=True)
            await self._reader()
        except ConnectionClosed:
            pass
        finally:
            gateway.sessions.discard(self)
            if self.monitor_scope is not None:
                self.monitor_scope.cancel()
            fanout.detach(self.conn)
            with trio.CancelScope(shield=True):
                await self._tell_connections(opened=False)

    async def _tell_connections(self, opened: bool) -> None:
        """Staff presence follows their connections (their AgentActor: offline after a
        grace period once the last one closes)."""
        p = self.principal
        if p is None or p.role not in STAFF_ROLES or self.conn is None:
            return
        change = (Connected if opened else Disconnected)(p.user, self.conn.name)
        try:
            await self.engine.directory.ref(AGENT, p.user).tell(change)
        except OctimError:
            pass  # shutting down

    async def _authenticate(self) -> Principal | None:
        with trio.move_on_after(HELLO_TIMEOUT):
            data = await self.ws.get_message()
            try:
                frame = self.codec.decode(data)
                if frame["type"] != "hello":
                    raise AuthError("the first frame must be hello")
                principal = verify_token(frame.get("token"), self.settings.secret)
            except OctimError as exc:  # AuthError, BadFrame, Unstorable
                await self.ws.aclose(CLOSE_UNAUTHORIZED, str(exc)[:120])
                return None
            cap = self.settings.max_connections_per_user
            if len(self.engine.fanout.connections_of(principal.user)) >= cap:
                await self.ws.aclose(CLOSE_TOO_MANY, f"more than {cap} connections of one user")
                return None
            self.principal = principal
            return principal
        await self.ws.aclose(CLOSE_UNAUTHORIZED, "no hello within time")
        return None

    def _wake(self, conn: Connection) -> None:
        """The outbox has frames (or overflowed): start a writer unless one runs."""
        if not self.writing:
            self.writing = True
            self.woken = trio.current_time()
            self.engine.gateway.spawn(self._writer)

    async def _writer(self) -> None:
        conn, hub = self.conn, self.engine.fanout.hub
        assert conn is not None
        try:
            while True:
                if conn.overflowed:
                    await self.ws.aclose(CLOSE_TOO_SLOW, "too slow: reconnect and sync")
                    return
                frames = hub.drain(conn.id, DRAIN_BATCH)
                if not frames:
                    return  # no await since the drain: a new push wakes a new writer
                await send_messages(self.ws, frames)  # one socket write for the batch
                written = trio.current_time()
                self.engine.metrics.deliver_seconds.observe(written - self.woken)
                self.woken = written  # the next batch came in during this write
        except ConnectionClosed:
            pass
        finally:
            self.writing = False

    def _answered(self, ref: Any, started: float | None, answer: Any,
                  error: BaseException | None) -> None:
        """A pipelined frame's reply came (commit done): queue its ack or error."""
        self.pending -= 1
        if started is not None and error is None:
            took = trio.current_time() - started
            self.engine.metrics.ack_seconds.observe(took)
            self.engine.admission.acked(took)
        if self.unblocked is not None and self.pending < PENDING_ACKS:
            self.unblocked.set()
            self.unblocked = None
        if self.conn is None:
            return
        if error is not None:
            if not isinstance(error, OctimError):
                crashed = ActorCrashed("a send failed")
                crashed.__cause__ = error
                error = crashed
            self.engine.fanout.push_to(self.conn, self._error_frame(error, ref))
        elif answer is not None:  # sends answer with an ack; the rest with events
            self.engine.fanout.push_to(self.conn, answer)

    async def _pipeline(self, reply: Reply[Any], ref: Any, started: float | None = None
                        ) -> None:
        """Answer ``reply`` when it is filled, without waiting for it here (``started``:
        a send's arrival, for the ack latency histogram)."""
        while self.pending >= PENDING_ACKS:  # backpressure: this reader waits
            self.unblocked = self.unblocked or trio.Event()
            await self.unblocked.wait()
        self.pending += 1
        reply.then(partial(self._answered, ref, started))

    async def ping(self) -> None:
        """One heartbeat (run by the gateway when due): close if idle too long, or if
        the ping is not answered within one interval."""
        interval = self.settings.heartbeat_interval
        if trio.current_time() - self.last_frame > self.settings.idle_timeout:
            await self.ws.aclose(CLOSE_IDLE, "idle")
            return
        with trio.move_on_after(interval) as scope:
            await self.ws.ping()
        if scope.cancelled_caught:
            await self.ws.aclose(CLOSE_IDLE, "no answer to ping")

    # -- output ------------------------------------------------------------------

    async def _send(self, frame: dict[str, Any]) -> None:
        """Send a reply straight to this client. Replies wait for the client (backpressure
        on this connection only); pushes from actors go through the hub outbox."""
        await self.ws.send_message(self.codec.encode(frame))

    async def _error(self, exc: OctimError, ref: Any) -> None:
        frame = self._error_frame(exc, ref)
        errors = self.engine.tally.errors
        errors[frame["code"]] = errors.get(frame["code"], 0) + 1
        await self._send(frame)

    @staticmethod
    def _error_frame(exc: BaseException, ref: Any) -> dict[str, Any]:
        told = public_error(exc)  # the one error table (octim.errors)
        if told is None:  # a server fault: say so, reveal nothing
            log.error("frame failed", exc_info=exc)
            code, message = "internal", "internal error"
        else:
            _, code, message = told
        frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if ref is not None:
            frame["ref"] = ref
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:  # admission control: when to try again
            frame["retry_after"] = retry_after
        return frame

    # -- input -------------------------------------------------------------------

    def _take_token(self) -> bool:
        now = trio.current_time()
        refill = (now - self.refilled) * self.settings.rate_per_second
        self.tokens = min(self.settings.rate_burst, self.tokens + refill)
        self.refilled = now
        self.tokens -= 1
        return self.tokens >= 0

    async def _reader(self) -> None:
        while True:
            data = await self.ws.get_message()
            self.last_frame = trio.current_time()
            if not self._take_token():
                if self.tokens <= -self.settings.rate_burst:
                    await self.ws.aclose(CLOSE_FLOODING, "rate limit exceeded")
                    return
                await self._send({"type": "error", "code": "rate_limited",
                                  "message": "slow down: too many frames"})
                continue
            try:
                frame = self.codec.decode(data)
            except OctimError as exc:  # BadFrame, or Unstorable (invalid_body)
                await self._error(exc, None)
                continue
            ref = frame.get("id", frame.get("ref"))
            if not isinstance(ref, str | int) or isinstance(ref, bool):
                ref = None
            try:
                await self._dispatch(frame, ref)
            except OctimError as exc:
                await self._error(exc, ref)
            except ConnectionClosed:
                raise
            except Exception as exc:  # a bug must not cost the client its connection
                crashed = ActorCrashed(f"handling a {frame['type']!r} frame failed")
                crashed.__cause__ = exc
                await self._error(crashed, ref)

    async def _dispatch(self, frame: dict[str, Any], ref: Any) -> None:
        kind = frame["type"]
        if kind not in f.FRAMES:
            await self._error(_UnknownType(f"unknown frame type {kind!r}"), ref)
            return
        frames = self.engine.tally.frames
        frames[kind] = frames.get(kind, 0) + 1
        # The frame's conversation on what it logs (not validated yet: only a short string).
        conversation = frame.get("conversation")
        logs.bind(conversation=conversation if isinstance(conversation, str)
                  and len(conversation) <= 128 else None)
        parsed = f.parse(kind, frame)
        p = self.principal
        assert p is not None and self.conn is not None
        directory = self.engine.directory
        match parsed:
            case f.Ping():
                await self._send({"type": "pong", "ts": self.engine.context.now_ms()})
            case f.Open(shop=shop, context=context):
                if p.role != "buyer":
                    raise Forbidden("only buyers open conversations")
                # A WebSocket client says which of the socket channels it is (web, app,
                # miniprogram, h5, pc); an api channel is only ever set by the server.
                context = {k: v for k, v in context.items() if k not in ("via", "origin")}
                if context.get("channel") not in SOCKET_TYPES:
                    context.pop("channel", None)
                self.via = str(context.get("channel", "web"))
                if self.engine.admission.overloaded() is not None and \
                        not self._has_open(shop, p.user):  # a running one is never shed
                    self.engine.admission.admit_new()
                opened = await directory.ref(SHOP, shop).ask(
                    OpenConversation(shop, p.user, p.level, context))
                await self._send({"type": "opened", "ref": frame.get("ref"),
                                  "conversation": opened["conversation"],
                                  "state": opened["state"]})
            case f.Send(conversation=conv, id=client_id, kind=msg_kind, body=body):
                started = trio.current_time()
                if "from" in frame and frame["from"] != p.user:
                    raise Forbidden("'from' is set by the server")
                self._member(conv)
                reply = await directory.ref(CONVERSATION, conv).ask(SendMessage(
                    conv, p.user, p.role, p.shops, client_id, msg_kind, body, self.conn.name,
                    via=self.via if p.role == "buyer" else ""))
                await self._pipeline(reply, ref, started)
            case f.Sync(conversation=conv, after=after, limit=limit):
                await self._sync(conv, after, limit)
            case f.Inbox():
                await self._send({"type": "inbox", "conversations": self._inbox()})
            case f.Typing(conversation=conv):
                self._member(conv)
                try:
                    directory.ref(CONVERSATION, conv).tell_nowait(
                        Typing(conv, p.user, p.role, p.shops))
                except MailboxFull:
                    pass  # typing is the first thing to drop under load
            case f.Read(conversation=conv, upto=upto):
                self._member(conv)
                await directory.ref(CONVERSATION, conv).ask(
                    MarkRead(conv, p.user, p.role, p.shops, upto))
            case f.Recall(conversation=conv, seq=seq):
                self._member(conv)
                await self._pipeline(await directory.ref(CONVERSATION, conv).ask(
                    Recall(conv, p.user, p.role, p.shops, seq)), ref)
            case f.Resolve(conversation=conv):
                self._member(conv)
                await self._pipeline(await directory.ref(CONVERSATION, conv).ask(
                    Resolve(conv, p.user, p.role, p.shops)), ref)
            case f.Rate(conversation=conv, score=score, comment=comment):
                self._member(conv)
                await self._pipeline(await directory.ref(CONVERSATION, conv).ask(
                    Rate(conv, p.user, p.role, p.shops, score, comment)), ref)
            case f.FeedbackFrame(conversation=conv, seq=seq, helpful=helpful):
                self._member(conv)
                await directory.ref(CONVERSATION, conv).ask(
                    Feedback(conv, p.user, p.role, p.shops, seq, helpful))
            case f.Presence(status=status):
                if p.role in STAFF_ROLES:
                    await directory.ref(AGENT, p.user).tell(ChoosePresence(p.user, status))
                await self._send({"type": "presence", "user": p.user, "status": status})
            case f.Transfer(conversation=conv, to_agent=to_agent, to_group=to_group,
                            to_shop=to_shop, note=note):
                self._member(conv)
                await self._pipeline(await directory.ref(CONVERSATION, conv).ask(Transfer(
                    conv, p.user, p.role, p.shops, to_agent, to_group, to_shop, note)), ref)
            case f.InviteFrame(conversation=conv, agent=agent, remove=remove):
                self._member(conv)
                await self._pipeline(await directory.ref(CONVERSATION, conv).ask(Invite(
                    conv, p.user, p.role, p.shops, agent, remove)), ref)
            case f.MonitorFrame(shops=shops):
                await self._monitor(shops)
            case _:
                raise InvalidBody(f"unhandled frame {kind!r}")

    async def _monitor(self, shops: list[str]) -> None:
        """Start (or retarget) this connection's live monitor: a snapshot now and
        one every ``monitor_interval`` until the connection closes."""
        p = self.principal
        assert p is not None
        if p.role == "platform_admin":
            chosen = shops or sorted(k.decode() for k, _ in self.engine.store.scan("shops"))
        elif p.role == "shop_admin":
            unknown = [shop for shop in shops if shop not in p.shops]
            if unknown:
                raise NotFound(f"no shop {unknown[0]!r}")
            chosen = shops or list(p.shops)
        else:
            raise Forbidden("the monitor is for shop and platform admins")
        started = self.monitoring is not None
        self.monitoring = chosen
        await self._send(await self.engine.monitor.snapshot(chosen))
        if not started:
            self.monitor_scope = trio.CancelScope()
            self.engine.gateway.spawn(self._monitor_loop)

    async def _monitor_loop(self) -> None:
        assert self.monitor_scope is not None
        with self.monitor_scope:
            try:
                await self._monitor_rounds()
            except ConnectionClosed:
                pass

    async def _monitor_rounds(self) -> None:
        while True:
            await trio.sleep(self.settings.monitor_interval)
            if self.monitoring is None:
                continue
            try:
                snapshot = await self.engine.monitor.snapshot(self.monitoring)
            except OctimError:
                continue  # busy or shutting down: the next round tries again
            await self._send(snapshot)

    def _has_open(self, shop: str, buyer: str) -> bool:
        """Whether the buyer has a conversation with the shop that is not closed."""
        found = self.engine.store.get("idx_customer_conversations", pair_key(buyer, shop))
        meta = ConversationMeta.load(self.engine.store, str(found)) if found else None
        return meta is not None and meta.state != CLOSED

    def _member(self, conversation: str) -> None:
        """Refuse (not_found) a frame about a conversation the caller does not take part
        in, before any actor wakes for it. Conversations already seen on this
        connection pass without a store read: the conversation actor checks
        membership again on every frame, so this is only the gate against probing."""
        if self.known is not None and conversation in self.known:
            return
        self._meta(conversation)
        if self.known is None:
            self.known = set()
        elif len(self.known) >= KNOWN_CONVERSATIONS:
            self.known.clear()
        self.known.add(conversation)

    def _meta(self, conversation: str) -> ConversationMeta:
        """The conversation's meta if the caller takes part in it; else not_found."""
        p = self.principal
        assert p is not None
        meta = ConversationMeta.load(self.engine.store, conversation)
        if meta is None or not meta.visible_to(p.user, p.role, p.shops):
            raise NotFound(f"no conversation {conversation!r}")
        return meta

    async def _sync(self, conversation: str, after: int, limit: int) -> None:
        meta = self._meta(conversation)  # reads check afresh (a transfer moves the shop)
        p = self.principal
        if p is not None and p.role in STAFF_ROLES:  # staff reading a buyer's messages
            await audit.record(self.engine.store, p.user, p.role, "messages",
                               self.client_address, now=self.engine.context.clock(),
                               conversation=conversation, customer=meta.buyer, shop=meta.shop)
        records = self.engine.store.scan_scope("messages", conversation, after=after,
                                               limit=limit)
        buyer = p is not None and p.role == "buyer"
        # Staff see how each reply fared on the buyer's api channel (docs/channels.md).
        states = {} if buyer or not records else \
            self.engine.context.channels.delivery_states(conversation, records[0][0],
                                                         records[-1][0])
        for seq, stored in records:
            if buyer and stored["kind"] == NOTE:
                continue  # private notes are staff's; the buyer's thread has a gap there
            frame = msg_frame(conversation, stored)
            if seq in states:
                frame["delivery"] = {k: v for k, v in states[seq].items()
                                     if k in ("status", "at", "error", "channel")}
            await self._send(frame)
        last = records[-1][0] if records else max(after, 0)
        await self._send({"type": "synced", "conversation": conversation, "last": last,
                    "latest": meta.last_seq, "more": last < meta.last_seq})

    def _inbox(self) -> list[dict[str, Any]]:
        p = self.principal
        assert p is not None
        return inbox(self.engine.store, p.user, p.role, p.shops)


class _UnknownType(ClientError):
    code = "unknown_type"
