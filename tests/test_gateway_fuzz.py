"""Random and hostile frames and HTTP bodies thrown at a live engine never break it.

Hostile values (lone surrogates, integers past 64 bits, NaN and infinities,
deep nesting, bytes) go into every frame type and every JSON body of the
OpenAPI document, with the API key and with people's tokens: never a 5xx,
never an ``internal`` error, never a 1011 close, and afterwards a normal
buyer → agent exchange still works.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import msgpack
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trio_websocket import ConnectionClosed, open_websocket_url

from octim.testing import TEST_API_KEY, TEST_SECRET, token
from octim.testing.client import connect
from octim.testing.process import EngineProcess

TYPES = ["open", "send", "sync", "inbox", "typing", "read", "recall", "resolve", "rate",
         "presence", "ping", "transfer", "feedback", "monitor", "hello", "welcome", "msg", "",
         "x" * 300]
CONV = "$CONV"  # replaced by a real conversation id, so frames reach the actors
surrogates = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1,
                     max_size=3)
hostile = (surrogates | st.integers(2**64, 2**80) | st.integers(-(2**80), -(2**63) - 1) |
           st.sampled_from([float("nan"), float("inf"), float("-inf")]) |
           st.integers(33, 300).map(lambda n: _nest(n)))
scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) |
           st.floats(allow_nan=True) | st.text(max_size=40) | st.just(CONV) | hostile)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) |
                      st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=10)


def _nest(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def _encode(frame: Any, binary: bool) -> str | bytes:
    if binary:
        try:
            return bytes(msgpack.packb(frame, default=str))
        except (OverflowError, UnicodeEncodeError, ValueError):
            pass  # msgpack cannot even say it: send the JSON text instead
    return json.dumps(frame, default=str)
field_names = st.sampled_from(["conversation", "id", "kind", "body", "after", "upto", "seq",
                               "score", "comment", "status", "shop", "ref", "context",
                               "from", "limit", "token", "to_agent", "to_group",
                               "to_shop", "note"])
frames = st.builds(lambda t, extra: {"type": t, **extra}, st.sampled_from(TYPES) | values,
                   st.dictionaries(field_names, values, max_size=6))
raw = frames.map(lambda f: _encode(f, False)) | st.text(max_size=200) | \
    st.binary(max_size=200) | frames.map(lambda f: _encode(f, True)) | \
    st.integers(30, 3000).map(lambda n: "[" * n + "]" * n)


@dataclass
class Live:
    ws: str
    http: str


@pytest.fixture(scope="module")
def live_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One engine process for the whole module: the fuzzer's target."""
    data: Path = tmp_path_factory.mktemp("fuzz")
    env = {"OCTIM_SECRET": TEST_SECRET, "OCTIM_API_KEY": TEST_API_KEY,
           "OCTIM_RATE_PER_SECOND": "100000", "OCTIM_RATE_BURST": "100000",
           "OCTIM_MAX_CONNECTIONS_PER_USER": "1000"}
    with EngineProcess(["serve", "--data", str(data), "--http", "127.0.0.1:0",
                        "--ws", "127.0.0.1:0", "--log-format", "json"], env) as engine:
        ready = engine.wait_ready()
        live = Live(str(ready["ws"]), str(ready["http"]))
        with httpx.Client(base_url=live.http, headers=API_KEY) as http:
            http.put("/api/shops/s1", json={"name": "s1", "bot": {"mode": "off"}}
                     ).raise_for_status()
            http.put("/api/agents/a1", json={"name": "a1", "shops": ["s1"]}).raise_for_status()
        yield live
        assert engine.stop() == 0
        crashes = [line for stream, line in engine.output()
                   if stream == "err" and '"level": "error"' in line]
        assert not crashes, crashes[:3]


@pytest.fixture(scope="module")
def live(live_engine: Live) -> str:
    return live_engine.ws


async def _conversation(url: str) -> str:
    """A real conversation of the fuzzing buyer with s1 (the agent a1 may serve it)."""
    async with open_websocket_url(url, subprotocols=["octim.v1.json"]) as ws:
        await ws.send_message(json.dumps({"type": "hello", "token": token("fuzzer-buyer")}))
        await ws.get_message()
        await ws.send_message(json.dumps({"type": "open", "shop": "s1", "ref": "o"}))
        while True:
            frame = json.loads(await ws.get_message())
            if frame.get("type") == "opened":
                return str(frame["conversation"])


