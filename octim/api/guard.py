"""The HTTP edge's guard, an ASGI middleware in front of FastAPI.

It runs before any route and before a byte of the body is read:

1. **Proxies.** ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed only
   when the peer is one of the configured ``trusted_proxies``; otherwise the
   socket's own address is the client's.
2. **Credentials first.** A request that carries a body (``POST``, ``PUT``,
   ``PATCH``, ``DELETE`` under ``/api/``) must present a credential that
   verifies (the API key or a person's JWT) in its headers; otherwise 401 with
   nothing read. Which role a route needs is still the route's own check; the
   verified caller is left in the scope so the route does not verify it again.
   A channel's signed routes (``POST /api/channels/{id}/messages`` and
   ``/receipts``) present ``X-Octim-Signature`` and ``X-Octim-Timestamp``
   instead: a timestamp more than ``channel_clock_skew`` seconds off the
   engine's clock is refused (401 ``stale_request``) before the body is read;
   the route checks the signature over the body with the channel's secret.
3. **Size while streaming.** A declared ``Content-Length`` over the route's
   limit is answered 413 at once; a body that grows past it is cut off at the
   limit with 413. JSON routes take ``max_json_body_bytes`` (so no parse holds
   the loop for more than a few milliseconds); uploads their own per-kind limit.
4. **Storable JSON.** A JSON body is checked by :func:`octim.values.check_json`
   (no NaN, lone surrogates, integers past 64 bits, deep nesting), a scan of
   the bytes that leaves the one decode to FastAPI: ``422 invalid_body`` here,
   never a 500 inside.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from octim import logs
from octim.api.auth import CALLER, identify
from octim.auth import AuthError
from octim.config import Settings
from octim.errors import ClientError, OctimError
from octim.proxies import forwarded_client, in_networks, parse_networks
from octim.values import check_json

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Routes whose body is not JSON (each checks its own size limit while streaming).
RAW_BODIES = frozenset({"/api/uploads", "/api/inbound/email"})
#: Routes that take JSON Lines: read whole up to their own limit, each line checked
#: by the route (the body as a whole is not one JSON document).
NDJSON_BODIES = {"/api/kb/import": 4 * 1024 * 1024}
SIGNED = re.compile(r"/api/channels/[A-Za-z0-9_-]{1,64}/(messages|receipts)")


class StaleRequest(ClientError):
    """A signed request's timestamp is missing or too far from the engine's clock."""

    code = "stale_request"
    status = 401


class RequestGuard:
    """See the module docstring."""

    def __init__(self, app: ASGIApp, settings: Settings,
                 clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.settings = settings
        self.clock = clock  # the engine's (signed requests' timestamps)
        self.trusted = parse_networks(settings.trusted_proxies)
        self.upload_limit = max(settings.max_image_bytes, settings.max_voice_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if self.trusted:
            self._apply_proxy_headers(scope, headers)
        path: str = scope["path"]
        if scope["method"] not in BODY_METHODS or not path.startswith("/api/"):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "POST" and "authorization" not in headers and \
                SIGNED.fullmatch(path):
            stamp = headers.get("x-octim-timestamp", "")
            if not stamp.isdigit() or len(stamp) > 12 or \
                    abs(int(stamp) - self.clock()) > self.settings.channel_clock_skew:
                await _answer(send, 401, StaleRequest.code, "X-Octim-Timestamp must be the "
                              "current Unix time in seconds (within "
                              f"{self.settings.channel_clock_skew:g} s)")
                return
            if not headers.get("x-octim-signature"):
                await _answer(send, 401, "invalid_signature", "X-Octim-Signature is missing")
                return
        else:
            try:
                scope[CALLER] = (identify(headers.get("authorization"), self.settings),)
            except AuthError as exc:
                await _answer(send, 401, exc.code, str(exc), {"www-authenticate": "Bearer"})
                return
        raw = path in RAW_BODIES
        lines = NDJSON_BODIES.get(path)
        limit = self.upload_limit if raw else lines or self.settings.max_json_body_bytes
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _too_large(send, limit)
            return
        if raw:  # the upload route streams and checks its own per-kind limit
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive, limit)
        if body is None:
            await _too_large(send, limit)
            return
        if body.strip() and lines is None:
            try:
                check_json(body)  # scanned, not decoded: FastAPI decodes it once
            except OctimError as exc:
                await _answer(send, 422, "invalid_body", str(exc))
                return
        await self.app(scope, _replay(body, receive), send)

    def _apply_proxy_headers(self, scope: Scope, headers: dict[str, str]) -> None:
        client = scope.get("client")
        peer = client[0] if client else None
        if peer is None or not in_networks(peer, self.trusted):
            return
        address = forwarded_client(peer, headers.get("x-forwarded-for"), self.trusted)
        if address is not None and address != peer:
            scope["client"] = (address, 0)
        proto = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        if proto in ("http", "https"):
            scope["scheme"] = proto


REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
SHOP_PATH = re.compile(r"/api/shops/([A-Za-z0-9._-]{1,128})(?:/|$)")


class RequestIds:
    """Every HTTP request gets an id: the client's ``X-Request-Id`` when it is a plain
    token of at most 64 characters, else a new one. It is echoed in the response's
    ``X-Request-Id`` and bound to the request task's log lines (octim/logs.py), with the
    shop its path names."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _headers(scope).get("x-request-id", "")
        request_id = given if REQUEST_ID.fullmatch(given) else secrets.token_hex(8)
        shop = SHOP_PATH.match(scope["path"])
        logs.bind(request_id=request_id, shop=shop.group(1) if shop else None)

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()),
                                                  (b"x-request-id", request_id.encode())]}
            await send(message)

        await self.app(scope, receive, sending)


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        out.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return out


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit`` (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replay


async def _too_large(send: Send, limit: int) -> None:
    await _answer(send, 413, "too_large", f"the body is limited to {limit} bytes",
                  {"connection": "close"})


async def _answer(send: Send, status: int, code: str, message: str,
                  extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
