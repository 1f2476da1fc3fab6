"""The WeChat adapter between a FAKE WeChat (octim.channels.wechat_fake: WeChat's servers
cannot be reached here) and a real engine, all over real local HTTP."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio

from octim.api.serve import serve_http
from octim.channels.wechat import WeChatConfig, create_app, parse_push, to_octim
from octim.channels.wechat_fake import FakeWeChat
from octim.config import HostPort
from octim.testing import TEST_API_KEY, open_engine, token
from octim.testing.client import connect

CHANNEL_SECRET = "wechat-channel-secret-0123"


@asynccontextmanager
async def wechat_setup(tmp_path: Path) -> AsyncIterator[tuple[Any, Any, FakeWeChat, str]]:
    """An engine with shop s1 and agent a1, the fake WeChat, and the adapter between."""
    fake = FakeWeChat().start()
    stop = trio.Event()
    try:
        async with open_engine(tmp_path / "d", webhook_allow="127.0.0.1") as (engine, listening):
            config = WeChatConfig(token=fake.token, appid=fake.appid, appsecret=fake.appsecret,
                                  octim=listening.http_url, channel="wx",
                                  channel_secret=CHANNEL_SECRET, api_base=fake.url)
            async with trio.open_nursery() as nursery:
                bound: HostPort = await nursery.start(partial(
                    serve_http, create_app(config), HostPort("127.0.0.1", 0), stop.wait))
                adapter = f"http://127.0.0.1:{bound.port}"
                async with httpx.AsyncClient(base_url=listening.http_url, timeout=10, headers={
                        "Authorization": f"Bearer {TEST_API_KEY}"}) as http:
                    (await http.put("/api/shops/s1", json={"name": "s1", "bot": {"mode": "off"}})
                     ).raise_for_status()
                    (await http.put("/api/agents/a1", json={"name": "小王", "shops": ["s1"]})
                     ).raise_for_status()
                    (await http.put("/api/channels/wx", json={
                        "shop": "s1", "type": "api", "platform": "wechat", "name": "微信公众号",
                        "secret": CHANNEL_SECRET, "outbound_url": f"{adapter}/outbound"})
                     ).raise_for_status()
                yield engine, listening, fake, adapter
                stop.set()
    finally:
        fake.stop()


async def until(predicate: Any, timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.02)


async def push(fake: FakeWeChat, adapter: str, openid: str, kind: str = "text",
               **fields: Any) -> httpx.Response:
    return await trio.to_thread.run_sync(
        lambda: fake.push(f"{adapter}/wechat", openid, kind, **fields))


async def test_a_wechat_buyer_and_an_agent_talk_through_the_adapter(tmp_path: Path) -> None:
    async with wechat_setup(tmp_path) as (engine, listening, fake, adapter):
        async with httpx.AsyncClient(base_url=adapter) as http:
            # WeChat's server verification: the echo only for a right signature.
            stamp, nonce = "1700000000", "n1"
            good = hashlib.sha1("".join(sorted([fake.token, stamp, nonce])).encode()).hexdigest()
            ok = await http.get("/wechat", params={"signature": good, "timestamp": stamp,
                                                   "nonce": nonce, "echostr": "echo-123"})
            assert (ok.status_code, ok.text) == (200, "echo-123")
            bad = await http.get("/wechat", params={"signature": "0" * 40, "timestamp": stamp,
                                                    "nonce": nonce, "echostr": "echo-123"})
            assert bad.status_code == 403
            forged = await http.post("/wechat", params={"signature": "0" * 40,
                                                        "timestamp": stamp, "nonce": nonce},
                                     content=fake.push_xml("o-evil", Content="x"))
            assert forged.status_code == 403
            # An entity bomb is refused, not expanded.
            bomb = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
                    b"<xml><Content>&a;</Content></xml>")
            refused = await http.post("/wechat", content=bomb, params={
                "signature": good, "timestamp": stamp, "nonce": nonce})
            assert refused.status_code == 400
        async with connect(listening.ws_url, token("a1", "agent", "s1")) as agent:
            await agent.send({"type": "presence", "status": "online"})
            await agent.expect("presence")
            pushed = await push(fake, adapter, "o-buyer-1", Content="我的快递到哪了？",
                                msg_id=6_000_000_001)
            assert (pushed.status_code, pushed.text) == (200, "success")
            # WeChat pushes again when it thinks we were slow: stored once.
            again = await push(fake, adapter, "o-buyer-1", Content="我的快递到哪了？",
                               msg_id=6_000_000_001)
            assert again.text == "success"
            event = await push(fake, adapter, "o-buyer-1", "event", Event="subscribe")
            assert event.text == "success"
            assigned = await agent.expect("event", event="assigned")
            conv = assigned["conversation"]
            await push(fake, adapter, "o-buyer-1", "voice", MediaId="m1", Format="amr",
                       Recognition="还有发票", msg_id=6_000_000_002)
            await push(fake, adapter, "o-buyer-1", "image", MediaId="m2",
                       PicUrl="http://mmbiz.qpic.cn/x.jpg", msg_id=6_000_000_003)
            await until(lambda: engine.store.get("conversations", conv.encode())["last_seq"]
                        >= 3)
            history = [m for m in await agent.sync(conv) if m["role"] == "buyer"]
            assert [(m["kind"], m["body"]) for m in history] == [
                ("text", {"text": "我的快递到哪了？"}), ("text", {"text": "还有发票"}),
                ("link", {"url": "http://mmbiz.qpic.cn/x.jpg", "title": "[图片]"})]
            assert {m["via"] for m in history} == {"wx"}
            # The agent's reply reaches WeChat's customer-service API, and the adapter's
            # receipt reaches the agent.
            await agent.send({"type": "send", "conversation": conv, "id": "r1",
                              "kind": "text", "body": {"text": "明天送到"}})
            ack = await agent.expect("ack", id="r1")
            await until(lambda: fake.texts_to("o-buyer-1") == ["明天送到"])
            delivered = await agent.expect("event", event="delivery")
            assert delivered["data"] == {"seq": ack["seq"], "status": "delivered"}
            # A revoked token is fetched again, transparently.
            fake.revoke_tokens()
            await agent.send({"type": "send", "conversation": conv, "id": "r2",
                              "kind": "link", "body": {"url": "https://help.example.com/fp",
                                                       "title": "开发票"}})
            await agent.expect("ack", id="r2")
            await until(lambda: fake.texts_to("o-buyer-1") == ["明天送到", "开发票"])
            # Past WeChat's 48-hour window the reply fails for good, and the agent sees why.
            fake.outside_window.add("o-buyer-1")
            await agent.send({"type": "send", "conversation": conv, "id": "r3",
                              "kind": "text", "body": {"text": "还在吗"}})
            await agent.expect("ack", id="r3")
            with trio.fail_after(10):
                while True:
                    seen = await agent.expect("event", event="delivery")
                    if seen["data"]["status"] == "failed":
                        break
            assert "45015" in seen["data"]["error"]


def test_push_parsing_follows_wechat_formats() -> None:
    fake = FakeWeChat()
    text = parse_push(fake.push_xml("o1", Content="a < b & c", msg_id=1, created=1700000000))
    assert to_octim(text) == {"user": "o1", "id": "1", "ts": 1_700_000_000_000,
                              "kind": "text", "body": {"text": "a < b & c"}}
    voice = to_octim(parse_push(fake.push_xml("o1", "voice", MediaId="m", msg_id=2,
                                              created=1)))
    assert voice is not None and voice["body"] == {"text": "[语音]"}
    assert to_octim(parse_push(fake.push_xml("o1", "event", Event="subscribe"))) is None