async def throw(url: str, batch: list[Any], subprotocol: str, role: str) -> None:
    with trio.fail_after(20):
        conversation = await _conversation(url)
        user = "fuzzer-buyer" if role == "buyer" else "a1"
        async with open_websocket_url(url, subprotocols=[subprotocol]) as ws:
            hello = {"type": "hello", "token": token(user, role, "s1")}
            await ws.send_message(json.dumps(hello) if subprotocol.endswith("json")
                                  else msgpack.packb(hello))
            await ws.get_message()
            try:
                for data in batch:
                    if isinstance(data, str):
                        data = data.replace(CONV, conversation)
                    elif CONV.encode() in data:
                        data = data.replace(CONV.encode(), conversation.encode())
                    await ws.send_message(data)
                ping = {"type": "ping"}
                await ws.send_message(json.dumps(ping) if subprotocol.endswith("json")
                                      else msgpack.packb(ping))
                while True:  # every frame gets an answer or is skipped; pong comes last
                    reply = await ws.get_message()
                    frame = json.loads(reply) if isinstance(reply, str) else msgpack.unpackb(
                        reply, strict_map_key=False)
                    assert not (frame.get("type") == "error" and frame.get("code") == "internal"), \
                        frame
                    if frame.get("type") == "pong":
                        break
            except ConnectionClosed as closed:
                # Only documented closes: frame too big (1009) or unsupported data (1003).
                assert closed.reason.code in (1009, 1003, 1007), closed.reason


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.data_too_large])
@given(batch=st.lists(raw, min_size=1, max_size=12),
       subprotocol=st.sampled_from(["octim.v1.json", "octim.v1.msgpack"]),
       role=st.sampled_from(["buyer", "agent", "shop_admin"]))
def test_random_frames_never_break_the_gateway(live: str, batch: list[Any],
                                               subprotocol: str, role: str) -> None:
    trio.run(throw, live, batch, subprotocol, role)


API_KEY = {"Authorization": f"Bearer {TEST_API_KEY}"}
PATH_VALUES = {"shop": "s1", "agent": "a1", "group": "g1", "customer_id": "c1",
               "order_id": "o1", "entry_id": "e1", "segment": "seg1", "endpoint": "w1",
               "delivery": "d1", "reply": "r1", "conversation": "c-none", "policy": "p1",
               "channel": "wx1", "customer": "c1"}


