"""Routing end to end: real sockets, the real dispatcher, the Rust scorer.

Each rule has a test that fails when the rule breaks, including the failure
modes users report about other systems (see docs/routing.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from octim import Engine, Listening
from octim.auth import issue_token
from octim.testing import TEST_API_KEY, TEST_SECRET, open_engine, token
from octim.testing.client import Client, connect

Running = tuple[Engine, Listening]
SHOP = "s1"


def api(listening: Listening) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=listening.http_url, timeout=10,
                             headers={"Authorization": f"Bearer {TEST_API_KEY}"})


async def setup(listening: Listening, *, agents: dict[str, dict[str, Any]],
                groups: tuple[str, ...] = (), routing: dict[str, Any] | None = None,
                shop: str = SHOP) -> None:
    async with api(listening) as http:
        body: dict[str, Any] = {"name": shop, "bot": {"mode": "off"}}
        if routing is not None:
            body["routing"] = routing
        (await http.put(f"/api/shops/{shop}", json=body)).raise_for_status()
        for group in groups:
            (await http.put(f"/api/shops/{shop}/groups/{group}",
                            json={"name": group})).raise_for_status()
        for agent, fields in agents.items():
            (await http.put(f"/api/agents/{agent}", json={
                "name": agent, "shops": [shop], **fields})).raise_for_status()


async def disconnected(engine: Engine, agent: str) -> None:
    """Wait until the gateway has told the agent's AgentActor their last connection
    closed (a condition, not a duration)."""
    while (await engine.agent(agent))["presence"]["connections"]:
        await trio.sleep(0.005)


async def after_grace(engine: Engine) -> None:
    """One engine tick with the engine's clock past the presence grace."""
    real = engine.context.clock
    engine.context.clock = lambda: real() + engine.settings.presence_grace + 1
    try:
        await engine.tick()
    finally:
        engine.context.clock = real


async def arrive(buyer: Client, text: str, shop: str = SHOP, **context: Any) -> str:
    """Open a conversation and ask the first question (routing starts there)."""
    conv = str((await buyer.open(shop, **context))["conversation"])
    await buyer.say(conv, f"{buyer.user}-1", text)
    return conv


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with open_engine(tmp_path / "data") as pair:
        yield pair


async def test_eight_buyers_three_agents_of_capacity_two(running: Running) -> None:
    _, listening = running
    await setup(listening, agents={a: {"max_concurrent": 2} for a in ("a1", "a2", "a3")})
    with trio.fail_after(30):
        async with AsyncExitStack() as stack:
            agents = {a: await stack.enter_async_context(
                connect(listening.ws_url, token(a, "agent", SHOP))) for a in ("a1", "a2", "a3")}
            buyers = [await stack.enter_async_context(
                connect(listening.ws_url, token(f"b{n}"))) for n in range(8)]
            convs: list[str] = [""] * 8

            async def one(n: int) -> None:
                convs[n] = await arrive(buyers[n], f"你好 {n}")

            async with trio.open_nursery() as nursery:  # all at once
                for n in range(8):
                    nursery.start_soon(one, n)
            assigned: dict[str, list[str]] = {a: [] for a in agents}
            for name, agent in agents.items():
                for _ in range(2):
                    event = await agent.expect("event", event="assigned")
                    assigned[name].append(event["conversation"])
            assert sorted(len(v) for v in assigned.values()) == [2, 2, 2]  # evenly, capacity held
            taken = {c for v in assigned.values() for c in v}
            waiting = [n for n in range(8) if convs[n] not in taken]
            assert len(waiting) == 2
            positions = {}
            for n in waiting:
                queued = await buyers[n].expect("event", event="queued", conversation=convs[n])
                while queued["data"]["position"] > 2:
                    queued = await buyers[n].expect("event", event="queued",
                                                    conversation=convs[n])
                positions[n] = queued["data"]["position"]
                assert queued["data"]["estimated_wait"] > 0
            assert sorted(positions.values()) == [1, 2]
            first, second = sorted(waiting, key=lambda n: positions[n])
            # An agent resolves: the longest-waiting buyer is served first...
            done = assigned["a2"][0]
            await agents["a2"].send({"type": "resolve", "conversation": done})
            got = await agents["a2"].expect("event", event="assigned", conversation=convs[first])
            assert got["data"]["agent"] == "a2"
            moved = await buyers[second].expect("event", event="queued", conversation=convs[second])
            while moved["data"]["position"] != 1:
                moved = await buyers[second].expect("event", event="queued",
                                                    conversation=convs[second])
            assert moved["data"]["estimated_wait"] > 0
            # ...then the next one when capacity frees again.
            await agents["a3"].send({"type": "resolve", "conversation": assigned["a3"][1]})
            await agents["a3"].expect("event", event="assigned", conversation=convs[second])


