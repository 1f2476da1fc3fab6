"""Channels through real sockets and a real local HTTP receiver: signed inbound messages,
routing, replies delivered outbound and their receipts, duplicates, retries and dead
letters, identity linking, and isolation between shops' channels."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from octim.testing import TEST_API_KEY, open_engine, token
from octim.testing.client import connect
from octim.webhooks import sign

SECRET = "chsec-0123456789abcdef"


class Receiver:
    """An HTTP server standing in for an adapter's outbound URL; records every POST.
    ``status`` is what it answers (``fail_next`` failures first)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        self.fail_next = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                failing = receiver.fail_next > 0
                receiver.fail_next -= failing
                status = 503 if failing else receiver.status
                receiver.received.append({"headers": dict(self.headers), "body": body,
                                          "path": self.path, "status": status})
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self, path: str = "/out", ok: bool = False) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.received
                if r["path"] == path and (not ok or r["status"] < 300)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def signed(secret: str, body: Any, *, stamp: float | None = None) -> dict[str, Any]:
    raw = json.dumps(body, ensure_ascii=False).encode()
    timestamp = str(int(time.time() if stamp is None else stamp))
    return {"content": raw, "headers": {
        "Content-Type": "application/json", "X-Octim-Timestamp": timestamp,
        "X-Octim-Signature": sign(secret, timestamp, raw)}}


async def until(predicate: Any, timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.02)


async def setup(http: httpx.AsyncClient, receiver: Receiver, **channel: Any) -> None:
    """Shops s1 and s2 (bot off), agent a1 of s1, and s1's api channel ``wx1``."""
    for shop in ("s1", "s2"):
        (await http.put(f"/api/shops/{shop}", json={"name": shop, "bot": {"mode": "off"}})
         ).raise_for_status()
    (await http.put("/api/agents/a1", json={"name": "小王", "shops": ["s1"]})
     ).raise_for_status()
    made = await http.put("/api/channels/wx1", json={
        "shop": "s1", "type": "api", "platform": "wechat", "name": "微信公众号",
        "secret": SECRET, "outbound_url": f"{receiver.url}/out", **channel})
    assert made.status_code == 200, made.text
    assert made.json()["secret"] == "…"  # given by the caller: never shown back


def api_client(listening: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=listening.http_url, timeout=10,
                             headers={"Authorization": f"Bearer {TEST_API_KEY}"})


