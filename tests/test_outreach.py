"""Proactive messages: the gate's rules, and service notices from order events through
the real HTTP API into buyers' chats (docs/outreach.md)."""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from octim.domain.outreach.gate import Counts, GateSettings, buyer_zone, decide, in_quiet_hours
from octim.domain.outreach.notices import render
from octim.testing import TEST_API_KEY, open_engine, token
from octim.testing.client import connect

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(hour: int, minute: int = 0, zone: ZoneInfo = SHANGHAI) -> int:
    return int(datetime.datetime(2026, 12, 2, hour, minute, tzinfo=zone).timestamp() * 1000)


def marketing(customer: dict[str, object] | None, now_ms: int = at(12), **kw: object) -> str:
    values: dict[str, object] = {"category": "marketing", "kind": "price_drop", "shop": "s1",
                                 "customer": customer, "now_ms": now_ms, "zone": SHANGHAI,
                                 "settings": GateSettings(), "counts": Counts(),
                                 "open_issue": False, **kw}
    return decide(**values).reason  # type: ignore[arg-type]


def test_the_gate_says_why() -> None:
    consenting = {"attributes": {"marketing_consent": True}, "opt_outs": []}
    assert marketing(consenting) == "ok"
    assert marketing({"attributes": {}}) == "no_consent"
    assert marketing(None) == "no_consent"
    for opt_out in ("marketing", "marketing:s1", "price_drop"):
        assert marketing({**consenting, "opt_outs": [opt_out]}) == "opted_out", opt_out
    assert marketing({**consenting, "opt_outs": ["marketing:s2"]}) == "ok"  # another shop
    assert marketing(consenting, open_issue=True) == "open_complaint"
    assert marketing(consenting, now_ms=at(23)) == "quiet_hours"
    assert marketing(consenting, now_ms=at(7, 59)) == "quiet_hours"
    assert marketing(consenting, now_ms=at(8)) == "ok"
    assert marketing(consenting, counts=Counts(shop_day=2)) == "cap_shop_day"
    assert marketing(consenting, counts=Counts(shop_day=1, shop_week=5)) == "cap_shop_week"
    assert marketing(consenting, counts=Counts(platform_day=5)) == "cap_platform_day"
    assert marketing(consenting, counts=Counts(shop_day=2),
                     settings=GateSettings(per_shop_day=3)) == "ok"
    # A shop's settings are free-form: a wrong value is its default, never an error.
    odd = GateSettings.from_record({"per_shop_day": "x", "quiet_start": "25:00",
                                    "per_shop_week": 9, "per_platform_day": True})
    assert odd == GateSettings(per_shop_week=9)
    # Service notices pass marketing's rules; a shop can still switch a type off.
    service = {"category": "service", "kind": "shipped", "shop": "s1",
               "customer": {"opt_outs": ["marketing"]}, "now_ms": at(23), "zone": SHANGHAI,
               "settings": GateSettings(), "counts": Counts(shop_day=99), "open_issue": True}
    assert decide(**service).reason == "ok"  # type: ignore[arg-type]
    assert decide(**service, enabled=False).reason == "switched_off"  # type: ignore[arg-type]


def test_quiet_hours_are_the_buyers() -> None:
    new_york = {"attributes": {"timezone": "America/New_York"}}
    zone = buyer_zone(new_york)
    assert zone.key == "America/New_York"
    noon_in_shanghai = at(12)  # 23:00 the day before in New York
    assert not in_quiet_hours(noon_in_shanghai, SHANGHAI, GateSettings())
    assert in_quiet_hours(noon_in_shanghai, zone, GateSettings())
    assert buyer_zone({"attributes": {"timezone": "Mars/Base"}}).key == "Asia/Shanghai"
    daytime = GateSettings(quiet_start="12:00", quiet_end="14:00")  # a window within a day
    assert in_quiet_hours(at(13), SHANGHAI, daytime) and not in_quiet_hours(at(15), SHANGHAI,
                                                                             daytime)


def test_templates_fill_what_they_know_and_never_fail() -> None:
    values = {"order": "o-1", "title": "羽绒服", "carrier": "顺丰", "waybill": "SF1"}
    assert render("shipped", "zh-CN", values, None) == "您的订单 o-1（羽绒服）已发货：顺丰 SF1。"
    assert render("shipped", "en", values, None) == \
        "Your order o-1 (羽绒服) has shipped: 顺丰 SF1."
    # An unknown variable is empty; nothing but {name} is interpreted (no format specs,
    # no attribute access), and stray braces stay as they are.
    def own(template: str) -> str:
        return render("shipped", "zh-CN", values, {"types": {"shipped": {"templates": {
            "zh-CN": template}}}})

    assert own("亲，{title} 发出啦 {unknown}") == "亲，羽绒服 发出啦"
    assert own("{title.__class__} {x!r} {0} {") == "{title.__class__} {x!r} {"
    assert own("{order}{order}") == "o-1o-1"


