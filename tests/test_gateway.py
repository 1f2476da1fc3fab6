"""The WebSocket gateway over real sockets: auth, subprotocols, bad frames."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from octim import Engine, Listening, issue_token
from octim.testing import TEST_SECRET

Running = tuple[Engine, Listening]


async def roundtrip(ws: Any, frame: dict[str, Any]) -> dict[str, Any]:
    await ws.send_message(json.dumps(frame))
    return json.loads(await ws.get_message())


async def test_hello_with_a_valid_token_is_welcomed(engine: Running) -> None:
    _, listening = engine
    token = issue_token(TEST_SECRET, "buyer-1", "buyer")
    with trio.fail_after(10):
        async with open_websocket_url(listening.ws_url, subprotocols=["octim.v1.json"]) as ws:
            assert ws.subprotocol == "octim.v1.json"
            welcome = await roundtrip(ws, {"type": "hello", "token": token})
            assert welcome == {"type": "welcome", "user": "buyer-1", "role": "buyer"}
            pong = await roundtrip(ws, {"type": "ping"})
            assert pong["type"] == "pong"


async def test_msgpack_subprotocol_uses_binary_frames(engine: Running) -> None:
    _, listening = engine
    token = issue_token(TEST_SECRET, "agent-1", "agent", shops=("s1",))
    with trio.fail_after(10):
        async with open_websocket_url(listening.ws_url,
                                      subprotocols=["octim.v1.msgpack"]) as ws:
            await ws.send_message(msgpack.packb({"type": "hello", "token": token}))
            reply = await ws.get_message()
            assert isinstance(reply, bytes)
            assert msgpack.unpackb(reply) == {"type": "welcome", "user": "agent-1",
                                              "role": "agent"}


@pytest.mark.parametrize("hello", [
    {"type": "hello", "token": "garbage"},
    {"type": "hello"},
    {"type": "ping"},
    {"type": "hello", "token": issue_token("another-secret-" + "y" * 40, "u", "buyer")},
    {"type": "hello", "token": issue_token(TEST_SECRET, "u", "buyer", ttl=-60)},
    {"type": "hello", "token": issue_token(TEST_SECRET, "u", "buyer", now=0)},
])
async def test_bad_or_missing_tokens_close_with_4001(engine: Running,
                                                     hello: dict[str, Any]) -> None:
    _, listening = engine
    with trio.fail_after(10):
        async with open_websocket_url(listening.ws_url, subprotocols=["octim.v1.json"]) as ws:
            await ws.send_message(json.dumps(hello))
            with pytest.raises(ConnectionClosed) as info:
                await ws.get_message()
    assert info.value.reason.code == 4001
    assert info.value.reason.reason


async def test_bad_frames_get_error_frames_and_the_connection_stays(engine: Running) -> None:
    _, listening = engine
    token = issue_token(TEST_SECRET, "buyer-2", "buyer")
    with trio.fail_after(10):
        async with open_websocket_url(listening.ws_url, subprotocols=["octim.v1.json"]) as ws:
            await roundtrip(ws, {"type": "hello", "token": token})
            await ws.send_message("{not json")
            assert json.loads(await ws.get_message())["code"] == "bad_frame"
            await ws.send_message("[1, 2]")
            assert json.loads(await ws.get_message())["code"] == "bad_frame"
            await ws.send_message(b"\x81\xa4type\xa4ping")  # binary on the JSON subprotocol
            assert json.loads(await ws.get_message())["code"] == "bad_frame"
            unknown = await roundtrip(ws, {"type": "teleport", "id": "x1"})
            assert unknown == {"type": "error", "code": "unknown_type",
                               "message": "unknown frame type 'teleport'", "ref": "x1"}
            assert (await roundtrip(ws, {"type": "ping"}))["type"] == "pong"


async def test_oversized_frame_closes_with_1009(engine: Running) -> None:
    _, listening = engine
    token = issue_token(TEST_SECRET, "buyer-3", "buyer")
    with trio.fail_after(10):
        async with open_websocket_url(listening.ws_url, subprotocols=["octim.v1.json"]) as ws:
            await roundtrip(ws, {"type": "hello", "token": token})
            await ws.send_message(json.dumps({"type": "ping", "pad": "x" * 100_000}))
            with pytest.raises(ConnectionClosed) as info:
                await ws.get_message()
    assert info.value.reason.code == 1009


async def test_wrong_path_and_subprotocol_are_rejected(engine: Running) -> None:
    _, listening = engine
    base = listening.ws_url.removesuffix("/ws")
    with trio.fail_after(10):
        with pytest.raises(ConnectionRejected) as info:
            async with open_websocket_url(base + "/other"):
                pass
        assert info.value.status_code == 404
        with pytest.raises(ConnectionRejected) as info:
            async with open_websocket_url(listening.ws_url, subprotocols=["chat.v9"]):
                pass
        assert info.value.status_code == 400


async def test_shutdown_closes_connections_with_1001(tmp_path: Any) -> None:
    from octim.testing import engine_settings

    eng = Engine(engine_settings(tmp_path / "d"))
    token = issue_token(TEST_SECRET, "buyer-4", "buyer")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listening = await nursery.start(eng.run)
            async with open_websocket_url(listening.ws_url,
                                          subprotocols=["octim.v1.json"]) as ws:
                await roundtrip(ws, {"type": "hello", "token": token})
                eng.stop()
                with pytest.raises(ConnectionClosed) as info:
                    await ws.get_message()
    assert info.value.reason.code == 1001