#: A valid body of every JSON route, and who may send it (None: the API key). The
#: fuzzer starts from these so hostile values get past the schema to the actors;
#: a new route without an entry here fails ``http_routes``.
VALID: dict[tuple[str, str], tuple[Any, tuple[str, str] | None]] = {
    ("PUT", "/api/agents/{agent}"): ({"name": "a1", "shops": ["s1"]}, None),
    ("PUT", "/api/shops/{shop}/groups/{group}"): ({"name": "售前"}, None),
    ("POST", "/api/conversations/{conversation}/assign"): ({"agent": "a1"}, None),
    ("PUT", "/api/kb/{entry_id}"): ({"question": "发货", "answer": "48小时", "shop": "s1",
                                     "similar": ["几天发货"]}, None),
    ("POST", "/api/kb/ask"): ({"question": "几天发货", "shop": "s1"}, ("fuzzer-buyer", "buyer")),
    ("PUT", "/api/kb-synonyms"): ({"synonyms": {"出库": "发货", "sf": "顺丰"}}, None),
    ("PUT", "/api/customers/{customer_id}"): ({"nickname": "n", "attributes": {"a": 1},
                                              "tags": ["t"], "email": "c1@example.com",
                                              "phone": "+8613800001111"}, None),
    ("POST", "/api/customers/bulk"): ([{"id": "c2", "nickname": "m"}], None),
    ("PUT", "/api/orders/{order_id}"): ({"shop": "s1", "customer": "c1", "status": "paid",
                                         "items": [{"sku": "k", "name": "n", "price": 1}]}, None),
    ("POST", "/api/orders/bulk"): ([{"id": "o2", "shop": "s1", "customer": "c1"}], None),
    ("POST", "/api/orders/{order_id}/logistics"): ({"events": [{"time": 1, "status": "已发货"}]},
                                                     None),
    ("POST", "/api/shops/{shop}/customers/{customer_id}/notes"): ({"text": "备注"},
                                                                 ("a1", "agent")),
    ("PUT", "/api/shops/{shop}/customers/{customer_id}/tags"): ({"tags": ["vip"]}, None),
    ("PUT", "/api/segments/{segment}"): ({"name": "s", "shared": True,
                                          "rule": {"level_at_least": 1}}, None),
    ("PUT", "/api/platform/sharing"): ({"fields": ["level"]}, None),
    ("PUT", "/api/webhooks/{endpoint}"): ({"url": "https://hooks.example.com/x", "events": ["*"],
                                           "secret": "s" * 20}, None),
    ("PUT", "/api/canned/{reply}"): ({"shop": "s1", "title": "问候", "text": "您好"},
                                     ("boss", "shop_admin")),
    ("PUT", "/api/shops/{shop}"): ({"name": "s1", "settings": {"x": 1}, "bot": {"mode": "off"}},
                                   None),
    ("POST", "/api/tickets"): ({"shop": "s1", "subject": "丢件", "priority": "high",
                                "requester": "c1", "tags": ["物流"], "fields": {"n": 1}}, None),
    ("PATCH", "/api/tickets/{ticket}"): ({"priority": "urgent", "status": "open",
                                          "tags": ["t"]}, ("a1", "agent")),
    ("POST", "/api/tickets/{ticket}/comments"): ({"body": "处理中", "public": False},
                                                 ("a1", "agent")),
    ("POST", "/api/tickets/{ticket}/merge"): ({"into": "tk-none"}, None),
    ("PUT", "/api/sla-policies/{policy}"): ({"shop": "s1", "name": "标准", "position": 1,
                                             "conditions": {"priority": ["high"]},
                                             "targets": {"high": {"first_reply": 30}},
                                             "business_hours": True}, ("boss", "shop_admin")),
    ("PUT", "/api/shops/{shop}/business-hours"): ({"timezone": "Asia/Shanghai", "weekly": {
        "mon": [["09:00", "18:00"]]}, "holidays": ["2026-10-01"]}, None),
    ("PUT", "/api/shops/{shop}/ticket-settings"): ({
        "fields": [{"key": "n", "label": "数量", "type": "number"},
                   {"key": "c", "label": "快递", "type": "choice", "choices": ["顺丰"]}],
        "categories": [], "statuses": [{"key": "wh", "label": "待仓库核实",
                                        "buyer_label": "处理中", "maps_to": "on_hold"}]},
        None),
    ("PUT", "/api/shops/{shop}/ticket-rules"): ({"rules": [
        {"name": "物流", "conditions": {"keywords": ["快递"], "priority": ["high"],
                                      "min_level": 1}, "group": "g1", "priority": "urgent"}]},
        None),
    ("POST", "/api/tickets/{ticket}/escalate"): ({"to_shop": "*", "note": "平台介入"}, None),
    ("POST", "/api/inbound/call"): ({"shop": "s1", "call": "c-1", "phone": "+8613800001111",
                                     "agent": "a1"}, None),
    ("PUT", "/api/channels/{channel}"): ({"shop": "s1", "type": "api", "name": "微信",
                                          "platform": "wechat", "kinds": ["text", "link"],
                                          "convert": True, "secret": "fuzz-secret-0123456789",
                                          "outbound_url": "https://adapter.example.com/out",
                                          "product_url": "https://s.example.com/{product}"},
                                         ("boss", "shop_admin")),
    ("POST", "/api/events/orders"): ({"events": [
        {"order": "o1", "shop": "s1", "customer": "c1", "event": "shipped", "carrier": "顺丰",
         "waybill": "SF1", "id": "ev-1"}]}, None),
    ("PUT", "/api/customers/{customer}/interests"): ({"items": [
        {"shop": "s1", "sku": "k1", "kind": "cart", "price": 399}]}, None),
    ("POST", "/api/events/price-change"): ({"changes": [
        {"shop": "s1", "sku": "k1", "price": 299, "title": "羽绒服"}], "window_days": 7}, None),
    ("POST", "/api/events/stock-change"): ({"changes": [
        {"shop": "s1", "sku": "k1", "in_stock": True}]}, None),
    ("PUT", "/api/shops/{shop}/notices"): ({"types": {"shipped": {
        "enabled": True, "templates": {"zh-CN": "亲，{title} 已发货 {waybill}"}}}},
        ("boss", "shop_admin")),
    ("PUT", "/api/platform/peak"): ({"on": False, "windows": [
        {"from": 4_000_000_000_000, "to": 4_000_000_100_000}], "capacity_factor": 1.5,
        "queue_cap": 50}, None),
    ("PUT", "/api/shops/{shop}/peak"): ({"on": False, "capacity_factor": 2, "queue_cap": 10,
                                         "vip_first": True, "priority": "after_sales",
                                         "recent_order_days": 7}, ("boss", "shop_admin")),
    ("POST", "/api/campaigns/preview"): ({"shop": "s1", "segment": "seg1"},
                                         ("boss", "shop_admin")),
    ("POST", "/api/campaigns"): ({
        "shop": "s1", "name": "双12", "segment": "seg1", "rate": 5,
        "message": {"text": "满300减50", "text_en": "50 off", "coupon": {
            "title": "券", "amount": 50, "threshold": 300, "code": "C1", "expires": 1},
            "product": {"product": "k1", "title": "羽绒服", "price": 1},
            "link": {"url": "https://s.example.com/sale", "title": "看看"}},
        "schedule": {"at": 4_000_000_000_000, "every_hours": 24, "until": 4_100_000_000_000},
        "attribution_hours": 24}, ("boss", "shop_admin")),
    ("PATCH", "/api/shops/{shop}/config"): ({"routing": {"ranking": "weighted", "rules": [
        {"kind": "keywords", "values": ["退"], "group": "g1"}, {"kind": "vip", "group": "g1"}]},
        "bot": {"mode": "off"}}, None),
    ("PUT", "/api/shops/{shop}/agents/{agent}"): ({"name": "a1", "shops": ["s1"], "groups": [],
                                                   "disabled": False}, None),
    ("POST", "/api/shops/{shop}/routing/simulate"): ({
        "buyer": "c1", "level": 1, "context": {"page": "order", "category": "鞋"},
        "text": "退货", "at": 1}, ("boss", "shop_admin")),
    ("PUT", "/api/customers/{customer}/identities"): ({"identities": [
        {"type": "channel", "channel": "wx1", "value": "openid-1"},
        {"type": "phone", "value": "+8613800001111"}]}, None),
}


