"""The bot learns from traffic (#19), over real WebSockets, HTTP and LMDB: a buyer's click
among the bot's choices and an agent's answer to a hand-off become proposals; a shop admin
approves one and the bot answers with it at once; rejecting; isolation; per-shop synonyms."""

from __future__ import annotations

import httpx
import pytest
import trio

from octim.errors import NotFound
from octim.testing import TEST_API_KEY, open_engine, token
from octim.testing.client import connect

SHOP = "s1"
PLATFORM = {"Authorization": f"Bearer {TEST_API_KEY}"}
FAQ = [("ship", "什么时候发货", ["下单后多久发货"], "付款后48小时内发货。"),
       ("free", "包邮吗", ["运费怎么算"], "满99元包邮。"),
       ("refund", "退款多久到账", ["钱什么时候退回来"], "签收后1-3个工作日退款。"),
       ("invoice", "能开发票吗", [], "可以开电子发票，下单时填写抬头。")]


def as_(user: str, role: str, *shops: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user, role, *shops)}"}


async def setup(http: httpx.AsyncClient, *, handoff_after: int = 2,
                platform_entries: bool = False) -> None:
    """The shop with its bot always on, agent-1, and the FAQ (the shop's own, or
    platform-wide)."""
    (await http.put(f"/api/shops/{SHOP}", headers=PLATFORM, json={
        "name": "店", "bot": {"mode": "always", "handoff_after": handoff_after}})
     ).raise_for_status()
    (await http.put("/api/agents/agent-1", headers=PLATFORM,
                    json={"name": "小美", "shops": [SHOP]})).raise_for_status()
    for entry_id, question, similar, answer in FAQ:
        (await http.put(f"/api/kb/{entry_id}", headers=PLATFORM, json={
            "question": question, "similar": similar, "answer": answer,
            "shop": None if platform_entries else SHOP})).raise_for_status()


async def handed_over_and_answered(ws_url: str, buyer_id: str, question: str,
                                   reply: str) -> None:
    """The buyer asks, then asks for a person; agent-1 answers with ``reply`` and
    resolves."""
    with trio.fail_after(20):
        async with connect(ws_url, token(buyer_id)) as buyer, \
                connect(ws_url, token("agent-1", "agent", SHOP)) as agent:
            conv = (await buyer.open(SHOP))["conversation"]
            await buyer.say(conv, "h1", question)
            await buyer.expect("msg", conversation=conv, role="bot")
            await buyer.say(conv, "h2", "转人工")
            await agent.expect("event", event="assigned", conversation=conv)
            await agent.say(conv, "a1", reply)
            await agent.send({"type": "resolve", "conversation": conv})
            await agent.expect("event", event="resolved", conversation=conv)


