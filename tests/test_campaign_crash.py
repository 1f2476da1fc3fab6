"""A campaign survives SIGKILL: the engine is killed mid-campaign; after a restart the
campaign resumes where its durable progress was, and every recipient has the message
exactly once (read back from the LMDB store itself, not from the campaign's counters)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import trio

from octim.store import open_store
from octim.testing import TEST_API_KEY, TEST_SECRET
from octim.testing.process import EngineProcess

ENV = {"OCTIM_SECRET": TEST_SECRET, "OCTIM_API_KEY": TEST_API_KEY, "OCTIM_ROUTING_TICK": "0.1"}
ARGS = ["--http", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--log-format", "json"]
BUYERS = 400
KEY = {"Authorization": f"Bearer {TEST_API_KEY}"}


def wait_for(api: httpx.Client, campaign: str, done: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        record = dict(api.get(f"/api/campaigns/{campaign}").json())
        if done(record):
            return record
        assert time.monotonic() < deadline, record
        time.sleep(0.02)


def test_every_recipient_exactly_once_across_sigkill(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    with EngineProcess(["serve", "--data", data, *ARGS], ENV) as engine:
        ready = engine.wait_ready()
        with httpx.Client(base_url=ready["http"], headers=KEY, timeout=30) as api:
            # No quiet hours for this shop: the test runs at any hour.
            api.put("/api/shops/s1", json={"name": "店", "bot": {"mode": "off"}, "settings": {
                "outreach": {"quiet_start": "00:00", "quiet_end": "00:00"}}}
                    ).raise_for_status()
            consent = {"marketing_consent": True}
            api.post("/api/customers/bulk", json=[
                {"id": f"b{n:04d}", "tags": ["vip"],
                 "attributes": consent if n % 10 else {}}  # every tenth: no consent
                for n in range(BUYERS)]).raise_for_status()
            api.put("/api/segments/vip", json={"name": "VIP", "shop": "s1",
                                               "rule": {"tags_any": ["vip"]}}
                    ).raise_for_status()
            campaign = api.post("/api/campaigns", json={
                "shop": "s1", "name": "双12", "segment": "vip", "rate": 100,
                "message": {"text": "双12 会员专享"}}).json()["id"]
            wait_for(api, campaign, lambda r: (r.get("progress") or {}).get("sent", 0) >= 120)
        engine.proc.send_signal(signal.SIGKILL)
        assert engine.proc.wait(10) == -signal.SIGKILL

    with EngineProcess(["serve", "--data", data, *ARGS], ENV) as engine:
        resumed = json.loads(engine.wait_for(
            lambda _, line: line.startswith("{") and '"campaign resumed"' in line))
        # Resumed from its durable progress, part-way: the rest is sent after the restart.
        assert resumed["phase"] == "sending" and 0 < resumed["sent"] < BUYERS - BUYERS // 10
        ready = engine.wait_ready()
        with httpx.Client(base_url=ready["http"], headers=KEY, timeout=30) as api:
            record = wait_for(api, campaign, lambda r: r["state"] == "finished")
            results = record["results"]
            assert results["targeted"] == BUYERS
            assert results["sent"] == BUYERS - BUYERS // 10
            assert results["suppressed"] == {"no_consent": BUYERS // 10}
        assert engine.stop() == 0

    async def read_back() -> dict[str, int]:
        copies: dict[str, int] = {}
        async with open_store(data) as store:
            for key, meta in store.scan("conversations"):
                said = [m for _, m in store.scan_scope("messages", key.decode())
                        if (m["body"].get("campaign") or {}).get("id") == campaign]
                if said:
                    copies[meta["buyer"]] = copies.get(meta["buyer"], 0) + len(said)
        return copies

    copies = trio.run(read_back)
    expected = {f"b{n:04d}" for n in range(BUYERS) if n % 10}
    assert set(copies) == expected
    assert set(copies.values()) == {1}
