"""The shop bot over real sockets: answers, suggestions, hand-off with the
transcript reaching an agent, modes, agent assist, feedback and candidates."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from octim import Engine, Listening
from octim.testing import TEST_API_KEY, open_engine, token
from octim.testing.client import Client, connect

Running = tuple[Engine, Listening]
SHOP = "s1"
FAQ = [("ship", "什么时候发货", ["下单后多久发货"], "付款后48小时内发货。"),
       ("free", "包邮吗", ["运费怎么算"], "满99元包邮。"),
       ("refund", "退款多久到账", ["钱什么时候退回来"], "签收后1-3个工作日退款。")]


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with open_engine(tmp_path / "data") as pair:
        yield pair


async def setup(listening: Listening, bot: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=listening.http_url, timeout=10, headers={
            "Authorization": f"Bearer {TEST_API_KEY}"}) as http:
        (await http.put(f"/api/shops/{SHOP}", json={"name": "店", "bot": bot})
         ).raise_for_status()
        (await http.put("/api/agents/agent-1", json={"name": "小美", "shops": [SHOP]})
         ).raise_for_status()
        for entry_id, question, similar, answer in FAQ:
            (await http.put(f"/api/kb/{entry_id}", json={
                "question": question, "similar": similar, "answer": answer})
             ).raise_for_status()


async def ask(buyer: Client, conv: str, client_id: str, text: str) -> dict[str, Any]:
    await buyer.say(conv, client_id, text)
    return await buyer.expect("msg", conversation=conv, role="bot")


async def test_bot_answers_suggests_then_hands_over_with_the_transcript(
        running: Running) -> None:
    engine, listening = running
    await setup(listening, {"mode": "always", "handoff_after": 2})
    with trio.fail_after(20):
        async with connect(listening.ws_url, token("buyer-1")) as buyer:
            opened = await buyer.open(SHOP)
            conv = opened["conversation"]
            assert opened["state"] == "bot"
            answer = await ask(buyer, conv, "q1", "亲，下单后几天能发货呀")
            assert answer["body"]["text"] == "付款后48小时内发货。"
            assert answer["body"]["kb"] == "ship"
            assert "ship" not in [r["id"] for r in answer["body"].get("related", [])]
            assert answer["from"] == "bot"
            unsure = await ask(buyer, conv, "q2", "你们家的猫叫什么名字")
            assert unsure["body"]["suggestions"] and "text" in unsure["body"]
            async with connect(listening.ws_url, token("agent-1", "agent", SHOP)) as agent:
                await buyer.say(conv, "q3", "那我的快件能寄到火星吗")
                notice = await buyer.expect("msg", conversation=conv, kind="system")
                assert notice["body"]["handoff"] == {"reason": "unanswered"}
                assert (await buyer.expect("event", event="handoff"))["data"] == {
                    "reason": "unanswered"}
                assigned = await agent.expect("event", event="assigned", conversation=conv)
                handoff = assigned["data"]["handoff"]
                assert handoff["reason"] == "unanswered"
                said = [(m["role"], m["body"].get("text")) for m in handoff["transcript"]]
                assert ("buyer", "亲，下单后几天能发货呀") in said
                assert ("bot", "付款后48小时内发货。") in said
                assert said[-1] == ("buyer", "那我的快件能寄到火星吗")
                # The agent gets the history too, and the buyer reaches the agent.
                history = await agent.sync(conv)
                assert [m["role"] for m in history][:2] == ["buyer", "bot"]
    meta = engine.store.get("conversations", conv.encode())
    assert meta["state"] == "assigned" and meta["agent"] == "agent-1"


@pytest.mark.parametrize(("text", "reason"), [("转人工", "requested"),
                                              ("我要投诉你们的服务", "complaint")])
async def test_asking_for_a_person_or_anger_hands_over_at_once(
        running: Running, text: str, reason: str) -> None:
    _, listening = running
    await setup(listening, {"mode": "always"})
    with trio.fail_after(20):
        async with connect(listening.ws_url, token("buyer-2")) as buyer:
            conv = (await buyer.open(SHOP))["conversation"]
            await buyer.say(conv, "x", text)
            event = await buyer.expect("event", event="handoff", conversation=conv)
            assert event["data"] == {"reason": reason}
            queued = await buyer.expect("event", event="queued", conversation=conv)
            assert queued["data"]["mode"] == "leave_message"  # nobody online yet


async def test_modes_decide_who_answers_first(running: Running) -> None:
    _, listening = running
    await setup(listening, {"mode": "when_no_agent"})
    with trio.fail_after(20):
        async with connect(listening.ws_url, token("early")) as early:
            assert (await early.open(SHOP))["state"] == "bot"
        async with connect(listening.ws_url, token("agent-1", "agent", SHOP)), \
                connect(listening.ws_url, token("late")) as late:
            await late.request({"type": "ping"}, "pong")
            assert (await late.open(SHOP))["state"] == "queued"
    # outside_hours: business hours that end a minute from now in UTC+8, then
    # hours that started a minute ago.
    minute = int((time.time() / 60 + 480) % 1440)
    inside = {"start": f"{(minute - 1) % 1440 // 60:02d}:{(minute - 1) % 60:02d}",
              "end": f"{(minute + 2) % 1440 // 60:02d}:{(minute + 2) % 60:02d}"}
    outside = {"start": inside["end"], "end": f"{(minute + 5) % 1440 // 60:02d}:"
               f"{(minute + 5) % 60:02d}"}
    for hours, state, buyer in ((outside, "bot", "night"), (inside, "queued", "day")):
        await setup(listening, {"mode": "outside_hours", "hours": hours})
        async with connect(listening.ws_url, token(buyer)) as client:
            assert (await client.open(SHOP))["state"] == state
    await setup(listening, {"mode": "off"})
    async with connect(listening.ws_url, token("plain")) as plain:
        assert (await plain.open(SHOP))["state"] == "queued"


async def test_agent_assist_feedback_and_candidates(running: Running) -> None:
    engine, listening = running
    await setup(listening, {"mode": "always", "handoff_after": 3})
    with trio.fail_after(20):
        async with connect(listening.ws_url, token("buyer-3")) as buyer:
            conv = (await buyer.open(SHOP))["conversation"]
            answer = await ask(buyer, conv, "q1", "包邮吗亲")
            await buyer.send({"type": "feedback", "conversation": conv,
                              "seq": answer["seq"], "helpful": True})
            for n in range(2):
                await ask(buyer, conv, f"u{n}", "能不能用比特币付款")
            await buyer.send({"type": "feedback", "conversation": conv, "seq": 1,
                              "helpful": False, "ref": "notbot"})
            assert (await buyer.expect("error", ref="notbot"))["code"] == "invalid_body"
            async with connect(listening.ws_url, token("agent-1", "agent", SHOP)) as agent:
                await buyer.say(conv, "human", "转人工")
                await agent.expect("event", event="assigned", conversation=conv)
                await buyer.say(conv, "after", "那运费怎么算呢")
                tips = await agent.expect("event", event="suggestions", conversation=conv)
                assert tips["data"]["items"][0]["id"] == "free"
                assert tips["data"]["items"][0]["answer"] == "满99元包邮。"
    assert engine.store.get("kb_stats", b"free") == {"helpful": 1, "unhelpful": 0}
    async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
        found = (await http.get(f"/api/kb-candidates?shop={SHOP}", headers={
            "Authorization": f"Bearer {TEST_API_KEY}"})).json()
        top = found[0]
        assert top["count"] == 2 and top["examples"] == ["能不能用比特币付款"]
        assert any(row["handed_off"] == 1 for row in found)  # the 转人工 request
        admin = await http.get(f"/api/kb-candidates?shop={SHOP}", headers={
            "Authorization": f"Bearer {token('boss', 'shop_admin', SHOP)}"})
        assert admin.status_code == 200
        other = await http.get(f"/api/kb-candidates?shop={SHOP}", headers={
            "Authorization": f"Bearer {token('spy', 'shop_admin', 's9')}"})
        assert other.status_code == 404
