"""Peak mode (大促模式) through the real API, WebSocket and store: switched by hand and by
windows on the engine's clock, bot-first, capacity factors, the queue cap's
leave-a-message, who may switch it, and the monitor showing it."""

from __future__ import annotations

import io
import json
import logging
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio.testing import MockClock

from octim.auth import issue_token
from octim.logs import JsonFormatter
from octim.testing import TEST_API_KEY, TEST_SECRET, open_engine, token
from octim.testing.client import connect

KEY = {"Authorization": f"Bearer {TEST_API_KEY}"}
NOON = 1_796_184_000_000  # 2026-12-02 12:00 in Shanghai


@pytest.fixture
def jumping_clock() -> MockClock:
    """trio's autojump clock, jumping once every task has waited 50 ms of real time: the
    store's writer thread and the loopback sockets work in real time, and a jump while
    they do would time out what waits for them. A jump goes to the next deadline only."""
    return MockClock(autojump_threshold=0.05)


async def test_windows_switch_peak_mode_on_and_off_bot_first(tmp_path: Path) -> None:
    now = [NOON / 1000]
    async with open_engine(tmp_path / "d") as (engine, listening), httpx.AsyncClient(
            base_url=listening.http_url, timeout=10, headers=KEY) as http:
        engine.context.clock = lambda: now[0]
        (await http.put("/api/shops/s1", json={"name": "s1", "bot": {"mode": "off"}})
         ).raise_for_status()
        hour = 3_600_000
        put = await http.put("/api/shops/s1/peak", json={"windows": [
            {"from": NOON + hour, "to": NOON + 2 * hour}]})
        assert put.status_code == 200 and put.json()["active"] is False
        opened: list[str] = []
        for n, at in enumerate((NOON, NOON + hour + 1, NOON + 2 * hour)):
            now[0] = at / 1000
            async with connect(listening.ws_url, token(f"b{n}")) as buyer:
                opened.append((await buyer.open("s1"))["state"])
                if n == 1:
                    async with connect(listening.ws_url,
                                       token("boss", "shop_admin", "s1")) as boss:
                        await boss.send({"type": "monitor"})
                        (row,) = (await boss.expect("monitor"))["shops"]
                        assert row["peak"] == "shop"
        # Before the window: queued as usual; inside: the bot first; after: queued again.
        assert opened == ["queued", "bot", "queued"]
        # The platform's switch puts every shop in peak mode.
        (await http.put("/api/platform/peak", json={"on": True})).raise_for_status()
        async with connect(listening.ws_url, token("b9")) as buyer:
            assert (await buyer.open("s1"))["state"] == "bot"
        shown = (await http.get("/api/shops/s1/peak")).json()
        assert shown["state"] == "platform" and shown["active"] is False
        assert (await http.get("/api/platform/peak")).json()["active"] is True


async def test_capacity_factor_and_queue_cap_offer_leave_a_message(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d") as (_engine, listening), httpx.AsyncClient(
            base_url=listening.http_url, timeout=10, headers=KEY) as http:
        (await http.put("/api/shops/s1", json={"name": "s1", "bot": {"mode": "off"}})
         ).raise_for_status()
        (await http.put("/api/agents/a1", json={"name": "a1", "shops": ["s1"],
                                                "max_concurrent": 1})).raise_for_status()
        (await http.put("/api/shops/s1/peak", json={
            "on": True, "capacity_factor": 2.0, "queue_cap": 1})).raise_for_status()
        async with connect(listening.ws_url, token("a1", "agent", "s1")) as agent, \
                AsyncExitStack() as stack:
            buyers = [await stack.enter_async_context(connect(listening.ws_url,
                                                              token(f"b{n}")))
                      for n in range(4)]
            conversations = []
            for n, buyer in enumerate(buyers):
                opened = await buyer.open("s1")
                assert opened["state"] == "bot"  # peak mode: the bot first
                conversations.append(opened["conversation"])
                await buyer.say(opened["conversation"], f"h{n}", "转人工")
            # Capacity 1 × 2: the agent takes two; the third waits at 1, the fourth is
            # past the cap of 1 and is offered leave-a-message, with its wait.
            for conversation in conversations[:2]:
                await agent.expect("event", event="assigned", conversation=conversation)
            third = await buyers[2].expect("event", event="queued")
            assert third["data"]["position"] == 1 and "mode" not in third["data"]
            fourth = await buyers[3].expect("event", event="queued")
            assert fourth["data"]["position"] == 2
            assert fourth["data"]["mode"] == "leave_message"
            assert fourth["data"]["reason"] == "queue_cap"
            assert fourth["data"]["estimated_wait"] > 0
        trace = (await http.get(f"/api/conversations/{conversations[1]}/routing")).json()
        assert trace["traces"][-1]["candidates"][0]["capacity"] == 2


