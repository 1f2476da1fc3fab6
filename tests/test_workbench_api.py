"""What the web client needs from the engine: inbox fields, canned replies, the live
monitor and the client config, over real HTTP and WebSocket."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from octim.testing import TEST_API_KEY, open_engine, token
from octim.testing.client import connect

SHOP = "s1"


def bearer(user: str, role: str, *shops: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user, role, *shops)}"}


async def seed(http: httpx.AsyncClient) -> None:
    for shop, name in ((SHOP, "一号店"), ("s2", "二号店")):
        (await http.put(f"/api/shops/{shop}", json={"name": name, "bot": {"mode": "off"}})
         ).raise_for_status()
    (await http.put("/api/agents/a1", json={"name": "小美", "shops": [SHOP],
                                            "max_concurrent": 3})).raise_for_status()
    (await http.put("/api/customers/b1", json={"nickname": "阿宝", "level": 3})
     ).raise_for_status()


async def test_monitor_inbox_and_first_response(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d", monitor_interval=0.2) as (engine, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10, headers={
                "Authorization": f"Bearer {TEST_API_KEY}"}) as http:
            await seed(http)
            (await http.put(f"/api/shops/{SHOP}/customers/b1/tags", json={"tags": ["老客"]},
                            headers=bearer("a1", "agent", SHOP))).raise_for_status()
        ws = listening.ws_url
        async with connect(ws, token("boss", "shop_admin", SHOP)) as boss, \
                connect(ws, token("a1", "agent", SHOP)) as agent, \
                connect(ws, token("b1", "buyer")) as buyer:
            await boss.send({"type": "monitor"})
            first = await boss.expect("monitor")
            [shop] = first["shops"]
            assert shop["shop"] == SHOP and shop["name"] == "一号店"
            assert shop["today"]["opened"] == 0 and shop["queued"] == 0
            assert len(shop["last_hour"]) == 60
            await agent.request({"type": "presence", "status": "online"}, "presence")

            opened = await buyer.open(SHOP, product="sku-1", title="羽绒服")
            conversation = opened["conversation"]
            await buyer.say(conversation, "m1", "有L码吗")
            assigned = await buyer.expect("event", event="assigned", conversation=conversation)
            assert assigned["data"]["agent_name"] == "小美"
            await agent.expect("event", event="assigned", conversation=conversation)
            real = engine.context.clock  # the buyer waits half a minute for a reply
            engine.context.clock = lambda: real() + 30
            inbox = (await agent.request({"type": "inbox"}, "inbox"))["conversations"]
            [entry] = inbox
            assert entry["shop_name"] == "一号店" and entry["buyer_name"] == "阿宝"
            assert entry["level"] == 3 and entry["tags"] == ["老客"]
            assert entry["preview"] == "有L码吗" and entry["waiting_since"] is not None
            await agent.say(conversation, "r1", "有的")
            engine.context.clock = real
            entry = (await agent.request({"type": "inbox"}, "inbox"))["conversations"][0]
            assert entry["waiting_since"] is None and entry["preview"] == "有的"
            assert entry["peer_read"] == 2  # the buyer has read up to their own question
            await buyer.send({"type": "read", "conversation": conversation, "upto": 3})
            await agent.expect("event", event="read", conversation=conversation)
            entry = (await agent.request({"type": "inbox"}, "inbox"))["conversations"][0]
            assert entry["peer_read"] == 3
            # A buyer's inbox names the shop but shows no staff-only fields.
            mine = (await buyer.request({"type": "inbox"}, "inbox"))["conversations"][0]
            assert mine["shop_name"] == "一号店" and "tags" not in mine
            assert mine["agent_name"] == "小美" and mine["last_agent"] == "a1"
            assert mine["peer_read"] == 3  # the agent's own reply counts as read

            async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
                team = (await http.get(f"/api/shops/{SHOP}/team",
                                       headers=bearer("a1", "agent", SHOP))).json()
                assert [a["id"] for a in team["agents"]] == ["a1"] and team["groups"] == []
                r = await http.get(f"/api/shops/{SHOP}/team", headers=bearer("x", "agent", "s2"))
                assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"

            await buyer.request({"type": "resolve", "conversation": conversation}, "event",
                                event="resolved")
            await buyer.send({"type": "rate", "conversation": conversation, "score": 4})
            await buyer.expect("event", event="rated")

            def counted(frame: dict) -> bool:
                today = frame["shops"][0]["today"]
                return today["ratings"] == 1 and today["resolved"] == 1

            with trio.fail_after(5):
                while not counted(latest := await boss.expect("monitor")):
                    pass
            shop = latest["shops"][0]
            today = shop["today"]
            assert today["opened"] == 1 and today["buyer_messages"] == 1
            assert today["staff_messages"] == 1 and today["first_responses"] == 1
            assert 30 <= today["first_response_seconds"] < 31
            # The same counters and definitions as the reports: 4–5 stars are satisfied.
            assert today["satisfaction"] == 1.0 and today["average_rating"] == 4.0
            assert today["buyers"] == 1 and today["inquiries"] == 1
            assert sum(shop["last_hour"]) == 1 and shop["last_hour"][-1] == 1
            assert shop["agents"] == [{"id": "a1", "name": "小美", "status": "online",
                                       "load": 0, "max_concurrent": 3}]
            assert shop["agents_by_status"]["online"] == 1
            await engine.tick()  # flushes the day's counters

            # Agents and buyers may not monitor; a shop admin only their shops.
            for client in (agent, buyer):
                await client.send({"type": "monitor", "ref": "m"})
                assert (await client.expect("error", ref="m"))["code"] == "forbidden"
            await boss.send({"type": "monitor", "shops": ["s2"], "ref": "x"})
            assert (await boss.expect("error", ref="x"))["code"] == "not_found"
        async with connect(ws, token("root", "platform_admin")) as root:
            await root.send({"type": "monitor"})
            assert [s["shop"] for s in (await root.expect("monitor"))["shops"]] == [SHOP, "s2"]

    # Today's counters survive a restart.
    async with open_engine(tmp_path / "d") as (engine, listening):
        async with connect(listening.ws_url, token("boss", "shop_admin", SHOP)) as boss:
            await boss.send({"type": "monitor"})
            today = (await boss.expect("monitor"))["shops"][0]["today"]
            assert today["opened"] == 1 and today["average_rating"] == 4.0


async def test_canned_replies_per_shop_and_personal(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d") as (_, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            admin, agent = bearer("boss", "shop_admin", SHOP), bearer("a1", "agent", SHOP)
            other = bearer("a2", "agent", "s2")
            r = await http.put("/api/canned/hi", json={"shop": SHOP, "title": "问候",
                                                       "text": "亲，在的～"}, headers=admin)
            assert r.status_code == 200 and r.json()["scope"] == "shop"
            r = await http.put("/api/canned/hi", json={"shop": SHOP, "title": "x", "text": "y"},
                               headers=agent)
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
            r = await http.put("/api/canned/mine", json={"title": "我的", "text": "稍等哦"},
                               headers=agent)
            assert r.json()["scope"] == "personal"
            listed = (await http.get("/api/canned", headers=agent)).json()
            assert [(c["id"], c["scope"]) for c in listed] == [("hi", "shop"),
                                                              ("mine", "personal")]
            assert (await http.get("/api/canned", headers=other)).json() == []
            r = await http.put("/api/canned/bad", json={"title": "", "text": "x"},
                               headers=agent)
            assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_body"
            r = await http.get("/api/canned", headers={"Authorization": f"Bearer {TEST_API_KEY}"},
                               params={"shop": SHOP})
            assert [c["id"] for c in r.json()] == ["hi"]
            assert (await http.delete("/api/canned/mine", headers=agent)).status_code == 204
            r = await http.delete("/api/canned/mine", headers=agent)
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
            assert (await http.get("/api/canned")).status_code == 401


async def test_pages_and_client_config(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d") as (engine, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            for path in ("/agent", "/chat", "/monitor"):
                r = await http.get(path)
                assert r.status_code == 200 and "text/html" in r.headers["content-type"]
                csp = r.headers["content-security-policy"]
                assert "script-src 'self'" in csp
                # Only the buyer chat may be framed by a storefront.
                assert ("frame-ancestors *" in csp) == (path == "/chat")
            assert (await http.get("/widget.js")).status_code == 200
            assert (await http.get("/static/vendor/chart.min.js")).status_code == 200
            config = (await http.get("/api/client-config")).json()
            assert config["ws_url"] == f"ws://127.0.0.1:{engine.ws_bound.port}/ws"
            assert (await http.get("/static/nope.js")).status_code == 404
