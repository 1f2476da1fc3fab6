"""A WeChat Official Account (微信公众号) adapter: WeChat's push format on one side, OctIM's
generic channel API on the other. A reference for writing adapters (docs/channels.md).

Run it beside the engine (``octim wechat``, or :func:`create_app` in a program) and set
the Official Account's server URL (服务器配置) to its ``/wechat`` path, in plaintext mode
(明文模式; the encrypted mode is not implemented). The OctIM channel is an ``api``
channel whose ``outbound_url`` is this adapter's ``/outbound``.

WeChat → OctIM
    ``GET /wechat`` answers WeChat's server verification: ``signature`` is the SHA-1 of
    the sorted ``token``, ``timestamp`` and ``nonce``; a valid one is answered with
    ``echostr``. ``POST /wechat`` (the same signature in the query) carries one XML
    message: ``text``, ``image`` (a ``link`` to its ``PicUrl`` for OctIM), ``voice``
    (WeChat's ``Recognition`` text when the account has it on, else ``[语音]``) and
    ``event`` (``subscribe``, ``unsubscribe``, menu clicks: acknowledged, not forwarded,
    since no buyer asked anything). Each is posted to ``POST /api/channels/{id}/messages``
    signed with the channel's secret, ``MsgId`` as the external id (so WeChat's own
    retries, sent when we answer late, are stored once), ``CreateTime`` as its time.
    WeChat is answered ``success``: replies go out later, through the API below.

OctIM → WeChat
    ``POST /outbound`` takes OctIM's signed deliveries and sends each through the
    customer-service message API (客服消息, ``/cgi-bin/message/custom/send``) with an
    access token from ``/cgi-bin/token`` (cached until shortly before ``expires_in``,
    fetched again on ``40001``/``42001``). Text goes as ``text``, a link as a one-article
    ``news``. WeChat's ``errcode`` decides: 0 → answer OctIM 200 and post a ``delivered``
    receipt; a permanent error (``45015``: the buyer last wrote more than 48 hours ago;
    ``45047``, ``43004``…) → 200 and a ``failed`` receipt with the error (retrying cannot
    help); anything else (network, ``-1`` busy) → 503, so OctIM retries with backoff.

WeChat's servers cannot be reached from where OctIM is tested: the tests run this adapter
against :mod:`octim.channels.wechat_fake`, a local stand-in written to the formats above.
"""

# No ``from __future__ import annotations``: FastAPI evaluates these annotations.
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import trio
from defusedxml import ElementTree
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from octim.config import HostPort
from octim.webhooks import sign

log = logging.getLogger("octim.wechat")

API_BASE = "https://api.weixin.qq.com"
MAX_PUSH_BYTES = 64 * 1024
PERMANENT = {45015, 45047, 43004, 40003, 48001, 45002}  # retrying cannot fix these
EXPIRED_TOKEN = {40001, 42001, 40014}


@dataclass(frozen=True)
class WeChatConfig:
    """What the adapter needs: the account's and the OctIM channel's credentials."""

    token: str  # the 令牌 of the server configuration (signs WeChat's pushes)
    appid: str
    appsecret: str
    octim: str  # OctIM's HTTP base URL
    channel: str  # the api channel's id
    channel_secret: str
    api_base: str = API_BASE  # WeChat's API (the fake's URL in tests)
    clock_skew: float = 300.0  # seconds an OctIM delivery's timestamp may be off


def wechat_signature(token: str, timestamp: str, nonce: str) -> str:
    """WeChat's push signature: SHA-1 of the three values sorted and joined."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


def parse_push(raw: bytes) -> dict[str, str]:
    """The fields of one pushed XML message (entities and DTDs refused by defusedxml)."""
    root = ElementTree.fromstring(raw)
    if root.tag != "xml":
        raise ValueError("not a WeChat message")
    return {child.tag: (child.text or "") for child in root}


def to_octim(push: dict[str, str]) -> dict[str, Any] | None:
    """The generic inbound message of a push, or None for what is not a buyer's message."""
    user, kind = push.get("FromUserName", ""), push.get("MsgType", "")
    created = push.get("CreateTime", "0")
    ts = int(created) * 1000 if created.isdigit() else None
    base = {"user": user, "id": push.get("MsgId") or f"{user}:{created}", "ts": ts}
    if kind == "text":
        return {**base, "kind": "text", "body": {"text": push.get("Content", "")}}
    if kind == "image":
        return {**base, "kind": "link", "body": {"url": push.get("PicUrl", ""),
                                                  "title": "[图片]"}}
    if kind == "voice":
        heard = push.get("Recognition", "").strip()
        return {**base, "kind": "text", "body": {"text": heard or "[语音]"}}
    return None  # events (subscribe, menu clicks), locations, links: nothing to answer