async def test_who_may_switch_peak_mode(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d") as (_engine, listening), httpx.AsyncClient(
            base_url=listening.http_url, timeout=10) as http:
        for shop in ("s1", "s2"):
            (await http.put(f"/api/shops/{shop}", headers=KEY, json={"name": shop})
             ).raise_for_status()
        body = {"on": True}

        def who(user: str, role: str, *shops: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token(user, role, *shops)}"}

        assert (await http.put("/api/shops/s1/peak", json=body,
                               headers=who("boss", "shop_admin", "s1"))).status_code == 200
        for headers, status in ((who("a1", "agent", "s1"), 403),
                                (who("boss2", "shop_admin", "s2"), 404),
                                (who("b1", "buyer"), 403)):
            answer = await http.put("/api/shops/s1/peak", json=body, headers=headers)
            assert answer.status_code == status, answer.text
        assert (await http.put("/api/platform/peak", json=body,
                               headers=who("boss", "shop_admin", "s1"))).status_code == 403
        for bad in ({"capacity_factor": 9}, {"queue_cap": 0},
                    {"windows": [{"from": 10, "to": 5}]}, {"on": "yes"}, {"x": 1}):
            answer = await http.put("/api/shops/s1/peak", json=bad, headers=KEY)
            assert answer.status_code == 422, (bad, answer.text)
            assert answer.json()["error"]["code"] == "invalid_body"
        assert (await http.put("/api/shops/nope/peak", json=body, headers=KEY)
                ).status_code == 404


async def test_a_window_prewarms_then_switches_at_its_edges_on_the_autojump_clock(
        tmp_path: Path, jumping_clock: MockClock) -> None:
    """Nothing moves the engine but time: ``peak_prewarm`` before the window its shop is
    warmed; at its start the waiting buyer is assigned under the doubled capacity (no
    other event drives it); inside it a new buyer meets the bot; after it, the queue."""
    minute = 60_000
    base = NOON / 1000 - trio.current_time()
    # No periodic task wakes more often than the edges (each wake costs a jump's 50 ms).
    quiet = {"routing_tick": 3600, "admission_probe_interval": 600, "sweep_interval": 3600,
             "heartbeat_interval": 10**6, "idle_timeout": 10**6}
    async with open_engine(tmp_path / "d", peak_prewarm=300, **quiet) as (engine, listening):
        engine.context.clock = lambda: base + trio.current_time()

        async def api(method: str, path: str, **body: Any) -> Any:
            async with httpx.AsyncClient(base_url=listening.http_url, headers=KEY) as http:
                answer = await http.request(method, path, json=body or None)
                assert answer.status_code == 200, answer.text
                return answer.json()

        await api("PUT", "/api/shops/s1", name="s1", bot={"mode": "off"})
        await api("PUT", "/api/agents/a1", name="a1", shops=["s1"], max_concurrent=1)
        shown = await api("PUT", "/api/shops/s1/peak", capacity_factor=2.0, windows=[
            {"from": NOON + 10 * minute, "to": NOON + 20 * minute}])
        assert shown["active"] is False and shown["prewarmed_at"] is None
        async with connect(listening.ws_url, token("a1", "agent", "s1")) as agent, \
                connect(listening.ws_url, token("b0")) as b0, \
                connect(listening.ws_url, token("b1")) as b1:
            first = await b0.open("s1")
            await b0.say(first["conversation"], "m0", "在吗")  # the first message routes
            await agent.expect("event", event="assigned", conversation=first["conversation"])
            second = await b1.open("s1")
            await b1.say(second["conversation"], "m1", "在吗")
            assert (await b1.expect("event", event="queued"))["data"]["position"] == 1
            await trio.sleep(5 * 60 + 1)  # into the pre-warm lead, not the window
            shown = await api("GET", "/api/shops/s1/peak")
            assert shown["active"] is False
            assert NOON + 5 * minute <= shown["prewarmed_at"] <= NOON + 5 * minute + 1000
            assert engine.directory.is_active("kb", "main")
            await trio.sleep(5 * 60)  # the window starts
            await agent.expect("event", event="assigned", conversation=second["conversation"])
            trace = (await api("GET", f"/api/conversations/{second['conversation']}/routing")
                     )["traces"][-1]
            assert NOON + 10 * minute <= trace["at"] <= NOON + 10 * minute + 1000
            assert trace["candidates"][0]["capacity"] == 2
            async with connect(listening.ws_url, token("b2")) as b2:
                assert (await b2.open("s1"))["state"] == "bot"
            await trio.sleep(10 * 60)  # the window ends
            async with connect(listening.ws_url, token("b3")) as b3:
                assert (await b3.open("s1"))["state"] == "queued"
            shown = await api("GET", "/api/shops/s1/peak")
            assert shown["active"] is False and shown["prewarmed_at"] is None


