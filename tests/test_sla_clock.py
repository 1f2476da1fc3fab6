"""An SLA breach on trio's autojump clock: nothing but time moves the engine. A first reply
of one business hour asked for on a Friday at 17:30 runs 30 minutes that evening, skips the
weekend and a Monday holiday, and breaches on Tuesday at 09:30 exactly."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio
from trio.testing import MockClock

from octim.testing import TEST_API_KEY, open_engine

SHOP = "s1"
KEY = {"Authorization": f"Bearer {TEST_API_KEY}"}
FRIDAY_1730 = 1_796_376_600  # 2026-12-04 17:30 in Shanghai (09:30 UTC)
TUESDAY_0930 = 1_796_693_400_000  # 2026-12-08 09:30 in Shanghai, in ms


@pytest.fixture
def jumping_clock() -> MockClock:
    """Jumps once every task has waited 50 ms of real time (the store's writer thread and
    the loopback sockets work in real time)."""
    return MockClock(autojump_threshold=0.05)


async def test_a_business_hours_sla_breaches_at_its_second_after_a_weekend_and_a_holiday(
        tmp_path: Path, jumping_clock: MockClock) -> None:
    base = FRIDAY_1730 - trio.current_time()
    quiet = {"routing_tick": 10**6, "admission_probe_interval": 10**6, "sweep_interval": 10**6,
             "heartbeat_interval": 10**6, "idle_timeout": 10**6}
    async with open_engine(tmp_path / "d", **quiet) as (engine, listening):
        engine.context.clock = lambda: base + trio.current_time()
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            (await http.put(f"/api/shops/{SHOP}", json={"name": SHOP, "bot": {"mode": "off"}},
                            headers=KEY)).raise_for_status()
            (await http.put(f"/api/shops/{SHOP}/business-hours", headers=KEY, json={
                "timezone": "Asia/Shanghai", "holidays": ["2026-12-07"],
                "weekly": {d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed", "thu",
                                                             "fri")}})).raise_for_status()
            (await http.put("/api/sla-policies/std", headers=KEY, json={
                "shop": SHOP, "name": "标准", "position": 1, "business_hours": True,
                "targets": {"normal": {"first_reply": 60}}})).raise_for_status()
            with engine.subscribe({"ticket.sla_breached"}) as feed:
                made = (await http.post("/api/tickets", headers=KEY, json={
                    "shop": SHOP, "subject": "发票还没收到", "requester": "b1"})).json()
                first = made["sla"]["metrics"]["first_reply"]
                assert first["due"] == TUESDAY_0930
                with trio.fail_after(5 * 86_400):  # on the mock clock: days pass in seconds
                    event = await feed.receive()
                fired_at = engine.context.now_ms()
        assert event["data"]["metric"] == "first_reply" and event["data"]["due"] == TUESDAY_0930
        assert TUESDAY_0930 <= fired_at < TUESDAY_0930 + 1000  # within a second of its due
        stored = engine.store.get("tickets", made["id"].encode())
        assert stored["sla"]["metrics"]["first_reply"]["breached_at"] == TUESDAY_0930
