"""Bad input from outside: each gets its documented error or close code,
nothing is stored, and everyone else keeps being served."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed

from octim import Engine, Listening
from octim.testing import TEST_API_KEY, open_engine, token
from octim.testing.client import connect

Running = tuple[Engine, Listening]
SHOP, OTHER_SHOP = "s1", "s2"


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with open_engine(tmp_path / "data") as (engine, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, headers={
                "Authorization": f"Bearer {TEST_API_KEY}"}) as api:
            for shop in (SHOP, OTHER_SHOP):
                (await api.put(f"/api/shops/{shop}", json={"name": shop, "bot": {"mode": "off"}})
                 ).raise_for_status()
        yield engine, listening


async def test_each_bad_frame_gets_its_code_and_nothing_is_stored(running: Running) -> None:
    engine, listening = running
    url = listening.ws_url
    with trio.fail_after(20):
        async with connect(url, token("owner")) as owner, \
                connect(url, token("intruder")) as intruder, \
                connect(url, token("other-agent", "agent", OTHER_SHOP)) as other_agent:
            conv = (await owner.open(SHOP))["conversation"]

            def last_seq() -> int:
                return int(engine.store.get("conversations", conv.encode())["last_seq"])

            async def error_for(client: Any, frame: dict[str, Any]) -> str:
                await client.send({**frame, "ref": "probe"})
                # The error echoes the frame's id, or its ref when it has no id.
                error = await client.expect("error", ref=frame.get("id", "probe"))
                assert error["code"] != "internal", error
                return str(error["code"])

            send = {"type": "send", "conversation": conv, "kind": "text",
                    "body": {"text": "hi"}}
            cases: list[tuple[Any, dict[str, Any], str]] = [
                (intruder, {**send, "id": "i1"}, "not_found"),
                (other_agent, {**send, "id": "o1"}, "not_found"),
                (other_agent, {"type": "sync", "conversation": conv}, "not_found"),
                (intruder, {"type": "read", "conversation": conv, "upto": 1}, "not_found"),
                (owner, {**send, "id": "f1", "from": "someone-else"}, "forbidden"),
                (owner, {**send, "id": "k1", "kind": "hologram"}, "unknown_kind"),
                (owner, {**send, "id": "k2", "kind": "system"}, "forbidden"),
                (owner, {**send, "id": "t1", "body": {"text": "长" * 5001}}, "too_large"),
                (owner, {**send, "id": "b1", "body": "not a map"}, "invalid_body"),
                (owner, {**send, "id": "b2", "body": {"text": 42}}, "invalid_body"),
                (owner, {**send, "id": "b3", "conversation": 7}, "invalid_body"),
                (owner, {**send, "id": "b4", "kind": "link", "body": {"url": "javascript:x"}},
                 "invalid_body"),
                (owner, {"type": "sync", "conversation": conv, "after": "0"}, "invalid_body"),
                (owner, {"type": "rate", "conversation": conv, "score": 9}, "invalid_body"),
                (owner, {"type": "presence", "status": "asleep"}, "invalid_body"),
                (owner, {"type": "teleport"}, "unknown_type"),
                # Ids that would not fit a store key are refused up front.
                (owner, {**send, "id": "𝄞" * 128}, "invalid_body"),
                (owner, {**send, "id": "u1", "kind": "image", "body": {"upload": "𝄞" * 128}},
                 "invalid_body"),
                (owner, {"type": "open", "shop": "no-such-shop"}, "not_found"),
                (other_agent, {"type": "open", "shop": SHOP}, "forbidden"),
            ]
            for client, frame, code in cases:
                assert await error_for(client, frame) == code, frame
            assert last_seq() == 0
            await owner.ws.send_message("{definitely not json")
            assert (await owner.expect("error"))["code"] == "bad_frame"
            # Everyone is still served normally.
            assert (await owner.say(conv, "ok-1", "still here"))["seq"] == 1
            assert (await intruder.request({"type": "ping"}, "pong"))["type"] == "pong"


async def test_floods_are_rate_limited_then_closed(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d", rate_per_second=1.0, rate_burst=5) as (_, listening):
        with trio.fail_after(20):
            async with connect(listening.ws_url, token("flooder")) as flooder, \
                    connect(listening.ws_url, token("bystander")) as bystander:
                for _ in range(8):
                    await flooder.send({"type": "ping"})
                assert (await flooder.expect("error"))["code"] == "rate_limited"
                with pytest.raises(ConnectionClosed) as closed:
                    for _ in range(50):
                        await flooder.send({"type": "ping"})
                        await trio.sleep(0)
                    while True:
                        await flooder.expect("never")
                assert closed.value.reason.code == 4029
                assert (await bystander.request({"type": "ping"}, "pong"))["type"] == "pong"


async def test_idle_and_unresponsive_connections_are_closed(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d", heartbeat_interval=0.2,
                           idle_timeout=0.5) as (_, listening):
        with trio.fail_after(10):
            async with connect(listening.ws_url, token("sleepy")) as sleepy:
                with pytest.raises(ConnectionClosed) as closed:
                    await sleepy.expect("never", timeout=5)
                assert closed.value.reason.code == 4000


async def test_a_slow_consumer_is_disconnected_and_slows_nobody(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d", outbox_frames=8, rate_per_second=10_000.0,
                           rate_burst=10_000) as (engine, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, headers={
                "Authorization": f"Bearer {TEST_API_KEY}"}) as api:
            (await api.put(f"/api/shops/{SHOP}", json={"name": SHOP, "bot": {"mode": "off"}})
             ).raise_for_status()
            (await api.put("/api/agents/slow", json={"name": "slow", "shops": [SHOP]})
             ).raise_for_status()
        with trio.fail_after(60):
            async with connect(listening.ws_url, token("fast")) as buyer, \
                    connect(listening.ws_url, token("slow", "agent", SHOP)) as slow:
                conv = (await buyer.open(SHOP))["conversation"]
                async with httpx.AsyncClient(base_url=listening.http_url, headers={
                        "Authorization": f"Bearer {TEST_API_KEY}"}) as api:
                    (await api.post(f"/api/conversations/{conv}/assign",
                                    json={"agent": "slow"})).raise_for_status()
                big = "好" * 5000  # ~15 KB per frame: fills the socket buffers quickly
                for n in range(600):  # the slow agent reads nothing meanwhile
                    await buyer.say(conv, f"m{n}", big)
                assert engine.store.get("conversations", conv.encode())["last_seq"] == 600
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await slow.expect("never", timeout=10)
                assert closed.value.reason.code == 4008
            # It catches up with sync after reconnecting: nothing was lost.
            async with connect(listening.ws_url, token("slow", "agent", SHOP)) as back:
                assert len(await back.sync(conv)) == 600


async def test_reading_an_upload_of_someone_else_is_not_found(running: Running) -> None:
    _, listening = running
    async with httpx.AsyncClient(base_url=listening.http_url) as http:
        response = await http.get("/api/uploads/u-none",
                                  headers={"Authorization": f"Bearer {token('x')}"})
    assert response.status_code == 404
    assert json.loads(response.text)["error"]["code"] == "not_found"
