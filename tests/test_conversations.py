"""Conversations end to end over real sockets, in both subprotocols."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from octim import Engine, Listening
from octim.domain.conversations import actor as conversation_actor
from octim.gateway.codec import JSON, MSGPACK
from octim.testing import TEST_API_KEY, open_engine, token
from octim.testing.client import Client, connect

Running = tuple[Engine, Listening]
SHOP, OTHER_SHOP = "s1", "s2"


@pytest.fixture(params=[JSON, MSGPACK])
def subprotocol(request: Any) -> str:
    return str(request.param)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with open_engine(tmp_path / "data") as (engine, listening):
        async with platform(listening) as api:
            for shop in (SHOP, OTHER_SHOP):
                (await api.put(f"/api/shops/{shop}", json={"name": shop, "bot": {"mode": "off"}})
                 ).raise_for_status()
            for agent in ("agent-1", "agent-2"):
                (await api.put(f"/api/agents/{agent}", json={
                    "name": agent, "shops": [SHOP]})).raise_for_status()
        yield engine, listening


def platform(listening: Listening) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=listening.http_url, timeout=10,
                             headers={"Authorization": f"Bearer {TEST_API_KEY}"})


async def assign(listening: Listening, conversation: str, agent: str) -> None:
    async with platform(listening) as api:
        response = await api.post(f"/api/conversations/{conversation}/assign",
                                  json={"agent": agent})
        response.raise_for_status()


async def opened_and_assigned(listening: Listening, buyer: Client, agent: str = "agent-1",
                              **context: Any) -> str:
    opened = await buyer.open(SHOP, **context)
    await assign(listening, opened["conversation"], agent)
    await buyer.expect("event", event="assigned")
    return str(opened["conversation"])


async def test_buyer_opens_agent_replies_offline_buyer_syncs(running: Running,
                                                             subprotocol: str) -> None:
    _, listening = running
    url = listening.ws_url
    with trio.fail_after(20):
        async with connect(url, token("buyer-1"), subprotocol=subprotocol) as buyer:
            opened = await buyer.open(SHOP, product="sku-9", title="羽绒服", price=299)
            conv = opened["conversation"]
            assert opened["state"] == "queued"
            await buyer.expect("event", event="opened", conversation=conv)
            card = await buyer.expect("msg", conversation=conv, seq=1)
            assert card["kind"] == "product" and card["body"]["product"] == "sku-9"
            assert (await buyer.open(SHOP, ref="again"))["conversation"] == conv
            await assign(listening, conv, "agent-1")
            assigned = await buyer.expect("event", event="assigned")
            assert assigned["data"] == {"agent": "agent-1", "agent_name": "agent-1",
                                        "rule": "forced"}

            async with connect(url, token("agent-1", "agent", SHOP),
                               subprotocol=subprotocol) as agent:
                ack = await buyer.say(conv, "b-1", "你好，有货吗？😀")
                assert ack["seq"] == 2 and ack["conversation"] == conv and ack["ts"] > 0
                got = await agent.expect("msg", conversation=conv, seq=2)
                assert got["from"] == "buyer-1" and got["role"] == "buyer"
                assert got["body"] == {"text": "你好，有货吗？😀"} and got["id"] == "b-1"
                reply = await agent.say(conv, "a-1", "亲，有货的")
                seen = await buyer.expect("msg", seq=reply["seq"])
                assert seen["from"] == "agent-1" and seen["role"] == "agent"
                await buyer.send({"type": "read", "conversation": conv, "upto": seen["seq"]})
                assert (await agent.expect("event", event="read"))["data"]["upto"] == 3

        # The buyer is offline now; the agent keeps writing.
        async with connect(url, token("agent-1", "agent", SHOP),
                           subprotocol=subprotocol) as agent:
            for n in range(3):
                await agent.say(conv, f"a-late-{n}", f"第{n}条")

        async with connect(url, token("buyer-1"), subprotocol=subprotocol) as buyer:
            inbox = await buyer.request({"type": "inbox"}, "inbox")
            (entry,) = inbox["conversations"]
            assert entry["conversation"] == conv and entry["shop"] == SHOP
            assert entry["last_seq"] == 6 and entry["unread"] == 3
            missed = await buyer.sync(conv, after=entry["read"])
            assert [m["seq"] for m in missed] == [4, 5, 6]
            assert [m["body"]["text"] for m in missed] == ["第0条", "第1条", "第2条"]
            everything = await buyer.sync(conv)
            assert [m["seq"] for m in everything] == [1, 2, 3, 4, 5, 6]
            async with connect(url, token("agent-1", "agent", SHOP)) as agent:
                await buyer.send({"type": "read", "conversation": conv, "upto": 6})
                receipt = await agent.expect("event", event="read")
                assert receipt["data"] == {"user": "buyer-1", "upto": 6}
            inbox = await buyer.request({"type": "inbox"}, "inbox")
            assert inbox["conversations"][0]["unread"] == 0


async def test_every_device_of_a_user_gets_every_frame(running: Running) -> None:
    _, listening = running
    with trio.fail_after(20):
        async with connect(listening.ws_url, token("buyer-2")) as phone, \
                connect(listening.ws_url, token("buyer-2"), subprotocol=MSGPACK) as pc:
            conv = await opened_and_assigned(listening, phone)
            await pc.expect("event", event="assigned", conversation=conv)
            async with connect(listening.ws_url, token("agent-1", "agent", SHOP)) as agent:
                ack = await phone.say(conv, "p-1", "from my phone")
                copy = await pc.expect("msg", seq=ack["seq"])
                assert copy["body"]["text"] == "from my phone"
                answer = await agent.say(conv, "a-1", "both of you see this")
                for device in (phone, pc):
                    await device.expect("msg", seq=answer["seq"])
                # The sending connection got the ack, not a second copy as msg.
                await phone.request({"type": "ping"}, "pong")
                assert not [f for f in phone.inbox if f.get("seq") == ack["seq"]
                            and f["type"] == "msg"]


async def test_resending_a_client_id_returns_the_same_ack_also_after_restart(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    with trio.fail_after(30):
        async with open_engine(data) as (_, listening):
            async with platform(listening) as api:
                (await api.put(f"/api/shops/{SHOP}", json={"name": "店", "bot": {"mode": "off"}})
                 ).raise_for_status()
            async with connect(listening.ws_url, token("buyer-3")) as buyer:
                conv = (await buyer.open(SHOP))["conversation"]
                first = await buyer.say(conv, "dup-1", "once")
                again = await buyer.say(conv, "dup-1", "once")
                assert again == first
        async with open_engine(data) as (engine, listening):
            async with connect(listening.ws_url, token("buyer-3")) as buyer:
                after_restart = await buyer.say(conv, "dup-1", "once")
                assert after_restart == first
                assert [m["id"] for m in await buyer.sync(conv)] == ["dup-1"]
            assert engine.store.get("conversations", conv.encode())["last_seq"] == 1


async def test_more_client_ids_than_memory_holds_are_still_deduplicated_from_the_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ACK_CACHE ids the actor no longer knows every id: it asks the store."""
    monkeypatch.setattr(conversation_actor, "ACK_CACHE", 2)
    data = tmp_path / "data"
    with trio.fail_after(30):
        async with open_engine(data) as (_, listening):
            async with platform(listening) as api:
                (await api.put(f"/api/shops/{SHOP}", json={"name": "店", "bot": {"mode": "off"}})
                 ).raise_for_status()
            async with connect(listening.ws_url, token("buyer-3")) as buyer:
                conv = (await buyer.open(SHOP))["conversation"]
                acks = [await buyer.say(conv, f"m{i}", f"第{i}条") for i in range(4)]
                assert await buyer.say(conv, "m0", "第0条") == acks[0]  # evicted: the store
        async with open_engine(data) as (engine, listening):  # starts with 2 of 4 ids
            async with connect(listening.ws_url, token("buyer-3")) as buyer:
                assert [await buyer.say(conv, f"m{i}", f"第{i}条") for i in range(4)] == acks
            assert engine.store.get("conversations", conv.encode())["last_seq"] == 4


