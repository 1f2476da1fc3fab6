"""Public ticket replies by email through a real local SMTP server (aiosmtpd).

The reply leaves with proper threading headers, the buyer's answer to it threads back
into the ticket, internal notes never leave, a relay that is down is retried on the
engine's clock, a reply left in the outbox goes out after a restart, and the default
mode (STARTTLS, required) talks TLS to a relay with a private CA (trustme).
"""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trustme
from aiosmtpd.controller import Controller

from octim.testing import TEST_API_KEY, open_engine, token

SHOP = "s1"
KEY = {"Authorization": f"Bearer {TEST_API_KEY}"}
AGENT = {"Authorization": f"Bearer {token('a1', 'agent', SHOP)}"}
SENDER = "service@shop.example"


class Inbox:
    """An aiosmtpd handler that keeps what it was given."""

    def __init__(self) -> None:
        self.mail: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.mail.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def smtp_server(port: int, inbox: Inbox, **tls: Any) -> Iterator[Controller]:
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **tls)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


async def until(check: Any, engine: Any = None, seconds: float = 10.0) -> None:
    with trio.fail_after(seconds):
        while not check():
            if engine is not None:
                await engine.tick()
            await trio.sleep(0.02)


def raw_mail(message_id: str, subject: str, text: str, *, reply_to: str = "") -> bytes:
    headers = ["From: 阿宝 <buyer@example.com>", f"To: {SENDER}", f"Subject: {subject}",
               f"Message-ID: {message_id}", "Content-Type: text/plain; charset=utf-8"]
    if reply_to:
        headers += [f"In-Reply-To: {reply_to}", f"References: {reply_to}"]
    return ("\r\n".join(headers) + "\r\n\r\n" + text).encode()


async def setup(http: httpx.AsyncClient) -> None:
    (await http.put(f"/api/shops/{SHOP}", json={"name": "阿宝的店"}, headers=KEY)
     ).raise_for_status()
    (await http.put("/api/agents/a1", json={"name": "小美", "shops": [SHOP]}, headers=KEY)
     ).raise_for_status()


def mail_settings(port: int, **more: Any) -> dict[str, Any]:
    return {"smtp": f"127.0.0.1:{port}", "smtp_from": SENDER, "smtp_security": "none",
            "mail_backoff": 30.0, **more}


async def test_a_public_reply_is_mailed_with_threading_and_the_answer_threads_back(
        tmp_path: Path) -> None:
    port, inbox = free_port(), Inbox()
    with smtp_server(port, inbox):
        async with open_engine(tmp_path / "d", **mail_settings(port)) as (engine, listening):
            async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
                await setup(http)
                opened = (await http.post("/api/inbound/email", params={"shop": SHOP},
                                          content=raw_mail("<m1@example.com>", "包裹没收到",
                                                           "三天了还没到"), headers=KEY)
                          ).json()
                ticket = opened["ticket"]
                url = f"/api/tickets/{ticket}"
                await http.post(f"{url}/comments", json={"body": "内部：查物流",
                                                         "public": False}, headers=AGENT)
                await http.post(f"{url}/comments", json={"body": "您好，已为您联系快递。",
                                                         "public": True}, headers=AGENT)
                await until(lambda: inbox.mail)
                mail_from, rcpt, sent = inbox.mail[0]
                assert len(inbox.mail) == 1  # the internal note never leaves
                assert mail_from == SENDER and rcpt == ["buyer@example.com"]
                assert sent["From"].addresses[0].addr_spec == SENDER
                assert sent["From"].addresses[0].display_name == "阿宝的店"
                assert sent["Subject"] == "Re: [T-1] 包裹没收到"
                assert sent["In-Reply-To"] == "<m1@example.com>"
                assert sent["References"] == "<m1@example.com>"
                assert "您好，已为您联系快递。" in sent.get_content()
                ours = sent["Message-ID"]
                assert ours.startswith(f"<{ticket}.") and ours.endswith("@shop.example>")
                staff = (await http.get(url, headers=KEY)).json()
                assert staff["mail_ids"] == ["<m1@example.com>", ours]

                # The buyer answers the email (no token in the subject): it threads by
                # In-Reply-To; the next reply references the whole thread.
                back = (await http.post("/api/inbound/email", params={"shop": SHOP},
                                        content=raw_mail("<m2@example.com>", "Re: 谢谢",
                                                         "好的，等您消息", reply_to=ours),
                                        headers=KEY)).json()
                assert back["threaded"] is True and back["ticket"] == ticket
                await http.post(f"{url}/comments", json={"body": "快递说明天到。",
                                                         "public": True}, headers=AGENT)
                await until(lambda: len(inbox.mail) == 2)
                second = inbox.mail[1][2]
                assert second["In-Reply-To"] == "<m2@example.com>"
                assert second["References"].split() == ["<m1@example.com>", ours,
                                                        "<m2@example.com>"]
                await until(lambda: not list(engine.store.scan("mail_outbox")))  # sent: gone

                # A chat ticket reaches the buyer by email when their profile has one.
                (await http.put("/api/customers/b7", json={"email": "b7@example.com"},
                                headers=KEY)).raise_for_status()
                made = (await http.post("/api/tickets", json={
                    "shop": SHOP, "subject": "换货", "requester": "b7"}, headers=KEY)).json()
                await http.post(f"/api/tickets/{made['id']}/comments", json={
                    "body": "已安排换货", "public": True}, headers=AGENT)
                await until(lambda: len(inbox.mail) == 3)
                assert inbox.mail[2][1] == ["b7@example.com"]
                assert "In-Reply-To" not in inbox.mail[2][2]
                assert (await http.put("/api/customers/b8", json={"email": "not an address"},
                                       headers=KEY)).status_code == 422

                # A buyer with no profile email but a linked email identity gets it there.
                (await http.put("/api/customers/b9/identities", headers=KEY, json={
                    "identities": [{"type": "email", "value": "b9@example.com"}]})
                 ).raise_for_status()
                linked = (await http.post("/api/tickets", json={
                    "shop": SHOP, "subject": "发票", "requester": "b9"}, headers=KEY)).json()
                await http.post(f"/api/tickets/{linked['id']}/comments", json={
                    "body": "发票已开", "public": True}, headers=AGENT)
                await until(lambda: len(inbox.mail) == 4)
                assert inbox.mail[3][1] == ["b9@example.com"]


