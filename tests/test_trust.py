"""Regression tests of the trust issue, each class of bug through the real sockets:
hostile values, tenant checks, HTTP bodies, connection caps, headers and hosts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from octim import Engine, Listening
from octim.gateway.codec import MSGPACK
from octim.testing import TEST_API_KEY, open_engine, token
from octim.testing.client import Client, connect
from octim.values import Unstorable

Running = tuple[Engine, Listening]
SHOP, OTHER = "s1", "s2"

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06"
       b"\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\nIDATx\x9cc\x00\x01\x00\x00\x05\x00"
       b"\x01\r\n-\xb4\x00\x00\x00\x00IEND\xaeB`\x82")
#: Values the store cannot hold, as JSON text (lone surrogate, > 64 bits, NaN, ∞).
HOSTILE_JSON = ('"\\ud800"', str(2**70), "NaN", "Infinity", "-Infinity", str(-(2**64)))


def api(listening: Listening) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=listening.http_url, timeout=10,
                             headers={"Authorization": f"Bearer {TEST_API_KEY}"})


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with open_engine(tmp_path / "data", max_connections_per_user=5,
                           image_hosts="img.example.com") as pair:
        async with api(pair[1]) as http:
            for shop in (SHOP, OTHER):
                (await http.put(f"/api/shops/{shop}", json={"name": shop, "bot": {"mode": "off"}})
                 ).raise_for_status()
                (await http.put(f"/api/agents/agent-{shop}", json={
                    "name": shop, "shops": [shop]})).raise_for_status()
        yield pair


async def exchange_works(listening: Listening, buyer: str = "normal-buyer") -> None:
    """A normal buyer → agent exchange: the engine still serves everyone."""
    with trio.fail_after(15):
        async with connect(listening.ws_url, token(f"agent-{SHOP}", "agent", SHOP)) as agent, \
                connect(listening.ws_url, token(buyer)) as b:
            conv = (await b.open(SHOP))["conversation"]
            await b.say(conv, f"{buyer}-hello", "你好")
            await agent.expect("event", event="assigned", conversation=conv, timeout=10)
            ack = await agent.say(conv, f"{buyer}-reply", "您好，请问有什么可以帮您")
            got = await b.expect("msg", conversation=conv, seq=ack["seq"])
            assert got["body"]["text"].startswith("您好")
    async with api(listening) as http:
        assert (await http.get(f"/api/shops/{SHOP}")).status_code == 200


async def raw_json(client: Client, text: str) -> dict[str, Any]:
    await client.ws.send_message(text)
    return await client.expect("error")


async def test_unstorable_values_are_refused_at_the_edge_and_no_shop_goes_offline(
        running: Running) -> None:
    _, listening = running
    with trio.fail_after(30):
        async with connect(listening.ws_url, token("attacker")) as attacker:
            # Far more than the old four-failure quarantine, through open and send.
            for value in HOSTILE_JSON * 2:
                refused = await raw_json(attacker, f'{{"type":"open","shop":"{SHOP}","ref":"x",'
                                         f'"context":{{"note":{value}}}}}')
                assert refused["code"] == "invalid_body", refused
            conv = (await attacker.open(SHOP, ref="ok"))["conversation"]
            for value in HOSTILE_JSON:
                refused = await raw_json(attacker, json.dumps({
                    "type": "send", "conversation": conv, "id": "h", "kind": "product",
                    "body": {"product": "p1"}}).replace('"p1"}', f'"p1", "price": {value}}}'))
                assert refused["code"] == "invalid_body", refused
            ack = await attacker.say(conv, "fine", "still works")
            assert ack["seq"] == 1  # none of the hostile sends was stored
    async with api(listening) as http:
        # The same values in API-key bodies: 422 invalid_body, never a 500.
        ok = await http.put("/api/customers/c1", json={"nickname": "n", "attributes": {"x": 1}})
        assert ok.status_code == 200, ok.text  # the same body with a storable value
        for value in HOSTILE_JSON:
            body = f'{{"nickname": "n", "attributes": {{"x": {value}}}}}'
            answer = await http.put("/api/customers/c1", content=body,
                                    headers={"Content-Type": "application/json"})
            assert answer.status_code == 422, (value, answer.text)
            assert answer.json()["error"]["code"] == "invalid_body"
            assert "attributes" in answer.json()["error"]["message"] or \
                "not allowed" in answer.json()["error"]["message"]
        for not_json in ('{"name": 01}', '{"name": "x", "settings": {"a": 1.}}', "{"):
            answer = await http.put(f"/api/shops/{SHOP}", content=not_json,
                                    headers={"Content-Type": "application/json"})
            assert answer.status_code == 422, (not_json, answer.text)
            assert answer.json()["error"]["code"] == "invalid_body"
        deep = '{"name": "x", "settings": ' + '{"a": ' * 40 + "1" + "}" * 40 + "}"
        answer = await http.put(f"/api/shops/{SHOP}", content=deep)
        assert answer.status_code == 422 and "deeper" in answer.json()["error"]["message"]
    await exchange_works(listening)


async def test_deep_frames_get_the_protocol_error_not_1011(running: Running) -> None:
    _, listening = running
    deep_json = "[" * 3000 + "]" * 3000
    with trio.fail_after(20):
        # Before hello: the unauthorized close, not an internal error.
        async with open_websocket_url(listening.ws_url, subprotocols=["octim.v1.json"]) as ws:
            await ws.send_message(deep_json)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            assert closed.value.reason.code == 4001
        # After hello, over both codecs: an error frame, and the connection goes on.
        async with connect(listening.ws_url, token("deep")) as client:
            assert (await raw_json(client, deep_json))["code"] in ("bad_frame", "invalid_body")
            assert (await raw_json(client, '{"type": "ping", "x": %s}' % (
                "[" * 40 + "]" * 40)))["code"] == "invalid_body"
            await client.request({"type": "ping"}, "pong")
        async with connect(listening.ws_url, token("deep"), subprotocol=MSGPACK) as client:
            nested: Any = 1
            for _ in range(990):
                nested = [nested]
            await client.ws.send_message(msgpack.packb({"type": "open", "shop": SHOP,
                                                        "context": {"x": nested}}))
            assert (await client.expect("error"))["code"] == "invalid_body"
            await client.ws.send_message(b"\x91" * 3000 + b"\x01")
            assert (await client.expect("error"))["code"] == "invalid_body"
            await client.ws.send_message(b"\x92\x01")  # truncated: the decoder's verdict
            assert (await client.expect("error"))["code"] == "bad_frame"
            await client.ws.send_message(msgpack.packb({"type": "ping", "b": b"bytes"}))
            assert (await client.expect("error"))["code"] == "invalid_body"
            await client.request({"type": "ping"}, "pong")


async def test_dedupe_is_per_sender(running: Running) -> None:
    _, listening = running
    with trio.fail_after(20):
        async with connect(listening.ws_url, token(f"agent-{SHOP}", "agent", SHOP)) as agent, \
                connect(listening.ws_url, token("dedupe-buyer")) as buyer:
            conv = (await buyer.open(SHOP))["conversation"]
            mine = await buyer.say(conv, "same-id", "买家的话")
            await agent.expect("event", event="assigned", conversation=conv, timeout=10)
            theirs = await agent.say(conv, "same-id", "客服的话")
            assert theirs["seq"] == mine["seq"] + 1  # stored, not taken for the buyer's
            again = await agent.say(conv, "same-id", "客服的话")
            assert again["seq"] == theirs["seq"]  # a real repeat is still deduped
            texts = [m["body"].get("text") for m in await buyer.sync(conv)]
            assert texts.count("客服的话") == 1 and "买家的话" in texts


async def test_kb_visibility_and_tenants(running: Running) -> None:
    _, listening = running
    async with api(listening) as http:
        for entry, shop, visibility, answer in (
                ("pub", SHOP, "public", "七天无理由退货"),
                ("int", SHOP, "internal", "内部：退货地址是仓库三号门"),
                ("other", OTHER, "public", "另一家店的发货时间")):
            (await http.put(f"/api/kb/{entry}", json={
                "question": "退货地址在哪里" if entry == "int" else "怎么退货发货",
                "answer": answer, "shop": shop, "visibility": visibility})).raise_for_status()

    async def ask(who: str, shop: str | None, question: str = "退货地址在哪里") -> Any:
        async with httpx.AsyncClient(base_url=listening.http_url, headers={
                "Authorization": f"Bearer {who}"}) as http:
            return await http.post("/api/kb/ask", json={"question": question, "shop": shop})

    buyer = token("kb-buyer")
    seen = (await ask(buyer, SHOP)).json()
    assert seen["id"] != "int" and "int" not in [s["id"] for s in seen["suggestions"]]
    staff = (await ask(token("a", "agent", SHOP), SHOP)).json()
    assert staff["id"] == "int" and staff["answered"]
    other_staff = await ask(token("b", "agent", OTHER), SHOP)
    assert other_staff.status_code == 403
    assert (await ask(buyer, None)).status_code == 403  # all shops: platform admins only
    assert (await ask(token("a", "agent", SHOP), None)).status_code == 403
    admin = (await ask(token("root", "platform_admin"), None)).json()
    assert admin["id"] == "int"


async def test_http_bodies_credentials_first_and_size_limits_while_streaming(
        running: Running) -> None:
    _, listening = running
    host, port = listening.http.host, listening.http.port

    async def raw(headers: str, first_chunk: bytes) -> bytes:
        """Send headers and the first part of a body; read what comes back."""
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            await stream.send_all(headers.encode() + first_chunk)
            answer = b""
            with trio.move_on_after(5):
                while b"\r\n\r\n" not in answer:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        break
                    answer += chunk
            return answer

    big = 16 * 1024 * 1024
    unauthenticated = (f"PUT /api/shops/x HTTP/1.1\r\nHost: {host}\r\nContent-Type: "
                       f"application/json\r\nContent-Length: {big}\r\n\r\n")
    # Answered from the headers alone: only 64 KiB of the 16 MiB were ever sent.
    assert (await raw(unauthenticated, b"{" * 65536)).startswith(b"HTTP/1.1 401")
    authenticated = unauthenticated.replace(
        "Content-Type", f"Authorization: Bearer {TEST_API_KEY}\r\nContent-Type")
    assert (await raw(authenticated, b"{" * 65536)).startswith(b"HTTP/1.1 413")
    chunked = authenticated.replace(f"Content-Length: {big}", "Transfer-Encoding: chunked")
    too_long = b"%x\r\n" % (300 * 1024) + b" " * (300 * 1024) + b"\r\n"
    assert (await raw(chunked, too_long)).startswith(b"HTTP/1.1 413")


async def test_hardening_headers_roles_caps_and_hosts(running: Running) -> None:
    _, listening = running
    async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
        # client-config never echoes the Host header.
        config = (await http.get("/api/client-config", headers={"Host": "evil.example"})).json()
        assert "evil" not in config["ws_url"] and config["ws_url"] == listening.ws_url
        page = await http.get("/agent")
        csp = page.headers["content-security-policy"]
        assert "img-src 'self' blob: data: https://img.example.com" in csp and " https: " not in csp
        # A buyer token naming a shop reads nothing of its team.
        team = await http.get(f"/api/shops/{SHOP}/team",
                              headers={"Authorization": f"Bearer {token('b', 'buyer', SHOP)}"})
        assert team.status_code == 403
        staff = await http.get(f"/api/shops/{SHOP}/team", headers={
            "Authorization": f"Bearer {token('a', 'agent', SHOP)}"})
        assert staff.status_code == 200
    with trio.fail_after(20):
        # Card images only from the platform's image hosts.
        async with connect(listening.ws_url, token("img-buyer")) as buyer:
            conv = (await buyer.open(SHOP))["conversation"]
            for image, code in (("https://tracker.example.net/p.png", "invalid_body"),
                                ("http://img.example.com/p.png", "invalid_body"),
                                ("https://img.example.com.evil.net/p.png", "invalid_body")):
                await buyer.send({"type": "send", "conversation": conv, "id": image[-20:],
                                  "kind": "product", "body": {"product": "p", "image": image}})
                assert (await buyer.expect("error"))["code"] == code
            ok = await buyer.request({"type": "send", "conversation": conv, "id": "good",
                                      "kind": "product", "body": {
                                          "product": "p", "image": "https://cdn.img.example.com/a.png"}},
                                     "ack", id="good")
            assert ok["seq"] == 1  # the refused cards were not stored
            # Or a picture of one's own upload, which the other side may then read.
            async with httpx.AsyncClient(base_url=listening.http_url, headers={
                    "Authorization": f"Bearer {token('img-buyer')}"}) as mine:
                upload = (await mine.post("/api/uploads?kind=image", content=PNG)).json()
            own = await buyer.request({"type": "send", "conversation": conv, "id": "own",
                                       "kind": "product", "body": {
                                           "product": "p", "image": upload["url"]}},
                                      "ack", id="own")
            async with httpx.AsyncClient(base_url=listening.http_url, headers={
                    "Authorization": f"Bearer {token('a', 'agent', SHOP)}"}) as staff:
                assert (await staff.get(upload["url"])).content == PNG
            async with httpx.AsyncClient(base_url=listening.http_url, headers={
                    "Authorization": f"Bearer {token('other-buyer')}"}) as other:
                theirs = (await other.post("/api/uploads?kind=image", content=PNG)).json()
            await buyer.send({"type": "send", "conversation": conv, "id": "theirs",
                              "kind": "product", "body": {"product": "p",
                                                          "image": theirs["url"]}})
            assert (await buyer.expect("error"))["code"] == "not_found"  # not your upload
            assert own["seq"] == 2
        # The per-user connection cap: the sixth session of one user is closed with 4009.
        async with AsyncExitStack() as stack:
            c1, *_ = [await stack.enter_async_context(connect(listening.ws_url, token("many")))
                      for _ in range(5)]
            async with open_websocket_url(listening.ws_url, subprotocols=["octim.v1.json"]) as ws:
                await ws.send_message(json.dumps({"type": "hello", "token": token("many")}))
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.get_message()
                assert closed.value.reason.code == 4009
            await c1.request({"type": "ping"}, "pong")  # the others are untouched


async def test_uploads_are_served_sandboxed(running: Running) -> None:
    _, listening = running
    png = PNG
    bearer = {"Authorization": f"Bearer {token('up')}"}
    async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
        made = (await http.post("/api/uploads?kind=image", content=png, headers=bearer)).json()
        got = await http.get(made["url"], headers=bearer)
        assert got.content == png
        assert got.headers["content-security-policy"] == "default-src 'none'; sandbox"
        assert got.headers["content-disposition"] == "inline"


async def test_forwarded_for_is_believed_only_from_trusted_proxies(tmp_path: Path) -> None:
    for trusted, expected in (("", "127.0.0.1"), ("127.0.0.0/8", "203.0.113.9")):
        async with open_engine(tmp_path / f"d{len(trusted)}", trusted_proxies=trusted) as (
                engine, listening):
            async with api(listening) as http:
                (await http.put(f"/api/shops/{SHOP}", json={"name": SHOP})).raise_for_status()
            with trio.fail_after(10):
                async with connect(listening.ws_url, token("fwd-buyer")) as buyer:
                    conv = (await buyer.open(SHOP))["conversation"]
            async with httpx.AsyncClient(base_url=listening.http_url, headers={
                    "Authorization": f"Bearer {token('root', 'platform_admin')}",
                    "X-Forwarded-For": "203.0.113.9"}) as http:
                answer = await http.get(f"/api/conversations/{conv}/context")
                assert answer.status_code == 200, answer.text
            # The gateway follows the same rule for staff reads over WebSocket.
            async with open_websocket_url(listening.ws_url, subprotocols=["octim.v1.json"],
                                          extra_headers=[(b"X-Forwarded-For",
                                                          b"203.0.113.9")]) as ws:
                admin = Client(ws, "octim.v1.json")
                await admin.request({"type": "hello", "token": token("root", "platform_admin")},
                                    "welcome")
                await admin.sync(conv)
            with trio.fail_after(5):  # the read's audit row is written without waiting
                while len(rows := [v for _, v in engine.store.scan("audit")]) < 2:
                    await trio.sleep(0.01)
            assert [(r["what"], r["from"]) for r in rows] == [
                ("context", expected), ("messages", expected)], rows


async def test_the_python_api_refuses_unstorable_values_too(running: Running) -> None:
    engine, listening = running
    for call in (lambda: engine.upsert_customer("c9", attributes={"x": float("nan")}),
                 lambda: engine.put_shop(SHOP, SHOP, settings={"x": 2**70}),
                 lambda: engine.open_conversation(SHOP, "b9", context={"x": "\ud800"})):
        with pytest.raises(Unstorable):
            await call()
    await exchange_works(listening, "after-python-api")


async def test_slow_clients_are_cut_off(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d", read_timeout=1.0, handshake_timeout=1.0) as (
            _, listening):
        with trio.fail_after(10):
            # HTTP: half the headers, then silence (slowloris); or a body that stalls.
            for sent in (b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
                         b"PUT /api/shops/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                         b"Authorization: Bearer " + TEST_API_KEY.encode() + b"\r\n\r\n{"):
                stream = await trio.open_tcp_stream(listening.http.host, listening.http.port)
                await stream.send_all(sent)
                started = trio.current_time()
                try:
                    while await stream.receive_some(1024):
                        pass  # the server may answer the broken request, then closes
                except trio.BrokenResourceError:
                    pass
                assert trio.current_time() - started < 5
            # WebSocket: a TCP connection that never starts its opening handshake.
            stream = await trio.open_tcp_stream(listening.ws.host, listening.ws.port)
            started = trio.current_time()
            assert await stream.receive_some(1024) == b""
            assert trio.current_time() - started < 5


async def test_one_engine_per_data_directory(tmp_path: Path) -> None:
    from octim.errors import StoreError

    async with open_engine(tmp_path / "d") as (_, listening):
        with pytest.raises(BaseException) as info:  # from the engine's nursery
            async with open_engine(tmp_path / "d"):
                pass
        error = info.value
        while isinstance(error, BaseExceptionGroup):
            error = error.exceptions[0]
        assert isinstance(error, StoreError) and "another engine" in str(error)
        await exchange_works_without_setup(listening)
    async with open_engine(tmp_path / "d"):
        pass  # the lock went with the first engine


async def exchange_works_without_setup(listening: Listening) -> None:
    async with api(listening) as http:
        (await http.put(f"/api/shops/{SHOP}", json={"name": SHOP})).raise_for_status()
        assert (await http.get(f"/api/shops/{SHOP}")).status_code == 200