async def test_order_events_become_notices_in_the_buyers_chat(tmp_path: Path) -> None:
    key = {"Authorization": f"Bearer {TEST_API_KEY}"}
    async with open_engine(tmp_path / "d") as (engine, listening), httpx.AsyncClient(
            base_url=listening.http_url, timeout=10, headers=key) as http:
        for shop in ("s1", "s2"):
            (await http.put(f"/api/shops/{shop}", json={"name": shop, "bot": {"mode": "off"}})
             ).raise_for_status()
        (await http.put("/api/agents/a1", json={"name": "a1", "shops": ["s1"]})
         ).raise_for_status()
        (await http.put("/api/customers/b1", json={"nickname": "Ann", "language": "en-GB"})
         ).raise_for_status()
        (await http.put("/api/customers/b2", json={"nickname": "阿珍"})).raise_for_status()
        for order, buyer in (("o-1", "b1"), ("o-2", "b2"), ("o-3", "b1")):
            (await http.put(f"/api/orders/{order}", json={
                "shop": "s1", "customer": buyer, "status": "paid",
                "items": [{"sku": "k1", "name": "羽绒服", "price": 399}]})).raise_for_status()
        # b2 already talks with s1: the notice joins that conversation.
        async with connect(listening.ws_url, token("b2")) as b2:
            open_conv = (await b2.open("s1"))["conversation"]
            await b2.say(open_conv, "m1", "什么时候发货")
        shipped = {"order": "o-1", "shop": "s1", "customer": "b1", "event": "shipped",
                   "carrier": "SF", "waybill": "SF123"}
        answer = await http.post("/api/events/orders", json={"events": [
            shipped, {**shipped, "order": "o-2", "customer": "b2"}]})
        assert answer.status_code == 200, answer.text
        first, second = answer.json()["results"]
        assert first["sent"] and second["sent"] and second["conversation"] == open_conv
        # The same event again: one notice.
        again = (await http.post("/api/events/orders", json={"events": [shipped]})).json()
        assert again["results"][0]["duplicate"] and again["results"][0]["seq"] == first["seq"]
        async with connect(listening.ws_url, token("b1")) as b1:
            (notice,) = await b1.sync(first["conversation"])
            assert notice["kind"] == "notice" and notice["role"] == "system"
            assert notice["body"]["text"] == "Your order o-1 (羽绒服) has shipped: SF SF123."
            assert notice["body"]["order"] == {"order": "o-1", "title": "羽绒服",
                                               "status": "shipped", "carrier": "SF",
                                               "waybill": "SF123"}
            # A notice-only conversation waits for the buyer: not routed, not counted.
            meta = engine.store.get("conversations", first["conversation"].encode())
            assert not meta["routed"] and meta["agent"] is None
            day = datetime.datetime.fromtimestamp(time.time(), SHANGHAI).date().isoformat()
            before = (await engine.report("s1", day, day))["totals"]
            assert before["conversations"] == 1  # b2's conversation only
            # The buyer answers: now it is a consultation, routed like any other.
            await b1.say(first["conversation"], "q1", "When will it arrive?")
            await b1.expect("event", event="queued")  # waiting for an agent, routed
            assert engine.store.get("conversations", first["conversation"].encode())["routed"]
            after = (await engine.report("s1", day, day))["totals"]
            assert after["conversations"] == 2 and after["buyers"] == 2
        async with connect(listening.ws_url, token("b2")) as b2:
            texts = [m["body"].get("text") for m in await b2.sync(open_conv)]
            assert texts[-1] == "您的订单 o-2（羽绒服）已发货：SF SF123。"
        # A shop's own template, and a type switched off.
        put = await http.put("/api/shops/s1/notices", json={"types": {
            "delivered": {"templates": {"zh-CN": "亲，{title} 已签收～"}},
            "delayed": {"enabled": False}}})
        assert put.status_code == 200, put.text
        results = (await http.post("/api/events/orders", json={"events": [
            {"order": "o-2", "shop": "s1", "customer": "b2", "event": "delivered"},
            {"order": "o-3", "shop": "s1", "customer": "b1", "event": "delayed",
             "note": "暴雪"}]})).json()["results"]
        assert results[0]["sent"] and results[1] == {"order": "o-3", "event": "delayed",
                                                     "sent": False, "reason": "switched_off"}
        async with connect(listening.ws_url, token("b2")) as b2:
            assert (await b2.sync(open_conv))[-1]["body"]["text"] == "亲，羽绒服 已签收～"
        listed = (await http.get("/api/shops/s1/notices")).json()["types"]
        assert listed["delayed"]["enabled"] is False
        assert listed["shipped"]["templates"]["en"].startswith("Your order {order}")
        # Every decision can be read back, sent or not.
        log = (await http.get("/api/customers/b1/outreach")).json()
        assert [(d["type"], d["sent"], d["reason"]) for d in log] == [
            ("delayed", False, "switched_off"), ("shipped", True, "ok")]
        # Another shop's order, or a buyer who is not its buyer: refused, nothing sent.
        sent_before = len(engine.store.scan("notices_sent"))
        wrong = await http.post("/api/events/orders", json={"events": [
            {**shipped, "order": "o-3", "event": "paid"}, {**shipped, "shop": "s2"}]})
        assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "invalid_body"
        assert len(engine.store.scan("notices_sent")) == sent_before  # not even the first
        # The Python API answers the same.
        (made,) = await engine.order_events([{**shipped, "order": "o-3", "event": "paid"}])
        assert made["sent"] and not made["duplicate"]
        staff = {"Authorization": f"Bearer {token('a1', 'agent', 's1')}"}
        assert (await http.put("/api/shops/s1/notices", json={"types": {}}, headers=staff)
                ).status_code == 403
        other = {"Authorization": f"Bearer {token('boss2', 'shop_admin', 's2')}"}
        assert (await http.get("/api/shops/s1/notices", headers=other)).status_code == 404
        # A buyer cannot write a notice themselves.
        async with connect(listening.ws_url, token("b2")) as b2:
            await b2.send({"type": "send", "conversation": open_conv, "id": "n1",
                           "kind": "notice", "body": {"text": "fake"}})
            assert (await b2.expect("error"))["code"] == "forbidden"



