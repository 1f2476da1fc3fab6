"""The admin console's server side (#20), over real HTTP, WebSockets and LMDB: a shop admin
sets up their shop (groups, agents, ordered routing rules, bot) with versions; the routing
simulator explains a decision that a real conversation then confirms; replay; knowledge-base
import with per-line errors; another shop's admin is refused even with the page bypassed."""

from __future__ import annotations

import json
from typing import Any

import httpx
import trio

from octim.domain.conversations.model import ConversationMeta
from octim.testing import TEST_API_KEY, open_engine, token
from octim.testing.client import connect

PLATFORM = {"Authorization": f"Bearer {TEST_API_KEY}"}


def as_(user: str, role: str, *shops: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user, role, *shops)}", **headers}


BOSS = as_("boss", "shop_admin", "s1")


async def shops(http: httpx.AsyncClient) -> None:
    for shop in ("s1", "s2"):
        (await http.put(f"/api/shops/{shop}", headers=PLATFORM,
                        json={"name": shop, "bot": {"mode": "off"}})).raise_for_status()


async def test_a_shop_admin_sets_up_routing_and_the_simulator_predicts_the_real_choice(
        tmp_path) -> None:
    async with open_engine(tmp_path / "d") as (_, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            await shops(http)
            for group in ("presale", "aftersale"):
                made = await http.put(f"/api/shops/s1/groups/{group}", headers=BOSS,
                                      json={"name": group})
                assert made.status_code == 200, made.text
            for agent, group in (("amy", "presale"), ("bob", "aftersale")):
                made = await http.put(f"/api/shops/s1/agents/{agent}",
                                      headers={**BOSS, "If-Match": '"0"'},
                                      json={"name": agent, "shops": ["s1"],
                                            "groups": [group]})
                assert made.status_code == 200, made.text
                assert made.headers["etag"] == '"1"'
            config = await http.get("/api/shops/s1/config", headers=BOSS)
            version = config.headers["etag"]
            # The built-in keyword rules are shown as the ordered list in force.
            kinds = [r["kind"] for r in config.json()["routing_rules"]]
            assert kinds == ["keywords", "keywords"]
            rules = [{"kind": "keywords", "values": ["坏了", "退"], "group": "aftersale"},
                     {"kind": "page", "values": ["product"], "group": "presale"}]
            saved = await http.patch("/api/shops/s1/config",
                                     headers={**BOSS, "If-Match": version},
                                     json={"routing": {"rules": rules}})
            assert saved.status_code == 200, saved.text
            assert saved.json()["routing_rules"] == rules
            # A second admin who loaded the same version is refused, not overwritten.
            late = await http.patch("/api/shops/s1/config",
                                    headers={**as_("boss2", "shop_admin", "s1"),
                                             "If-Match": version},
                                    json={"routing": {"rules": rules[1:]}})
            assert late.status_code == 412 and late.json()["error"]["code"] == "version_conflict"
            blind = await http.patch("/api/shops/s1/config", headers=BOSS,
                                     json={"routing": {"rules": rules}})
            assert blind.status_code == 428
            assert blind.json()["error"]["code"] == "precondition_required"
            bad_rule = await http.patch("/api/shops/s1/config",
                                        headers={**BOSS, "If-Match": saved.headers["etag"]},
                                        json={"routing": {"rules": [{"kind": "page",
                                                                     "group": "presale"}]}})
            assert bad_rule.status_code == 422 and "at least one value" in bad_rule.text

            # Nobody online yet: the simulator says the buyer would queue, and where.
            queued = (await http.post("/api/shops/s1/routing/simulate", headers=BOSS, json={
                "context": {"page": "product"}, "text": "在吗"})).json()
            assert queued["decision"] == "waiting" and queued["group"] == "presale"
            assert queued["rules"] == ["context:product"] and queued["fired"] == 1
            assert queued["position"] == 1 and queued["estimated_wait"] is None
            assert [(c["agent"], c["verdict"]) for c in queued["candidates"]] == [
                ("amy", "offline")]

            async with connect(listening.ws_url, token("amy", "agent", "s1")), \
                    connect(listening.ws_url, token("bob", "agent", "s1")):
                # The agents' presence reaches the dispatcher.
                with trio.fail_after(10):
                    while {a["status"] for a in (await http.get(
                            "/api/shops/s1/agents", headers=BOSS)).json()} != {"online"}:
                        await trio.sleep(0.05)
                question = "耳机坏了能退吗"
                sim = await http.post("/api/shops/s1/routing/simulate", headers=BOSS, json={
                    "buyer": "buyer-7", "context": {"page": "product"}, "text": question})
                assert sim.status_code == 200, sim.text
                predicted = sim.json()
                # The keyword rule is first in the list: it beats the entry page.
                assert predicted["fired"] == 0 and predicted["group"] == "aftersale"
                assert predicted["rules"] == ["keyword:坏了"]
                assert predicted["decision"] == "assigned" and predicted["winner"] == "bob"
                assert [c["agent"] for c in predicted["candidates"]] == ["bob"]
                assert predicted["candidates"][0]["score"] == {
                    "by": "load", "value": 0, "best": "lowest"}
                assert predicted["starts_with"] == "queue"
                # Simulating changed nothing.
                agents = (await http.get("/api/shops/s1/agents", headers=BOSS)).json()
                assert all(a["load"] == 0 for a in agents)

                async with connect(listening.ws_url, token("buyer-7")) as buyer:
                    with trio.fail_after(10):
                        opened = await buyer.open("s1", context={"page": "product"})
                        conv = opened["conversation"]
                        await buyer.say(conv, "m1", question)
                        while True:
                            trace = (await http.get(f"/api/conversations/{conv}/routing",
                                                    headers=BOSS)).json()
                            if trace["agent"]:
                                break
                            await trio.sleep(0.05)
                    assert trace["agent"] == predicted["winner"]
                    assert trace["traces"][-1]["group"] == predicted["group"]

                    # Replay: the recorded decision beside today's (bob now has it, and
                    # is the buyer's last agent: sticky).
                    replay = (await http.get(f"/api/conversations/{conv}/routing/replay",
                                             headers=BOSS)).json()
                    assert replay["recorded"][-1]["winner"] == "bob"
                    assert replay["first_text"] == question
                    assert replay["today"]["group"] == "aftersale"
                    assert replay["today"]["preference"] == {"agent": "bob", "kind": "sticky"}
                    assert replay["today"]["candidates"][0]["load"] == 1


async def test_agents_versions_disable_and_isolation(tmp_path) -> None:
    async with open_engine(tmp_path / "d") as (_, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            await shops(http)
            new = {"name": "Amy", "shops": ["s1"], "groups": []}
            first = await http.put("/api/shops/s1/agents/amy",
                                   headers={**BOSS, "If-Match": '"0"'}, json=new)
            assert first.status_code == 200
            again = await http.put("/api/shops/s1/agents/amy",
                                   headers={**BOSS, "If-Match": '"0"'}, json=new)
            assert again.status_code == 412  # someone created it meanwhile
            off = await http.put("/api/shops/s1/agents/amy",
                                 headers={**BOSS, "If-Match": first.headers["etag"]},
                                 json={**new, "disabled": True})
            assert off.status_code == 200 and off.json()["disabled"] is True

            # Shop s2's admin: s1 does not exist for them, page or no page.
            other = as_("eve", "shop_admin", "s2", **{"If-Match": '"0"'})
            for method, path, body in (
                    ("GET", "/api/shops/s1/config", None),
                    ("PATCH", "/api/shops/s1/config", {"routing": {"ranking": "weighted"}}),
                    ("GET", "/api/shops/s1/agents", None),
                    ("GET", "/api/shops/s1/agents/amy", None),
                    ("PUT", "/api/shops/s1/agents/amy", new),
                    ("DELETE", "/api/shops/s1/agents/amy", None),
                    ("PUT", "/api/shops/s1/groups/g", {"name": "g"}),
                    ("GET", "/api/shops/s1/groups", None),
                    ("POST", "/api/shops/s1/routing/simulate", {"text": "hi"}),
                    ("GET", "/api/shops/s1/business-hours", None)):
                answer = await http.request(method, path, headers=other, json=body)
                assert answer.status_code == 404, (method, path, answer.text)
            # … and cannot take s1's agent over by saving it under their own shop.
            stolen = await http.put("/api/shops/s2/agents/amy", headers=other,
                                    json={**new, "shops": ["s2"]})
            assert stolen.status_code == 404
            assert (await http.get("/api/shops/s1/agents/amy", headers=BOSS)
                    ).json()["shops"] == ["s1"]
            # Nor give an agent a shop they do not administer, or the platform's "*".
            for shops_ in (["s1", "s2"], ["s1", "*"]):
                wide = await http.put("/api/shops/s1/agents/new",
                                      headers={**BOSS, "If-Match": '"0"'},
                                      json={**new, "shops": shops_})
                assert wide.status_code == 403, wide.text
            # Agents see the team, not the settings.
            agent = as_("amy", "agent", "s1")
            assert (await http.get("/api/shops/s1/config", headers=agent)).status_code == 403
            # Name and settings are the platform's.
            config = await http.get("/api/shops/s1/config", headers=BOSS)
            rename = await http.patch("/api/shops/s1/config",
                                      headers={**BOSS, "If-Match": config.headers["etag"]},
                                      json={"name": "mine now"})
            assert rename.status_code == 403
            junk = await http.patch("/api/shops/s1/config",
                                    headers={**BOSS, "If-Match": "three"}, json={})
            assert junk.status_code == 422


async def test_knowledge_base_import_checks_every_line_first(tmp_path) -> None:
    async with open_engine(tmp_path / "d") as (_, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            await shops(http)
            lines = [json.dumps({"question": "包邮吗", "answer": "满99包邮"}, ensure_ascii=False),
                     "",
                     '{"question": "发票", "answer": ',  # cut off
                     json.dumps({"question": "退货", "answer": ""}, ensure_ascii=False),
                     json.dumps({"question": "别家", "answer": "x", "shop": "s2"})]
            refused = await http.post("/api/kb/import", params={"shop": "s1"}, headers=BOSS,
                                      content="\n".join(lines).encode())
            assert refused.status_code == 422, refused.text
            error = refused.json()["error"]
            assert error["code"] == "invalid_lines"
            assert [bad["line"] for bad in error["lines"]] == [3, 4, 5]
            assert "answer" in error["lines"][1]["error"]
            assert (await http.get("/api/kb", params={"shop": "s1"}, headers=BOSS)).json() == []

            invoice = json.dumps({"id": "inv", "question": "能开发票吗", "answer": "可以",
                                  "similar": ["开票"]}, ensure_ascii=False)
            good = "\n".join([lines[0], invoice])
            done = await http.post("/api/kb/import", params={"shop": "s1"}, headers=BOSS,
                                   content=good.encode())
            assert done.status_code == 200 and done.json()["imported"] == 2
            asked = (await http.post("/api/kb/ask", headers=BOSS,
                                     json={"question": "能开票吗", "shop": "s1"})).json()
            assert asked["id"] == "inv"
            # s2's admin cannot import into s1, nor overwrite s1's entry from s2.
            other = as_("eve", "shop_admin", "s2")
            assert (await http.post("/api/kb/import", params={"shop": "s1"}, headers=other,
                                    content=good.encode())).status_code == 404
            taken = await http.post("/api/kb/import", params={"shop": "s2"}, headers=other,
                                    content=json.dumps({"id": "inv", "question": "q",
                                                        "answer": "a"}).encode())
            assert taken.status_code == 422 and "taken" in taken.text


async def assigned_to(engine: Any, conversation: str) -> str | None:
    """Who the conversation is with now (its stored record)."""
    meta = ConversationMeta.load(engine.store, conversation)
    return meta.agent if meta is not None else None


async def test_the_python_api_simulates_and_a_disabled_agent_hands_work_back(tmp_path) -> None:
    async with open_engine(tmp_path / "d") as (engine, listening):
        await engine.put_shop("s1", "店", bot={"mode": "off"}, routing={
            "ranking": "weighted", "rules": [{"kind": "vip", "group": "vip"},
                                             {"kind": "category", "values": ["鞋"],
                                              "group": "gone"}]})
        await engine.put_group("s1", "vip", "VIP")
        await engine.put_agent("ann", "Ann", ("s1",), ("vip",), weight=2)
        await engine.put_agent("ben", "Ben", ("s1",))
        with trio.fail_after(20):
            async with connect(listening.ws_url, token("ann", "agent", "s1")) as ann, \
                    connect(listening.ws_url, token("ben", "agent", "s1")) as ben:
                while (await engine.agent("ben"))["status"] != "online" or \
                        (await engine.agent("ann"))["status"] != "online":
                    await trio.sleep(0.05)
                plain = await engine.simulate_route("s1", text="有鞋吗",
                                                    context={"category": "鞋"})
                # The category rule's group does not exist: skipped, said so.
                assert plain["fired"] == -1 and plain["group"] is None
                assert plain["rules"] == ["category:鞋 (group 'gone' does not exist: skipped)"]
                assert {c["agent"]: c["score"]["by"] for c in plain["candidates"]} == {
                    "ann": "load_per_weight", "ben": "load_per_weight"}
                vip = await engine.simulate_route("s1", level=3)
                assert vip["fired"] == 0 and vip["group"] == "vip" and vip["priority"] == 3
                assert [c["agent"] for c in vip["candidates"]] == ["ann"]

                async with connect(listening.ws_url, token("buyer-1")) as buyer:
                    conv = (await buyer.open("s1"))["conversation"]
                    await buyer.say(conv, "m1", "在吗")
                    while not (owner := await assigned_to(engine, conv)):
                        await trio.sleep(0.05)
                    other = "ben" if owner == "ann" else "ann"
                    # Disabling the owner before they replied hands the buyer to the other.
                    record = await engine.agent(owner)
                    await engine.put_agent(owner, record["name"], tuple(record["shops"]),
                                           tuple(record["groups"]), disabled=True)
                    while await assigned_to(engine, conv) != other:
                        await trio.sleep(0.05)
                    last = engine.routing_trace(conv)["traces"][-1]
                    assert last["reason"] == "agent_disabled"
                    assert {c["agent"]: c["verdict"] for c in last["candidates"]}[owner] == \
                        "excluded"
                    after = await engine.simulate_route("s1")
                    assert {c["agent"]: c["verdict"] for c in after["candidates"]}[owner] == \
                        "disabled"
                    assert after["winner"] == other
                    assert (await engine.agent(owner))["load"] == 0
                    del ann, ben  # both stayed connected throughout


async def test_the_platform_lists_creates_and_suspends_shops(tmp_path) -> None:
    root = as_("root", "platform_admin")
    async with open_engine(tmp_path / "d") as (_, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            for shop in ("s1", "s2", "s3"):
                made = await http.put(f"/api/shops/{shop}", headers=root,
                                      json={"name": shop, "bot": {"mode": "off"}})
                assert made.status_code == 200, made.text
            assert (await http.put("/api/shops/s4", headers=BOSS, json={"name": "x"})
                    ).status_code == 403
            page = (await http.get("/api/shops", headers=root, params={"limit": 2})).json()
            assert [s["id"] for s in page] == ["s1", "s2"]
            rest = (await http.get("/api/shops", headers=root, params={"after": "s2"})).json()
            assert [s["id"] for s in rest] == ["s3"]
            assert (await http.get("/api/shops", headers=BOSS)).status_code == 403
            # The platform's overflow agents: platform admins only.
            night = await http.put("/api/agents/night", headers=root,
                                   json={"name": "夜班", "shops": ["*"]})
            assert night.status_code == 200
            assert [a["id"] for a in (await http.get("/api/platform/agents", headers=root)
                                      ).json()] == ["night"]
            for method, path in (("GET", "/api/platform/agents"), ("GET", "/api/agents/night"),
                                 ("PUT", "/api/agents/night"), ("DELETE", "/api/agents/night")):
                answer = await http.request(method, path, headers=BOSS,
                                            json={"name": "x", "shops": ["*"]}
                                            if method == "PUT" else None)
                assert answer.status_code == 403, (method, path)

            async with connect(listening.ws_url, token("buyer-1")) as buyer:
                with trio.fail_after(10):
                    kept = (await buyer.open("s1"))["conversation"]
                    config = await http.get("/api/shops/s1/config", headers=root)
                    off = await http.patch("/api/shops/s1/config", json={"suspended": True},
                                           headers={**root, "If-Match": config.headers["etag"]})
                    assert off.status_code == 200 and off.json()["suspended"] is True
                    # A suspension is the platform's, and survives a replace of the shop.
                    assert (await http.patch("/api/shops/s1/config", json={"suspended": False},
                                             headers={**BOSS, "If-Match": off.headers["etag"]})
                            ).status_code == 403
                    (await http.put("/api/shops/s1", headers=PLATFORM, json={"name": "s1"})
                     ).raise_for_status()
                    assert (await http.get("/api/shops/s1/config", headers=root)
                            ).json()["suspended"] is True
                    # The open conversation goes on; a new buyer is told why not.
                    assert (await buyer.open("s1"))["conversation"] == kept
                    async with connect(listening.ws_url, token("buyer-2")) as late:
                        await late.send({"type": "open", "shop": "s1", "ref": "r1"})
                        refused = await late.expect("error")
                        assert refused["code"] == "shop_suspended"
                    config = await http.get("/api/shops/s1/config", headers=root)
                    await http.patch("/api/shops/s1/config", json={"suspended": False},
                                     headers={**root, "If-Match": config.headers["etag"]})
                    async with connect(listening.ws_url, token("buyer-2")) as back:
                        assert (await back.open("s1"))["conversation"] != kept

            sharing = (await http.get("/api/platform/sharing", headers=root)).json()
            assert "level" in sharing["fields"] and "region" in sharing["shareable"]
            put = await http.put("/api/platform/sharing", headers=root, json={"fields": ["region"]})
            assert put.status_code == 200
            assert (await http.get("/api/platform/sharing", headers=root)).json()["fields"] == [
                "region"]
            assert (await http.get("/api/platform/sharing", headers=BOSS)).status_code == 403
