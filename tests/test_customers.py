"""Customer 360 and tenant isolation over real HTTP and WebSocket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import trio

from octim.testing import TEST_API_KEY, open_engine, token
from octim.testing.client import connect

BUYER = "buyer-360"
DAY = 86_400_000


async def seed(http: httpx.AsyncClient) -> None:
    for shop in ("s1", "s2", "s3"):
        (await http.put(f"/api/shops/{shop}", json={"name": shop, "bot": {"mode": "off"}})
         ).raise_for_status()
    (await http.put(f"/api/customers/{BUYER}", json={
        "nickname": "小王", "level": 3, "region": "杭州",
        "attributes": {"sizes": {"top": "L"}, "style": "通勤", "income": "private"}})
     ).raise_for_status()
    orders = [("o-1", "s1", "shipped", "轻薄羽绒服", 5 * DAY), ("o-2", "s1", "delivered",
                                                                 "牛仔裤", 2 * DAY),
              ("o-3", "s2", "paid", "蓝牙耳机", 6 * DAY), ("o-4", "s3", "paid", "苹果", DAY)]
    bulk = [{"id": oid, "shop": shop, "customer": BUYER, "status": status,
             "items": [{"sku": f"sku-{oid}", "name": name, "price": 99}],
             "times": {"created": created}} for oid, shop, status, name, created in orders]
    assert (await http.post("/api/orders/bulk", json=bulk)).json() == {"upserted": 4}
    tracked = await http.post("/api/orders/o-1/logistics", json={"events": [
        {"time": 6 * DAY, "place": "杭州转运中心", "status": "运输中"},
        {"time": 5 * DAY + 1, "place": "杭州", "status": "已揽收"}]})
    assert [e["status"] for e in tracked.json()["logistics"]] == ["已揽收", "运输中"]


def bearer(user: str, role: str, *shops: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user, role, *shops)}"}


async def test_context_shows_this_shop_only_and_what_is_shared(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d") as (engine, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10, headers={
                "Authorization": f"Bearer {TEST_API_KEY}"}) as http:
            await seed(http)
            (await http.post(f"/api/shops/s2/customers/{BUYER}/notes", json={"text": "s2 秘密"},
                             headers=bearer("x", "agent", "s2"))).raise_for_status()
            (await http.post(f"/api/shops/s1/customers/{BUYER}/notes",
                             json={"text": "喜欢宽松款"}, headers=bearer("mei", "agent", "s1"))
             ).raise_for_status()
            (await http.put(f"/api/shops/s1/customers/{BUYER}/tags", json={"tags": ["回头客"]})
             ).raise_for_status()
            with trio.fail_after(20):
                async with connect(listening.ws_url, token(BUYER)) as buyer:
                    earlier = (await buyer.open("s1", ref="a"))["conversation"]
                    await buyer.say(earlier, "e1", "之前的问题")
                    await buyer.send({"type": "resolve", "conversation": earlier})
                    await buyer.expect("event", event="resolved")
                    other_shop = (await buyer.open("s2", ref="b"))["conversation"]
                    await buyer.say(other_shop, "o1", "耳机的问题")
                    # Later the first conversation has closed; the buyer comes back to s1.
                    real = engine.context.clock
                    engine.context.clock = lambda: real() + 7200
                    try:
                        await engine.sweep()
                        await buyer.expect("event", event="closed", conversation=earlier)
                    finally:
                        engine.context.clock = real
                    conv = (await buyer.open("s1", ref="c"))["conversation"]
                    assert conv != earlier
                    await buyer.say(conv, "q", "我前几天买的羽绒服到哪了")
            context = (await http.get(f"/api/conversations/{conv}/context",
                                      headers=bearer("mei", "agent", "s1"))).json()
    assert [o["id"] for o in context["orders"]] == ["o-1", "o-2"]  # s1 only, latest first
    assert [e["status"] for e in context["orders"][0]["logistics"]] == ["已揽收", "运输中"]
    assert context["highlight"]["order"] == "o-1"
    assert context["profile"]["nickname"] == "小王" and context["profile"]["level"] == 3
    assert context["shared"] == {"level": 3, "total_orders": 4,
                                 "attributes": {"sizes": {"top": "L"}, "style": "通勤"}}
    assert [n["text"] for n in context["notes"]] == ["喜欢宽松款"]
    assert context["tags"] == ["回头客"]
    assert [c["conversation"] for c in context["earlier_conversations"]] == [earlier]
    assert other_shop not in str(context)
    text = str(context)
    for leak in ("o-3", "o-4", "s2 秘密", "income", "蓝牙耳机", "苹果"):
        assert leak not in text


async def test_sharing_policy_and_audit(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d") as (_, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10, headers={
                "Authorization": f"Bearer {TEST_API_KEY}"}) as http:
            await seed(http)
            async with connect(listening.ws_url, token(BUYER)) as buyer, \
                    connect(listening.ws_url, token("mei", "agent", "s1")) as agent:
                conv = (await buyer.open("s1", order="o-2"))["conversation"]
                await buyer.say(conv, "q", "这条裤子能退吗")
                await agent.sync(conv)
            assert (await http.put("/api/platform/sharing", json={"fields": ["salary"]})
                    ).status_code == 422
            (await http.put("/api/platform/sharing", json={"fields": ["level"]})
             ).raise_for_status()
            context = (await http.get(f"/api/conversations/{conv}/context",
                                      headers=bearer("mei", "agent", "s1"))).json()
            assert context["shared"] == {"level": 3}
            assert context["highlight"] == {"order": "o-2",
                                            "reason": "opened from this order's page"}
            audit = (await http.get("/api/audit", params={"customer": BUYER})).json()
            assert [(r["who"], r["what"]) for r in audit] == [("mei", "messages"),
                                                              ("mei", "context")]
            assert all(r["from"] == "127.0.0.1" and r["shop"] == "s1" for r in audit)
            denied = await http.get("/api/audit", headers=bearer("mei", "agent", "s1"))
            assert denied.status_code == 403


async def test_another_shop_and_another_buyer_see_nothing(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    async with open_engine(tmp_path / "d") as (_, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10, headers={
                "Authorization": f"Bearer {TEST_API_KEY}"}) as http:
            await seed(http)
            (await http.put("/api/agents/mei", json={"name": "mei", "shops": ["s1"]})
             ).raise_for_status()
            upload = (await http.post("/api/uploads?kind=image", content=png,
                                      headers=bearer(BUYER, "buyer"))).json()
            async with connect(listening.ws_url, token(BUYER)) as buyer:
                conv = (await buyer.open("s1"))["conversation"]
                await buyer.request({"type": "send", "conversation": conv, "id": "img",
                                     "kind": "image", "body": {"upload": upload["id"]}},
                                    "ack", id="img")
            probes: list[tuple[str, str, dict[str, str]]] = []
            for who in (bearer("spy", "agent", "s2"), bearer("boss2", "shop_admin", "s2"),
                        bearer("other-buyer", "buyer")):
                probes += [("GET", f"/api/conversations/{conv}/context", who),
                           ("GET", f"/api/conversations/{conv}/routing", who),
                           ("GET", f"/api/uploads/{upload['id']}", who),
                           ("POST", f"/api/shops/s1/customers/{BUYER}/notes", who)]
            for method, url, who in probes:
                response = await http.request(method, url, headers=who,
                                              json={"text": "x"} if method == "POST" else None)
                assert response.status_code in (403, 404), (url, response.status_code)
                body: dict[str, Any] = response.json()
                for leak in ("o-1", "羽绒服", BUYER, "小王"):
                    assert leak not in str(body), (url, body)
            async with connect(listening.ws_url, token("spy", "agent", "s2")) as spy, \
                    connect(listening.ws_url, token("other-buyer")) as other:
                for client in (spy, other):
                    for frame in ({"type": "sync", "conversation": conv},
                                  {"type": "send", "conversation": conv, "id": "x",
                                   "kind": "text", "body": {"text": "hi"}},
                                  {"type": "read", "conversation": conv, "upto": 1}):
                        await client.send({**frame, "ref": "p"})
                        error = await client.expect("error")
                        assert error["code"] == "not_found"
                        assert BUYER not in error["message"]
                    inbox = await client.request({"type": "inbox"}, "inbox")
                    assert inbox["conversations"] == []


async def test_segments_by_rule_and_as_vip_in_routing(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d") as (engine, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10, headers={
                "Authorization": f"Bearer {TEST_API_KEY}"}) as http:
            await seed(http)  # BUYER: s1 orders shipped + delivered (99 each), s2 paid, s3 paid
            (await http.put("/api/customers/light", json={"nickname": "新客"})
             ).raise_for_status()
            (await http.put("/api/orders/o-9", json={
                "shop": "s1", "customer": "light", "status": "refunded",
                "items": [{"sku": "x", "name": "袜子", "price": 9}]})).raise_for_status()
            for segment, body in (
                    ("loyal", {"name": "老客", "rule": {"min_orders": 3, "min_spent": 250}}),
                    ("s1-returners", {"name": "退货多", "shop": "s1",
                                      "rule": {"min_returns": 1}})):
                (await http.put(f"/api/segments/{segment}", json=body)).raise_for_status()
            loyal = (await http.get("/api/segments/loyal/members")).json()["members"]
            returners = (await http.get("/api/segments/s1-returners/members")).json()
            assert loyal == [BUYER] and returners["members"] == ["light"]
            # Routing: members of "loyal" are served as VIP in s1.
            (await http.put("/api/shops/s1", json={"name": "s1", "bot": {"mode": "off"},
                                                    "routing": {"vip_segments": ["loyal"]}})
             ).raise_for_status()
            (await http.put("/api/agents/solo", json={"name": "solo", "shops": ["s1"],
                                                      "max_concurrent": 1})).raise_for_status()
        with trio.fail_after(20):
            async with connect(listening.ws_url, token("solo", "agent", "s1")) as solo, \
                    connect(listening.ws_url, token("first")) as first, \
                    connect(listening.ws_url, token("light")) as regular, \
                    connect(listening.ws_url, token(BUYER)) as loyal_buyer:
                c0 = (await first.open("s1"))["conversation"]
                await first.say(c0, "f", "hi")
                await solo.expect("event", event="assigned", conversation=c0)
                c1 = (await regular.open("s1"))["conversation"]
                await regular.say(c1, "r", "hello")
                c2 = (await loyal_buyer.open("s1"))["conversation"]
                await loyal_buyer.say(c2, "l", "hello")
                queued = await loyal_buyer.expect("event", event="queued", conversation=c2)
                assert queued["data"]["position"] == 1
                # The routing record is written (pipelined) after the decision.
                while engine.store.get("routing", c2.encode()) is None:
                    await trio.sleep(0.01)
                assert engine.routing_trace(c2)["waiting"]["rules"] == ["vip:level 1"]