async def test_inbound_routed_reply_delivered_and_receipts_reach_the_agent(
        tmp_path: Path, receiver: Receiver) -> None:
    async with open_engine(tmp_path / "d", webhook_allow="127.0.0.1") as (engine, listening), \
            api_client(listening) as http:
        await setup(http, receiver)
        async with connect(listening.ws_url, token("a1", "agent", "s1")) as agent:
            await agent.send({"type": "presence", "status": "online"})
            await agent.expect("presence")
            first = {"user": "openid-1", "id": "wxmsg-1", "kind": "text",
                     "body": {"text": "你好，我的快递到哪了"}, "ts": 1_700_000_000_000,
                     "name": "微信用户"}
            answer = await http.post("/api/channels/wx1/messages", **signed(SECRET, first))
            assert answer.status_code == 200, answer.text
            got = answer.json()
            conv, buyer = got["conversation"], got["buyer"]
            assert got["duplicate"] is False and buyer.startswith("ch.wx1.")
            # The same external message again: acknowledged with the same seq, stored once.
            again = (await http.post("/api/channels/wx1/messages", **signed(SECRET, first)))
            assert again.json() == {**got, "duplicate": True}
            # Routed to the agent like any conversation; the message says its channel.
            await agent.expect("event", event="assigned", conversation=conv)
            (said,) = [m for m in await agent.sync(conv) if m["role"] == "buyer"]
            assert said["body"] == {"text": "你好，我的快递到哪了"}
            assert said["via"] == "wx1" and said["sent_at"] == 1_700_000_000_000
            await agent.send({"type": "inbox"})
            (item,) = [c for c in (await agent.expect("inbox"))["conversations"]
                       if c["conversation"] == conv]
            assert item["channel"] == "wechat" and item["via"]["id"] == "wx1"
            assert item["via"]["name"] == "微信公众号" and item["buyer_name"] == "微信用户"
            # The agent answers: the reply goes to the channel's outbound URL, signed.
            await agent.send({"type": "send", "conversation": conv, "id": "r1",
                              "kind": "text", "body": {"text": "已发货，明天到"}})
            ack = await agent.expect("ack", id="r1")
            await until(lambda: bool(receiver.bodies()))
            (out,) = receiver.received
            headers = out["headers"]
            assert headers["X-Octim-Signature"] == sign(SECRET, headers["X-Octim-Timestamp"],
                                                        out["body"])
            payload = json.loads(out["body"])
            assert payload["user"] == "openid-1" and payload["kind"] == "text"
            assert payload["body"] == {"text": "已发货，明天到"}
            assert payload["delivery"] == headers["X-Octim-Delivery"] == f"{conv}.{ack['seq']}"
            sent = await agent.expect("event", event="delivery", conversation=conv)
            assert sent["data"] == {"seq": ack["seq"], "status": "sent"}
            # The adapter reports it delivered, then read; never backwards.
            for status in ("delivered", "read", "delivered"):
                receipt = {"receipts": [{"delivery": payload["delivery"], "status": status}]}
                done = await http.post("/api/channels/wx1/receipts", **signed(SECRET, receipt))
                assert done.status_code == 200, done.text
            assert done.json() == {"updated": 0, "ignored": 0}
            for status in ("delivered", "read"):
                seen = await agent.expect("event", event="delivery", conversation=conv)
                assert seen["data"]["status"] == status
            history = await agent.sync(conv)
            reply = next(m for m in history if m["seq"] == ack["seq"])
            assert reply["delivery"]["status"] == "read" and reply["via"] == "wx1"
            assert [m["seq"] for m in history if m["role"] == "buyer"] == [got["seq"]]
        # Reports count the conversation as a WeChat one (the server says so, not the
        # adapter's body).
        import datetime
        from zoneinfo import ZoneInfo

        day = datetime.datetime.fromtimestamp(engine.context.clock(),
                                              ZoneInfo("Asia/Shanghai")).date().isoformat()
        report = await engine.report("s1", day, day, channel="wechat")
        assert report["totals"]["conversations"] == 1, report["totals"]
        # … and so does the live monitor's today, by channel.
        snapshot = await engine.monitor.snapshot(["s1"])
        assert snapshot["shops"][0]["today"]["by_channel"] == {"wechat": 1}