def _json_routes(http_url: str) -> list[tuple[str, str]]:
    """Every (method, path template) of the OpenAPI document that takes a JSON body."""
    with httpx.Client(base_url=http_url) as http:
        spec = http.get("/openapi.json").json()
    return [(method.upper(), path) for path, methods in spec["paths"].items()
            for method, op in methods.items()
            if "application/json" in op.get("requestBody", {}).get("content", {})]


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "x1"), path)


def _bearer(who: tuple[str, str] | None) -> dict[str, str]:
    return API_KEY if who is None else {"Authorization": f"Bearer {token(who[0], who[1], 's1')}"}


CREDENTIALS = [API_KEY] + [_bearer(who) for who in (
    ("fuzzer-buyer", "buyer"), ("a1", "agent"), ("boss", "shop_admin"), ("root", "platform_admin"))]


@pytest.fixture(scope="module")
def http_routes(live_engine: Live) -> tuple[str, list[tuple[str, str]]]:
    routes = _json_routes(live_engine.http)
    missing = sorted(set(routes) - set(VALID))
    assert not missing, f"routes the fuzzer has no valid body for: {missing}"
    with httpx.Client(base_url=live_engine.http, timeout=20) as http:
        # A real ticket, so hostile changes and comments reach its shop's desk.
        made = http.post("/api/tickets", json={"shop": "s1", "subject": "fuzz"},
                         headers=API_KEY)
        PATH_VALUES["ticket"] = made.json()["id"]
        for method, path in routes:  # the starting points are really valid
            body, who = VALID[(method, path)]
            answer = http.request(method, _concrete(path), json=body, headers=_bearer(who))
            assert answer.status_code < 300 or answer.status_code == 404, (path, answer.text)
    return live_engine.http, routes


