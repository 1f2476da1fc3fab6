"""Campaigns through the real HTTP API, WebSocket and LMDB: audience preview, the gate for
every recipient, results, clicks, pause/resume/cancel, schedules, and tenancy
(docs/outreach.md)."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import trio
from pydantic import ValidationError

from octim.domain.conversations.model import ConversationMeta
from octim.errors import NotFound
from octim.testing import TEST_API_KEY, open_engine, token
from octim.testing.client import connect

SHANGHAI = ZoneInfo("Asia/Shanghai")
KEY = {"Authorization": f"Bearer {TEST_API_KEY}"}


def at(hour: int, minute: int = 0, day: int = 2) -> int:
    return int(datetime.datetime(2026, 12, day, hour, minute, tzinfo=SHANGHAI).timestamp()
               * 1000)


def bearer(user: str, role: str, *shops: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user, role, *shops)}"}


async def finished(http: httpx.AsyncClient, campaign: str, state: str = "finished",
                   run: int | None = None) -> dict[str, Any]:
    with trio.fail_after(20):
        while True:
            found = (await http.get(f"/api/campaigns/{campaign}")).json()
            if found["state"] == state and (run is None or found["run"] >= run) and (
                    state != "scheduled" or found["runs"]):
                return dict(found)
            await trio.sleep(0.02)


async def setup(http: httpx.AsyncClient) -> None:
    for shop in ("s1", "s2"):
        (await http.put(f"/api/shops/{shop}", json={"name": shop, "bot": {"mode": "off"}})
         ).raise_for_status()
    consent = {"marketing_consent": True}
    buyers: dict[str, dict[str, Any]] = {
        "b1": {"tags": ["vip"], "attributes": consent},
        "b2": {"tags": ["vip"], "attributes": consent, "language": "en"},
        "b3": {"tags": ["vip"], "attributes": {}},  # no consent
        "b4": {"tags": ["vip"], "attributes": consent, "opt_outs": ["marketing:s1"]},
        "b5": {"tags": ["other"], "attributes": consent},  # not in the segment
    }
    for buyer, body in buyers.items():
        (await http.put(f"/api/customers/{buyer}", json=body)).raise_for_status()
    for segment, body in (("vip-s1", {"name": "VIP", "shop": "s1",
                                       "rule": {"tags_any": ["vip"]}}),
                          ("vip-s2", {"name": "VIP", "shop": "s2",
                                      "rule": {"tags_any": ["vip"]}}),
                          ("all-vip", {"name": "平台VIP", "shared": True,
                                       "rule": {"tags_any": ["vip"]}}),
                          ("private", {"name": "platform's own",
                                       "rule": {"tags_any": ["vip"]}})):
        (await http.put(f"/api/segments/{segment}", json=body)).raise_for_status()


CAMPAIGN = {"shop": "s1", "name": "双12 预热", "segment": "vip-s1", "rate": 500,
            "message": {"text": "双12 会员专享：满300减50", "text_en": "Members: 50 off 300",
                        "coupon": {"title": "满300减50", "amount": 50, "threshold": 300},
                        "product": {"product": "sku-1", "title": "羽绒服", "price": 399},
                        "link": {"url": "https://shop.example/s1/sale", "title": "去看看"}}}


async def test_a_campaign_reaches_its_segment_through_the_gate(tmp_path: Path) -> None:
    now = [at(12) / 1000]
    async with open_engine(tmp_path / "d", campaign_max_rate=1000) as (engine, listening), \
            httpx.AsyncClient(base_url=listening.http_url, timeout=10, headers=KEY) as http:
        engine.context.clock = lambda: now[0]
        await setup(http)
        admin = bearer("ad1", "shop_admin", "s1")
        preview = (await http.post("/api/campaigns/preview", headers=admin, json={
            "shop": "s1", "segment": "vip-s1"})).json()
        assert preview == {"segment": "vip-s1", "audience": 4, "complete": True,
                           "reachable_now": 2,
                           "suppressed_now": {"no_consent": 1, "opted_out": 1}}
        async with connect(listening.ws_url, token("b1")) as b1:
            created = await http.post("/api/campaigns", headers=admin, json=CAMPAIGN)
            assert created.status_code == 201, created.text
            campaign = created.json()["id"]
            await finished(http, campaign)
            engine.campaigns._results.clear()  # what recipients did is kept a few seconds
            results = (await http.get(f"/api/campaigns/{campaign}")).json()["results"]
            assert (results["targeted"], results["sent"], results["suppressed"]) == (
                4, 2, {"no_consent": 1, "opted_out": 1})
            frame = await b1.expect("msg", kind="notice")
            body = frame["body"]
            assert body["notice"] == "campaign" and body["text"] == "双12 会员专享：满300减50"
            assert body["coupon"] == {"title": "满300减50", "amount": 50.0, "threshold": 300.0,
                                      "code": None, "expires": None}
            assert body["product"] == {"product": "sku-1", "title": "羽绒服", "price": 399}
            assert body["campaign"] == {"id": campaign, "name": "双12 预热"}
            assert body["link"]["url"].startswith("/c/") and body["link"]["title"] == "去看看"
            assert results["delivered"] == 1  # b1 was online; b2 was not
            # The click goes to the campaign's address, and is counted once per buyer.
            for _ in range(2):
                click = await http.get(body["link"]["url"], headers={})
                assert click.status_code == 302
                assert click.headers["location"] == "https://shop.example/s1/sale"
            forged = body["link"]["url"][:-3] + "000"
            assert (await http.get(forged)).status_code == 404
            # b1 reads it and replies, then unsubscribes; b2 orders within a day.
            conversation = frame["conversation"]
            await b1.send({"type": "read", "conversation": conversation, "upto": frame["seq"]})
            await b1.say(conversation, "c1", "这个券能叠加吗")
            await b1.say(conversation, "c2", "TD")
            await b1.expect("msg", role="system", kind="system")
        now[0] += 3600
        (await http.put("/api/orders/o-b2", json={
            "shop": "s1", "customer": "b2", "status": "paid",
            "items": [{"sku": "sku-1", "name": "羽绒服", "price": 399}],
            "times": {"paid": int(now[0] * 1000)}})).raise_for_status()
        engine.campaigns._results.clear()  # computed again now, not in a few seconds
        results = (await http.get(f"/api/campaigns/{campaign}")).json()["results"]
        assert {k: results[k] for k in ("delivered", "read", "replied", "clicked", "ordered",
                                        "opted_out")} == {
            "delivered": 1, "read": 1, "replied": 1, "clicked": 1, "ordered": 1,
            "opted_out": 1}
        # b2's is in English; every recipient's decision can be read back.
        recipients = (await http.get(f"/api/campaigns/{campaign}/recipients",
                                     headers=admin)).json()
        assert {r["customer"]: r.get("reason", r["state"]) for r in recipients} == {
            "b1": "sent", "b2": "sent", "b3": "no_consent", "b4": "opted_out"}
        b2_said = [m for _, m in engine.store.scan_scope(
            "messages", recipients[1]["conversation"])]
        assert b2_said[-1]["body"]["text"] == "Members: 50 off 300"
        log = (await http.get("/api/customers/b3/outreach")).json()
        assert log[0]["type"] == "campaign" and log[0]["reason"] == "no_consent"
        # The reports count what went out and what the gate held back, by type and reason.
        report = (await http.get("/api/reports/overview", params={
            "shop": "s1", "from": "2026-12-02", "to": "2026-12-02"})).json()
        assert report["totals"]["outreach"] == {
            "sent": {"campaign": 2}, "held": {"campaign": 2},
            "held_by_reason": {"no_consent": 1, "opted_out": 1}}
        # The message did not start routing: nobody is asked to serve a campaign.
        meta = ConversationMeta.load(engine.store, recipients[1]["conversation"])
        assert meta is not None and not meta.routed and meta.agent is None


async def test_shops_target_only_their_own_or_shared_segments(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d") as (_engine, listening), httpx.AsyncClient(
            base_url=listening.http_url, timeout=10, headers=KEY) as http:
        await setup(http)
        admin2 = bearer("ad2", "shop_admin", "s2")
        for segment in ("vip-s1", "private", "nope"):
            for path, body in (("/api/campaigns/preview", {"shop": "s2", "segment": segment}),
                               ("/api/campaigns", {**CAMPAIGN, "shop": "s2",
                                                   "segment": segment})):
                answer = await http.post(path, headers=admin2, json=body)
                assert answer.status_code == 404, (segment, answer.text)
                assert answer.json()["error"]["code"] == "not_found"
        shared = await http.post("/api/campaigns/preview", headers=admin2,
                                 json={"shop": "s2", "segment": "all-vip"})
        assert shared.json()["audience"] == 4
        # Another shop's admin, an agent, a buyer: no campaign of s1.
        for who, status in ((admin2, 404), (bearer("a1", "agent", "s1"), 403),
                            (bearer("b1", "buyer"), 403)):
            answer = await http.post("/api/campaigns", headers=who, json=CAMPAIGN)
            assert answer.status_code == status, answer.text
        # A shop admin defines their own shop's segments, never another's.
        mine = await http.put("/api/segments/s2-new", headers=admin2, json={
            "name": "new", "shop": "s2", "rule": {"min_orders": 1}})
        assert mine.status_code == 200
        for segment, body in (("vip-s1", {"name": "x", "shop": "s2", "rule": {}}),
                              ("x1", {"name": "x", "shop": "s1", "rule": {}}),
                              ("x2", {"name": "x", "shared": True, "rule": {}})):
            answer = await http.put(f"/api/segments/{segment}", headers=admin2, json=body)
            assert answer.status_code in (403, 404), (segment, answer.text)
        listed = (await http.get("/api/segments", params={"shop": "s2"},
                                 headers=admin2)).json()
        assert sorted(s["id"] for s in listed) == ["all-vip", "s2-new", "vip-s2"]
        created = (await http.post("/api/campaigns", json={
            **CAMPAIGN, "schedule": {"at": 4_000_000_000_000}})).json()
        for who in (admin2, bearer("a2", "agent", "s2")):
            for path in (f"/api/campaigns/{created['id']}",
                         f"/api/campaigns/{created['id']}/recipients"):
                assert (await http.get(path, headers=who)).status_code == 404
            assert (await http.post(f"/api/campaigns/{created['id']}/cancel",
                                    headers=who)).status_code == 404
        assert (await http.get("/api/campaigns", params={"shop": "s2"},
                               headers=admin2)).json() == []
        # A buyer learns nothing: the same answer for a campaign that exists and one that
        # does not.
        for campaign in (created["id"], "cmp-000000000000"):
            answer = await http.get(f"/api/campaigns/{campaign}", headers=bearer("b1", "buyer"))
            assert answer.status_code == 403, answer.text
        # Bad input answers a stable code.
        for bad in ({**CAMPAIGN, "rate": 0}, {**CAMPAIGN, "message": {"text": ""}},
                    {**CAMPAIGN, "message": {"text": "x", "link": {
                        "url": "javascript:alert(1)"}}},
                    {**CAMPAIGN, "message": {"text": "x", "product": {"title": "no id"}}},
                    {**CAMPAIGN, "schedule": {"at": 10, "until": 5}}):
            answer = await http.post("/api/campaigns", json=bad)
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"]["code"] in ("invalid_body", "invalid_input")


async def test_caps_pause_resume_cancel_and_recurring_runs(tmp_path: Path) -> None:
    now = [at(12) / 1000]
    async with open_engine(tmp_path / "d", campaign_max_rate=1000) as (engine, listening), \
            httpx.AsyncClient(base_url=listening.http_url, timeout=10, headers=KEY) as http:
        engine.context.clock = lambda: now[0]
        await setup(http)
        (await http.put("/api/shops/s1", json={"name": "s1", "bot": {"mode": "off"},
                                               "settings": {"outreach": {"per_shop_day": 1}}})
         ).raise_for_status()
        first = (await http.post("/api/campaigns", json=CAMPAIGN)).json()["id"]
        await finished(http, first)
        # A second campaign the same day: past the shop's daily cap of 1.
        second = (await http.post("/api/campaigns", json=CAMPAIGN)).json()["id"]
        results = (await finished(http, second))["results"]
        assert results["sent"] == 0 and results["suppressed"] == {
            "cap_shop_day": 2, "no_consent": 1, "opted_out": 1}
        # At night: quiet hours for everyone who could get it.
        now[0] = at(23, day=3) / 1000
        late = (await http.post("/api/campaigns", json=CAMPAIGN)).json()["id"]
        assert (await finished(http, late))["results"]["suppressed"]["quiet_hours"] == 2
        # Scheduled for later: nothing until the time comes; paused meanwhile, it waits.
        now[0] = at(10, day=4) / 1000
        daily = (await http.post("/api/campaigns", json={
            **CAMPAIGN, "rate": 1, "schedule": {"at": at(11, day=4), "every_hours": 24,
                                                "until": at(12, day=5)}})).json()["id"]
        await trio.sleep(0.3)
        assert (await http.get(f"/api/campaigns/{daily}")).json()["state"] == "scheduled"
        (await http.post(f"/api/campaigns/{daily}/pause")).raise_for_status()
        now[0] = at(11, 30, day=4) / 1000
        await trio.sleep(0.3)
        assert (await http.get(f"/api/campaigns/{daily}")).json()["run"] == 0
        (await http.post(f"/api/campaigns/{daily}/resume")).raise_for_status()
        # Run 1 at 1 message/s: pause it mid-way, then resume; the second run is the next day.
        with trio.fail_after(10):
            while (await http.get(f"/api/campaigns/{daily}")).json()["run"] == 0:
                await trio.sleep(0.02)
        paused = (await http.post(f"/api/campaigns/{daily}/pause")).json()
        assert paused["state"] == "paused"
        await trio.sleep(0.2)  # a send already under way lands; no new one starts
        sent_then = (await http.get(f"/api/campaigns/{daily}")).json()["progress"]["sent"]
        await trio.sleep(1.5)
        assert (await http.get(f"/api/campaigns/{daily}")).json()["progress"]["sent"] == \
            sent_then
        (await http.post(f"/api/campaigns/{daily}/resume")).raise_for_status()
        waiting = await finished(http, daily, "scheduled")
        assert waiting["next_at"] == at(11, day=5) and waiting["runs"][0]["sent"] == 2
        now[0] = at(11, 1, day=5) / 1000
        await finished(http, daily, "finished", run=2)
        record = (await http.get(f"/api/campaigns/{daily}")).json()
        assert [r["sent"] for r in record["runs"]] == [2, 2]  # a new day, a new run: again
        # Cancel: final, and what was done stays.
        now[0] = at(12, day=6) / 1000  # a new day: under the caps again
        slow = (await http.post("/api/campaigns", json={**CAMPAIGN, "rate": 0.5})).json()["id"]
        await trio.sleep(0.2)
        cancelled = (await http.post(f"/api/campaigns/{slow}/cancel")).json()
        assert cancelled["state"] == "cancelled"
        again = await http.post(f"/api/campaigns/{slow}/resume")
        assert again.status_code == 409 and again.json()["error"]["code"] == "campaign_ended"
        # Cancelled between two runs of a recurring campaign: its runs stay as they were.
        now[0] = at(12, day=8) / 1000
        weekly = (await http.post("/api/campaigns", json={
            **CAMPAIGN, "schedule": {"every_hours": 168}})).json()["id"]
        await finished(http, weekly, "scheduled")
        ended = (await http.post(f"/api/campaigns/{weekly}/cancel")).json()
        assert ended["state"] == "cancelled" and [r["run"] for r in ended["runs"]] == [1]
        listed = (await http.get("/api/campaigns", params={"shop": "s1"})).json()
        assert listed[0]["id"] == weekly and len(listed) == 6


async def test_the_python_api_runs_campaigns_too(tmp_path: Path) -> None:
    now = [at(12) / 1000]
    async with open_engine(tmp_path / "d", campaign_max_rate=1000) as (engine, listening), \
            httpx.AsyncClient(base_url=listening.http_url, timeout=10, headers=KEY) as http:
        engine.context.clock = lambda: now[0]
        await setup(http)
        assert (await engine.preview_campaign("s1", "vip-s1"))["reachable_now"] == 2
        made = await engine.create_campaign("s1", "py", "vip-s1", {"text": "hi"}, rate=1000,
                                            schedule={"at": at(13)})
        assert made["state"] == "scheduled"
        paused = await engine.control_campaign(made["id"], "pause")
        assert paused["state"] == "paused"
        assert (await engine.control_campaign(made["id"], "resume"))["state"] == "scheduled"
        now[0] = at(13) / 1000
        with trio.fail_after(10):
            while (record := await engine.campaign(made["id"]))["state"] != "finished":
                await trio.sleep(0.02)
        assert record["results"]["sent"] == 2
        for bad in ({"text": ""}, {"text": "x", "coupon": {"title": "c", "amount": -1}}):
            with pytest.raises(ValidationError):
                await engine.create_campaign("s1", "py", "vip-s1", bad)
        with pytest.raises(NotFound):  # a shop's campaign cannot take another's segment
            await engine.create_campaign("s2", "py", "vip-s1", {"text": "x"})