async def test_keywords_context_and_vip_pick_group_and_order(running: Running) -> None:
    _, listening = running
    await setup(listening, agents={"pre": {"groups": ["pre_sales"], "max_concurrent": 1},
                                   "after": {"groups": ["after_sales"], "max_concurrent": 1},
                                   "ship": {"groups": ["logistics"], "max_concurrent": 1}},
                groups=("pre_sales", "after_sales", "logistics"),
                routing={"context_groups": {"product": "pre_sales"}})
    with trio.fail_after(20):
        async with connect(listening.ws_url, token("pre", "agent", SHOP)) as pre, \
                connect(listening.ws_url, token("after", "agent", SHOP)) as after, \
                connect(listening.ws_url, token("ship", "agent", SHOP)), \
                connect(listening.ws_url, token("k1")) as refund, \
                connect(listening.ws_url, token("k2")) as page:
            conv = await arrive(refund, "我要退货，尺码不对")
            got = await after.expect("event", event="assigned", conversation=conv)
            assert got["data"]["agent"] == "after"
            conv2 = await arrive(page, "这个有货吗", product="sku-1")
            await pre.expect("event", event="assigned", conversation=conv2)
            async with api(listening) as http:
                traced = (await http.get(f"/api/conversations/{conv}/routing")).json()
            (trace,) = traced["traces"]
            assert trace["group"] == "after_sales" and trace["rules"] == ["keyword:退货"]
            assert trace["winner"] == "after" and trace["rule"] == "ranked"
            verdicts = {c["agent"]: c["verdict"] for c in trace["candidates"]}
            assert verdicts == {"after": "winner"}  # only the group's members are candidates

    # VIP: with one busy agent, a VIP who arrives later is served before a regular buyer.
    async with connect(listening.ws_url, token("solo", "agent", "s2")) as solo:
        await setup(listening, agents={"solo": {"max_concurrent": 1}}, shop="s2")
        vip_token = issue_token(TEST_SECRET, "vip-1", "buyer", level=3)
        async with connect(listening.ws_url, token("r0")) as first, \
                connect(listening.ws_url, token("r1")) as regular, \
                connect(listening.ws_url, vip_token) as vip:
            c0 = await arrive(first, "hi", shop="s2")
            await solo.expect("event", event="assigned", conversation=c0)
            c_regular = await arrive(regular, "hello", shop="s2")
            c_vip = await arrive(vip, "hello", shop="s2")
            queued = await vip.expect("event", event="queued", conversation=c_vip)
            assert queued["data"]["position"] == 1  # VIP jumps the regular buyer
            await solo.send({"type": "resolve", "conversation": c0})
            await solo.expect("event", event="assigned", conversation=c_vip)
            assert c_regular


