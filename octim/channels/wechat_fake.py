"""A FAKE of WeChat's servers, for tests and the demo: WeChat cannot be reached here.

It follows WeChat's documented formats and nothing more: it hands out access tokens
(``GET /cgi-bin/token``, 7200 s), accepts customer-service messages
(``POST /cgi-bin/message/custom/send?access_token=``, ``text`` and ``news``) and records
them per ``touser``, and pushes buyers' messages to an adapter the way WeChat does (the
XML body, ``signature``/``timestamp``/``nonce`` in the query). Error codes it gives:
``40013`` (wrong appid or secret), ``40001`` (unknown or revoked token), ``45015`` (the
buyer is outside the 48-hour window, when a test says so), ``44002`` (empty body).

For trying it by hand (``octim demo``), two conveniences WeChat does not have:
``GET /fake/push?openid=&text=`` pushes a buyer's text to ``adapter_url`` as WeChat would,
and ``GET /fake/inbox?openid=`` lists what the buyer received.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from octim.channels.wechat import wechat_signature


@dataclass
class FakeWeChat:
    """A local stand-in for ``api.weixin.qq.com`` (see the module docstring)."""

    appid: str = "wx-fake-appid"
    appsecret: str = "fake-app-secret"
    token: str = "fake-push-token"  # the account's server-configuration token
    account: str = "gh_fake_account"
    sent: list[dict[str, Any]] = field(default_factory=list)  # custom messages received
    tokens: set[str] = field(default_factory=set)
    outside_window: set[str] = field(default_factory=set)  # openids past 48 hours
    lock: threading.Lock = field(default_factory=threading.Lock)
    adapter_url: str = ""  # where /fake/push pushes (the adapter's /wechat)
    pushed: int = 0

    def start(self) -> FakeWeChat:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path == "/fake/push" and fake.adapter_url:
                    with fake.lock:
                        fake.pushed += 1
                        msg_id = int(time.time() * 1000) * 100 + fake.pushed % 100
                    answer = fake.push(fake.adapter_url, query.get("openid", ""),
                                       Content=query.get("text", ""), msg_id=msg_id)
                    return self._json({"adapter_answered": answer.status_code,
                                       "body": answer.text})
                if parts.path == "/fake/inbox":
                    return self._json({"messages": fake.texts_to(query.get("openid", ""))})
                if parts.path != "/cgi-bin/token":
                    return self._json({"errcode": 404, "errmsg": "not found"})
                if query.get("appid") != fake.appid or query.get("secret") != fake.appsecret:
                    return self._json({"errcode": 40013, "errmsg": "invalid appid"})
                issued = secrets.token_hex(16)
                with fake.lock:
                    fake.tokens.add(issued)
                return self._json({"access_token": issued, "expires_in": 7200})

            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if parts.path != "/cgi-bin/message/custom/send":
                    return self._json({"errcode": 404, "errmsg": "not found"})
                if query.get("access_token") not in fake.tokens:
                    return self._json({"errcode": 40001, "errmsg": "invalid credential"})
                if not raw:
                    return self._json({"errcode": 44002, "errmsg": "empty post data"})
                message = json.loads(raw)
                if message.get("touser") in fake.outside_window:
                    return self._json({"errcode": 45015,
                                       "errmsg": "response out of time limit"})
                with fake.lock:
                    fake.sent.append(message)
                return self._json({"errcode": 0, "errmsg": "ok"})

            def _json(self, data: dict[str, Any]) -> None:
                body = json.dumps(data).encode()
                self.send_response(200)  # WeChat answers 200 with an errcode
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()

    def revoke_tokens(self) -> None:
        """As if the token expired early (WeChat then answers 40001)."""
        with self.lock:
            self.tokens.clear()

    def push_xml(self, openid: str, kind: str = "text", *, msg_id: int | None = None,
                 created: int | None = None, **fields: str) -> bytes:
        """A message as WeChat pushes it (CDATA where WeChat uses it)."""
        created = int(time.time()) if created is None else created
        parts = [f"<ToUserName><![CDATA[{self.account}]]></ToUserName>",
                 f"<FromUserName><![CDATA[{openid}]]></FromUserName>",
                 f"<CreateTime>{created}</CreateTime>",
                 f"<MsgType><![CDATA[{kind}]]></MsgType>"]
        parts += [f"<{name}><![CDATA[{value.replace(']]>', ']]]]><![CDATA[>')}]]></{name}>"
                  for name, value in fields.items()]
        if msg_id is not None:
            parts.append(f"<MsgId>{msg_id}</MsgId>")
        return ("<xml>" + "".join(parts) + "</xml>").encode()

    def push(self, adapter_url: str, openid: str, kind: str = "text", *,
             msg_id: int | None = None, **fields: str) -> httpx.Response:
        """Push a buyer's message to an adapter's server URL, signed as WeChat signs."""
        stamp, nonce = str(int(time.time())), secrets.token_hex(5)
        body = self.push_xml(openid, kind, msg_id=msg_id, created=None, **fields)
        return httpx.post(adapter_url, content=body,
                          params={"signature": wechat_signature(self.token, stamp, nonce),
                                  "timestamp": stamp, "nonce": nonce,
                                  "openid": openid}, timeout=10)

    def texts_to(self, openid: str) -> list[str]:
        with self.lock:
            return [m["text"]["content"] if m["msgtype"] == "text" else
                    m["news"]["articles"][0]["title"]
                    for m in self.sent if m["touser"] == openid]