def _inject(body: Any, bad: Any, choices: list[int]) -> Any:
    """``body`` with one value somewhere inside replaced by (or joined by) ``bad``."""
    if not choices:
        return bad
    pick, rest = choices[0], choices[1:]
    if isinstance(body, dict):
        keys = sorted(body)
        if not keys or pick % (len(keys) + 1) == len(keys):
            return {**body, "x": bad}  # a new key (free-form maps take any)
        key = keys[pick % len(keys)]
        return {**body, key: _inject(body[key], bad, rest)}
    if isinstance(body, list) and body:
        index = pick % len(body)
        return [*body[:index], _inject(body[index], bad, rest), *body[index + 1:]]
    return bad


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.data_too_large])
@given(data=st.data(), credential=st.sampled_from(CREDENTIALS), bad=hostile | values,
       choices=st.lists(st.integers(0, 50), max_size=4))
def test_hostile_json_bodies_never_answer_5xx(
        http_routes: tuple[str, list[tuple[str, str]]], data: st.DataObject,
        credential: dict[str, str], bad: Any, choices: list[int]) -> None:
    base, routes = http_routes
    method, path = data.draw(st.sampled_from(routes))
    valid, who = VALID[(method, path)]
    body = _inject(valid, bad, choices)
    headers = data.draw(st.sampled_from([credential, _bearer(who)]))
    with httpx.Client(base_url=base, headers=headers, timeout=20) as http:
        answer = http.request(method, _concrete(path), content=json.dumps(body, default=str),
                              headers={"Content-Type": "application/json"})
    assert answer.status_code < 500, (method, path, body, answer.text)
    if answer.status_code >= 400:
        assert answer.json()["error"]["code"] != "internal", answer.text


REPORTS = ["overview", "conversion", "queue", "tickets", "agents", "breakdown",
           "hot-questions", "lifecycle", "nonsense"]
PARAMS = ["shop", "agent", "group", "channel", "entry", "by", "from", "to", "granularity",
          "tz", "format", "x"]
query_values = st.sampled_from(["s1", "*", "a1", "", "web", "app", "channel", "2026-12-01",
                                "2026-02-30", "day", "week", "csv", "Asia/Shanghai",
                                "Mars/Base", "../../etc", "~c:web", "\u0000"]) | \
    st.text(max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(REPORTS), credential=st.sampled_from(CREDENTIALS),
       params=st.dictionaries(st.sampled_from(PARAMS), query_values, max_size=6))
def test_hostile_report_queries_never_answer_5xx(
        live_engine: Live, name: str, credential: dict[str, str],
        params: dict[str, str]) -> None:
    """The reports take their input from the query string: whatever it holds, the answer
    is a report or a clear 4xx with a stable code."""
    with httpx.Client(base_url=live_engine.http, headers=credential, timeout=20) as http:
        answer = http.get(f"/api/reports/{name}", params=params)
    assert answer.status_code < 500, (name, params, answer.text)
    if answer.status_code >= 400:
        assert answer.json()["error"]["code"] in (
            "invalid_body", "not_found", "forbidden", "unauthorized"), answer.text


#: Routes that take their input from the path and query string (besides the reports).
QUERY_ROUTES = ["/api/campaigns", "/api/campaigns/{campaign}",
                "/api/campaigns/{campaign}/recipients", "/api/segments", "/c/{campaign}",
                "/api/customers/c1/outreach", "/api/shops/s1/notices",
                "/api/channels", "/api/channels/wx1/dead", "/metrics", "/readyz",
                "/api/kb-proposals", "/api/kb-synonyms", "/api/kb-candidates",
                "/api/shops/{campaign}/config", "/api/shops/s1/agents/{campaign}",
                "/api/shops/{campaign}/agents", "/api/conversations/{campaign}/routing/replay",
                "/api/shops/{campaign}/business-hours", "/api/shops", "/api/platform/sharing",
                "/api/platform/agents", "/api/agents/{campaign}"]
QUERY_PARAMS = ["shop", "run", "state", "after", "limit", "x"]
path_values = st.sampled_from(["cmp-none", "cmp-0.0.x.0", "a" * 70, "..", "%00", "x.1.y.zz",
                               "%ED%A0%80"]) | st.text(min_size=1, max_size=30).filter(
    lambda t: "/" not in t and "?" not in t and "#" not in t)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(route=st.sampled_from(QUERY_ROUTES), credential=st.sampled_from(CREDENTIALS),
       segment=path_values,
       params=st.dictionaries(st.sampled_from(QUERY_PARAMS), query_values, max_size=5))
