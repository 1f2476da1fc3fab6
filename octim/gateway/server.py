"""The gateway server: accepts WebSocket connections at ``/ws`` and runs sessions.

One task per connection reads frames (trio-websocket's own reader task feeds
it through a bounded queue). The first frame must be ``hello`` with a valid
JWT; bad, expired or missing tokens close the connection with code 4001.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    serve_websocket,
)

from octim.auth import AuthError, Principal, verify_token
from octim.config import HostPort
from octim.errors import OctimError
from octim.gateway.codec import JSON, SUBPROTOCOLS, BadFrame, FrameCodec

if TYPE_CHECKING:
    from octim.engine import Engine

log = logging.getLogger("octim.gateway")

PATH = "/ws"
MAX_FRAME_BYTES = 64 * 1024
HELLO_TIMEOUT = 10.0
CLOSE_UNAUTHORIZED = 4001
CLOSE_GOING_AWAY = 1001
CLOSE_TIMEOUT = 2.0  # seconds for clients to answer our close at shutdown


class Gateway:
    """The WebSocket listener and its live connections."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connections: set[WebSocketConnection] = set()
        self._closing = trio.Event()

    @property
    def connection_count(self) -> int:
        """Open connections right now."""
        return len(self._connections)

    async def serve(self, bind: HostPort, *,
                    task_status: trio.TaskStatus[HostPort] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on ``bind`` until :meth:`close`; report the bound address once listening.

        Closing stops the listener first, then closes every connection with
        1001 (going away) so clients know to reconnect elsewhere or later.
        """
        async with trio.open_nursery() as handlers:
            listener = trio.CancelScope()

            async def listen(*, task_status: trio.TaskStatus[Any]) -> None:
                with listener:
                    await serve_websocket(
                        self._handle, bind.host, bind.port, None, handler_nursery=handlers,
                        max_message_size=MAX_FRAME_BYTES, message_queue_size=16,
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
        ws = await request.accept(subprotocol=chosen)
        self._connections.add(ws)
        try:
            await Session(self.engine, ws, FrameCodec(chosen or JSON)).run()
        except ConnectionClosed:
            pass
        except Exception as exc:  # one broken session never takes down the gateway
            log.error("session crashed", exc_info=exc)
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await ws.aclose(1011, "internal error")
        finally:
            self._connections.discard(ws)


class Session:
    """One authenticated connection's conversation with the engine."""

    def __init__(self, engine: Engine, ws: WebSocketConnection, codec: FrameCodec) -> None:
        self.engine = engine
        self.ws = ws
        self.codec = codec
        self.principal: Principal | None = None

    async def send(self, frame: dict[str, Any]) -> None:
        """Send one frame."""
        await self.ws.send_message(self.codec.encode(frame))

    async def error(self, code: str, message: str, ref: Any = None) -> None:
        """Send an error frame with a stable code."""
        frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if ref is not None:
            frame["ref"] = ref
        await self.send(frame)

    async def run(self) -> None:
        """Authenticate, then handle frames until the peer goes away."""
        if not await self._authenticate():
            return
        while True:
            data = await self.ws.get_message()
            try:
                frame = self.codec.decode(data)
            except BadFrame as exc:
                await self.error(exc.code, str(exc))
                continue
            await self._dispatch(frame)

    async def _authenticate(self) -> bool:
        with trio.move_on_after(HELLO_TIMEOUT):
            data = await self.ws.get_message()
            try:
                frame = self.codec.decode(data)
                if frame["type"] != "hello":
                    raise AuthError("the first frame must be hello")
                self.principal = verify_token(frame.get("token"), self.engine.settings.secret)
            except (AuthError, BadFrame) as exc:
                await self.ws.aclose(CLOSE_UNAUTHORIZED, str(exc)[:120])
                return False
            await self.send({"type": "welcome", "user": self.principal.user,
                             "role": self.principal.role})
            return True
        await self.ws.aclose(CLOSE_UNAUTHORIZED, "no hello within time")
        return False

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        ref = frame.get("id", frame.get("ref"))
        try:
            if kind == "ping":
                await self.send({"type": "pong", "ts": int(time.time() * 1000)})
            else:
                await self.error("unknown_type", f"unknown frame type {kind!r}", ref)
        except OctimError as exc:
            await self.error(exc.code, str(exc), ref)
