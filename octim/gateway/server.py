"""The gateway server: accepts WebSocket connections at ``/ws`` and runs sessions.

It checks the path and negotiates the subprotocol, then hands the
connection to a :class:`~octim.gateway.session.Session`. It also runs what
sessions need only now and then, so an idle connection holds a single task:
the heartbeat (one loop pings each session when due) and the short-lived
tasks sessions ``spawn`` (writers draining an outbox, monitor screens). At
shutdown it stops listening and closes every connection with 1001.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    serve_websocket,
)

from octim.config import HostPort
from octim.gateway.codec import JSON, SUBPROTOCOLS, FrameCodec
from octim.gateway.session import Session
from octim.proxies import forwarded_client, parse_networks

if TYPE_CHECKING:
    from octim.engine import Engine

log = logging.getLogger("octim.gateway")

PATH = "/ws"
CLOSE_GOING_AWAY = 1001
CLOSE_TIMEOUT = 2.0  # seconds for clients to answer our close at shutdown


class Gateway:
    """The WebSocket listener and its live connections."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connections: set[WebSocketConnection] = set()
        self._closing = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.sessions: set[Session] = set()  # authenticated sessions (for the heartbeat)
        self.trusted_proxies = parse_networks(engine.settings.trusted_proxies)

    def spawn(self, task: Callable[[], Awaitable[None]]) -> None:
        """Run a session's short-lived task (a writer, a monitor screen); a failure is
        logged and ends that task only."""
        if self._nursery is not None:
            self._nursery.start_soon(self._guarded, task)

    @staticmethod
    async def _guarded(task: Callable[[], Awaitable[None]]) -> None:
        try:
            await task()
        except ConnectionClosed:
            pass
        except Exception as exc:
            log.error("gateway task failed", exc_info=exc)

    async def _heartbeat(self) -> None:
        """Ping every session once per ``heartbeat_interval`` (each on its own clock, to
        within a tenth of it: no more wake-ups than that)."""
        interval = self.engine.settings.heartbeat_interval
        step = max(0.05, interval / 10)
        while True:
            await trio.sleep(step)
            now = trio.current_time()
            for session in list(self.sessions):
                if session.next_ping <= now:
                    session.next_ping = now + interval
                    self.spawn(session.ping)

    async def serve(self, bind: HostPort, *,
                    task_status: trio.TaskStatus[HostPort] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on ``bind`` until :meth:`close`; report the bound address once listening.

        Closing stops the listener first, then closes every connection with
        1001 (going away) so clients know to reconnect elsewhere or later.
        """
        async with trio.open_nursery() as handlers:
            self._nursery = handlers
            handlers.start_soon(self._heartbeat)
            listener = trio.CancelScope()

            async def listen(*, task_status: trio.TaskStatus[Any]) -> None:
                with listener:
                    await serve_websocket(
                        self._handle, bind.host, bind.port, self._ssl_context(),
                        handler_nursery=handlers,
                        max_message_size=self.engine.settings.max_frame_bytes,
                        message_queue_size=16,
                        # the opening handshake (TLS included) of a slow client
                        connect_timeout=self.engine.settings.handshake_timeout,
                        task_status=task_status)

            server = await handlers.start(listen)
            task_status.started(HostPort(bind.host, server.port))
            await self._closing.wait()
            listener.cancel()
            with trio.move_on_after(CLOSE_TIMEOUT):
                async with trio.open_nursery() as closers:
                    for ws in list(self._connections):
                        closers.start_soon(ws.aclose, CLOSE_GOING_AWAY, "server shutting down")
            handlers.cancel_scope.cancel()

    def _ssl_context(self) -> ssl.SSLContext | None:
        """WSS with the configured certificate (``tls_cert`` / ``tls_key``), else plain."""
        settings = self.engine.settings
        if not settings.tls_cert:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
        return context

    def close(self) -> None:
        """Begin closing: :meth:`serve` returns once connections are closed."""
        self._closing.set()

    async def _handle(self, request: WebSocketRequest) -> None:
        if request.path.split("?", 1)[0] != PATH:
            await request.reject(404, body=b"not found: the gateway path is /ws")
            return
        proposed = request.proposed_subprotocols
        chosen = next((p for p in SUBPROTOCOLS if p in proposed), None)
        if chosen is None and proposed:
            await request.reject(400, body=f"unsupported subprotocol; use one of "
                                 f"{', '.join(SUBPROTOCOLS)}".encode())
            return
        address = getattr(request.remote, "address", None)
        peer = None if address is None else str(address)
        forwarded = next((value.decode("latin-1") for name, value in request.headers
                          if name.lower() == b"x-forwarded-for"), None)
        client = forwarded_client(peer, forwarded, self.trusted_proxies)
        ws = await request.accept(subprotocol=chosen)
        self._connections.add(ws)
        try:
            await Session(self.engine, ws, FrameCodec(chosen or JSON), client).run()
        except ConnectionClosed:
            pass
        except Exception as exc:  # one broken session never takes down the gateway
            log.error("session crashed", exc_info=exc)
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await ws.aclose(1011, "internal error")
        finally:
            self._connections.discard(ws)