async def test_signatures_timestamps_and_kinds_are_checked(
        tmp_path: Path, receiver: Receiver) -> None:
    async with open_engine(tmp_path / "d", webhook_allow="127.0.0.1") as (engine, listening), \
            api_client(listening) as http, httpx.AsyncClient(
                base_url=listening.http_url, timeout=10) as anonymous:
        await setup(http, receiver)
        message = {"user": "u1", "id": "m1", "kind": "text", "body": {"text": "hi"}}
        cases = [
            (signed("the-wrong-secret-xxxxxxxx", message), 401, "invalid_signature"),
            (signed(SECRET, message, stamp=time.time() - 3600), 401, "stale_request"),
            (signed(SECRET, message, stamp=time.time() + 3600), 401, "stale_request"),
            ({"json": message}, 401, "stale_request"),  # no timestamp, no signature
            (signed(SECRET, {**message, "kind": "product", "body": {"product": "p1"}}),
             422, "unsupported_kind"),  # the channel carries text and links
            (signed(SECRET, {**message, "kind": "text", "body": {"text": ""}}), 422,
             "invalid_body"),
            (signed(SECRET, {**message, "extra": 1}), 422, "invalid_body"),
            (signed(SECRET, {**message, "user": "有空格 的"}), 422, "invalid_body"),
            (signed(SECRET, {**message, "id": "x" * 121}), 422, "invalid_body"),
        ]
        for request, status, code in cases:
            answer = await anonymous.post("/api/channels/wx1/messages", **request)
            assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), \
                (request.get("headers"), answer.text)
        # A signature for one channel does not open another (the body is the same).
        (await http.put("/api/channels/wx2", json={
            "shop": "s2", "type": "api", "name": "s2 微信", "secret": "s2-secret-0123456789"})
         ).raise_for_status()
        answer = await anonymous.post("/api/channels/wx2/messages", **signed(SECRET, message))
        assert answer.status_code == 401
        assert (await anonymous.post("/api/channels/nope/messages", **signed(SECRET, message))
                ).status_code == 404
        assert engine.store.scan("conversations") == []  # nothing above stored anything
        # Bad channel records: a clear code each.
        for body, code in (({"shop": "s1", "type": "fax", "name": "x"}, "invalid_body"),
                           ({"shop": "s1", "type": "web", "name": "x",
                             "outbound_url": f"{receiver.url}/x"}, "invalid_body"),
                           ({"shop": "s1", "type": "api", "name": "x",
                             "outbound_url": "http://10.0.0.1/x"}, "invalid_body"),
                           ({"shop": "nope", "type": "api", "name": "x"}, "not_found"),
                           ({"shop": "s2", "type": "api", "name": "x"}, "invalid_body")):
            bad = await http.put("/api/channels/wx1", json=body)
            assert bad.json()["error"]["code"] == code, (body, bad.text)
        assert (await http.put("/api/channels/web", json={
            "shop": "s1", "type": "web", "name": "x"})).json()["error"]["code"] == "invalid_body"


async def test_a_failing_receiver_recovers_and_a_dead_reply_can_be_resent(
        tmp_path: Path, receiver: Receiver) -> None:
    start = float(int(time.time()))
    now = [start]
    async with open_engine(tmp_path / "d", webhook_allow="127.0.0.1", routing_tick=3600,
                           webhook_backoff=10, webhook_attempts=3) as (engine, listening), \
            api_client(listening) as http:
        engine.context.clock = lambda: now[0]
        await setup(http, receiver)
        inbound = {"user": "u9", "id": "x1", "kind": "text", "body": {"text": "在吗"}}
        conv = (await http.post("/api/channels/wx1/messages",
                                **signed(SECRET, inbound, stamp=now[0]))).json()["conversation"]
        async with connect(listening.ws_url, token("a1", "agent", "s1")) as agent:
            await engine.assign(conv, "a1")
            receiver.fail_next = 1
            await agent.send({"type": "send", "conversation": conv, "id": "r1",
                              "kind": "text", "body": {"text": "在的"}})
            await agent.expect("ack", id="r1")
            await until(lambda: len(receiver.received) == 1)
            retrying = await agent.expect("event", event="delivery")
            assert retrying["data"]["status"] == "retrying"
            # Retried when the engine's clock says so: not at +5 s, at +10 s.
            for offset, seen in ((5, 1), (10, 2)):
                now[0] = start + offset
                await engine.tick()
                await until(lambda n=seen: len(receiver.received) == n)
            assert [r["status"] for r in receiver.received] == [503, 200]
            assert len({r["headers"]["X-Octim-Delivery"] for r in receiver.received}) == 1
            # Now it fails for good: three attempts, then a dead letter.
            receiver.status = 500
            await agent.send({"type": "send", "conversation": conv, "id": "r2",
                              "kind": "text", "body": {"text": "还在吗"}})
            await agent.expect("ack", id="r2")
            for offset, seen in ((10, 3), (20, 4), (40, 5)):
                now[0] = start + offset
                await engine.tick()
                await until(lambda n=seen: len(receiver.received) == n)
            dead: list[Any] = []

            async def listed() -> None:
                nonlocal dead
                while not dead:
                    dead = (await http.get("/api/channels/wx1/dead")).json()
                    await trio.sleep(0.02)

            with trio.fail_after(10):
                await listed()
            (letter,) = dead
            assert letter["attempts"] == 3 and letter["last_error"] == "HTTP 500"
            assert letter["payload"]["body"] == {"text": "还在吗"}
            receiver.status = 200
            resent = await http.post(f"/api/channels/wx1/dead/{letter['id']}/resend")
            assert resent.status_code == 202, resent.text
            await until(lambda: receiver.received[-1]["status"] == 200 and
                        len(receiver.received) == 6)
            assert receiver.received[-1]["headers"]["X-Octim-Delivery"] == letter["id"]
            assert (await http.get("/api/channels/wx1/dead")).json() == []
            assert (await http.post(f"/api/channels/wx1/dead/{letter['id']}/resend")
                    ).status_code == 404
            states = [m.get("delivery", {}).get("status") for m in await agent.sync(conv)
                      if m["role"] == "agent"]
            assert states == ["sent", "sent"]