async def test_recall_leaves_a_tombstone_and_only_the_author_within_the_window(
        running: Running) -> None:
    engine, listening = running
    with trio.fail_after(20):
        async with connect(listening.ws_url, token("buyer-4")) as buyer, \
                connect(listening.ws_url, token("agent-1", "agent", SHOP)) as agent:
            conv = await opened_and_assigned(listening, buyer)
            mine = await buyer.say(conv, "r-1", "oops, wrong photo")
            theirs = await agent.say(conv, "r-2", "ok")
            await buyer.send({"type": "recall", "conversation": conv, "seq": theirs["seq"],
                              "ref": "x"})
            assert (await buyer.expect("error", ref="x"))["code"] == "forbidden"
            await buyer.send({"type": "recall", "conversation": conv, "seq": mine["seq"]})
            for side in (buyer, agent):
                event = await side.expect("event", event="recalled")
                assert event["data"] == {"seq": mine["seq"], "by": "buyer-4"}
            tombstone = (await agent.sync(conv))[mine["seq"] - 1]
            assert tombstone["recalled"] is True and tombstone["body"] == {}
            assert tombstone["id"] == "r-1" and tombstone["from"] == "buyer-4"
            late = await buyer.say(conv, "r-3", "too late to take back")
            real_clock = engine.context.clock
            engine.context.clock = lambda: real_clock() + 121
            try:
                await buyer.send({"type": "recall", "conversation": conv,
                                  "seq": late["seq"], "ref": "late"})
                error = await buyer.expect("error", ref="late")
                assert error["code"] == "invalid_state"
            finally:
                engine.context.clock = real_clock