async def test_a_relay_that_is_down_is_retried_and_the_outbox_survives_a_restart(
        tmp_path: Path) -> None:
    port, inbox = free_port(), Inbox()
    start = 1_796_083_200.0
    now = [start]
    settings = mail_settings(port, routing_tick=3600)
    async with open_engine(tmp_path / "d", **settings) as (engine, listening):
        engine.context.clock = lambda: now[0]
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            await setup(http)
            ticket = (await http.post("/api/inbound/email", params={"shop": SHOP},
                                      content=raw_mail("<r1@example.com>", "退款", "钱呢"),
                                      headers=KEY)).json()["ticket"]
            await http.post(f"/api/tickets/{ticket}/comments", json={
                "body": "退款已受理", "public": True}, headers=AGENT)
            # Nothing listens: the first attempt fails and is kept for a retry.
            await until(lambda: any(i["attempts"] == 1
                                    for _, i in engine.store.scan("mail_outbox")))
            [(_, item)] = list(engine.store.scan("mail_outbox"))
            assert "ConnectionRefused" in item["error"] and item["next_at"] == start + 30
            with smtp_server(port, inbox):
                now[0] = start + 29
                await engine.tick()
                await trio.sleep(0.2)
                assert inbox.mail == []  # not before its time
                now[0] = start + 30
                await until(lambda: inbox.mail, engine)
            assert inbox.mail[0][2]["Subject"] == "Re: [T-1] 退款"
            await until(lambda: not list(engine.store.scan("mail_outbox")))
            # Down again: this reply waits in the outbox when the engine stops.
            await http.post(f"/api/tickets/{ticket}/comments", json={
                "body": "钱已退回", "public": True}, headers=AGENT)
            await until(lambda: any(i["attempts"] == 1
                                    for _, i in engine.store.scan("mail_outbox")))
    with smtp_server(port, inbox):
        async with open_engine(tmp_path / "d", **settings) as (engine, _):
            engine.context.clock = lambda: start + 3600
            await until(lambda: len(inbox.mail) == 2, engine)
            assert "钱已退回" in inbox.mail[1][2].get_content()


async def test_the_default_starttls_talks_tls_to_a_relay_with_a_private_ca(
        tmp_path: Path) -> None:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    port, inbox = free_port(), Inbox()
    with smtp_server(port, inbox, tls_context=server_tls, require_starttls=True):
        settings = {**mail_settings(port), "smtp_security": "starttls",
                    "smtp_ca_file": str(ca_file)}
        async with open_engine(tmp_path / "d", **settings) as (engine, listening):
            async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
                await setup(http)
                ticket = (await http.post("/api/inbound/email", params={"shop": SHOP},
                                          content=raw_mail("<t1@example.com>", "发票", "要发票"),
                                          headers=KEY)).json()["ticket"]
                await http.post(f"/api/tickets/{ticket}/comments", json={
                    "body": "发票已开", "public": True}, headers=AGENT)
                await until(lambda: inbox.mail)
    # Without the CA the relay's certificate is not trusted: nothing is sent in clear.
    port2, inbox2 = free_port(), Inbox()
    with smtp_server(port2, inbox2, tls_context=server_tls, require_starttls=True):
        async with open_engine(tmp_path / "e", **mail_settings(
                port2, smtp_security="starttls")) as (engine, listening):
            async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
                await setup(http)
                ticket = (await http.post("/api/inbound/email", params={"shop": SHOP},
                                          content=raw_mail("<t2@example.com>", "x", "y"),
                                          headers=KEY)).json()["ticket"]
                await http.post(f"/api/tickets/{ticket}/comments", json={
                    "body": "z", "public": True}, headers=AGENT)
                await until(lambda: any(
                    "CERTIFICATE_VERIFY_FAILED" in (i["error"] or "")
                    for _, i in engine.store.scan("mail_outbox")))
                assert inbox2.mail == []


def test_smtp_settings_are_checked_at_start(tmp_path: Path) -> None:
    from octim.config import load_settings
    from octim.errors import ConfigError
    base = {"data": str(tmp_path), "secret": "s" * 32, "api_key": "k" * 16}
    for bad in ({"smtp": "nohost"}, {"smtp_security": "maybe"}, {"smtp_from": "x"},
                {"smtp_ca_file": str(tmp_path / "missing.pem")}):
        with pytest.raises(ConfigError):
            load_settings(env={}, flags={**base, **bad})