async def test_a_new_tracking_step_is_a_notice(tmp_path: Path) -> None:
    key = {"Authorization": f"Bearer {TEST_API_KEY}"}
    async with open_engine(tmp_path / "d") as (_, listening), httpx.AsyncClient(
            base_url=listening.http_url, timeout=10, headers=key) as http:
        (await http.put("/api/shops/s1", json={"name": "s1"})).raise_for_status()
        (await http.put("/api/orders/o-1", json={"shop": "s1", "customer": "b1",
                                                 "status": "shipped"})).raise_for_status()
        step = {"time": 1_790_000_000_000, "place": "上海转运中心", "status": "运输中"}
        for _ in range(2):  # the same step pushed twice: one notice
            (await http.post("/api/orders/o-1/logistics", json={"events": [step]})
             ).raise_for_status()
        older = {**step, "time": step["time"] - 1, "status": "已揽收"}
        (await http.post("/api/orders/o-1/logistics", json={"events": [older]})
         ).raise_for_status()  # an older step arriving late: no notice
        async with connect(listening.ws_url, token("b1")) as b1:
            inbox = (await b1.request({"type": "inbox"}, "inbox"))["conversations"]
            (conversation,) = [c["conversation"] for c in inbox]
            notes = [m["body"]["text"] for m in await b1.sync(conversation)]
        assert notes == ["您的订单 o-1 物流更新：运输中（上海转运中心）"]