def test_hostile_queries_and_path_values_never_answer_5xx(
        live_engine: Live, route: str, credential: dict[str, str], segment: str,
        params: dict[str, str]) -> None:
    """Campaigns, segments, click links, outreach and channel reads: whatever the path
    and query hold, the answer is the resource or a clear 4xx with a stable code."""
    with httpx.Client(base_url=live_engine.http, headers=credential, timeout=20) as http:
        answer = http.get(route.replace("{campaign}", quote(segment, safe="%")),
                          params=params)
    assert answer.status_code < 500, (route, segment, params, answer.text)
    if answer.status_code >= 400:
        assert answer.json()["error"]["code"] in (
            "invalid_body", "not_found", "forbidden", "unauthorized"), answer.text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(credential=st.sampled_from(CREDENTIALS), proposal=path_values, decision=path_values)
def test_hostile_proposal_decisions_answer_a_stable_4xx(
        live_engine: Live, credential: dict[str, str], proposal: str, decision: str) -> None:
    """Deciding a knowledge-base proposal (approve/reject) with any path: a clear 4xx."""
    with httpx.Client(base_url=live_engine.http, headers=credential, timeout=20) as http:
        answer = http.post(f"/api/kb-proposals/{quote(proposal, safe='%')}/"
                           f"{quote(decision, safe='%')}")
    assert 400 <= answer.status_code < 500, (proposal, decision, answer.text)
    assert answer.json()["error"]["code"] in (  # "..": another route, which takes no POST
        "invalid_body", "not_found", "forbidden", "unauthorized", "method_not_allowed"
    ), answer.text


import_lines = st.lists(st.one_of(
    st.builds(lambda d: json.dumps(d, default=str), st.dictionaries(
        st.sampled_from(["id", "question", "answer", "similar", "shop", "visibility", "x"]),
        hostile | values, max_size=5)),
    st.text(max_size=60), st.just('{"question": "q", "answer": "a"}')), max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(credential=st.sampled_from(CREDENTIALS), lines=import_lines,
       shop=st.sampled_from(["s1", "s2", None]))
def test_hostile_knowledge_base_imports_answer_a_stable_4xx_or_import(
        live_engine: Live, credential: dict[str, str], lines: list[str],
        shop: str | None) -> None:
    """A JSON Lines import with any lines: imported whole, or a clear 4xx naming lines."""
    with httpx.Client(base_url=live_engine.http, headers=credential, timeout=20) as http:
        answer = http.post("/api/kb/import", params={"shop": shop} if shop else {},
                           content="\n".join(lines).encode("utf-8", "surrogatepass"))
    assert answer.status_code < 500, (lines, answer.text)
    if answer.status_code >= 400:
        assert answer.json()["error"]["code"] in (
            "invalid_lines", "not_found", "forbidden", "unauthorized", "too_large"), answer.text


RAW_QUERIES = [
    "shop=%ED%A0%80",  # a lone surrogate, as UTF-8 bytes
    "shop=s1&channel=%ED%A0%80", "shop=s1&from=%FF%FE", "shop=s1&tz=%00",
    "shop=s1&from=99999999999999999999-01-01", "shop=s1&to=NaN",
    "shop=s1&granularity=NaN", "shop=s1&agent=" + "a" * 5000,
    "shop=" + "%5B" * 3000, "shop=s1&" + "&".join(f"x{n}=1" for n in range(2000)),
]


@pytest.mark.parametrize("name", ["overview", "breakdown", "lifecycle", "tickets"])
@pytest.mark.parametrize("query", RAW_QUERIES)
def test_raw_hostile_report_queries_answer_a_stable_4xx(live_engine: Live, name: str,
                                                        query: str) -> None:
    """Bytes no client library would send: invalid UTF-8, a lone surrogate, numbers past
    64 bits, NaN, over-long values and many parameters."""
    with httpx.Client(base_url=live_engine.http, headers=API_KEY, timeout=20) as http:
        answer = http.get(f"/api/reports/{name}?{query}")
    assert 400 <= answer.status_code < 500 or (answer.status_code == 200 and "x0=" in query), \
        (query, answer.text)
    if answer.status_code >= 400:
        assert answer.json()["error"]["code"] in ("invalid_body", "not_found"), answer.text


def test_a_normal_exchange_works_after_the_fuzzing(live_engine: Live) -> None:
    async def normal() -> None:
        with trio.fail_after(20):
            async with connect(live_engine.ws, token("a1", "agent", "s1")) as agent, \
                    connect(live_engine.ws, token("normal")) as buyer:
                conv = (await buyer.open("s1"))["conversation"]
                await buyer.say(conv, "n1", "你好，在吗")
                await agent.expect("event", event="assigned", conversation=conv, timeout=15)
                ack = await agent.say(conv, "n2", "在的，请讲")
                assert (await buyer.expect("msg", conversation=conv, seq=ack["seq"]))[
                    "body"]["text"] == "在的，请讲"

    trio.run(normal)


# -- the signed channel routes: their body is read raw and checked by its signature ------

FUZZ_CHANNEL_SECRET = "signed-fuzz-secret-0123456789"
SIGNED_VALID = {
    "messages": {"user": "openid-fz", "id": "m1", "kind": "text", "body": {"text": "你好"},
                 "ts": 1, "name": "微信用户", "context": {"page": "product", "product": "p1"}},
    "receipts": {"receipts": [{"delivery": "c1.1", "status": "delivered", "ts": 1}]},
}


@pytest.fixture(scope="module")
def signed_channel(live_engine: Live) -> str:
    """An api channel only the signed-route fuzzer uses (hostile PUTs target wx1)."""
    with httpx.Client(base_url=live_engine.http, headers=API_KEY, timeout=20) as http:
        http.put("/api/channels/fz", json={"shop": "s1", "type": "api", "name": "fz",
                                           "kinds": ["text", "link", "product", "order"],
                                           "secret": FUZZ_CHANNEL_SECRET}).raise_for_status()
    return live_engine.http


def _signed_post(base: str, route: str, raw: bytes) -> httpx.Response:
    from octim.webhooks import sign

    stamp = str(int(time.time()))
    with httpx.Client(base_url=base, timeout=20) as http:
        return http.post(f"/api/channels/fz/{route}", content=raw, headers={
            "Content-Type": "application/json", "X-Octim-Timestamp": stamp,
            "X-Octim-Signature": sign(FUZZ_CHANNEL_SECRET, stamp, raw)})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.data_too_large])
