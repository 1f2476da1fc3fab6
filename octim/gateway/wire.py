"""Writing several WebSocket messages with one socket write.

trio-websocket sends one message per ``send_message``: a wsproto encode, the
stream lock, and a ``send_all`` (a syscall and a checkpoint). A connection's
writer usually finds several frames in its outbox at once (an agent receiving
many buyers' messages, acks of pipelined sends), so it encodes them all and
writes them in one ``send_all``. This uses trio-websocket's connection
internals (``_wsproto``, ``_stream_lock``, ``_stream``, ``_close_reason``,
``_abort_web_socket``) the way its own ``_send`` does; the pinned version range
in pyproject.toml and ``tests/test_gateway_wire.py`` guard the coupling.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection
from wsproto.events import BytesMessage, TextMessage


async def send_messages(ws: WebSocketConnection, messages: Sequence[bytes | str]) -> None:
    """Send ``messages`` in order, as one write to the socket.

    Raises :class:`~trio_websocket.ConnectionClosed` like ``send_message``.
    """
    if ws._close_reason:
        raise ConnectionClosed(ws._close_reason)
    encode = ws._wsproto.send
    data = b"".join(encode(BytesMessage(data=m) if isinstance(m, bytes) else TextMessage(data=m))
                    for m in messages)
    async with ws._stream_lock:
        try:
            await ws._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await ws._abort_web_socket()
            assert ws._close_reason is not None
            raise ConnectionClosed(ws._close_reason) from None
