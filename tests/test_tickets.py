"""Tickets over real HTTP and WebSocket: creation from a chat, idempotency, the status
machine, public replies and internal notes, history, follow-ups, merge, auto-close on
the engine's clock, and isolation across shops and buyers."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio
from pydantic import ValidationError

from octim.errors import NotFound
from octim.testing import TEST_API_KEY, open_engine, token
from octim.testing.client import connect

SHOP, OTHER = "s1", "s2"


def bearer(user: str, role: str = "buyer", *shops: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user, role, *shops)}"}


KEY = {"Authorization": f"Bearer {TEST_API_KEY}"}
AGENT = bearer("a1", "agent", SHOP)
AGENT2 = bearer("a2", "agent", SHOP)


async def setup(http: httpx.AsyncClient) -> None:
    for shop in (SHOP, OTHER):
        (await http.put(f"/api/shops/{shop}", json={"name": shop, "bot": {"mode": "off"}},
                        headers=KEY)).raise_for_status()
    for agent, name in (("a1", "小美"), ("a2", "小王")):  # assignees are the shop's staff
        (await http.put(f"/api/agents/{agent}", json={"name": name, "shops": [SHOP]},
                        headers=KEY)).raise_for_status()


async def test_a_complaint_in_chat_becomes_a_ticket_worked_by_two_agents(
        tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d") as (engine, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            await setup(http)
            with engine.subscribe({"ticket.created", "ticket.updated", "ticket.commented",
                                   "ticket.solved"}) as feed, trio.fail_after(20):
                async with connect(listening.ws_url, token("b1")) as buyer:
                    conv = (await buyer.open(SHOP))["conversation"]
                    await buyer.say(conv, "m1", "快递三天没动了，订单 o-77")
                body = {"shop": SHOP, "subject": "包裹丢失", "category": "物流问题",
                        "priority": "high", "order": "o-77",
                        "source": {"kind": "chat", "conversation": conv, "seq_from": 1,
                                   "seq_to": 1}}
                headers = {**AGENT, "Idempotency-Key": "k-1"}
                made = await http.post("/api/tickets", json=body, headers=headers)
                assert made.status_code == 201, made.text
                ticket = made.json()
                assert ticket["label"] == "T-1" and ticket["status"] == "new"
                assert ticket["requester"] == "b1"  # the chat's buyer
                assert ticket["source"] == {"kind": "chat", "conversation": conv,
                                            "seq_from": 1, "seq_to": 1}
                again = await http.post("/api/tickets", json=body, headers=headers)
                assert again.status_code == 200 and again.json()["id"] == ticket["id"]
                second = (await http.post("/api/tickets", json={**body, "subject": "另一单"},
                                          headers=AGENT)).json()
                assert second["label"] == "T-2"
                tid = ticket["id"]
                url = f"/api/tickets/{tid}"

                # Agent 1 takes it and asks the warehouse (internal); agent 2 replies.
                took = await http.patch(url, json={"assignee": "a1"}, headers=AGENT)
                assert took.json()["status"] == "open" and took.json()["assignee"] == "a1"
                note = await http.post(f"{url}/comments", json={"body": "仓库核实中",
                                                                "public": False},
                                       headers=AGENT)
                assert note.status_code == 201
                held = await http.patch(url, json={"status": "on_hold"}, headers=AGENT)
                assert held.json()["status"] == "on_hold"
                await http.post(f"{url}/comments", json={"body": "已为您补发", "public": True},
                                headers=AGENT2)
                solved = await http.patch(url, json={"status": "solved"}, headers=AGENT2)
                assert solved.json()["status"] == "solved"
                # Nothing goes back to new; an unknown status is refused by validation.
                back = await http.patch(url, json={"status": "new"}, headers=AGENT)
                assert back.status_code == 409
                assert back.json()["error"]["code"] == "invalid_transition"
                bad = await http.patch(url, json={"status": "lost"}, headers=AGENT)
                assert bad.status_code == 422

                # The buyer sees public replies only, and their reply reopens it.
                mine = (await http.get(url, headers=bearer("b1"))).json()
                assert [e["body"] for e in mine["thread"]] == ["已为您补发"]
                assert mine["status_label"] == "已解决" and "assignee" not in mine
                reply = await http.post(f"{url}/comments", json={"body": "还没收到",
                                                                 "public": True},
                                        headers=bearer("b1"))
                assert reply.status_code == 201 and reply.json()["ticket"]["status"] == "open"
                listed = (await http.get("/api/tickets", headers=bearer("b1"))).json()
                assert {t["label"] for t in listed} == {"T-1", "T-2"}

                history = (await http.get(f"{url}/history", headers=AGENT)).json()
                assert [(h["field"], h["after"]) for h in history][1:] == [
                    ("assignee", "a1"), ("status", "open"), ("status", "on_hold"),
                    ("status", "solved"), ("status", "open")]
                assert history[3]["by"] == "a1" and history[4]["by"] == "a2"
                staff = (await http.get(url, headers=AGENT)).json()
                assert [e["public"] for e in staff["thread"]] == [False, True, True]
                # Filters: open high-priority tickets of a1.
                found = (await http.get("/api/tickets", params={
                    "shop": SHOP, "status": "open", "priority": "high", "assignee": "a1"},
                    headers=AGENT)).json()
                assert [t["id"] for t in found] == [tid]
                assert (await http.get("/api/tickets", params={"shop": SHOP, "q": "另一"},
                                       headers=AGENT)).json()[0]["label"] == "T-2"
                kinds = []
                while len(kinds) < 8:
                    kinds.append((await feed.receive())["event"])
                assert kinds.count("ticket.created") == 2 and "ticket.solved" in kinds

            # Another shop's staff and another buyer: not found, as for no ticket at all.
            for outsider in (bearer("x", "agent", OTHER), bearer("b2")):
                assert (await http.get(url, headers=outsider)).status_code == 404
                assert (await http.patch(url, json={"priority": "low"},
                                         headers=outsider)).status_code == 404
            assert (await http.get("/api/tickets", params={"shop": SHOP},
                                   headers=bearer("x", "agent", OTHER))).status_code == 404
            # A buyer cannot set staff fields nor write internal notes.
            denied = await http.post("/api/tickets", json={"shop": SHOP, "subject": "x",
                                                           "assignee": "a1"},
                                     headers=bearer("b1"))
            assert denied.status_code == 403
            assert (await http.post(f"{url}/comments", json={"body": "x", "public": False},
                                    headers=bearer("b1"))).status_code == 403
            # The audit log has the staff reads.
            rows = (await http.get("/api/audit", params={"customer": "b1"},
                                   headers=KEY)).json()
            assert any(r["what"] == "ticket" and r["ticket"] == tid for r in rows)


async def test_solved_closes_by_itself_and_a_reply_then_opens_a_follow_up(
        tmp_path: Path) -> None:
    now = [1_796_083_200.0]
    async with open_engine(tmp_path / "d", ticket_auto_close=3600,
                           routing_tick=3600) as (engine, listening):
        engine.context.clock = lambda: now[0]
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            await setup(http)
            made = (await http.post("/api/tickets", json={
                "shop": SHOP, "subject": "发票", "requester": "b1"}, headers=KEY)).json()
            url = f"/api/tickets/{made['id']}"
            dup = (await http.post("/api/tickets", json={
                "shop": SHOP, "subject": "发票(重复)", "requester": "b1"}, headers=KEY)).json()
            merged = (await http.post(f"/api/tickets/{dup['id']}/merge",
                                      json={"into": made["id"]}, headers=KEY)).json()
            assert merged["status"] == "closed" and merged["merged_into"] == made["id"]
            await http.patch(url, json={"status": "solved"}, headers=KEY)
            now[0] += 3599
            await engine.tick()
            assert (await http.get(url, headers=KEY)).json()["status"] == "solved"
            now[0] += 1
            await engine.tick()
            closed = (await http.get(url, headers=KEY)).json()
            assert closed["status"] == "closed" and closed["closed_at"] == int(now[0] * 1000)
            # Closed is read-only for staff; the buyer's reply opens a linked follow-up.
            assert (await http.patch(url, json={"priority": "high"}, headers=KEY)
                    ).json()["error"]["code"] == "ticket_closed"
            reply = (await http.post(f"{url}/comments", json={"body": "又坏了",
                                                              "public": True},
                                     headers=bearer("b1"))).json()
            assert reply["follow_up_of"] == made["id"]
            follow = reply["ticket"]
            assert follow["label"] == "T-3" and follow["status"] == "new"
            staff_view = (await http.get(f"/api/tickets/{follow['id']}", headers=KEY)).json()
            assert staff_view["follow_up_of"] == made["id"]
            assert [e["body"] for e in staff_view["thread"]] == ["又坏了"]
    # Numbers and state survive a restart.
    async with open_engine(tmp_path / "d") as (engine, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            made = (await http.post("/api/tickets", json={"shop": SHOP, "subject": "新的"},
                                    headers=KEY)).json()
            assert made["label"] == "T-4"
            open_ones = (await http.get("/api/tickets", params={"shop": SHOP},
                                        headers=KEY)).json()
            assert {t["label"] for t in open_ones} == {"T-3", "T-4"}


async def test_the_python_api_works_tickets_like_http(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d") as (engine, _):
        await engine.put_shop(SHOP, "一号店")
        with engine.subscribe({"ticket.created", "ticket.solved"}) as feed:
            made = await engine.create_ticket(SHOP, "退款进度", requester="b1",
                                              priority="urgent", idempotency_key="r-1")
            again = await engine.create_ticket(SHOP, "退款进度", requester="b1",
                                               priority="urgent", idempotency_key="r-1")
            assert not made["repeated"] and again["repeated"] and again["id"] == made["id"]
            assert made["created"] == again["created"]  # the creation time, never a flag
            await engine.comment_ticket(made["id"], "已提交财务", by="a1")
            solved = await engine.update_ticket(made["id"], status="solved", by="a1")
            assert solved["status"] == "solved" and solved["comments"] == 1
            assert (await engine.ticket(made["id"]))["solved_at"] is not None
            assert [(await feed.receive())["event"] for _ in range(2)] == [
                "ticket.created", "ticket.solved"]
        with pytest.raises(ValidationError):
            await engine.update_ticket(made["id"], priority="whenever")
        with pytest.raises(NotFound):
            await engine.create_ticket("no-such-shop", "x")


async def test_an_sla_breaches_on_time_in_a_real_run(tmp_path: Path) -> None:
    """The first reply is due in 30 minutes: nothing at 29:59, the breach at 30:00 exactly
    (the engine's clock, fired by its tick), the priority escalated, a webhook event
    and a ``ticket`` frame to the assignee's workbench."""
    start = 1_796_083_200.0  # Tue 2026-12-01 00:00 UTC, 08:00 in Shanghai
    now = [start]
    async with open_engine(tmp_path / "d", routing_tick=3600) as (engine, listening):
        engine.context.clock = lambda: now[0]
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            await setup(http)
            admin = bearer("boss", "shop_admin", SHOP)
            policy = {"shop": SHOP, "name": "标准", "position": 1,
                      "targets": {"high": {"first_reply": 30, "resolution": 240}},
                      "escalate_to": "urgent"}
            assert (await http.put("/api/sla-policies/std", json=policy,
                                   headers=AGENT)).status_code == 403  # admins only
            assert (await http.put("/api/sla-policies/std", json={**policy, "shop": OTHER},
                                   headers=admin)).status_code == 404
            saved = await http.put("/api/sla-policies/std", json=policy, headers=admin)
            assert saved.status_code == 200, saved.text
            with engine.subscribe({"ticket.sla_breached"}) as feed, trio.fail_after(20):
                async with connect(listening.ws_url, token("a1", "agent", SHOP)) as agent:
                    made = (await http.post("/api/tickets", json={
                        "shop": SHOP, "subject": "退款未到账", "priority": "high",
                        "requester": "b1", "assignee": "a1"}, headers=KEY)).json()
                    first = made["sla"]["metrics"]["first_reply"]
                    assert first["due"] == int(start * 1000) + 30 * 60_000
                    now[0] = start + 30 * 60 - 1
                    await engine.tick()
                    assert (await http.get(f"/api/tickets/{made['id']}", headers=KEY)
                            ).json()["sla"]["metrics"]["first_reply"]["breached_at"] is None
                    now[0] = start + 30 * 60
                    await engine.tick()
                    frame = await agent.expect("ticket", event="sla_breached")
                    assert frame["ticket"] == made["id"] and frame["metric"] == "first_reply"
                    event = await feed.receive()
                    assert event["data"]["metric"] == "first_reply"
                    assert event["data"]["due"] == first["due"]
                after = (await http.get(f"/api/tickets/{made['id']}", headers=KEY)).json()
                assert after["priority"] == "urgent"
                assert after["sla"]["metrics"]["first_reply"]["breached_at"] == first["due"]
                breached = (await http.get("/api/tickets", params={
                    "shop": SHOP, "sla": "breached"}, headers=AGENT)).json()
                assert [t["id"] for t in breached] == [made["id"]]
                history = (await http.get(f"/api/tickets/{made['id']}/history",
                                          headers=KEY)).json()
                assert [h["field"] for h in history][-2:] == ["sla_breached", "priority"]
            # Business hours: the policy now counts them; the open ticket's resolution due
            # moves from its recorded time. It had run 30 minutes (08:00-08:30 Shanghai,
            # calendar time) when the escalation to urgent left it without a target; the
            # new policy targets urgent, so its other 210 minutes count from 09:00: 12:30.
            hours = {"timezone": "Asia/Shanghai",
                     "weekly": {d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed",
                                                                   "thu", "fri")}}
            assert (await http.put(f"/api/shops/{SHOP}/business-hours", json=hours,
                                   headers=admin)).status_code == 200
            await http.put("/api/sla-policies/std", json={
                **policy, "business_hours": True,
                "targets": {"urgent": {"resolution": 240}, "high": {"resolution": 240}}},
                headers=admin)
            moved = (await http.get(f"/api/tickets/{made['id']}", headers=KEY)).json()
            resolution = moved["sla"]["metrics"]["resolution"]
            assert resolution["state"] == "active" and resolution["spent"] == 30 * 60_000
            assert resolution["due"] == int(start * 1000) + int(4.5 * 3_600_000)