@given(route=st.sampled_from(sorted(SIGNED_VALID)), bad=hostile | values,
       choices=st.lists(st.integers(0, 50), max_size=4))
def test_hostile_signed_channel_bodies_never_answer_5xx(
        signed_channel: str, route: str, bad: Any, choices: list[int]) -> None:
    """Correctly signed, hostile inside: a message or a receipt, or a clear 4xx."""
    body = _inject(SIGNED_VALID[route], bad, choices)
    answer = _signed_post(signed_channel, route, json.dumps(body, default=str).encode())
    assert answer.status_code < 500, (route, body, answer.text)
    if answer.status_code >= 400:
        assert answer.json()["error"]["code"] in (
            "invalid_body", "invalid_input", "unsupported_kind", "too_large",
            "conversation_closed", "not_found"), answer.text


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe", b"[]", b"null", b'"x"',
                                 b'{"user": "\\ud800", "id": "1", "kind": "text", "body": {}}',
                                 b'{"user": "u", "id": "1", "kind": "text", "body": '
                                 b'{"text": "x"}, "ts": 1e400}', b"[" * 5000])
def test_raw_hostile_signed_channel_bodies_answer_a_stable_4xx(
        signed_channel: str, raw: bytes) -> None:
    for route in SIGNED_VALID:
        answer = _signed_post(signed_channel, route, raw)
        assert 400 <= answer.status_code < 500, (route, raw[:50], answer.text)
        assert answer.json()["error"]["code"] in ("invalid_body", "invalid_input"), answer.text


def test_signed_channel_still_works_after_the_fuzzing(signed_channel: str) -> None:
    raw = json.dumps({**SIGNED_VALID["messages"], "id": "after-fuzz"}).encode()
    answer = _signed_post(signed_channel, "messages", raw)
    assert answer.status_code == 200, answer.text
    again = _signed_post(signed_channel, "messages", raw)
    assert again.json()["seq"] == answer.json()["seq"] and again.json()["duplicate"]
