"""The operator's view: ``/metrics`` in Prometheus' format, and admission control shedding
new conversations (never running ones) while the engine is past its budget."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from octim.testing import TEST_API_KEY, open_engine, token
from octim.testing.client import connect

KEY = {"Authorization": f"Bearer {TEST_API_KEY}"}


def families(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Each metric's samples, parsed by prometheus-client's own parser."""
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = \
                sample.value
    return found


async def test_metrics_expose_the_named_series_behind_a_token(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d", metrics_token="scrape-token-0123456789") as (
            _engine, listening), httpx.AsyncClient(base_url=listening.http_url,
                                                  timeout=10) as http:
        (await http.put("/api/shops/s1", headers=KEY, json={"name": "s1",
                                                            "bot": {"mode": "off"}})
         ).raise_for_status()
        (await http.put("/api/shops/s2", headers=KEY, json={"name": "s2",
                                                            "bot": {"mode": "off"}})
         ).raise_for_status()
        (await http.put("/api/agents/a2", headers=KEY, json={"name": "a2", "shops": ["s2"]})
         ).raise_for_status()
        async with connect(listening.ws_url, token("b1")) as buyer, \
                connect(listening.ws_url, token("a2", "agent", "s2")) as agent, \
                connect(listening.ws_url, token("b2")) as served:
            conversation = (await buyer.open("s1"))["conversation"]
            await buyer.say(conversation, "m1", "在吗")
            other = (await served.open("s2"))["conversation"]
            await served.say(other, "m2", "在吗")  # a2 serves s2: assigned at once
            await agent.expect("event", event="assigned", conversation=other)
            await buyer.send({"type": "nonsense"})
            await buyer.expect("error")
            for who in ({}, {"Authorization": "Bearer wrong"},
                        {"Authorization": f"Bearer {token('a1', 'platform_admin')}"}):
                refused = await http.get("/metrics", headers=who)
                assert refused.status_code == 401
                assert refused.json()["error"]["code"] == "unauthorized"
            for who in (KEY, {"Authorization": "Bearer scrape-token-0123456789"}):
                answer = await http.get("/metrics", headers=who)
                assert answer.status_code == 200
                assert answer.headers["content-type"].startswith("text/plain")
            got = families(answer.text)
        assert got["octim_frames_in_total"][(("type", "send"),)] == 2
        assert got["octim_frames_in_total"][(("type", "open"),)] == 2
        # Latency histograms: both sends acked, frames written, one buyer assigned.
        assert got["octim_ack_seconds_count"][()] == 2
        assert got["octim_ack_seconds_bucket"][(("le", "+Inf"),)] == 2
        assert got["octim_deliver_seconds_count"][()] >= 2
        assert got["octim_open_assigned_seconds_count"][()] == 1
        assert got["octim_frame_errors_total"][(("code", "unknown_type"),)] >= 1
        assert got["octim_connections"][()] == 3
        assert got["octim_actors"][(("kind", "conversation"),)] == 2
        assert got["octim_store_commits_total"][()] > 0
        assert got["octim_store_commit_seconds_count"][()] > 0
        assert got["octim_queue_length"][()] == 1  # nobody serves s1: the buyer waits
        assert got["octim_shop_queue_length"][(("shop", "s1"),)] == 1
        assert got["octim_queue_longest_wait_seconds"][()] >= 0
        assert got["octim_overloaded"][()] == 0
        assert got["octim_admission_shed_total"][(("reason", "loop_lag"),)] == 0
        for name in ("octim_loop_lag_seconds", "octim_outbox_pending", "octim_webhook_dead",
                     "octim_channel_dead", "octim_dispatcher_mailbox",
                     "octim_campaign_messages_total", "octim_store_largest_batch_ops"):
            assert () in got[name], name


async def test_admission_sheds_new_conversations_never_running_ones(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d") as (engine, listening), httpx.AsyncClient(
            base_url=listening.http_url, timeout=10, headers=KEY) as http:
        (await http.put("/api/shops/s1", json={"name": "s1", "bot": {"mode": "off"}})
         ).raise_for_status()
        async with connect(listening.ws_url, token("b1")) as running, \
                connect(listening.ws_url, token("b2")) as newcomer:
            conversation = (await running.open("s1"))["conversation"]
            await running.say(conversation, "m1", "在吗")
            assert (await http.get("/readyz")).status_code == 200
            # A forced budget (as an operator's drill would): the engine is "overloaded".
            engine.admission.forced = "loop_lag"
            refused = await newcomer.request({"type": "open", "shop": "s1", "ref": "o"},
                                             "error", ref="o")
            assert refused["code"] == "rate_limited" and refused["retry_after"] == 2.0
            ready = await http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["error"]["code"] == "overloaded"
            # The running conversation goes on: its buyer re-opens it and writes.
            again = await running.open("s1", ref="again")
            assert again["conversation"] == conversation
            await running.say(conversation, "m2", "还在吗")
            # The live monitor says so, with the count of refusals.
            async with connect(listening.ws_url, token("boss", "shop_admin", "s1")) as boss:
                await boss.send({"type": "monitor"})
                screen = await boss.expect("monitor")
                assert screen["engine"]["overloaded"] == "loop_lag"
                assert screen["engine"]["shed"] == 1
            metrics = families((await http.get("/metrics")).text)
            assert metrics["octim_admission_shed_total"][(("reason", "loop_lag"),)] == 1
            assert metrics["octim_overloaded"][()] == 1
            engine.admission.forced = None
            opened = await newcomer.open("s1", ref="later")
            assert opened["conversation"] != conversation
            assert (await http.get("/readyz")).status_code == 200
        assert engine.admission.sheds == {"loop_lag": 1}


async def test_the_budget_is_read_from_the_engine_itself(tmp_path: Path) -> None:
    """Thresholds are settings: a commit budget no commit can meet sheds on its own."""
    async with open_engine(tmp_path / "d", admission_commit_ms=1e-6) as (engine, listening), \
            httpx.AsyncClient(base_url=listening.http_url, timeout=10, headers=KEY) as http:
        for n in range(12):  # enough commits for a p90
            (await http.put(f"/api/shops/s{n}", json={"name": "s"})).raise_for_status()
        engine.admission._said = (-1.0, None)  # read the signals now
        assert engine.admission.overloaded() == "commit_latency"
        assert engine.admission.commit_latency() > 0
        async with connect(listening.ws_url, token("b1")) as buyer:
            refused = await buyer.request({"type": "open", "shop": "s1", "ref": "o"}, "error",
                                          ref="o")
            assert refused["code"] == "rate_limited"
    # Acks slower than their budget (what running conversations feel) shed too.
    async with open_engine(tmp_path / "e", admission_ack_ms=1e-6) as (engine, listening):
        async with connect(listening.ws_url, token("b1")) as buyer:
            await engine.put_shop("s1", "s1")
            opened = await buyer.open("s1")
            for n in range(20):
                await buyer.say(opened["conversation"], f"m{n}", f"第{n}条")
            engine.admission._said = (-1.0, None)
            assert engine.admission.overloaded() == "ack_latency"
            assert engine.admission.ack_latency() > 0
        async with connect(listening.ws_url, token("b2")) as other:
            refused = await other.request({"type": "open", "shop": "s1", "ref": "o"},
                                          "error", ref="o")
            assert refused["code"] == "rate_limited"
            assert engine.admission.sheds["ack_latency"] == 1