async def test_kinds_the_channel_cannot_carry_are_refused_or_converted(
        tmp_path: Path, receiver: Receiver) -> None:
    async with open_engine(tmp_path / "d", webhook_allow="127.0.0.1") as (engine, listening), \
            api_client(listening) as http:
        await setup(http, receiver)
        inbound = {"user": "u5", "id": "k1", "kind": "text", "body": {"text": "这个有货吗"}}
        conv = (await http.post("/api/channels/wx1/messages", **signed(SECRET, inbound))
                ).json()["conversation"]
        await engine.assign(conv, "a1")
        card = {"product": "p-42", "title": "羽绒服", "price": 399}
        async with connect(listening.ws_url, token("a1", "agent", "s1")) as agent:
            await agent.send({"type": "send", "conversation": conv, "id": "c1",
                              "kind": "product", "body": card})
            refused = await agent.expect("error")
            assert refused["code"] == "unsupported_kind", refused
            # The shop lets the channel convert cards to text with a link.
            (await http.put("/api/channels/wx1", json={
                "shop": "s1", "type": "api", "platform": "wechat", "name": "微信公众号",
                "convert": True, "outbound_url": f"{receiver.url}/out",
                "product_url": "https://shop.example/item/{product}"})).raise_for_status()
            await agent.send({"type": "send", "conversation": conv, "id": "c2",
                              "kind": "product", "body": card})
            await agent.expect("ack", id="c2")
            await until(lambda: bool(receiver.bodies()))
            (payload,) = receiver.bodies()
            assert payload["kind"] == "text" and payload["converted"] == "product"
            assert payload["body"]["text"] == \
                "【商品】羽绒服 ¥399 https://shop.example/item/p-42"
        # The secret stayed the one given first (a PUT without one keeps it).
        assert engine.context.channels.get("wx1")["secret"] == SECRET


