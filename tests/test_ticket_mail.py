"""Inbound email over real HTTP: a new message opens a ticket; replies thread by
In-Reply-To, References or the [T-n] subject token, only from the requester; a second
delivery of one message changes nothing; HTML-only mail and quoted history."""

from __future__ import annotations

from pathlib import Path

import httpx

from octim.testing import TEST_API_KEY, open_engine

SHOP = "s1"
KEY = {"Authorization": f"Bearer {TEST_API_KEY}", "Content-Type": "message/rfc822"}


def mail(message_id: str, subject: str, body: str, *, sender: str = "Li Lei <lilei@example.com>",
         reply_to: str = "", references: str = "", html: bool = False) -> bytes:
    headers = [f"From: {sender}", "To: support@shop.example", f"Subject: {subject}",
               f"Message-ID: {message_id}", "MIME-Version: 1.0",
               f"Content-Type: text/{'html' if html else 'plain'}; charset=utf-8",
               "Content-Transfer-Encoding: 8bit"]
    if reply_to:
        headers.append(f"In-Reply-To: {reply_to}")
    if references:
        headers.append(f"References: {references}")
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode()


async def test_email_opens_and_threads_tickets(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d") as (_, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            (await http.put(f"/api/shops/{SHOP}", json={"name": SHOP},
                            headers={"Authorization": f"Bearer {TEST_API_KEY}"})
             ).raise_for_status()

            async def post(raw: bytes, shop: str = SHOP) -> httpx.Response:
                return await http.post("/api/inbound/email", params={"shop": shop},
                                       content=raw, headers=KEY)

            first = (await post(mail("<m1@example.com>", "退款还没到账",
                                     "订单 o-9 退款一周了"))).json()
            assert first["label"] == "T-1" and first["threaded"] is False
            url = f"/api/tickets/{first['ticket']}"
            ticket = (await http.get(url, headers=KEY)).json()
            assert ticket["requester"] == "email:lilei@example.com"
            assert ticket["source"]["kind"] == "email"
            assert ticket["description"] == "订单 o-9 退款一周了"

            # A reply (In-Reply-To), with the quoted history left out.
            reply = await post(mail("<m2@example.com>", "Re: 退款还没到账",
                                    "还是没有\r\n\r\nOn Mon, Li wrote:\r\n> 订单 o-9 退款一周了",
                                    reply_to="<m1@example.com>"))
            assert reply.json()["threaded"] is True and reply.json()["label"] == "T-1"
            # The same message again: nothing twice.
            again = (await post(mail("<m2@example.com>", "Re: 退款还没到账", "还是没有",
                                     reply_to="<m1@example.com>"))).json()
            assert again["duplicate"] is True
            # By References only, and by the subject token with no headers at all.
            await post(mail("<m3@example.com>", "补充", "截图在附件",
                            references="<x@y> <m2@example.com>"))
            await post(mail("<m4@example.com>", "关于 [T-1] 的问题", "<p>请<b>尽快</b>处理</p>",
                            html=True))
            thread = (await http.get(url, headers=KEY)).json()["thread"]
            assert [e["body"] for e in thread] == ["还是没有", "截图在附件", "请尽快处理"]
            assert all(e["public"] and e["role"] == "buyer" for e in thread)

            # Someone else quoting the number does not get into this ticket.
            stranger = (await post(mail("<m5@example.com>", "Re: [T-1] 退款", "我也是",
                                        sender="x@evil.example",
                                        reply_to="<m1@example.com>"))).json()
            assert stranger["threaded"] is False and stranger["label"] == "T-2"
            # Bad input: no sender, no Message-ID, an unknown shop, no API key.
            assert (await post(b"Subject: x\r\n\r\nhi")).status_code == 422
            assert (await post(b"From: a@b.c\r\nSubject: x\r\n\r\nhi")).json()["error"][
                "code"] in ("invalid_argument", "invalid_body")
            assert (await post(mail("<m6@e>", "x", "y"), shop="nope")).status_code == 404
            anonymous = await http.post("/api/inbound/email", params={"shop": SHOP},
                                        content=mail("<m7@e>", "x", "y"))
            assert anonymous.status_code == 401


async def test_hostile_mail_gets_a_stable_error_or_a_ticket_never_a_5xx(tmp_path: Path) -> None:
    nested = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" * 200
    cases = [
        mail("<h1@e>", "bad \udcff bytes".encode("utf-8", "surrogateescape").decode(
            "utf-8", "replace"), "x"),
        b"From: a@b.c\r\nMessage-ID: <h2@e>\r\nSubject: \xff\xfe\r\n\r\n\xed\xa0\x80\xff",
        b"From: a@b.c\r\nMessage-ID: <h3@e>\r\nSubject: =?utf-8?b?7aCA?=\r\n"
        b"Content-Type: text/plain; charset=x-no-such\r\n\r\nhi",
        b"From: a@b.c\r\nMessage-ID: <h4@e>\r\n" + nested,
        bytes(range(256)) * 4,
        b"",
        b"From: " + b"a" * 5000 + b"@b.c\r\nMessage-ID: <h5@e>\r\n\r\nx",
    ]
    async with open_engine(tmp_path / "d") as (_, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            (await http.put(f"/api/shops/{SHOP}", json={"name": SHOP},
                            headers={"Authorization": f"Bearer {TEST_API_KEY}"})
             ).raise_for_status()
            for raw in cases:
                answer = await http.post("/api/inbound/email", params={"shop": SHOP},
                                         content=raw, headers=KEY)
                assert answer.status_code in (200, 422), (raw[:60], answer.text)
                if answer.status_code == 422:
                    assert answer.json()["error"]["code"] in ("invalid_body",
                                                              "invalid_argument")
            too_big = await http.post("/api/inbound/email", params={"shop": SHOP},
                                      content=b"x" * (11 << 20), headers=KEY)
            assert too_big.status_code == 413
            # The body was not read to its end, so the connection is not reused.
            assert too_big.headers.get("connection") == "close"
            # The engine still works for the next honest message.
            ok = await http.post("/api/inbound/email", params={"shop": SHOP},
                                 content=mail("<fine@e>", "正常", "你好"), headers=KEY)
            assert ok.status_code == 200 and ok.json()["threaded"] is False


PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00"
       b"\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00"
       b"\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82")


