"""Working together on a conversation over real WebSocket (工作协同): private notes
that the buyer never gets (live, by sync, or in the unread count), ``@`` mentions that
reach the colleague named, and a colleague invited to assist who then sees the chat,
writes notes and replies, without taking any of their capacity."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio

from octim.testing import TEST_API_KEY, open_engine, token
from octim.testing.client import Client, connect

SHOP = "s1"
KEY = {"Authorization": f"Bearer {TEST_API_KEY}"}


def note(conversation: str, client_id: str, text: str) -> dict[str, object]:
    return {"type": "send", "conversation": conversation, "id": client_id, "kind": "note",
            "body": {"text": text}}


async def test_notes_mentions_and_an_invited_colleague(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d") as (engine, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            (await http.put(f"/api/shops/{SHOP}", json={"name": "一号店", "bot": {"mode": "off"}},
                            headers=KEY)).raise_for_status()
            (await http.put("/api/agents/a1", json={"name": "小美", "shops": [SHOP]},
                            headers=KEY)).raise_for_status()
            with trio.fail_after(30):
                async with connect(listening.ws_url, token("a1", "agent", SHOP)) as a1:
                    async with connect(listening.ws_url, token("b1")) as buyer:
                        conv = (await buyer.open(SHOP))["conversation"]
                        await buyer.say(conv, "m1", "我的快递丢了")
                        await a1.expect("event", event="assigned", conversation=conv)
                        # a2 joins the shop only now: a1 owns the chat, a2 has none.
                        (await http.put("/api/agents/a2", json={
                            "name": "小王", "shops": [SHOP]}, headers=KEY)).raise_for_status()
                        async with connect(listening.ws_url, token("a2", "agent", SHOP)) as a2:
                            await collaborate(http, conv, a1, a2, buyer)
                    # The buyer, back later: no note by sync, none counted unread.
                    async with connect(listening.ws_url, token("b1")) as back:
                        seen = await back.sync(conv)
                        assert [m["kind"] for m in seen] == ["text", "text", "text"]
                        assert all(m["kind"] != "note" for m in seen)
                        [entry] = (await back.request({"type": "inbox"}, "inbox"))[
                            "conversations"]
                        assert entry["unread"] == 1  # a2's reply, not the two notes
            # Notes do not count as the shop's messages or its first response.
            assert engine.reports is not None
            await engine.reports.catch_up()  # (a snapshot may be a second old)
            [stats] = (await engine.monitor.snapshot([SHOP]))["shops"]
            assert stats["today"]["staff_messages"] == 1


async def collaborate(http: httpx.AsyncClient, conv: str, a1: Client, a2: Client,
                      buyer: Client) -> None:
    # A private note naming a colleague: staff only; the colleague hears of it.
    ack = await a1.request(note(conv, "n1", "@小王 帮我查下这个客户的物流"), "ack", id="n1")
    mention = await a2.expect("event", event="mentioned", conversation=conv)
    assert mention["data"] == {"seq": ack["seq"], "by": "a1",
                               "excerpt": "@小王 帮我查下这个客户的物流"}
    with pytest.raises(trio.TooSlowError):
        await buyer.expect("msg", timeout=0.3, kind="note")
    # a1 invites a2 to assist: a2 gets the chat's frames and finds it in the inbox.
    await a1.send({"type": "invite", "conversation": conv, "agent": "a2", "ref": "i1"})
    invited = await a2.expect("event", event="invited", conversation=conv)
    assert invited["data"] == {"agent": "a2", "by": "a1"}
    inbox = (await a2.request({"type": "inbox"}, "inbox"))["conversations"]
    assert [e["conversation"] for e in inbox] == [conv] and inbox[0]["helpers"] == ["a2"]
    await buyer.say(conv, "m2", "单号是 SF123")
    assert (await a2.expect("msg", conversation=conv, role="buyer"))["body"]["text"] == \
        "单号是 SF123"
    # a2 writes a note (a1 gets it, the buyer not) and replies (the buyer gets that).
    await a2.request(note(conv, "n2", "查到了，在转运中心"), "ack", id="n2")
    assert (await a1.expect("msg", kind="note", conversation=conv))["from"] == "a2"
    await a2.say(conv, "r1", "您好，包裹在转运中心，明天送达")
    reply = await buyer.expect("msg", conversation=conv, role="agent")
    assert reply["from"] == "a2"
    with pytest.raises(trio.TooSlowError):
        await buyer.expect("msg", timeout=0.3, kind="note")
    # Capacity counts only for the owner.
    team = (await http.get(f"/api/shops/{SHOP}/team", headers={
        "Authorization": f"Bearer {token('a1', 'agent', SHOP)}"})).json()
    load = {a["id"]: a["load"] for a in team["agents"]}
    assert load == {"a1": 1, "a2": 0}
    # Refusals: a buyer's note, a note recalled, an outsider invited, twice the same.
    await buyer.send(note(conv, "x1", "我也想写备注"))
    assert (await buyer.expect("error"))["code"] == "forbidden"
    await a1.send({"type": "recall", "conversation": conv, "seq": ack["seq"], "ref": "rc"})
    assert (await a1.expect("error", ref="rc"))["code"] == "invalid_state"
    await a1.send({"type": "invite", "conversation": conv, "agent": "nobody", "ref": "i2"})
    assert (await a1.expect("error", ref="i2"))["code"] == "not_found"
    await a1.send({"type": "invite", "conversation": conv, "agent": "a2", "ref": "i3"})
    assert (await a1.expect("error", ref="i3"))["code"] == "invalid_state"
    # Let go: a2 hears it and the chat leaves a2's inbox.
    await a1.send({"type": "invite", "conversation": conv, "agent": "a2", "remove": True})
    await a2.expect("event", event="uninvited", conversation=conv)
    assert (await a2.request({"type": "inbox"}, "inbox"))["conversations"] == []