async def test_identity_linking_gives_one_buyer_one_history(
        tmp_path: Path, receiver: Receiver) -> None:
    async with open_engine(tmp_path / "d", webhook_allow="127.0.0.1") as (engine, listening), \
            api_client(listening) as http:
        await setup(http, receiver)
        # Before linking, the WeChat user is a buyer id of their own.
        inbound = {"user": "openid-7", "id": "w1", "kind": "text", "body": {"text": "微信来的"}}
        first = (await http.post("/api/channels/wx1/messages", **signed(SECRET, inbound))).json()
        assert first["buyer"].startswith("ch.wx1.")
        async with connect(listening.ws_url, token("b7")) as web:
            web_conv = (await web.open("s1", channel="web"))["conversation"]
            await web.say(web_conv, "m1", "网页上问一下")
        linked = await http.put("/api/customers/b7/identities", json={"identities": [
            {"type": "channel", "channel": "wx1", "value": "openid-7"},
            {"type": "wechat_unionid", "value": "union-7"}, {"type": "phone",
                                                             "value": "+8613800000007"}]})
        assert linked.status_code == 200, linked.text
        assert linked.json()["merged"] == [first["buyer"]]
        # Now the WeChat user is b7: their message joins b7's open conversation with s1,
        # beside the web message, each marked with its channel.
        inbound = {"user": "openid-7", "id": "w2", "kind": "text", "body": {"text": "又是微信"}}
        second = (await http.post("/api/channels/wx1/messages", **signed(SECRET, inbound))).json()
        assert second["buyer"] == "b7" and second["conversation"] == web_conv
        await engine.assign(web_conv, "a1")
        async with connect(listening.ws_url, token("a1", "agent", "s1")) as agent:
            history = await agent.sync(web_conv)
            assert [(m["body"].get("text"), m.get("via")) for m in history
                    if m["role"] == "buyer"] == [("网页上问一下", "web"), ("又是微信", "wx1")]
            context = (await httpx.AsyncClient(base_url=listening.http_url).get(
                f"/api/conversations/{web_conv}/context",
                headers={"Authorization": f"Bearer {token('a1', 'agent', 's1')}"})).json()
            earlier = context["earlier_conversations"]
            assert [(c["conversation"], c["channel"]) for c in earlier] == \
                [(first["conversation"], "wechat")]
            assert {"type": "channel", "channel": "wx1", "name": "微信公众号"} in \
                context["identities"]
            # The agent's reply goes to WeChat: the buyer's latest message came from there.
            await agent.send({"type": "send", "conversation": web_conv, "id": "r1",
                              "kind": "text", "body": {"text": "两边都看到了"}})
            await agent.expect("ack", id="r1")
            await until(lambda: bool(receiver.bodies()))
            assert receiver.bodies()[0]["user"] == "openid-7"
            # The buyer writes on the web again: replies stay on the web.
            async with connect(listening.ws_url, token("b7")) as web:
                await web.open("s1")
                await web.say(web_conv, "m2", "我在网页")
            await agent.send({"type": "send", "conversation": web_conv, "id": "r2",
                              "kind": "text", "body": {"text": "好的"}})
            await agent.expect("ack", id="r2")
            await trio.sleep(0.3)
            assert len(receiver.bodies()) == 1
        identities = (await http.get("/api/customers/b7/identities")).json()
        assert identities["aliases"] == [first["buyer"]]
        assert len(identities["identities"]) == 3