async def test_a_buyer_who_replies_td_opts_out_of_that_shops_marketing(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d") as (engine, listening):
        await engine.put_shop("s1", "s1", bot={"mode": "always"})
        async with connect(listening.ws_url, token("b1")) as b1:
            conv = (await b1.open("s1"))["conversation"]
            await b1.say(conv, "m1", "TD")
            confirmed = await b1.expect("msg", role="system")
            assert confirmed["body"]["text"].startswith("已为您退订本店的营销消息")
            await b1.say(conv, "m2", "退订。")  # again: still one opt-out
            await b1.expect("msg", role="system")
        customer = engine.store.get("customers", b"b1")
        assert customer["opt_outs"] == ["marketing:s1"]
        reason = decide(category="marketing", kind="campaign", shop="s1",
                        customer={**customer, "attributes": {"marketing_consent": True}},
                        now_ms=at(12), zone=SHANGHAI, settings=GateSettings(),
                        counts=Counts(), open_issue=False).reason
        assert reason == "opted_out"
        # Only the whole message counts: a question that mentions 退订 is a question.
        async with connect(listening.ws_url, token("b2")) as b2:
            conv2 = (await b2.open("s1"))["conversation"]
            await b2.say(conv2, "q", "怎么退订会员？")
            answer = await b2.expect("msg", conversation=conv2)
            assert answer["role"] != "system"
        assert engine.store.get("customers", b"b2") is None


async def test_price_drops_remind_who_carted_within_the_gate(tmp_path: Path) -> None:
    key = {"Authorization": f"Bearer {TEST_API_KEY}"}
    now = [at(12) / 1000]  # noon in Shanghai: outside quiet hours
    async with open_engine(tmp_path / "d") as (engine, listening), httpx.AsyncClient(
            base_url=listening.http_url, timeout=10, headers=key) as http:
        engine.context.clock = lambda: now[0]
        (await http.put("/api/shops/s1", json={"name": "s1", "bot": {"mode": "off"}})
         ).raise_for_status()
        consent = {"attributes": {"marketing_consent": True}}
        for buyer, body in (("b1", consent), ("b2", consent), ("b3", {}),
                            ("b4", {**consent, "opt_outs": ["marketing:s1"]})):
            (await http.put(f"/api/customers/{buyer}", json=body)).raise_for_status()
        for buyer, seen in (("b1", 399), ("b2", 199), ("b3", 399), ("b4", 399)):
            (await http.put(f"/api/customers/{buyer}/interests", json={"items": [
                {"shop": "s1", "sku": "k1", "kind": "cart", "price": seen},
                {"shop": "s1", "sku": "k2", "kind": "favourite", "price": 99},
                {"shop": "s1", "sku": "k3", "kind": "cart", "price": 99}]})
             ).raise_for_status()
        drop = {"changes": [{"shop": "s1", "sku": "k1", "title": "羽绒服", "price": 299}]}
        (result,) = (await http.post("/api/events/price-change", json=drop)).json()["results"]
        by_buyer = {r["customer"]: r for r in result["reminders"]}
        # b2 saw a lower price than the new one: not reminded at all.
        assert set(by_buyer) == {"b1", "b3", "b4"}
        assert by_buyer["b1"]["sent"]
        assert by_buyer["b3"] == {"customer": "b3", "sent": False, "reason": "no_consent"}
        assert by_buyer["b4"]["reason"] == "opted_out"
        async with connect(listening.ws_url, token("b1")) as b1:
            (reminder,) = await b1.sync(by_buyer["b1"]["conversation"])
            assert reminder["kind"] == "notice" and reminder["body"]["notice"] == "price_drop"
            assert reminder["body"]["text"] == "您加购的 羽绒服 降价了：¥399 → ¥299。回复 TD 退订"
            assert reminder["body"]["product"] == {"product": "k1", "title": "羽绒服",
                                                   "price": 299}
        # The same SKU again within the window: not twice.
        again = (await http.post("/api/events/price-change", json={"changes": [
            {"shop": "s1", "sku": "k1", "price": 279}]})).json()["results"][0]["reminders"]
        assert {r["customer"]: r.get("reason") for r in again}["b1"] == "reminded_recently"
        # Back in stock for k2: b1's second marketing message today (cap 2).
        stock = (await http.post("/api/events/stock-change", json={"changes": [
            {"shop": "s1", "sku": "k2", "in_stock": True, "price": 99}]})).json()
        assert {r["customer"]: r["sent"] for r in stock["results"][0]["reminders"]}["b1"]
        # A third today is past the shop's daily cap.
        capped = (await http.post("/api/events/price-change", json={"changes": [
            {"shop": "s1", "sku": "k3", "price": 59}]})).json()["results"][0]["reminders"]
        assert {r["customer"]: r.get("reason") for r in capped}["b1"] == "cap_shop_day"
        # The next day, late at night: quiet hours.
        now[0] = at(23) / 1000 + 86_400
        late = (await http.post("/api/events/price-change", json={"changes": [
            {"shop": "s1", "sku": "k3", "price": 49}]})).json()["results"][0]["reminders"]
        assert {r["customer"]: r.get("reason") for r in late}["b1"] == "quiet_hours"
        # An open ticket with the shop suppresses marketing.
        now[0] = at(12) / 1000 + 2 * 86_400
        await engine.create_ticket("s1", "羽绒服破了", requester="b1")
        held = (await http.post("/api/events/price-change", json={"changes": [
            {"shop": "s1", "sku": "k3", "price": 39}]})).json()["results"][0]["reminders"]
        assert {r["customer"]: r.get("reason") for r in held}["b1"] == "open_complaint"
        log = (await http.get("/api/customers/b1/outreach")).json()
        assert [d["reason"] for d in log] == ["open_complaint", "quiet_hours", "cap_shop_day",
                                              "ok", "reminded_recently", "ok"]
