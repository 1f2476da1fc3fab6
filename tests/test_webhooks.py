"""Webhooks against a real local HTTP receiver: signing, retries, dead letters, resend."""

from __future__ import annotations

import hashlib
import hmac
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

SECRET = "whsec-0123456789abcdef"


class Receiver:
    """An HTTP server recording deliveries; ``fail`` decides each answer."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.failures_left: dict[str, int] = {}
        self.always_fail = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                delivery = self.headers["X-Octim-Delivery"]
                receiver.received.append({"headers": dict(self.headers), "body": body,
                                          "path": self.path})
                left = receiver.failures_left.get(delivery, 0)
                failing = (receiver.always_fail and self.path == "/flaky") or left > 0
                if left > 0:
                    receiver.failures_left[delivery] = left - 1
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.received if r["path"] == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


async def shop_with_endpoint(listening: Any, url: str) -> None:
    """Shop s1 (bot off) and the endpoint ``main`` for every event, at ``url``."""
    async with httpx.AsyncClient(base_url=listening.http_url, timeout=10, headers={
            "Authorization": f"Bearer {TEST_API_KEY}"}) as http:
        (await http.put("/api/shops/s1", json={"name": "s1", "bot": {"mode": "off"}})
         ).raise_for_status()
        (await http.put("/api/webhooks/main", json={"url": url, "events": ["*"],
                                                    "secret": SECRET})).raise_for_status()


async def until(predicate: Any, timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.02)


async def test_signed_deliveries_retries_dead_letters_and_resend(
        tmp_path: Path, receiver: Receiver) -> None:
    # The engine's clock stands still unless the test moves it, and only the test ticks:
    # retries happen when the engine's clock says they are due, never sooner.
    start = float(int(time.time()))
    now = [start]
    async with open_engine(tmp_path / "d", routing_tick=3600, webhook_backoff=10,
                           webhook_allow="127.0.0.1",
                           webhook_attempts=3) as (engine, listening):
        engine.context.clock = lambda: now[0]

        async def tick_at(offset: float) -> None:
            now[0] = start + offset
            await engine.tick()

        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10, headers={
                "Authorization": f"Bearer {TEST_API_KEY}"}) as http:
            (await http.put("/api/shops/s1", json={"name": "s1", "bot": {"mode": "off"}})
             ).raise_for_status()
            for name, events in (("main", ["conversation.opened", "message.sent",
                                           "conversation.resolved", "rating.given"]),
                                 ("flaky", ["conversation.opened"])):
                (await http.put(f"/api/webhooks/{name}", json={
                    "url": f"{receiver.url}/{name}", "events": events, "secret": SECRET})
                 ).raise_for_status()
            bad = await http.put("/api/webhooks/x", json={"url": receiver.url, "events": ["nope"],
                                                          "secret": SECRET})
            assert bad.status_code == 422
            receiver.always_fail = True
            async with connect(listening.ws_url, token("buyer-w")) as buyer:
                conv = (await buyer.open("s1"))["conversation"]
                await buyer.say(conv, "m1", "你好")
                await buyer.send({"type": "resolve", "conversation": conv})
                await buyer.expect("event", event="resolved")
                await buyer.send({"type": "rate", "conversation": conv, "score": 5})
                await buyer.expect("event", event="rated")
            await until(lambda: len(receiver.bodies("/main")) >= 4)
            events = [b["event"] for b in receiver.bodies("/main")]
            assert events == ["conversation.opened", "message.sent", "conversation.resolved",
                              "rating.given"]
            sent = receiver.bodies("/main")[1]["data"]
            assert sent["conversation"] == conv and sent["body"] == {"text": "你好"}
            for record in receiver.received:
                headers = record["headers"]
                expected = "sha256=" + hmac.new(
                    SECRET.encode(), headers["X-Octim-Timestamp"].encode() + b"." +
                    record["body"], hashlib.sha256).hexdigest()
                assert headers["X-Octim-Signature"] == expected
            # The flaky endpoint fails: retried after 10 s, then 20 s more, on the
            # engine's clock; a tick before a retry is due sends nothing (it would carry
            # that tick's time), and after the third attempt it is dead-lettered.
            await until(lambda: len(receiver.bodies("/flaky")) == 1)
            for offset, attempts in ((5, 1), (10, 2), (25, 2), (30, 3)):
                await tick_at(offset)
                await until(lambda n=attempts: len(receiver.bodies("/flaky")) == n)
            dead: list[dict[str, Any]] = []

            async def dead_listed() -> None:
                nonlocal dead
                while not dead:
                    dead = (await http.get("/api/webhooks/flaky/dead")).json()
                    await trio.sleep(0.02)

            with trio.fail_after(10):
                await dead_listed()
            (letter,) = dead
            assert letter["attempts"] == 3 and letter["last_error"] == "HTTP 500"
            assert letter["event"] == "conversation.opened"
            stamps = [int(r["headers"]["X-Octim-Timestamp"]) - start
                      for r in receiver.received if r["path"] == "/flaky"]
            assert stamps == [0, 10, 30]
            # Re-sent after the receiver recovers: delivered once more, no longer dead.
            receiver.always_fail = False
            resent = await http.post(f"/api/webhooks/flaky/dead/{letter['id']}/resend")
            assert resent.status_code == 202
            await until(lambda: len(receiver.bodies("/flaky")) == 4)
            assert (await http.get("/api/webhooks/flaky/dead")).json() == []
            assert (await http.post(f"/api/webhooks/flaky/dead/{letter['id']}/resend")
                    ).status_code == 404


async def test_a_receiver_that_recovers_gets_the_delivery_once(
        tmp_path: Path, receiver: Receiver) -> None:
    async with open_engine(tmp_path / "d", routing_tick=0.05, webhook_backoff=0.05,
                           webhook_allow="127.0.0.1",
                           webhook_attempts=5) as (engine, listening):
        await shop_with_endpoint(listening, f"{receiver.url}/main")
        original = receiver.server.RequestHandlerClass.do_POST  # type: ignore[attr-defined]
        first: dict[str, int] = {}

        def fail_twice(handler: Any) -> None:
            delivery = handler.headers["X-Octim-Delivery"]
            first.setdefault(delivery, 2)
            receiver.failures_left.setdefault(delivery, first[delivery])
            original(handler)

        receiver.server.RequestHandlerClass.do_POST = fail_twice  # type: ignore[attr-defined]
        async with connect(listening.ws_url, token("buyer-r")) as buyer:
            await buyer.open("s1")
        await until(lambda: any(r for r in receiver.received) and all(
            left == 0 for left in receiver.failures_left.values()) and len(receiver.received) >= 3)
        ids = [r["headers"]["X-Octim-Delivery"] for r in receiver.received]
        assert ids.count(ids[0]) == 3  # two failures, then success, same delivery id
        assert engine.events.dead("main") == []


async def test_webhooks_never_reach_private_addresses_by_default(
        tmp_path: Path, receiver: Receiver) -> None:
    # The same receiver, but without webhook_allow: loopback is refused, by IP and
    # by a name that resolves to it, and nothing arrives.
    async with open_engine(tmp_path / "d", routing_tick=0.05, webhook_backoff=0.05,
                           webhook_attempts=2) as (engine, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10, headers={
                "Authorization": f"Bearer {TEST_API_KEY}"}) as http:
            (await http.put("/api/shops/s1", json={"name": "s1", "bot": {"mode": "off"}})
             ).raise_for_status()
            port = receiver.server.server_port
            for url in (receiver.url, f"http://[::1]:{port}", "http://169.254.169.254"):
                refused = await http.put("/api/webhooks/ip", json={
                    "url": f"{url}/x", "events": ["*"], "secret": SECRET})
                assert refused.status_code == 422, refused.text  # an address: refused now
            (await http.put("/api/webhooks/name", json={
                "url": f"http://localhost:{port}/name", "events": ["*"], "secret": SECRET})
             ).raise_for_status()  # a name: checked at each delivery, where it resolves
        async with connect(listening.ws_url, token("buyer-s")) as buyer:
            await buyer.open("s1")
        await until(lambda: bool(engine.events.dead("name")))
        letter = engine.events.dead("name")[0]
        assert letter["last_error"].startswith("refused:"), letter
        assert "webhook_allow" in letter["last_error"]
        assert receiver.received == []


def test_target_policy_checks_the_address_it_connects_to() -> None:
    from octim.webhooks import TargetPolicy, TargetRefused

    policy = TargetPolicy.from_setting("10.1.0.0/16, hooks.internal")
    for address in ("127.0.0.1", "10.0.0.1", "192.168.1.1", "169.254.169.254", "::1",
                    "fe80::1", "::ffff:127.0.0.1", "0.0.0.0", "100.64.0.1"):
        assert not policy.allowed(address, "example.com"), address
    assert policy.allowed("8.8.8.8", "example.com")
    assert policy.allowed("10.1.2.3", "example.com")  # an allowed network
    assert policy.allowed("10.9.9.9", "hooks.internal")  # an allowed host name
    with pytest.raises(TargetRefused):
        policy.pin("http://127.0.0.1:9/x")
    # The URL to connect to is the checked address; Host keeps the name.
    url, host, ext = TargetPolicy.from_setting("127.0.0.0/8").pin("https://localhost:8443/h?q=1")
    assert url in ("https://127.0.0.1:8443/h?q=1", "https://[::1]:8443/h?q=1")
    assert host == "localhost:8443" and ext == {"sni_hostname": "localhost"}


async def test_deliveries_are_stamped_with_the_engines_clock(
        tmp_path: Path, receiver: Receiver) -> None:
    async with open_engine(tmp_path / "d", webhook_allow="127.0.0.1") as (engine, listening):
        later = time.time() + 86_400  # the engine's clock says tomorrow
        engine.context.clock = lambda: later
        await shop_with_endpoint(listening, f"{receiver.url}/main")
        async with connect(listening.ws_url, token("buyer-t")) as buyer:
            await buyer.open("s1")
        await until(lambda: bool(receiver.received))
        delivery = receiver.received[0]
        assert int(delivery["headers"]["X-Octim-Timestamp"]) == int(later)
        assert json.loads(delivery["body"])["ts"] == int(later * 1000)


async def test_https_deliveries_keep_tls_verification_while_pinned(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The sender connects to the address it checked, but TLS still verifies the URL's
    # host name (SNI and the certificate): a receiver with a certificate for localhost,
    # reached as https://localhost, trusted through a throwaway CA.
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # what the sender's client trusts
    receiver = Receiver()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    receiver.server.socket = server_ctx.wrap_socket(receiver.server.socket, server_side=True)
    port = receiver.server.server_port
    try:
        async with open_engine(tmp_path / "d", webhook_allow="127.0.0.0/8, ::1",
                               webhook_attempts=1) as (engine, listening):
            async with httpx.AsyncClient(base_url=listening.http_url, timeout=10, headers={
                    "Authorization": f"Bearer {TEST_API_KEY}"}) as http:
                (await http.put("/api/shops/s1", json={"name": "s1", "bot": {"mode": "off"}})
                 ).raise_for_status()
                for name, host in (("tls", "localhost"), ("mismatch", "127.0.0.1")):
                    (await http.put(f"/api/webhooks/{name}", json={
                        "url": f"https://{host}:{port}/{name}", "events": ["*"],
                        "secret": SECRET})).raise_for_status()
            async with connect(listening.ws_url, token("buyer-tls")) as buyer:
                await buyer.open("s1")
            await until(lambda: bool(engine.events.dead("mismatch")) and any(
                r["path"] == "/tls" for r in receiver.received))
            assert engine.events.dead("tls") == [], engine.events.dead("tls")
            tls = next(r for r in receiver.received if r["path"] == "/tls")
            assert tls["headers"]["Host"] == f"localhost:{port}"
            # The certificate names localhost, not 127.0.0.1: verification is on.
            assert "CERTIFICATE_VERIFY_FAILED" in engine.events.dead("mismatch")[0]["last_error"]
            assert not any(r["path"] == "/mismatch" for r in receiver.received)
    finally:
        receiver.server.shutdown()