async def test_channels_are_isolated_between_shops(tmp_path: Path, receiver: Receiver) -> None:
    async with open_engine(tmp_path / "d", webhook_allow="127.0.0.1") as (engine, listening), \
            api_client(listening) as http:
        await setup(http, receiver)
        admin2 = {"Authorization": f"Bearer {token('boss2', 'shop_admin', 's2')}"}
        agent1 = {"Authorization": f"Bearer {token('a1', 'agent', 's1')}"}
        admin1 = {"Authorization": f"Bearer {token('boss1', 'shop_admin', 's1')}"}
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as people:
            # s2's admin cannot see, change, delete or drain s1's channel.
            assert (await people.get("/api/channels/wx1", headers=admin2)).status_code == 404
            assert (await people.get("/api/channels?shop=s1", headers=admin2)
                    ).status_code == 404
            assert (await people.put("/api/channels/wx1", headers=admin2, json={
                "shop": "s2", "type": "api", "name": "mine"})).status_code == 404
            assert (await people.delete("/api/channels/wx1", headers=admin2)).status_code == 404
            assert (await people.get("/api/channels/wx1/dead", headers=admin2)
                    ).status_code == 404
            # s1's agent reads s1's channels (icons, kinds) but does not configure them.
            listed = (await people.get("/api/channels?shop=s1", headers=agent1)).json()
            assert [c["id"] for c in listed] == ["wx1"] and listed[0]["secret"] == "…"
            assert (await people.put("/api/channels/wx9", headers=agent1, json={
                "shop": "s1", "type": "api", "name": "x"})).status_code == 403
            made = await people.put("/api/channels/app1", headers=admin1, json={
                "shop": "s1", "type": "app", "name": "App"})
            assert made.status_code == 200 and len(made.json()["secret"]) >= 32
            # Receipts of one channel cannot touch another channel's messages.
            (await http.put("/api/channels/wx2", json={
                "shop": "s2", "type": "api", "name": "s2", "secret": "s2-secret-0123456789",
                "outbound_url": f"{receiver.url}/s2"})).raise_for_status()
            inbound = {"user": "u1", "id": "i1", "kind": "text", "body": {"text": "hi"}}
            conv = (await http.post("/api/channels/wx1/messages", **signed(SECRET, inbound))
                    ).json()["conversation"]
            await engine.assign(conv, "a1")
            reply = await engine.post_message(conv, "请稍等", as_="system")
            await until(lambda: bool(receiver.bodies()))
            delivery = f"{conv}.{reply['seq']}"
            forged = {"receipts": [{"delivery": delivery, "status": "read"}]}
            answer = await people.post("/api/channels/wx2/receipts",
                                       **signed("s2-secret-0123456789", forged))
            assert answer.json() == {"updated": 0, "ignored": 1}
            assert engine.context.channels.delivery_states(conv, 1, 99)[reply["seq"]][
                "status"] == "sent"
            # s1 deletes its channel and s2 takes the id: s1's conversation does not send
            # through s2's channel.
            assert (await people.delete("/api/channels/wx1", headers=admin1)).status_code == 204
            (await http.put("/api/channels/wx1", json={
                "shop": "s2", "type": "api", "name": "s2 的", "secret": "s2-secret-0123456789",
                "outbound_url": f"{receiver.url}/taken"})).raise_for_status()
            notice = await engine.post_message(conv, "还在处理", as_="system")
            # Nothing was queued with the notice (it would be in the same commit).
            assert engine.context.channels.delivery_states(conv, notice["seq"],
                                                           notice["seq"]) == {}
            assert engine.store.scan("outbox") == []
            assert receiver.bodies("/taken") == []


async def test_the_python_api_offers_channels_messages_and_identities(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from octim import open_engine as embedded
    from octim.errors import InvalidInput, NotFound

    async with embedded(tmp_path / "e") as engine:
        await engine.put_shop("tea", "茶馆", bot={"mode": "off"})
        made = await engine.put_channel("tea-sms", shop="tea", type="api", platform="sms",
                                        name="短信")
        assert len(made["secret"]) >= 32 and made["kinds"] == ["text", "link"]
        got = await engine.channel_message("tea-sms", user="+8613800000000", id="sms-1",
                                           kind="text", body={"text": "订单到了吗"})
        again = await engine.channel_message("tea-sms", user="+8613800000000", id="sms-1",
                                             kind="text", body={"text": "订单到了吗"})
        assert again == {**got, "duplicate": True}
        linked = await engine.link_identities("buyer-9", [
            {"type": "channel", "channel": "tea-sms", "value": "+8613800000000"}])
        assert linked["merged"] == [got["buyer"]]
        later = await engine.channel_message("tea-sms", user="+8613800000000", id="sms-2",
                                             kind="text", body={"text": "在吗"})
        assert later["buyer"] == "buyer-9"
        with pytest.raises(NotFound):
            await engine.channel_message("nope", user="u", id="1", kind="text",
                                         body={"text": "x"})
        with pytest.raises(ValidationError):
            await engine.link_identities("buyer-9", [{"type": "phone", "value": "1",
                                                      "channel": "tea-sms"}])
        # Another shop's channel id cannot be taken over by a second put for a new shop.
        await engine.put_shop("other", "别家")
        with pytest.raises(InvalidInput):
            await engine.put_channel("tea-sms", shop="other", type="api", name="x")