async def test_sticky_to_the_last_agent_but_never_to_an_offline_one(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d") as (engine, listening):
        await setup(listening, agents={"x": {}, "y": {}})
        with trio.fail_after(20):
            async with connect(listening.ws_url, token("x", "agent", SHOP)) as x, \
                    connect(listening.ws_url, token("y", "agent", SHOP)) as y:
                async with connect(listening.ws_url, token("regular")) as buyer:
                    conv = await arrive(buyer, "first visit")
                    first = await buyer.expect("event", event="assigned")
                    served_by = first["data"]["agent"]
                    other = y if served_by == "x" else x
                    await other.send({"type": "ping"})
                    await (x if served_by == "x" else y).send(
                        {"type": "resolve", "conversation": conv})
                    await buyer.expect("event", event="resolved")
                    # Make the other agent the least loaded choice, then reopen:
                    # the buyer still goes back to the agent who served them.
                    await buyer.say(conv, "again", "one more thing")
                    back = await buyer.expect("event", event="assigned",
                                              data={"agent": served_by,
                                                    "agent_name": served_by, "rule": "sticky"})
                    assert back["conversation"] == conv
                    await (x if served_by == "x" else y).send(
                        {"type": "resolve", "conversation": conv})
                    await buyer.expect("event", event="resolved",
                                       data={"by": served_by})
            # The agent who served them goes offline (grace passes), the other stays.
        async with connect(listening.ws_url, token("y" if served_by == "x" else "x",
                                                   "agent", SHOP)) as stays, \
                connect(listening.ws_url, token("regular")) as buyer:
            await disconnected(engine, served_by)
            await engine.tick()  # within the grace: still online
            assert (await engine.agent(served_by))["status"] == "online"
            await after_grace(engine)
            assert (await engine.agent(served_by))["status"] == "offline"
            await buyer.say(conv, "third", "still me")
            got = await buyer.expect("event", event="assigned", conversation=conv)
            assert got["data"]["agent"] != served_by and got["data"]["rule"] == "ranked"
            assert stays.user == got["data"]["agent"]


async def test_no_reply_reassignment_and_offline_requeue(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d") as (engine, listening):
        await setup(listening, agents={"slowpoke": {}, "helper": {}},
                    routing={"no_reply_seconds": 30, "ranking": "longest_idle"})
        with trio.fail_after(20):
            async with connect(listening.ws_url, token("slowpoke", "agent", SHOP)) as slow, \
                    connect(listening.ws_url, token("buyer-n")) as buyer:
                conv = await arrive(buyer, "anyone there?")
                await slow.expect("event", event="assigned", conversation=conv)
                async with connect(listening.ws_url, token("helper", "agent", SHOP)) as helper:
                    await helper.request({"type": "ping"}, "pong")
                    real = engine.context.clock
                    engine.context.clock = lambda: real() + 31
                    try:
                        await engine.tick()
                    finally:
                        engine.context.clock = real
                    gone = await slow.expect("event", event="unassigned", conversation=conv)
                    assert gone["data"] == {"agent": "slowpoke", "reason": "no_reply"}
                    got = await helper.expect("event", event="assigned", conversation=conv)
                    assert got["data"]["agent"] == "helper"
                    # The helper answers in time; then goes offline without a reply
                    # to the next question: the conversation stays (it was answered).
                    await helper.say(conv, "h-1", "我来帮您")
            async with connect(listening.ws_url, token("buyer-m")) as other, \
                    connect(listening.ws_url, token("slowpoke", "agent", SHOP)) as slow:
                fresh = await arrive(other, "hello?")
                await slow.expect("event", event="assigned", conversation=fresh)
            # slowpoke's last connection closed and never replied: after the grace
            # the conversation goes back to the queue (helper is offline too).
            await disconnected(engine, "slowpoke")
            await disconnected(engine, "helper")
            await after_grace(engine)
            async with api(listening) as http:
                trace = (await http.get(f"/api/conversations/{fresh}/routing")).json()
            assert trace["state"] == "queued" and trace["waiting"]["reason"] == "agent_offline"
            assert trace["waiting"]["exclude_agent"] == "slowpoke"


async def test_transfer_to_another_shop_keeps_the_history(running: Running) -> None:
    _, listening = running
    await setup(listening, agents={"a": {}})
    await setup(listening, agents={"b": {}}, shop="s2")
    with trio.fail_after(20):
        async with connect(listening.ws_url, token("a", "agent", SHOP)) as a, \
                connect(listening.ws_url, token("a", "agent", SHOP, "s2")) as a2, \
                connect(listening.ws_url, token("b", "agent", "s2")) as b, \
                connect(listening.ws_url, token("buyer-x")) as buyer:
            conv = await arrive(buyer, "这个问题其实要问另一家店")
            await a.expect("event", event="assigned", conversation=conv)
            await b.send({"type": "transfer", "conversation": conv, "to_shop": SHOP,
                          "ref": "nope"})
            assert (await b.expect("error", ref="nope"))["code"] == "not_found"
            # Only into a shop the agent serves; an unknown shop answers the same, so
            # shop ids cannot be probed.
            for target in ("s2", "no-such-shop"):
                await a.send({"type": "transfer", "conversation": conv, "to_shop": target,
                              "ref": target})
                refused = await a.expect("error", ref=target)
                assert refused["code"] == "forbidden", refused
                assert "exist" not in refused["message"]
            await a2.send({"type": "transfer", "conversation": conv, "to_shop": "s2",
                           "note": "买家问的是s2的商品"})
            moved = await buyer.expect("event", event="transferred")
            assert moved["data"]["to_shop"] == "s2" and moved["data"]["note"]
            got = await b.expect("event", event="assigned", conversation=conv)
            assert got["data"]["agent"] == "b"
            history = await b.sync(conv)
            assert history[0]["body"]["text"] == "这个问题其实要问另一家店"
            assert history[-1]["kind"] == "system" and history[-1]["body"]["text"]
            # The first shop's staff no longer see it, nor does it stay in a's inbox.
            await a.send({"type": "sync", "conversation": conv, "ref": "old"})
            assert (await a.expect("error", ref="old"))["code"] == "not_found"
            await a2.send({"type": "inbox"})
            listed = (await a2.expect("inbox"))["conversations"]
            assert conv not in [c["conversation"] for c in listed]


async def test_routing_api_and_trace_permissions(running: Running) -> None:
    _, listening = running
    await setup(listening, agents={"a": {"groups": ["pre_sales"]}}, groups=("pre_sales",))
    async with api(listening) as http:
        agent = (await http.get("/api/agents/a")).json()
        assert agent["status"] == "offline" and agent["load"] == 0
        assert (await http.get(f"/api/shops/{SHOP}/groups")).json()[0]["id"] == "pre_sales"
        bad = await http.put("/api/agents/b", json={"name": "b", "shops": [SHOP],
                                                    "max_concurrent": 0})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_body"
        bad_policy = await http.put(f"/api/shops/{SHOP}", json={
            "name": SHOP, "routing": {"ranking": "random"}})
        assert bad_policy.status_code == 422
    async with connect(listening.ws_url, token("buyer-p")) as buyer:
        conv = await arrive(buyer, "hi")  # nobody online: it waits, leave-a-message mode
        queued = await buyer.expect("event", event="queued")
        assert queued["data"] == {"position": 1, "mode": "leave_message"}
    url = f"/api/conversations/{conv}/routing"
    async with httpx.AsyncClient(base_url=listening.http_url) as http:
        def bearer(*args: Any) -> dict[str, str]:
            return {"Authorization": f"Bearer {token(*args)}"}

        admin = await http.get(url, headers=bearer("boss", "shop_admin", SHOP))
        assert admin.status_code == 200
        waiting = admin.json()["waiting"]
        assert waiting["reason"] == "first_message" and admin.json()["traces"] == []
        assert (await http.get(url, headers=bearer("a", "agent", SHOP))).status_code == 403
        other = await http.get(url, headers=bearer("spy", "shop_admin", "s9"))
        assert other.status_code == 404
        assert (await http.get(url)).status_code == 401


async def test_platform_overflow_serves_a_shop_with_nobody_online(running: Running) -> None:
    engine, listening = running
    # The Python API: the same operations as the HTTP ones.
    await engine.put_shop(SHOP, "夜间无人店", routing={"overflow_to_platform": True},
                          bot={"mode": "off"})
    await engine.put_shop("s2", "另一家店", bot={"mode": "off"})
    await engine.put_agent("shop-agent", "店员", (SHOP,))
    await engine.put_agent("night", "平台夜班", ("*",))
    with trio.fail_after(20):
        async with connect(listening.ws_url, token("night", "agent", "*")) as night, \
                connect(listening.ws_url, token("buyer-o")) as buyer, \
                connect(listening.ws_url, token("buyer-q")) as other:
            conv = await arrive(buyer, "有人吗")
            got = await night.expect("event", event="assigned", conversation=conv)
            assert got["data"]["agent"] == "night"
            assert [m["seq"] for m in await night.sync(conv)] == [1]  # platform staff may read
            # A shop that did not opt in keeps its buyers waiting for its own staff.
            conv2 = await arrive(other, "hello", shop="s2")
            queued = await other.expect("event", event="queued", conversation=conv2)
            assert queued["data"]["mode"] == "leave_message"
    assert (await engine.agent("night"))["load"] == 1


async def test_a_returning_agent_is_not_flooded(running: Running) -> None:
    engine, listening = running
    await engine.put_shop(SHOP, "店", routing={"ranking": "longest_idle"}, bot={"mode": "off"})
    for agent in ("steady", "returning"):
        await engine.put_agent(agent, agent, (SHOP,), max_concurrent=10)
    with trio.fail_after(30):
        async with connect(listening.ws_url, token("steady", "agent", SHOP)) as steady:
            async with AsyncExitStack() as stack:
                for n in range(3):  # steady works alone for a while
                    buyer = await stack.enter_async_context(
                        connect(listening.ws_url, token(f"early{n}")))
                    await arrive(buyer, "hi")
                    await steady.expect("event", event="assigned")
                async with connect(listening.ws_url, token("returning", "agent", SHOP)), \
                        AsyncExitStack() as late:
                    winners = []
                    for n in range(4):
                        buyer = await late.enter_async_context(
                            connect(listening.ws_url, token(f"late{n}")))
                        conv = await arrive(buyer, "hi")
                        winners.append((await buyer.expect("event", event="assigned",
                                                           conversation=conv))["data"]["agent"])
    # The returning agent takes turns with the others; it does not get everything.
    assert winners == ["returning", "steady", "returning", "steady"]