async def test_typing_is_delivered_to_the_other_side_and_never_stored(
        running: Running) -> None:
    _, listening = running
    with trio.fail_after(20):
        async with connect(listening.ws_url, token("buyer-5")) as buyer, \
                connect(listening.ws_url, token("agent-1", "agent", SHOP)) as agent:
            conv = await opened_and_assigned(listening, buyer)
            await buyer.send({"type": "typing", "conversation": conv})
            typing = await agent.expect("event", event="typing")
            assert typing["data"] == {"user": "buyer-5"}
            assert await buyer.sync(conv) == []


async def test_resolve_rate_reopen_and_auto_close(running: Running) -> None:
    engine, listening = running
    with trio.fail_after(20):
        async with connect(listening.ws_url, token("buyer-6")) as buyer, \
                connect(listening.ws_url, token("agent-1", "agent", SHOP)) as agent:
            conv = await opened_and_assigned(listening, buyer)
            await buyer.send({"type": "rate", "conversation": conv, "score": 5, "ref": "early"})
            assert (await buyer.expect("error", ref="early"))["code"] == "invalid_state"
            await agent.send({"type": "resolve", "conversation": conv})
            for side in (buyer, agent):
                await side.expect("event", event="resolved")
            await buyer.send({"type": "rate", "conversation": conv, "score": 4,
                              "comment": "很快"})
            assert (await agent.expect("event", event="rated"))["data"] == {"score": 4}
            await buyer.send({"type": "rate", "conversation": conv, "score": 1, "ref": "twice"})
            assert (await buyer.expect("error", ref="twice"))["code"] == "invalid_state"
            # Writing soon after the resolve reopens; the dispatcher gives it back to
            # the same agent, who is online (熟客优先).
            await buyer.say(conv, "after", "one more question")
            reopened = await buyer.expect("event", event="reopened")
            assert reopened["data"] == {"state": "queued"}
            back = await agent.expect("event", event="assigned", conversation=conv,
                                      data={"agent": "agent-1", "agent_name": "agent-1",
                                            "rule": "sticky"})
            assert back["type"] == "event"
            # Inactive past the auto-close time: the sweep closes it.
            real_clock = engine.context.clock
            engine.context.clock = lambda: real_clock() + 1801
            try:
                assert await engine.sweep() == 1
                closed = await buyer.expect("event", event="closed")
                assert closed["data"] == {"reason": "inactive"}
            finally:
                engine.context.clock = real_clock
            await buyer.send({"type": "send", "conversation": conv, "id": "x", "kind": "text",
                              "body": {"text": "hello?"}})
            assert (await buyer.expect("error", ref="x"))["code"] == "conversation_closed"
            fresh = await buyer.open(SHOP, ref="new")
            assert fresh["conversation"] != conv
    meta = engine.store.get("conversations", conv.encode())
    assert meta["state"] == "closed" and meta["rating"]["score"] == 4
    logged = [e for _, e in engine.store.read_log("log", 0, 100_000)
              if e["conversation"] == conv]
    events = [e["event"] for e in logged if e["event"] != "message"]
    assert events == ["opened", "assigned", "resolved", "rated", "reopened", "assigned",
                      "closed"]
    assert logged[0]["data"]["state"] == "queued" and logged[0]["data"]["buyer"] == "buyer-6"
    said = [e["data"] for e in logged if e["event"] == "message"]
    assert said and all("body" not in d for d in said)  # the log never holds bodies


async def test_transfer_moves_live_delivery_to_the_new_agent(running: Running) -> None:
    _, listening = running
    with trio.fail_after(20):
        async with connect(listening.ws_url, token("buyer-t")) as buyer, \
                connect(listening.ws_url, token("agent-1", "agent", SHOP)) as first, \
                connect(listening.ws_url, token("agent-2", "agent", SHOP)) as second:
            conv = await opened_and_assigned(listening, buyer)
            await buyer.say(conv, "t-1", "before")
            await first.expect("msg", seq=1)
            await assign(listening, conv, "agent-2")
            for side in (buyer, first, second):
                moved = await side.expect("event", event="transferred")
                assert moved["data"] == {"from": "agent-1", "to": "agent-2"}
            await second.expect("event", event="assigned",
                                data={"agent": "agent-2", "agent_name": "agent-2",
                                      "rule": "forced"})
            after = await buyer.say(conv, "t-2", "after")
            await second.expect("msg", seq=after["seq"])
            await first.request({"type": "ping"}, "pong")
            assert not [f for f in first.inbox if f.get("seq") == after["seq"]]
            inbox = (await second.request({"type": "inbox"}, "inbox"))["conversations"]
            assert [e["conversation"] for e in inbox] == [conv]
