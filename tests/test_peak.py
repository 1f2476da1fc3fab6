"""Peak mode (大促模式) through the real API, WebSocket and store: switched by hand and by
windows on the engine's clock, bot-first, capacity factors, the queue cap's
leave-a-message, who may switch it, and the monitor showing it."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import httpx

from octim.testing import TEST_API_KEY, open_engine, token
from octim.testing.client import connect

KEY = {"Authorization": f"Bearer {TEST_API_KEY}"}
NOON = 1_796_184_000_000  # 2026-12-02 12:00 in Shanghai


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