async def test_clicks_and_handoffs_become_proposals_an_admin_approves(tmp_path) -> None:
    admin = as_("boss", "shop_admin", SHOP)
    async with open_engine(tmp_path / "d") as (engine, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            await setup(http, handoff_after=3)
            vague = "下单了还没动静"
            before = (await http.post("/api/kb/ask", headers=PLATFORM,
                                      json={"question": vague, "shop": SHOP})).json()
            assert before["answered"] is False  # the bot is not sure: it offers choices

            with trio.fail_after(20):
                async with connect(listening.ws_url, token("buyer-1")) as buyer:
                    conv = (await buyer.open(SHOP))["conversation"]
                    await buyer.say(conv, "q1", vague)
                    offered = await buyer.expect("msg", conversation=conv, role="bot")
                    choices = {s["id"]: s["question"] for s in offered["body"]["suggestions"]}
                    assert "ship" in choices and len(choices) <= 3
                    await buyer.say(conv, "q2", choices["ship"])  # the buyer taps it
                    answer = await buyer.expect("msg", conversation=conv, role="bot")
                    assert answer["body"]["kb"] == "ship"

            async def proposals(who: dict[str, str] = admin) -> httpx.Response:
                return await http.get("/api/kb-proposals", params={"shop": SHOP}, headers=who)

            with trio.fail_after(10):
                while not (await proposals()).json():
                    await trio.sleep(0.05)
            [click] = (await proposals()).json()
            assert click["kind"] == "similar" and click["entry"] == "ship"
            assert click["question"] == vague and click["sources"] == {"click": 1}

            # Nobody else sees or decides it.
            assert (await proposals(as_("other", "shop_admin", "s2"))).status_code == 404
            assert (await proposals(as_("a", "agent", SHOP))).status_code == 403
            assert (await proposals(as_("b", "buyer"))).status_code == 404
            stranger = await http.post(f"/api/kb-proposals/{click['id']}/approve",
                                       headers=as_("other", "shop_admin", "s2"))
            assert stranger.status_code == 404
            bad = await http.post("/api/kb-proposals/nope/approve", headers=admin)
            assert bad.status_code == 422

            approved = (await http.post(f"/api/kb-proposals/{click['id']}/approve",
                                        headers=admin)).json()
            assert vague in approved["entry"]["similar"]
            after = (await http.post("/api/kb/ask", headers=PLATFORM,
                                     json={"question": vague, "shop": SHOP})).json()
            assert after["answered"] is True and after["id"] == "ship"  # live
            assert (await proposals()).json() == []
            again = await http.post(f"/api/kb-proposals/{click['id']}/approve", headers=admin)
            assert again.status_code == 404

            # A hand-off the agent answers with their own words: a new entry proposed.
            await handed_over_and_answered(listening.ws_url, "buyer-2", "可以寄到香港吗",
                                           "可以寄到香港，运费到付。")
            with trio.fail_after(10):
                while not (await proposals()).json():
                    await trio.sleep(0.05)
            [learned] = (await proposals()).json()
            assert learned["kind"] == "entry" and learned["entry"] is None
            assert learned["answer"] == "可以寄到香港，运费到付。"
            assert learned["question"] == "可以寄到香港吗"  # not the 转人工 after it
            rejected = (await http.post(f"/api/kb-proposals/{learned['id']}/reject",
                                        headers=admin)).json()
            assert rejected["proposal"]["status"] == "rejected" and rejected["entry"] is None
            assert (await proposals()).json() == []
            # Decisions are stored (read back from LMDB): a rejected one is not proposed
            # again.
            rows = {row["id"]: row["status"] for _, row in engine.store.scan("kb_proposals")}
            assert rows == {click["id"]: "approved", learned["id"]: "rejected"}


async def test_a_shops_synonyms_reach_its_bot_only(tmp_path) -> None:
    admin = as_("boss", "shop_admin", SHOP)
    async with open_engine(tmp_path / "d") as (_, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            for shop in (SHOP, "s2"):
                (await http.put(f"/api/shops/{shop}", headers=PLATFORM,
                                json={"name": shop})).raise_for_status()
                (await http.put(f"/api/kb/ship-{shop}", headers=PLATFORM, json={
                    "question": "什么时候发货", "answer": "48小时内发货。", "shop": shop})
                 ).raise_for_status()
                (await http.put(f"/api/kb/size-{shop}", headers=PLATFORM, json={
                    "question": "尺码怎么选", "answer": "按平时的码数拍。", "shop": shop})
                 ).raise_for_status()

            async def ask(shop: str) -> dict:
                return (await http.post("/api/kb/ask", headers=PLATFORM, json={
                    "question": "多久能出库", "shop": shop})).json()

            assert (await ask(SHOP))["answered"] is False
            saved = await http.put("/api/kb-synonyms", params={"shop": SHOP}, headers=admin,
                                   json={"synonyms": {"出库": "发货"}})
            assert saved.status_code == 200 and saved.json()["synonyms"] == {"出库": "发货"}
            assert (await ask(SHOP))["id"] == f"ship-{SHOP}"
            assert (await ask(SHOP))["answered"] is True
            assert (await ask("s2"))["answered"] is False  # another shop's words are its own
            listed = await http.get("/api/kb-synonyms", params={"shop": SHOP}, headers=admin)
            assert listed.json()["synonyms"] == {"出库": "发货"}
            # Permissions and bad input.
            assert (await http.put("/api/kb-synonyms", params={"shop": "s2"}, headers=admin,
                                   json={"synonyms": {}})).status_code == 404
            assert (await http.put("/api/kb-synonyms", headers=admin,
                                   json={"synonyms": {}})).status_code == 403
            assert (await http.put("/api/kb-synonyms", params={"shop": SHOP},
                                   headers=as_("a", "agent", SHOP),
                                   json={"synonyms": {}})).status_code == 403
            for body in ({"synonyms": {"": "x"}}, {"synonyms": {"a" * 33: "b"}},
                         {"synonyms": ["x"]}, {"words": {}}):
                bad = await http.put("/api/kb-synonyms", params={"shop": SHOP},
                                     headers=admin, json=body)
                assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_body"
            # The platform's list reaches every shop.
            (await http.put("/api/kb-synonyms", headers=PLATFORM,
                            json={"synonyms": {"出仓": "发货"}})).raise_for_status()
            answered = (await http.post("/api/kb/ask", headers=PLATFORM, json={
                "question": "多久能出仓", "shop": "s2"})).json()
            assert answered["answered"] is True and answered["id"] == "ship-s2"


async def test_a_pick_of_a_platform_entry_is_the_platforms_to_approve(tmp_path) -> None:
    """A shop admin never edits a platform-wide entry through a proposal."""
    admin = as_("boss", "shop_admin", SHOP)
    async with open_engine(tmp_path / "d") as (_, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            await setup(http, platform_entries=True)
            with trio.fail_after(20):
                async with connect(listening.ws_url, token("buyer-1")) as buyer:
                    conv = (await buyer.open(SHOP))["conversation"]
                    await buyer.say(conv, "q1", "下单了还没动静")
                    offered = await buyer.expect("msg", conversation=conv, role="bot")
                    choices = {s["id"]: s["question"] for s in offered["body"]["suggestions"]}
                    await buyer.say(conv, "q2", choices["ship"])
                    await buyer.expect("msg", conversation=conv, role="bot")
            with trio.fail_after(10):
                while not (await http.get("/api/kb-proposals", headers=PLATFORM)).json():
                    await trio.sleep(0.05)
            [proposal] = (await http.get("/api/kb-proposals", headers=PLATFORM)).json()
            assert proposal["shop"] is None and proposal["asked_at"] == SHOP
            mine = await http.get("/api/kb-proposals", params={"shop": SHOP}, headers=admin)
            assert mine.json() == []
            refused = await http.post(f"/api/kb-proposals/{proposal['id']}/approve",
                                      headers=admin)
            assert refused.status_code == 404
            done = await http.post(f"/api/kb-proposals/{proposal['id']}/approve",
                                   headers=as_("root", "platform_admin"))
            assert "下单了还没动静" in done.json()["entry"]["similar"]


async def test_the_python_api_asks_learns_and_sets_synonyms(tmp_path) -> None:
    async with open_engine(tmp_path / "d") as (engine, _):
        await engine.put_shop(SHOP, "店")
        await engine.put_kb_entry("ship", question="什么时候发货", answer="48小时内发货。",
                                  shop=SHOP)
        await engine.put_kb_entry("size", question="尺码怎么选", answer="按平时的码数拍。",
                                  shop=SHOP)
        assert (await engine.ask_kb("多久能出库", SHOP))["answered"] is False
        await engine.set_kb_synonyms(SHOP, {"出库": "发货"})
        assert (await engine.ask_kb("多久能出库", SHOP))["id"] == "ship"
        assert await engine.kb_proposals(SHOP) == []
        with pytest.raises(NotFound):
            await engine.decide_kb_proposal("pr-0000000000000000", True)


async def test_an_agent_sending_an_entrys_answer_teaches_that_entry(tmp_path) -> None:
    """Agent assist puts an entry's answer in the composer: when the agent sends it to a
    handed-over buyer, the buyer's question is proposed as that entry's similar question."""
    admin = as_("boss", "shop_admin", SHOP)
    async with open_engine(tmp_path / "d") as (_, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            await setup(http)
            await handed_over_and_answered(listening.ws_url, "buyer-3", "公司报销要票 怎么弄",
                                           "可以开电子发票，下单时填写抬头。")
            with trio.fail_after(10):
                while not (found := (await http.get("/api/kb-proposals", headers=admin,
                                                    params={"shop": SHOP})).json()):
                    await trio.sleep(0.05)
            [proposal] = found
            assert proposal["kind"] == "similar" and proposal["entry"] == "invoice"
            assert proposal["question"] == "公司报销要票 怎么弄"
            assert proposal["sources"] == {"handoff": 1} and proposal["answer"] is None


async def test_a_recalled_question_teaches_nothing_and_breaks_nothing(tmp_path) -> None:
    async with open_engine(tmp_path / "d") as (engine, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            await setup(http)
        with trio.fail_after(20):
            async with connect(listening.ws_url, token("buyer-1")) as buyer:
                conv = (await buyer.open(SHOP))["conversation"]
                asked = await buyer.say(conv, "q1", "下单了还没动静")
                offered = await buyer.expect("msg", conversation=conv, role="bot")
                await buyer.send({"type": "recall", "conversation": conv, "seq": asked["seq"]})
                await buyer.expect("event", event="recalled", conversation=conv)
                choice = next(s["question"] for s in offered["body"]["suggestions"]
                              if s["id"] == "ship")
                await buyer.say(conv, "q2", choice)
                answer = await buyer.expect("msg", conversation=conv, role="bot")
                assert answer["body"]["kb"] == "ship"  # the conversation goes on
        assert list(engine.store.scan("kb_proposals")) == []