def to_wechat(delivery: dict[str, Any]) -> dict[str, Any]:
    """The customer-service message of an OctIM delivery."""
    body = delivery.get("body") or {}
    if delivery.get("kind") == "link":
        return {"touser": delivery["user"], "msgtype": "news", "news": {"articles": [{
            "title": body.get("title") or body["url"], "url": body["url"]}]}}
    return {"touser": delivery["user"], "msgtype": "text",
            "text": {"content": str(body.get("text", ""))}}


class WeChatAdapter:
    """See the module docstring."""

    def __init__(self, config: WeChatConfig, *, clock: Callable[[], float] = time.time,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self.clock = clock
        self.http = httpx.AsyncClient(timeout=10, transport=transport)
        self._token: tuple[str, float] | None = None  # access token, valid until

    async def access_token(self, *, fresh: bool = False) -> str:
        if self._token is not None and not fresh and self._token[1] > self.clock():
            return self._token[0]
        answer = await self.http.get(f"{self.config.api_base}/cgi-bin/token", params={
            "grant_type": "client_credential", "appid": self.config.appid,
            "secret": self.config.appsecret})
        data = answer.json()
        if "access_token" not in data:
            raise RuntimeError(f"WeChat refused a token: {data}")
        # Refresh ahead of expiry (WeChat: 7200 s), never trusting it to the second.
        self._token = (data["access_token"],
                       self.clock() + max(60, int(data.get("expires_in", 7200)) - 300))
        return str(data["access_token"])

    async def forward(self, message: dict[str, Any]) -> httpx.Response:
        """Post one inbound message to OctIM, signed with the channel's secret."""
        raw = json.dumps(message, ensure_ascii=False).encode()
        stamp = str(int(self.clock()))
        return await self.http.post(
            f"{self.config.octim}/api/channels/{self.config.channel}/messages", content=raw,
            headers={"Content-Type": "application/json", "X-Octim-Timestamp": stamp,
                     "X-Octim-Signature": sign(self.config.channel_secret, stamp, raw)})

    async def receipt(self, delivery: str, status: str, error: str = "") -> None:
        item: dict[str, Any] = {"delivery": delivery, "status": status,
                                "ts": int(self.clock() * 1000)}
        if error:
            item["error"] = error[:300]
        raw = json.dumps({"receipts": [item]}).encode()
        stamp = str(int(self.clock()))
        answer = await self.http.post(
            f"{self.config.octim}/api/channels/{self.config.channel}/receipts", content=raw,
            headers={"Content-Type": "application/json", "X-Octim-Timestamp": stamp,
                     "X-Octim-Signature": sign(self.config.channel_secret, stamp, raw)})
        if answer.status_code >= 300:
            log.warning("receipt refused", extra={"status": answer.status_code})

    async def send(self, delivery: dict[str, Any]) -> tuple[int, str]:
        """Send through the customer-service API: WeChat's ``errcode`` and ``errmsg``."""
        message = json.dumps(to_wechat(delivery), ensure_ascii=False).encode()
        for fresh in (False, True):
            token = await self.access_token(fresh=fresh)
            answer = await self.http.post(
                f"{self.config.api_base}/cgi-bin/message/custom/send",
                params={"access_token": token}, content=message,
                headers={"Content-Type": "application/json"})
            data = answer.json()
            code = int(data.get("errcode", 0))
            if code not in EXPIRED_TOKEN:
                return code, str(data.get("errmsg", ""))
        return code, str(data.get("errmsg", ""))

    async def close(self) -> None:
        await self.http.aclose()


def create_app(config: WeChatConfig, *, adapter: WeChatAdapter | None = None) -> FastAPI:
    """The adapter's HTTP application: ``/wechat`` for WeChat, ``/outbound`` for OctIM."""
    adapter = adapter or WeChatAdapter(config)
    app = FastAPI(title="OctIM WeChat adapter")
    app.state.adapter = adapter

    def verified(signature: str, timestamp: str, nonce: str) -> bool:
        expected = wechat_signature(config.token, timestamp, nonce)
        return hmac.compare_digest(expected, signature)

    Param = Annotated[str, Query(max_length=128)]

    @app.get("/wechat")
    async def verify(signature: Param, timestamp: Param, nonce: Param,
                     echostr: Param) -> PlainTextResponse:
        """WeChat's server URL verification."""
        if not verified(signature, timestamp, nonce):
            return PlainTextResponse("invalid signature", status_code=403)
        return PlainTextResponse(echostr)

    @app.post("/wechat")
    async def push(request: Request, signature: Param, timestamp: Param,
                   nonce: Param) -> PlainTextResponse:
        """One pushed message: forwarded to OctIM, then ``success`` to WeChat."""
        if not verified(signature, timestamp, nonce):
            return PlainTextResponse("invalid signature", status_code=403)
        raw = await request.body()
        if len(raw) > MAX_PUSH_BYTES:
            return PlainTextResponse("too large", status_code=413)
        try:
            message = to_octim(parse_push(raw))
        except (ValueError, ElementTree.ParseError) as exc:  # DTDs and entities land here
            log.warning("unreadable push", extra={"error": repr(exc)})
            return PlainTextResponse("bad message", status_code=400)
        if message is None:
            return PlainTextResponse("success")
        answer = await adapter.forward(message)
        if answer.status_code >= 500:  # WeChat pushes again; OctIM stores it once
            return PlainTextResponse("retry", status_code=503)
        if answer.status_code >= 300:
            log.warning("OctIM refused a message", extra={"answer": answer.text[:300]})
        return PlainTextResponse("success")

    @app.post("/outbound")
    async def outbound(request: Request) -> JSONResponse:
        """A reply from OctIM (signed with the channel's secret) → WeChat."""
        raw = await request.body()
        stamp = request.headers.get("x-octim-timestamp", "")
        given = request.headers.get("x-octim-signature", "")
        if not stamp.isdigit() or abs(int(stamp) - adapter.clock()) > config.clock_skew or \
                not hmac.compare_digest(given, sign(config.channel_secret, stamp, raw)):
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        delivery = json.loads(raw)
        try:
            code, why = await adapter.send(delivery)
        except (httpx.HTTPError, RuntimeError, ValueError) as exc:
            return JSONResponse({"error": f"WeChat unreachable: {exc}"}, status_code=503)
        if code == 0:
            await adapter.receipt(delivery["delivery"], "delivered")
            return JSONResponse({"sent": delivery["delivery"]})
        if code in PERMANENT:
            await adapter.receipt(delivery["delivery"], "failed", f"WeChat {code}: {why}")
            return JSONResponse({"failed": code})
        return JSONResponse({"error": f"WeChat {code}: {why}"}, status_code=503)

    return app


async def serve(config: WeChatConfig, bind: HostPort, *,
                task_status: trio.TaskStatus[HostPort] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the adapter on ``bind`` until cancelled; reports the bound address."""
    from octim.api.serve import serve_http

    await serve_http(create_app(config), bind, trio.sleep_forever, task_status=task_status)


def config_from_env(octim: str, channel: str, api_base: str,
                    env: dict[str, str]) -> WeChatConfig:
    """The adapter's configuration; its secrets come from the environment only
    (``OCTIM_WECHAT_TOKEN``, ``_APPID``, ``_APPSECRET``, ``_CHANNEL_SECRET``)."""
    missing = [name for name in ("TOKEN", "APPID", "APPSECRET", "CHANNEL_SECRET")
               if not env.get(f"OCTIM_WECHAT_{name}")]
    if missing:
        from octim.errors import ConfigError

        raise ConfigError(f"OCTIM_WECHAT_{missing[0]}", "is required but not set")
    return WeChatConfig(token=env["OCTIM_WECHAT_TOKEN"], appid=env["OCTIM_WECHAT_APPID"],
                        appsecret=env["OCTIM_WECHAT_APPSECRET"], octim=octim.rstrip("/"),
                        channel=channel, channel_secret=env["OCTIM_WECHAT_CHANNEL_SECRET"],
                        api_base=api_base.rstrip("/"))
