"""Agents as actors: presence follows connections with a grace on the engine's clock,
the status an agent picks is told to routing, and time on duty is kept per UTC day."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from octim import Engine
from octim.domain.agents import time_key
from octim.testing import TEST_API_KEY, open_engine, token
from octim.testing.client import connect

SHOP = "s1"
DAY_START = 1_796_083_200.0  # 2026-12-01 00:00:00 UTC


class Clock:
    """The engine's clock, moved by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def connections(engine: Engine, agent: str) -> int:
    presence = (await engine.agent(agent))["presence"]
    return int(presence["connections"])


async def until_connections(engine: Engine, agent: str, count: int) -> None:
    """The gateway has told the agent's actor about opened or closed connections."""
    while await connections(engine, agent) != count:
        await trio.sleep(0.005)


async def test_presence_grace_status_and_time_on_duty(tmp_path: Path) -> None:
    clock = Clock(DAY_START + 23 * 3600)  # 23:00 UTC: the evening runs past midnight
    async with open_engine(tmp_path / "d", presence_grace=30) as (engine, listening):
        engine.context.clock = clock
        async with httpx.AsyncClient(base_url=listening.http_url, headers={
                "Authorization": f"Bearer {TEST_API_KEY}"}) as http:
            (await http.put(f"/api/shops/{SHOP}", json={"name": SHOP, "bot": {"mode": "off"}})
             ).raise_for_status()
            (await http.put("/api/agents/a1", json={"name": "小美", "shops": [SHOP]})
             ).raise_for_status()
            with trio.fail_after(20):
                async with connect(listening.ws_url, token("a1", "agent", SHOP)) as agent:
                    await until_connections(engine, "a1", 1)
                    view = await engine.agent("a1")
                    assert view["status"] == "online" and view["presence"]["chosen"] == "online"
                    clock.now += 1800  # 30 min online
                    await agent.request({"type": "presence", "status": "busy"}, "presence")
                    await agent.request({"type": "ping"}, "pong")
                    while (await engine.agent("a1"))["status"] != "busy":
                        await trio.sleep(0.005)
                    # An unknown status is refused at the frame, before any actor.
                    await agent.send({"type": "presence", "status": "sleeping", "ref": "z"})
                    assert (await agent.expect("error", ref="z"))["code"] == "invalid_body"
                    clock.now += 3600  # one hour busy: 23:30 → 00:30
                # The last connection closed: still busy within the grace, and a reload
                # within it keeps the status the agent picked.
                await until_connections(engine, "a1", 0)
                clock.now += 10
                await engine.tick()
                assert (await engine.agent("a1"))["status"] == "busy"
                async with connect(listening.ws_url, token("a1", "agent", SHOP)):
                    await until_connections(engine, "a1", 1)
                    clock.now += 31  # the old grace timer fires, but it is stale
                    await engine.tick()
                    assert (await engine.agent("a1"))["status"] == "busy"
                await until_connections(engine, "a1", 0)
                clock.now += 31
                await engine.tick()
                view = await engine.agent("a1")
                assert view["status"] == "offline" and view["presence"]["connections"] == 0
            # Time on duty, split at midnight: 30 min online and 30 min busy on the 1st,
            # then busy from 00:00 to the end of the grace (30 min + 10 s + 31 s + 31 s).
            first = engine.store.get("agent_time", time_key("a1", "2026-12-01"))
            second = engine.store.get("agent_time", time_key("a1", "2026-12-02"))
            assert first == {"online": 1_800_000, "busy": 1_800_000}
            assert second == {"busy": (1800 + 10 + 31 + 31) * 1000}
            assert (await engine.agent("a1"))["presence"]["today"] == {"busy": 1872}
