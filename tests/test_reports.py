"""Reports over a scripted day on the engine's clock: buyers, the bot, a hand-off,
replies at known times, a private note, a reopen, ratings and a ticket. Every figure of
the overview equals the value worked out by hand here; the CSV opens in a spreadsheet;
agents read only their own figures; a restart counts nothing twice."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import httpx
import trio

from octim.domain.conversations.model import ConversationMeta
from octim.domain.reports.feeder import rebuild
from octim.testing import TEST_API_KEY, open_engine, token
from octim.testing.client import Client, connect

SHOP, BOTSHOP, EMPTY = "s1", "s2", "s3"
KEY = {"Authorization": f"Bearer {TEST_API_KEY}"}
DAY = 1_796_083_200.0  # Tue 2026-12-01 00:00 UTC = 08:00 in Shanghai
T0 = DAY + 2 * 3600  # 10:00 Shanghai


async def script(engine: Any, listening: Any, now: list[float]) -> str:
    """The day, step by step; times are seconds after 10:00 (Shanghai). Returns the first
    conversation."""
    def at(seconds: float) -> None:
        now[0] = T0 + seconds

    async with httpx.AsyncClient(base_url=listening.http_url, timeout=10, headers=KEY) as http:
        (await http.put(f"/api/shops/{SHOP}", json={"name": "一号店", "bot": {"mode": "off"}})
         ).raise_for_status()
        (await http.put(f"/api/shops/{BOTSHOP}", json={
            "name": "二号店", "bot": {"mode": "always"}})).raise_for_status()
        (await http.put(f"/api/shops/{EMPTY}", json={"name": "三号店", "bot": {"mode": "off"}})
         ).raise_for_status()  # nobody works here
        for agent, shops in (("a1", [SHOP]), ("a2", [BOTSHOP])):
            (await http.put(f"/api/agents/{agent}", json={"name": agent, "shops": shops})
             ).raise_for_status()
        (await http.put("/api/kb/ship", json={"question": "几天发货", "similar": ["多久发货"],
                                              "answer": "48小时内发货。"})).raise_for_status()
    a1_token, a2_token = token("a1", "agent", SHOP), token("a2", "agent", BOTSHOP)
    async with connect(listening.ws_url, a1_token) as a1, \
            connect(listening.ws_url, a2_token) as a2, \
            connect(listening.ws_url, token("b1")) as b1, \
            connect(listening.ws_url, token("b2")) as b2, \
            connect(listening.ws_url, token("b3")) as b3, \
            connect(listening.ws_url, token("b4")) as b4:
        # Conversation 1 (s1, no bot): asked at 0 s, answered at 20 s and 130 s.
        at(0)
        c1 = (await b1.open(SHOP, channel="app", page="product"))["conversation"]
        await b1.say(c1, "1", "你好，在吗")
        await a1.expect("event", event="assigned", conversation=c1)
        at(20)
        await a1.say(c1, "2", "在的")
        at(70)
        await b1.say(c1, "3", "羽绒服有L码吗")
        at(100)
        await b1.say(c1, "4", "着急要，不然差评")  # the wait still counts from 70 s
        at(110)
        await note(a1, c1, "5", "查库存")  # a private note answers nobody
        at(130)
        await a1.say(c1, "6", "有的")  # a 60 s gap: not within 30 s
        at(300)
        await a1.request({"type": "resolve", "conversation": c1, "ref": "r"}, "event",
                         event="resolved")
        await b1.send({"type": "rate", "conversation": c1, "score": 5})
        await b1.expect("event", event="rated")
        # It reopens at 400 s and is answered at 410 s: a second first response.
        at(400)
        await b1.say(c1, "7", "还有个问题，我要投诉")  # a second cue: still one complaint
        await a1.expect("event", event="assigned", conversation=c1)
        at(410)
        await a1.say(c1, "8", "请讲")

        # Conversation 2 (s2, the bot): answered by the bot, never handed over, closed.
        at(500)
        c2 = (await b2.open(BOTSHOP))["conversation"]
        await b2.say(c2, "1", "多久发货")
        await b2.expect("msg", conversation=c2, role="bot")

        # Conversation 3 (s2): the buyer asks for a person at 600 s; a2 answers at 645 s.
        at(600)
        c3 = (await b3.open(BOTSHOP))["conversation"]
        await b3.say(c3, "1", "转人工")
        await a2.expect("event", event="assigned", conversation=c3)
        at(645)
        await a2.say(c3, "2", "您好，我是客服")
        at(660)
        await a2.request({"type": "resolve", "conversation": c3, "ref": "r"}, "event",
                         event="resolved")
        await b3.send({"type": "rate", "conversation": c3, "score": 3})
        await b3.expect("event", event="rated")

        # Conversation 4 (s3, nobody works there): the buyer waits and gives up.
        at(800)
        c4 = (await b4.open(EMPTY))["conversation"]
        await b4.say(c4, "1", "有人吗")
        await b4.expect("event", event="queued", conversation=c4)

    async with httpx.AsyncClient(base_url=listening.http_url, timeout=10, headers=KEY) as http:
        (await http.put("/api/sla-policies/std", json={
            "shop": SHOP, "name": "标准", "targets": {"normal": {
                "first_reply": 5, "resolution": 60}}})).raise_for_status()
        # Two tickets at 700 s: one answered at 730 s and solved at 760 s (both targets
        # met, 60 s to resolution), one still open at the day's end (the backlog).
        at(700)
        made = (await http.post("/api/tickets", json={"shop": SHOP, "subject": "换货",
                                                      "requester": "b1"})).json()
        (await http.post("/api/tickets", json={"shop": SHOP, "subject": "发票",
                                               "requester": "b1"})).raise_for_status()
        at(730)
        (await http.post(f"/api/tickets/{made['id']}/comments", json={
            "body": "已安排换货", "public": True})).raise_for_status()
        at(760)
        (await http.patch(f"/api/tickets/{made['id']}", json={"status": "solved"})
         ).raise_for_status()
        # b1 pays at 12:00 (converts c1's inquiry, the same day); b3 pays 30 h after
        # asking (too late to count); o-1 shipped later converts nothing again.
        item = {"sku": "k1", "name": "羽绒服", "price": 399}
        for order, shop, buyer, paid, status in (
                ("o-1", SHOP, "b1", T0 + 2 * 3600, "paid"),
                ("o-3", BOTSHOP, "b3", T0 + 30 * 3600, "paid"),
                ("o-1", SHOP, "b1", T0 + 2 * 3600, "shipped")):
            (await http.put(f"/api/orders/{order}", json={
                "shop": shop, "customer": buyer, "status": status, "items": [item],
                "times": {"paid": int(paid * 1000)}})).raise_for_status()
    # Much later the idle conversations close (c2 was the bot's alone).
    at(5 * 3600)
    await engine.sweep()
    await engine.tick()  # the agents' presence grace ends now: they go offline at 5 h
    while ConversationMeta.load(engine.store, c2).state != "closed":  # type: ignore[union-attr]
        await trio.sleep(0.01)
    return c1


async def note(agent: Client, conversation: str, client_id: str, text: str) -> None:
    await agent.request({"type": "send", "conversation": conversation, "id": client_id,
                         "kind": "note", "body": {"text": text}}, "ack", id=client_id)


async def test_a_scripted_day_gives_the_figures_worked_out_by_hand(tmp_path: Path) -> None:
    now = [T0]
    async with open_engine(tmp_path / "d", routing_tick=3600, auto_close_after=3600) as (
            engine, listening):
        engine.context.clock = lambda: now[0]
        with trio.fail_after(30):
            c1 = await script(engine, listening, now)
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            params = {"from": "2026-12-01", "to": "2026-12-01", "tz": "Asia/Shanghai"}
            one = (await http.get("/api/reports/overview", params={**params, "shop": SHOP},
                                  headers=KEY)).json()["totals"]
            assert one["conversations"] == 1 and one["assigned"] == 1
            assert one["buyer_messages"] == 4 and one["staff_messages"] == 3  # not the note
            # First responses: 20 s (start), 10 s (after the reopen).
            assert one["first_response"]["count"] == 2
            assert one["first_response"]["mean_s"] == 15.0
            # Percentiles off the bins: 10 s ends the (5, 10] bin, 20 s is in (15, 20].
            assert one["first_response"]["p50_s"] == 10.0
            assert one["first_response"]["p90_s"] == 19.0
            # Waits: 0→20 s, 70→130 s, 400→410 s.
            assert one["response"]["count"] == 3 and one["response"]["mean_s"] == 30.0
            assert one["response"]["within_30s_rate"] == round(2 / 3, 4)
            assert one["resolved"] == 1 and one["resolution_time"]["mean_s"] == 300.0
            assert one["reopened"] == 1 and one["reopen_rate"] == 1.0
            assert one["ratings"] == 1 and one["satisfaction"] == 1.0
            assert one["tickets_created"] == 2 and one["tickets_solved"] == 1
            assert one["backlog"] == 1 and one["backlog_change"] == 1
            assert one["ticket_resolution_time"]["mean_s"] == 60.0
            # The first ticket met both targets; the second, never answered, breached
            # both when the clock passed 5 h: attainment 1 / (1 + 1) each.
            assert one["sla"]["first_reply"] == {"met": 1, "late": 0, "breached": 1,
                                                 "attainment": 0.5}
            assert one["sla"]["resolution"] == one["sla"]["first_reply"]
            assert one["sla_breaches"] == 2
            assert one["buyers"] == 1  # b1 once, though the conversation reopened
            assert one["complaints"] == 1  # complaint words in a chat a person serves
            assert one["inquiries"] == 1 and one["converted"] == 1
            assert one["conversion_rate"] == 1.0 and one["same_day_conversion_rate"] == 1.0
            assert one["sales"] == 399.0

            two = (await http.get("/api/reports/overview", params={**params, "shop": BOTSHOP},
                                  headers=KEY)).json()["totals"]
            assert two["conversations"] == 2 and two["bot_conversations"] == 2
            assert two["buyers"] == 2 and two["backlog"] == 0
            assert two["handoffs"] == 1 and two["handoff_rate"] == 0.5
            assert two["bot_resolved"] == 1 and two["bot_resolution_rate"] == 0.5
            assert two["bot_messages"] >= 1
            assert two["first_response"]["mean_s"] == 45.0  # from the hand-off
            assert two["resolved"] == 1 and two["resolution_time"]["mean_s"] == 60.0
            assert two["ratings"] == 1 and two["satisfaction"] == 0.0
            assert two["inquiries"] == 2 and two["converted"] == 0  # b3 paid after 30 h
            # Waiting for an agent: c1 twice (at the start, after the reopen) and c3 after
            # the hand-off, each assigned at once; c4 waited until it closed: abandoned.
            assert one["queue_wait"]["count"] == 2 and one["queue_wait"]["mean_s"] == 0.0
            assert two["queue_wait"]["count"] == 1 and two["abandoned"] == 0
            three = (await http.get("/api/reports/overview", params={
                **params, "shop": EMPTY}, headers=KEY)).json()["totals"]
            assert three["conversations"] == 1 and three["abandoned"] == 1
            assert three["queue_wait"]["count"] == 0 and three["inquiries"] == 1

            platform = (await http.get("/api/reports/overview", params={**params, "shop": "*"},
                                       headers=KEY)).json()["totals"]
            assert platform["conversations"] == 4 and platform["ratings"] == 2
            assert platform["average_rating"] == 4.0

            # Day roll-ups (counted in Shanghai) and summed hours (asked in UTC) agree: the
            # day's events all fall on 2026-12-01 in both zones.
            # The Python API answers the same.
            assert (await engine.report(SHOP, "2026-12-01", "2026-12-01"))["totals"] == one
            assert (await engine.report(SHOP, "2026-12-01", "2026-12-01", channel="app",
                                        name="conversion"))["totals"]["converted"] == 1
            assert (await engine.lifecycle(SHOP))["buyers"] == 1
            in_utc = (await http.get("/api/reports/overview", params={
                **params, "shop": SHOP, "tz": "UTC"}, headers=KEY)).json()["totals"]
            assert in_utc == one
            hourly = (await http.get("/api/reports/overview", params={
                **params, "shop": SHOP, "granularity": "hour"}, headers=KEY)).json()
            # Everything happened at 10:00–11:00, but the tickets' breaches at 15:00.
            assert [p["period"] for p in hourly["series"]] == ["2026-12-01T10:00",
                                                               "2026-12-01T15:00"]

            # By channel and entry page: c1 came from the app's product page.
            app = (await http.get("/api/reports/overview", params={
                **params, "shop": SHOP, "channel": "app"}, headers=KEY)).json()
            assert app["channel"] == "app" and app["totals"]["conversations"] == 1
            assert app["totals"]["first_response"] == one["first_response"]
            web = (await http.get("/api/reports/overview", params={
                **params, "shop": SHOP, "channel": "web"}, headers=KEY)).json()["totals"]
            assert web["conversations"] == 0
            by_entry = (await http.get("/api/reports/breakdown", params={
                **params, "shop": BOTSHOP, "by": "entry"}, headers=KEY)).json()["rows"]
            assert [(r["value"], r["conversations"]) for r in by_entry] == [("shop", 2)]
            by_channel = (await http.get("/api/reports/breakdown", params={
                **params, "shop": SHOP, "by": "channel"}, headers=KEY)).json()["rows"]
            assert [(r["value"], r["buyers"], r["converted"]) for r in by_channel] == [
                ("app", 1, 1)]
            for bad in ({"channel": "app", "entry": "product"}, {"channel": "a b"},
                        {"agent": "a1", "group": "g"}):
                answer = await http.get("/api/reports/overview", params={
                    **params, "shop": SHOP, **bad}, headers=KEY)
                assert answer.status_code == 422, bad
            # The named reports keep their own figures.
            conversion = (await http.get("/api/reports/conversion", params={
                **params, "shop": SHOP}, headers=KEY)).json()["totals"]
            assert conversion == {k: one[k] for k in (
                "conversations", "buyers", "inquiries", "assigned", "converted",
                "conversion_rate", "same_day_conversion_rate", "sales")}
            queue = (await http.get("/api/reports/queue", params={
                **params, "shop": EMPTY}, headers=KEY)).json()["totals"]
            assert queue["abandoned"] == 1 and "sales" not in queue
            tickets = (await http.get("/api/reports/tickets", params={
                **params, "shop": SHOP}, headers=KEY)).json()
            assert tickets["series"][0]["backlog"] == 1
            assert tickets["totals"]["sla"] == one["sla"]

            # Lifecycle: b1 paid once with s1 today, b3 once with s2: both new.
            life = (await http.get("/api/reports/lifecycle", params={"shop": SHOP},
                                   headers=KEY)).json()
            assert {s["stage"]: s["buyers"] for s in life["stages"]} == {
                "new": 1, "active": 0, "at_risk": 0, "lost": 0}
            everyone = (await http.get("/api/reports/lifecycle", params={"shop": "*"},
                                       headers=KEY)).json()
            assert everyone["buyers"] == 2
            ctx = (await http.get(f"/api/conversations/{c1}/context", headers=KEY)).json()
            assert ctx["lifecycle"]["stage"] == "new"
            assert (ctx["lifecycle"]["orders"], ctx["lifecycle"]["spent"]) == (1, 399.0)
            for name, stages in (("fresh", ["new"]), ("gone", ["lost"])):
                (await http.put(f"/api/segments/{name}", headers=KEY, json={
                    "name": name, "shop": SHOP, "rule": {"stages_any": stages}})
                 ).raise_for_status()
            members = await http.get("/api/segments/fresh/members", headers=KEY)
            assert "b1" in members.json()["members"]
            assert (await http.get("/api/segments/gone/members", headers=KEY)
                    ).json()["members"] == []
            assert (await http.put("/api/segments/x", headers=KEY, json={
                "name": "x", "rule": {"stages_any": ["new"]}})).status_code == 422
            # A hundred days on, with no other payment, b1 is at risk (no event needed).
            now[0] += 100 * 86_400
            life = (await http.get("/api/reports/lifecycle", params={"shop": SHOP},
                                   headers=KEY)).json()
            assert {s["stage"]: s["buyers"] for s in life["stages"]}["at_risk"] == 1
            assert (await http.get("/api/segments/fresh/members", headers=KEY)
                    ).json()["members"] == []
            now[0] -= 100 * 86_400

            # An agent reads their own figures only; the ranking is for admins.
            a1 = {"Authorization": f"Bearer {token('a1', 'agent', SHOP)}"}
            mine = (await http.get("/api/reports/overview", params={**params, "shop": SHOP},
                                   headers=a1)).json()
            assert mine["agent"] == "a1" and mine["totals"]["staff_messages"] == 3
            assert mine["totals"]["converted"] == 1 and mine["totals"]["sales"] == 399.0
            assert (await http.get("/api/reports/overview", params={
                **params, "shop": SHOP, "agent": "a9"}, headers=a1)).status_code == 403
            assert (await http.get("/api/reports/overview", params={**params, "shop": BOTSHOP},
                                   headers=a1)).status_code == 404
            admin = {"Authorization": f"Bearer {token('boss', 'shop_admin', SHOP)}"}
            ranking = (await http.get("/api/reports/agents", params={**params, "shop": SHOP},
                                      headers=admin)).json()["agents"]
            assert [(r["agent"], r["first_response"]["count"]) for r in ranking] == [("a1", 2)]
            # a1 was online from the first second until the grace ended at 5 h.
            assert (ranking[0]["online_s"], ranking[0]["busy_s"]) == (5 * 3600, 0)
            # a1 held c1 from 0 s to its resolve at 300 s, and again from the reopen at
            # 400 s until it closed at 5 h: 17,900 conversation-seconds in 18,000 on duty.
            assert ranking[0]["load_s"] == 300 + (5 * 3600 - 400)
            assert ranking[0]["average_load"] == round(17_900 / 18_000, 2)

            exported = await http.get("/api/reports/overview", params={
                **params, "shop": SHOP, "format": "csv"}, headers=admin)
            assert exported.content.startswith("\ufeff".encode())
            rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
            assert rows[0]["period"] == "2026-12-01" and rows[0]["conversations"] == "1"
            assert rows[0]["first_response_mean_s"] == "15.0"
            for bad in ({"from": "2026-12-02", "to": "2026-12-01"}, {"tz": "Mars/Base"},
                        {"from": "2026-13-01"}):
                answer = await http.get("/api/reports/overview", params={
                    **params, "shop": SHOP, **bad}, headers=KEY)
                assert answer.status_code == 422, bad
    # A restart reads the cursor: nothing is counted twice.
    async with open_engine(tmp_path / "d", routing_tick=3600) as (engine, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            again = (await http.get("/api/reports/overview", params={
                "from": "2026-12-01", "to": "2026-12-01", "shop": SHOP}, headers=KEY)).json()
            assert again["totals"]["buyer_messages"] == 4
            assert again["totals"]["first_response"]["count"] == 2
        incremental = dict(engine.store.scan("report_buckets"))
    # Rebuilt from the log alone, the counters are the same as the incremental ones.
    rebuilt = await rebuild(tmp_path / "d")
    assert rebuilt["dropped"] > 0 and rebuilt["records"] > 0
    async with open_engine(tmp_path / "d", routing_tick=3600) as (engine, _):
        assert dict(engine.store.scan("report_buckets")) == incremental


def test_percentiles_are_read_off_the_bins_and_never_pass_the_largest_value() -> None:
    from octim.domain.reports.counting import add_latency, empty_bucket
    from octim.domain.reports.read import percentile

    bucket = empty_bucket()
    add_latency(bucket, "frt", 300)  # one 0.3 s reply: the (0, 1 s] bin
    assert percentile(bucket["frt"], 0.9) == 0.3  # not 0.9, the bin's interpolation
    for ms in (12_000, 14_000, 40_000, 50_000):
        add_latency(bucket, "frt", ms)
    # rank 2.5 of 5: 1 sample below, then 1.5 of the 2 in (10, 15] → 10 + 5 × 0.75
    assert percentile(bucket["frt"], 0.5) == 13.75
    assert percentile(bucket["frt"], 0.99) == 50.0  # capped by the maximum
    assert percentile(empty_bucket()["frt"], 0.5) is None


async def test_hot_questions_and_complaint_focus(tmp_path: Path) -> None:
    """The questions the knowledge base could not answer, grouped and counted, and the
    complaints the bot detected by the category of the page the buyer came from."""
    now = [T0]
    async with open_engine(tmp_path / "d", routing_tick=3600) as (engine, listening):
        engine.context.clock = lambda: now[0]
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10,
                                     headers=KEY) as http:
            (await http.put(f"/api/shops/{BOTSHOP}", json={
                "name": "二号店", "bot": {"mode": "always", "handoff_after": 5}})
             ).raise_for_status()
            (await http.put("/api/kb/ship", json={"question": "几天发货",
                                                  "answer": "48小时内发货。"})
             ).raise_for_status()
            with trio.fail_after(20):
                for n, (category, text) in enumerate((("羽绒服", "质量太差了，我要投诉"),
                                                      ("羽绒服", "差评！掉毛"),
                                                      ("围巾", "垃圾，退钱"))):
                    async with connect(listening.ws_url, token(f"angry-{n}")) as buyer:
                        conv = (await buyer.open(BOTSHOP, category=category))["conversation"]
                        await buyer.say(conv, "1", text)
                        await buyer.expect("event", event="handoff", conversation=conv)
                for n in range(2):
                    async with connect(listening.ws_url, token(f"curious-{n}")) as buyer:
                        conv = (await buyer.open(BOTSHOP))["conversation"]
                        await buyer.say(conv, "1", "你们家的猫叫什么名字")
                        await buyer.expect("msg", conversation=conv, role="bot")
                        await buyer.say(conv, "2", "几天发货")  # the knowledge base knows
                        answer = await buyer.expect("msg", conversation=conv, role="bot")
                        assert answer["body"]["kb"] == "ship"
            hot = (await http.get("/api/reports/hot-questions", params={
                "shop": BOTSHOP, "from": "2026-12-01", "to": "2026-12-01"})).json()
            assert hot["complaints"] == 3
            assert [(e["entry"], e["question"], e["answers"]) for e in hot["top_entries"]] == [
                ("ship", "几天发货", 2)]
            assert hot["complaint_categories"] == [{"category": "羽绒服", "complaints": 2},
                                                   {"category": "围巾", "complaints": 1}]
            [cat] = [q for q in hot["unanswered"] if "猫" in q["question"] or
                     any("猫" in e for e in q["examples"])]
            assert cat["count"] == 2
            staff = {"Authorization": f"Bearer {token('a1', 'agent', BOTSHOP)}"}
            assert (await http.get("/api/reports/hot-questions", params={"shop": BOTSHOP},
                                   headers=staff)).status_code == 403
            csv_answer = await http.get("/api/reports/hot-questions", params={
                "shop": BOTSHOP, "from": "2026-12-01", "to": "2026-12-01", "format": "csv"})
            assert csv_answer.content.startswith("\ufeff".encode())


async def test_the_pending_state_is_rebuilt_after_a_stop_without_a_checkpoint(
        tmp_path: Path, monkeypatch: Any) -> None:
    """The fold's per-conversation state is written only at checkpoints: an engine that
    stops without one (as in a crash) folds the records past the last checkpoint again,
    without counting, at its next start. A wait begun before the stop is answered after
    it: the first response is counted once, from the right time, and the counters equal
    a rebuild from the log."""
    from octim.domain.reports import feeder

    now = [T0]
    data = tmp_path / "d"

    async def skip(self: Any) -> None:
        return None

    with monkeypatch.context() as patched:
        patched.setattr(feeder.Reports, "checkpoint", skip)
        async with open_engine(data, routing_tick=3600) as (engine, listening):
            engine.context.clock = lambda: now[0]
            await engine.put_shop(SHOP, "一号店", bot={"mode": "off"})
            async with httpx.AsyncClient(base_url=listening.http_url, headers=KEY) as http:
                (await http.put("/api/agents/a1", json={"name": "a1", "shops": [SHOP]})
                 ).raise_for_status()
            async with connect(listening.ws_url, token("a1", "agent", SHOP)) as a1, \
                    connect(listening.ws_url, token("b1")) as b1:
                conversation = (await b1.open(SHOP))["conversation"]
                await b1.say(conversation, "1", "在吗")
                await a1.expect("event", event="assigned", conversation=conversation)
            first = await engine.report(SHOP, "2026-12-01", "2026-12-01")
            assert first["totals"]["buyer_messages"] == 1
            assert first["totals"]["first_response"]["count"] == 0
            assert engine.reports is not None
            assert engine.reports.pending_cursor < engine.reports.cursor
            assert engine.store.get("report_pending", conversation.encode()) is None
    async with open_engine(data, routing_tick=3600) as (engine, listening):
        engine.context.clock = lambda: now[0]
        now[0] = T0 + 42
        async with connect(listening.ws_url, token("a1", "agent", SHOP)) as a1:
            await a1.say(conversation, "2", "在的")
        again = (await engine.report(SHOP, "2026-12-01", "2026-12-01"))["totals"]
        assert again["first_response"]["count"] == 1
        assert again["first_response"]["mean_s"] == 42.0
        assert again["conversations"] == 1 and again["buyer_messages"] == 1
        incremental = dict(engine.store.scan("report_buckets"))
    await rebuild(data)
    async with open_engine(data, routing_tick=3600) as (engine, _):
        assert dict(engine.store.scan("report_buckets")) == incremental