async def test_peak_orders_the_queue_vips_then_recent_payers_or_the_reverse(
        tmp_path: Path) -> None:
    """售后优先: VIPs first, then buyers with a paid order in the last 7 days, then the
    rest, whatever the arrival order; 询单优先 puts buyers without one first. Shown in
    the order an agent is given them and in the routing trace."""
    day = 86_400_000
    async with open_engine(tmp_path / "d") as (engine, listening), httpx.AsyncClient(
            base_url=listening.http_url, timeout=10, headers=KEY) as http:
        engine.context.clock = lambda: NOON / 1000
        (await http.put("/api/shops/s1", json={"name": "s1", "bot": {"mode": "off"}})
         ).raise_for_status()
        (await http.put("/api/agents/a1", json={"name": "a1", "shops": ["s1"],
                                                "max_concurrent": 1})).raise_for_status()
        for order, buyer, paid in (("o1", "recent", NOON - 2 * day),
                                   ("o2", "old", NOON - 30 * day)):
            for round_ in "12":  # each round has buyers of its own
                (await http.put(f"/api/orders/{order}-{round_}", json={
                    "shop": "s1", "customer": f"{buyer}-{round_}", "status": "shipped",
                    "times": {"created": paid, "paid": paid}})).raise_for_status()
        rounds = (("after_sales", ["vip", "recent", "none", "old"]),
                  ("pre_sales", ["vip", "none", "old", "recent"]))
        for round_, (priority, expected) in enumerate(rounds, 1):
            (await http.put("/api/shops/s1/peak", json={
                "on": True, "priority": priority, "recent_order_days": 7})).raise_for_status()
            async with connect(listening.ws_url, token("a1", "agent", "s1")) as agent, \
                    AsyncExitStack() as stack:
                busy = await stack.enter_async_context(connect(listening.ws_url,
                                                               token(f"busy-{round_}")))
                opened = await busy.open("s1")
                await busy.say(opened["conversation"], "m", "转人工")
                await agent.expect("event", event="assigned", conversation=opened["conversation"])
                conversations: dict[str, str] = {}
                for buyer in ("none", "old", "recent", "vip"):  # arrival order
                    user = issue_token(TEST_SECRET, f"{buyer}-{round_}", "buyer",
                                       level=3 if buyer == "vip" else 0)
                    client = await stack.enter_async_context(connect(listening.ws_url, user))
                    found = await client.open("s1")
                    await client.say(found["conversation"], "m", "转人工")
                    await client.expect("event", event="queued")
                    conversations[found["conversation"]] = buyer
                served, current = [], opened["conversation"]
                for _ in conversations:
                    await agent.send({"type": "resolve", "conversation": current})
                    got = await agent.expect("event", event="assigned")
                    current = got["conversation"]
                    served.append(conversations[current])
                await agent.send({"type": "resolve", "conversation": current})
                assert served == expected, priority
                trace = (await http.get(f"/api/conversations/{current}/routing")).json()
                rules = trace["traces"][-1]["rules"]
                assert any(r.startswith(f"peak:{priority}") for r in rules), rules


async def test_log_lines_carry_the_request_conversation_and_shop_ids(tmp_path: Path) -> None:
    """JSON logs: a request's lines carry its id (the client's ``X-Request-Id``, echoed)
    and the shop of its path; an actor's lines its conversation and shop; a background
    task's lines neither."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)  # setLevel, not .level: loggers cache what is enabled
    try:
        async with open_engine(tmp_path / "d") as (_engine, listening), httpx.AsyncClient(
                base_url=listening.http_url, timeout=10, headers=KEY) as http:
            (await http.put("/api/shops/s1", json={"name": "s1", "bot": {"mode": "off"}})
             ).raise_for_status()
            (await http.put("/api/agents/a1", json={"name": "a1", "shops": ["s1"]})
             ).raise_for_status()
            answer = await http.put("/api/shops/s1/peak", json={"on": True},
                                    headers={"X-Request-Id": "req-42"})
            assert answer.headers["x-request-id"] == "req-42"
            made = (await http.get("/healthz", headers={"X-Request-Id": "bad id!"})).headers
            assert made["x-request-id"] != "bad id!" and len(made["x-request-id"]) == 16
            async with connect(listening.ws_url, token("a1", "agent", "s1")) as agent, \
                    connect(listening.ws_url, token("b1")) as buyer:
                opened = await buyer.open("s1")
                await buyer.say(opened["conversation"], "m", "转人工")
                await agent.expect("event", event="assigned")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    by_msg = {line["msg"]: line for line in lines}
    assert by_msg["peak mode set"]["request_id"] == "req-42"
    assert by_msg["peak mode set"]["shop"] == "s1"
    assigned = by_msg["conversation assigned"]
    assert assigned["conversation"] == opened["conversation"] and assigned["shop"] == "s1"
    assert "request_id" not in assigned  # the actor's line, not the request's
    assert "request_id" not in by_msg["peak mode on"]  # the engine's peak task
    assert by_msg["peak mode on"]["shop"] == "s1"