async def test_attachments_become_uploads_only_the_ticket_can_read(tmp_path: Path) -> None:
    from email.message import EmailMessage

    from octim.testing import token

    def with_files(message_id: str, subject: str, reply_to: str = "") -> bytes:
        msg = EmailMessage()
        msg["From"] = "Li Lei <lilei@example.com>"
        msg["To"] = "support@shop.example"
        msg["Subject"] = subject
        msg["Message-ID"] = message_id
        if reply_to:
            msg["In-Reply-To"] = reply_to
        msg.set_content("照片和发票在附件里")
        msg.add_attachment(PNG, maintype="image", subtype="png", filename="破损照片.png")
        msg.add_attachment(b"%PDF-1.4\n%fake but typed\n", maintype="application",
                           subtype="pdf", filename="../../发票.pdf")
        return msg.as_bytes()

    async with open_engine(tmp_path / "d") as (engine, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            api = {"Authorization": f"Bearer {TEST_API_KEY}"}
            for shop in (SHOP, "s2"):
                (await http.put(f"/api/shops/{shop}", json={"name": shop}, headers=api)
                 ).raise_for_status()
            opened = (await http.post("/api/inbound/email", params={"shop": SHOP},
                                      content=with_files("<a1@e>", "货损"), headers=KEY)
                      ).json()
            ticket = (await http.get(f"/api/tickets/{opened['ticket']}", headers=api)).json()
            files = ticket["attachments"]
            assert [(f["name"], f["mime"]) for f in files] == [
                ("破损照片.png", "image/png"), ("发票.pdf", "application/pdf")]
            again = await http.post("/api/inbound/email", params={"shop": SHOP},
                                    content=with_files("<a1@e>", "货损"), headers=KEY)
            assert again.json()["duplicate"] is True
            assert sum(1 for _ in engine.store.scan("uploads")) == 2  # nothing stored twice

            reply = await http.post("/api/inbound/email", params={"shop": SHOP},
                                    content=with_files("<a2@e>", "Re: 货损", "<a1@e>"),
                                    headers=KEY)
            assert reply.json()["threaded"] is True
            thread = (await http.get(f"/api/tickets/{opened['ticket']}", headers=api)
                      ).json()["thread"]
            assert [f["name"] for f in thread[-1]["attachments"]] == ["破损照片.png", "发票.pdf"]

            staff = {"Authorization": f"Bearer {token('a1', 'agent', SHOP)}"}
            photo = await http.get(files[0]["url"], headers=staff)
            assert photo.status_code == 200 and photo.content == PNG
            pdf = await http.get(files[1]["url"], headers=staff)
            assert pdf.headers["content-disposition"].startswith("attachment; filename*=UTF-8''")
            for stranger in (token("a9", "agent", "s2"), token("b-other")):
                refused = await http.get(files[0]["url"],
                                         headers={"Authorization": f"Bearer {stranger}"})
                assert refused.status_code == 404


async def test_a_linked_address_writes_as_its_buyer(tmp_path: Path) -> None:
    """An address the platform linked to a buyer (identities) opens tickets as that buyer,
    whatever its case; a ticket it opened before the link still takes its replies; the
    new ticket is listed under the buyer."""
    auth = {"Authorization": f"Bearer {TEST_API_KEY}"}
    async with open_engine(tmp_path / "d") as (_, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            (await http.put(f"/api/shops/{SHOP}", json={"name": SHOP}, headers=auth)
             ).raise_for_status()

            async def post(raw: bytes) -> dict:
                answer = await http.post("/api/inbound/email", params={"shop": SHOP},
                                         content=raw, headers=KEY)
                answer.raise_for_status()
                return answer.json()

            before = await post(mail("<l1@example.com>", "发票", "要开发票"))
            (await http.put("/api/customers/buyer-7/identities", headers=auth, json={
                "identities": [{"type": "email", "value": "LiLei@Example.com"}]})
             ).raise_for_status()
            after = await post(mail("<l2@example.com>", "换货", "尺码不对"))
            opened = (await http.get(f"/api/tickets/{after['ticket']}", headers=KEY)).json()
            assert opened["requester"] == "buyer-7"
            # The ticket the address opened before the link still takes its reply.
            reply = await post(mail("<l3@example.com>", "Re: 发票", "抬头是公司",
                                    reply_to="<l1@example.com>"))
            assert reply["threaded"] is True and reply["ticket"] == before["ticket"]
            mine = (await http.get("/api/tickets", params={"shop": SHOP,
                                                           "requester": "buyer-7"},
                                   headers=KEY)).json()
            assert [t["id"] for t in mine] == [after["ticket"]]