async def test_the_queue_puts_breaches_first_and_tells_colleagues_live(
        tmp_path: Path) -> None:
    """``order=urgent`` lists the breached first, then the soonest due, then the rest;
    an assignment, a change and an ``@mention`` in an internal note reach the colleague's
    workbench as ``ticket`` frames (never the one who made them); an assignee, follower
    or group from outside the shop is refused."""
    start = 1_796_083_200.0
    now = [start]
    async with open_engine(tmp_path / "d", routing_tick=3600) as (engine, listening):
        engine.context.clock = lambda: now[0]
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            await setup(http)
            (await http.put("/api/agents/x9", json={"name": "外人", "shops": [OTHER]},
                            headers=KEY)).raise_for_status()
            policy = {"shop": SHOP, "name": "紧急", "targets": {
                "urgent": {"first_reply": 10}, "high": {"first_reply": 60}}}
            (await http.put("/api/sla-policies/p", json=policy, headers=KEY)
             ).raise_for_status()

            async def make(subject: str, priority: str) -> str:
                made = await http.post("/api/tickets", json={
                    "shop": SHOP, "subject": subject, "priority": priority,
                    "requester": "b1"}, headers=KEY)
                assert made.status_code == 201, made.text
                return str(made.json()["id"])

            plain = await make("普通咨询", "normal")  # no target: no due time
            late = await make("已超时", "urgent")
            now[0] += 11 * 60
            await engine.tick()  # the urgent one breaches
            soon = await make("一小时内", "high")
            newest = await make("最新", "normal")
            urgent = (await http.get("/api/tickets", params={
                "shop": SHOP, "order": "urgent"}, headers=AGENT)).json()
            assert [t["id"] for t in urgent] == [late, soon, newest, plain]
            recent = (await http.get("/api/tickets", params={"shop": SHOP},
                                     headers=AGENT)).json()
            assert [t["id"] for t in recent][:2] == [newest, soon]
            assert (await http.get("/api/tickets", params={
                "shop": SHOP, "order": "sideways"}, headers=AGENT)).status_code == 422

            for outsider in ({"assignee": "x9"}, {"followers": ["a2", "x9"]},
                             {"assignee": "nobody"}, {"group": "no-such-group"}):
                refused = await http.patch(f"/api/tickets/{plain}", json=outsider,
                                           headers=AGENT)
                assert refused.status_code == 422, (outsider, refused.text)
                assert refused.json()["error"]["code"] == "invalid_body"
            assert (await http.post("/api/tickets", json={
                "shop": SHOP, "subject": "x", "assignee": "x9"}, headers=KEY)
                    ).status_code == 422

            with trio.fail_after(20):
                async with connect(listening.ws_url, token("a2", "agent", SHOP)) as a2, \
                        connect(listening.ws_url, token("a1", "agent", SHOP)) as a1:
                    await http.patch(f"/api/tickets/{plain}", json={"assignee": "a2"},
                                     headers=AGENT)
                    got = await a2.expect("ticket", event="assigned")
                    assert got["ticket"] == plain and got["by"] == "a1"
                    await http.post(f"/api/tickets/{plain}/comments", json={
                        "body": "@小美 麻烦看一下物流", "public": False}, headers=AGENT2)
                    mention = await a1.expect("ticket", event="mentioned")
                    assert mention["excerpt"].startswith("@小美") and mention["by"] == "a2"
                    await http.patch(f"/api/tickets/{plain}", json={"status": "on_hold"},
                                     headers=AGENT)
                    changed = await a2.expect("ticket", event="updated")
                    assert changed["status"] == "on_hold"
                    # The one who changed it hears nothing of their own change.
                    with pytest.raises(trio.TooSlowError):
                        await a1.expect("ticket", timeout=0.3, event="updated")


