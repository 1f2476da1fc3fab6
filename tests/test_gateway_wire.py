"""octim.gateway.wire: several messages in one socket write, over a real socket.

This guards the coupling to trio-websocket's connection internals: if an
upgrade moves them, these tests fail rather than the gateway's writers.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url, serve_websocket

from octim.gateway.wire import send_messages


async def _server(nursery: trio.Nursery, handler: Any) -> int:
    server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
    return int(server.port)


async def test_messages_arrive_in_order_with_their_types() -> None:
    async def handler(request: Any) -> None:
        ws = await request.accept()
        await send_messages(ws, [b"\x81\xa1a", "two", b"", "四" * 70_000])
        await ws.get_message()  # stay open until the client is done

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await _server(nursery, handler)
            async with open_websocket_url(f"ws://127.0.0.1:{port}/") as ws:
                got = [await ws.get_message() for _ in range(4)]
                await ws.send_message("done")
            nursery.cancel_scope.cancel()
    assert got == [b"\x81\xa1a", "two", b"", "四" * 70_000]


async def test_a_closed_connection_raises_connection_closed() -> None:
    raised: list[BaseException] = []
    closed = trio.Event()

    async def handler(request: Any) -> None:
        ws = await request.accept()
        with pytest.raises(ConnectionClosed):
            await ws.get_message()  # the client closes
        try:
            await send_messages(ws, [b"late"])
        except ConnectionClosed as exc:
            raised.append(exc)
        closed.set()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await _server(nursery, handler)
            async with open_websocket_url(f"ws://127.0.0.1:{port}/"):
                pass
            await closed.wait()
            nursery.cancel_scope.cancel()
    assert len(raised) == 1