async def test_a_message_left_when_nobody_can_serve_becomes_a_bot_ticket(
        tmp_path: Path) -> None:
    """Nobody online: the buyer is told to leave a message; what they leave is a ticket
    (source ``bot``, linked to the chat), and the bot says its number in the chat once."""
    async with open_engine(tmp_path / "d") as (_, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            await setup(http)
            buyer_http = bearer("b1")
            with trio.fail_after(20):
                async with connect(listening.ws_url, token("b1")) as buyer:
                    conv = (await buyer.open(SHOP))["conversation"]
                    await buyer.say(conv, "m1", "有人吗")
                    queued = await buyer.expect("event", event="queued")
                    assert queued["data"]["mode"] == "leave_message"
                    body = {"shop": SHOP, "subject": "退货地址", "description": "请告诉我退货地址",
                            "source": {"kind": "bot", "conversation": conv, "seq_from": 1,
                                       "seq_to": 1}}
                    headers = {**buyer_http, "Idempotency-Key": "leave-1"}
                    made = await http.post("/api/tickets", json=body, headers=headers)
                    assert made.status_code == 201, made.text
                    assert made.json()["status_label"] == "已提交"
                    line = await buyer.expect("msg", role="bot")
                    assert "T-1" in line["body"]["text"]
                    again = await http.post("/api/tickets", json=body, headers=headers)
                    assert again.status_code == 200
                    with pytest.raises(trio.TooSlowError):
                        await buyer.expect("msg", timeout=0.3, role="bot")
            staff = (await http.get(f"/api/tickets/{made.json()['id']}", headers=KEY)).json()
            assert staff["source"] == {"kind": "bot", "conversation": conv, "seq_from": 1,
                                       "seq_to": 1}
            assert staff["requester"] == "b1"
            # Another buyer cannot hang a ticket on this chat.
            other = await http.post("/api/tickets", json=body, headers=bearer("b2"))
            assert other.status_code == 404


async def test_assignment_rules_and_escalation_to_the_platform(tmp_path: Path) -> None:
    """The first matching rule sets the group (skipping one whose group is gone); a
    ticket escalated to the platform (平台介入) gets a linked platform ticket that the
    buyer also sees, and waits on hold; platform admins see it, shop staff do not."""
    async with open_engine(tmp_path / "d") as (_, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            await setup(http)
            for group in ("logistics", "vip"):
                (await http.put(f"/api/shops/{SHOP}/groups/{group}", json={"name": group},
                                headers=KEY)).raise_for_status()
            (await http.put("/api/customers/b9", json={"level": 3}, headers=KEY)
             ).raise_for_status()
            admin = bearer("boss", "shop_admin", SHOP)
            rules = {"rules": [
                {"name": "已删的组", "conditions": {"keywords": ["快递"]}, "group": "gone"},
                {"name": "大客户", "conditions": {"min_level": 3}, "group": "vip",
                 "priority": "high"},
                {"name": "物流", "conditions": {"keywords": ["快递", "物流"],
                                              "source": ["api", "email"]},
                 "group": "logistics", "assignee": "a2"}]}
            assert (await http.put(f"/api/shops/{SHOP}/ticket-rules", json=rules,
                                   headers=AGENT)).status_code == 403
            saved = await http.put(f"/api/shops/{SHOP}/ticket-rules", json=rules,
                                   headers=admin)
            assert saved.status_code == 200, saved.text
            assert (await http.put(f"/api/shops/{SHOP}/ticket-rules", json={"rules": [
                {"name": "空", "conditions": {}}]}, headers=admin)).status_code == 422

            async def make(subject: str, requester: str, **more: object) -> dict:
                made = await http.post("/api/tickets", json={
                    "shop": SHOP, "subject": subject, "requester": requester, **more},
                    headers=KEY)
                assert made.status_code == 201, made.text
                return dict(made.json())

            parcel = await make("快递丢了", "b1")
            assert (parcel["group"], parcel["assignee"], parcel["status"]) == (
                "logistics", "a2", "open")
            vip = await make("快递慢", "b9")
            assert (vip["group"], vip["priority"], vip["assignee"]) == ("vip", "high", None)
            by_hand = await make("快递", "b1", group="vip")
            assert by_hand["group"] == "vip" and by_hand["assignee"] is None  # no rule
            other = await make("发票", "b1")
            assert other["group"] is None
            history = (await http.get(f"/api/tickets/{parcel['id']}/history",
                                      headers=KEY)).json()
            assert history[0]["after"]["rule"] == "物流"

            # 平台介入: the platform gets a linked ticket; this one waits for it.
            assert (await http.post(f"/api/tickets/{parcel['id']}/escalate", json={
                "to_shop": OTHER}, headers=AGENT)).status_code == 403  # not their shop
            up = await http.post(f"/api/tickets/{parcel['id']}/escalate", json={
                "to_shop": "*", "note": "买家申请平台介入"}, headers=AGENT)
            assert up.status_code == 200, up.text
            answer = up.json()
            platform_id = answer["escalated"]["id"]
            assert answer["ticket"]["status"] == "on_hold"
            assert answer["ticket"]["escalated_to"] == platform_id
            again = await http.post(f"/api/tickets/{parcel['id']}/escalate", json={
                "to_shop": "*"}, headers=AGENT)
            assert again.status_code == 409
            root = bearer("root", "platform_admin")
            seen = (await http.get(f"/api/tickets/{platform_id}", headers=root)).json()
            assert seen["shop"] == "*" and seen["escalated_from"] == parcel["id"]
            assert seen["requester"] == "b1" and "买家申请平台介入" in seen["description"]
            assert (await http.get(f"/api/tickets/{platform_id}", headers=AGENT)
                    ).status_code == 404
            mine = (await http.get("/api/tickets", headers=bearer("b1"))).json()
            assert platform_id in [t["id"] for t in mine]
            fields = [h["field"] for h in (await http.get(
                f"/api/tickets/{parcel['id']}/history", headers=KEY)).json()]
            assert fields[-2:] == ["status", "escalated_to"]


async def test_a_shops_custom_fields_categories_and_statuses(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d") as (_, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            await setup(http)
            admin = bearer("boss", "shop_admin", SHOP)
            settings = {
                "fields": [
                    {"key": "carrier", "label": "快递公司", "type": "choice",
                     "choices": ["顺丰", "中通"], "required": True},
                    {"key": "amount", "label": "金额", "type": "number"},
                    {"key": "shipped", "label": "发货日", "type": "date"},
                    {"key": "waybill", "label": "运单号", "type": "text"}],
                "categories": ["物流问题", "售后"],
                "statuses": [{"key": "warehouse", "label": "待仓库核实",
                              "buyer_label": "仓库核实中", "maps_to": "on_hold"}]}
            assert (await http.put(f"/api/shops/{SHOP}/ticket-settings", json=settings,
                                   headers=AGENT)).status_code == 403
            saved = await http.put(f"/api/shops/{SHOP}/ticket-settings", json=settings,
                                   headers=admin)
            assert saved.status_code == 200, saved.text
            assert (await http.get(f"/api/shops/{SHOP}/ticket-settings", headers=AGENT)
                    ).json()["statuses"][0]["label"] == "待仓库核实"
            for bad in ({"fields": [{"key": "x", "label": "x", "type": "choice"}]},
                        {"categories": ["a", "a"]},
                        {"statuses": [{"key": "s", "label": "s", "buyer_label": "s",
                                       "maps_to": "new"}]}):
                answer = await http.put(f"/api/shops/{SHOP}/ticket-settings", json=bad,
                                        headers=admin)
                assert answer.status_code == 422, bad

            base = {"shop": SHOP, "subject": "包裹破损", "requester": "b1",
                    "category": "物流问题"}
            for fields, category in (({}, "物流问题"),  # the required one is missing
                                     ({"carrier": "韵达"}, "物流问题"),
                                     ({"carrier": "顺丰", "amount": "12"}, "物流问题"),
                                     ({"carrier": "顺丰", "shipped": "12/01"}, "物流问题"),
                                     ({"carrier": "顺丰", "nope": 1}, "物流问题"),
                                     ({"carrier": "顺丰"}, "其他")):
                refused = await http.post("/api/tickets", json={
                    **base, "fields": fields, "category": category}, headers=KEY)
                assert refused.status_code == 422, (fields, refused.text)
                assert refused.json()["error"]["code"] == "invalid_body"
            # A buyer's own ticket (a form, 留言) cannot fill staff fields: none is required.
            mine = await http.post("/api/tickets", json={
                "shop": SHOP, "subject": "留言", "description": "请回电"}, headers=bearer("b1"))
            assert mine.status_code == 201, mine.text
            made = (await http.post("/api/tickets", json={**base, "fields": {
                "carrier": "顺丰", "amount": 12.5, "shipped": "2026-12-01",
                "waybill": "SF1"}}, headers=KEY)).json()
            assert made["fields"]["carrier"] == "顺丰"
            url = f"/api/tickets/{made['id']}"
            assert (await http.patch(url, json={"fields": {"amount": "many"}},
                                     headers=AGENT)).status_code == 422

            held = (await http.patch(url, json={"custom_status": "warehouse"},
                                     headers=AGENT)).json()
            assert held["status"] == "on_hold" and held["custom_status"] == "warehouse"
            buyer = (await http.get(url, headers=bearer("b1"))).json()
            assert buyer["status_label"] == "仓库核实中"
            assert (await http.patch(url, json={"custom_status": "nope"},
                                     headers=AGENT)).status_code == 422
            assert (await http.patch(url, json={"custom_status": "warehouse",
                                                "status": "solved"},
                                     headers=AGENT)).status_code == 422
            moved = (await http.patch(url, json={"status": "open"}, headers=AGENT)).json()
            assert moved["status"] == "open" and moved["custom_status"] is None
            assert (await http.get(url, headers=bearer("b1"))).json()["status_label"] == "处理中"
