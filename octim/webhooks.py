"""Webhooks out: signed event deliveries to the platform, retried, dead-lettered.

The :class:`WebhookSender` is a pykka ThreadingActor: every HTTP call happens
on its thread, so a slow or failing receiver never slows chat traffic on the
trio loop. Each delivery is a POST of the JSON event with

* ``X-Octim-Event``: the event name, ``X-Octim-Delivery``: a unique id,
* ``X-Octim-Timestamp``: seconds since the epoch,
* ``X-Octim-Signature``: ``sha256=`` + HMAC-SHA256(secret, ``timestamp + "." + body``).

Deliveries never reach the engine's own network by default (server-side
request forgery): the sender resolves the host itself, refuses loopback,
private, link-local and other non-global addresses unless ``webhook_allow``
lists them (networks, or host names), and connects to exactly the address it
checked (the ``Host`` header and TLS server name keep the URL's host name), so
DNS rebinding cannot swap in another address between the check and the
connection. A refused address counts as a failed attempt.

A 2xx answer is success. Otherwise the delivery is retried ``webhook_backoff``
seconds after the failed attempt started, doubling each time, up to
``webhook_attempts`` attempts; then it is reported back to trio, which keeps it in the
``webhook_dead`` database until someone re-sends it. Retries are due-time
driven by the engine's tick, so the thread never sleeps.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import ipaddress
import json
import logging
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pykka
import trio

from octim.proxies import Network, parse_targets

log = logging.getLogger("octim.webhooks")

EVENTS = ("conversation.opened", "conversation.assigned", "conversation.transferred",
          "conversation.resolved", "conversation.closed", "message.sent", "rating.given",
          "ticket.created", "ticket.updated", "ticket.commented", "ticket.solved",
          "ticket.sla_breached")


class TargetRefused(Exception):
    """A webhook URL resolves to an address the policy refuses."""


@dataclass(frozen=True)
class TargetPolicy:
    """Which addresses webhooks may reach: global ones, plus what ``webhook_allow`` lists."""

    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def from_setting(cls, value: str) -> TargetPolicy:
        """``"10.0.0.0/8, hooks.internal"``: networks and host names."""
        networks, hosts = parse_targets(value, names=True)
        return cls(networks, hosts)

    def allowed(self, address: str, host: str) -> bool:
        """Whether connecting to ``address`` (resolved from ``host``) is allowed."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if host.lower().rstrip(".") in self.hosts or any(ip in n for n in self.networks):
            return True
        return ip.is_global and not ip.is_multicast

    def pin(self, url: str) -> tuple[str, str, dict[str, Any]]:
        """Resolve ``url``'s host, check the address, and return the URL to connect to
        (the address itself), its ``Host`` header and the TLS server name."""
        parts = urlsplit(url)
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host:
            raise TargetRefused(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise TargetRefused(f"cannot resolve {host!r}: {exc}") from None
        address = str(infos[0][4][0])
        if not self.allowed(address, host):
            raise TargetRefused(f"{host} resolves to {address}, which is not a public "
                                "address (allow it with the webhook_allow setting)")
        literal = f"[{address}]" if ":" in address else address
        pinned = urlunsplit((parts.scheme, f"{literal}:{port}", parts.path or "/",
                             parts.query, ""))
        host_header = parts.netloc.rpartition("@")[2]
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        return pinned, host_header, extensions


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Octim-Signature`` value for a delivery."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@dataclass(slots=True)
class Delivery:
    id: str
    endpoint: str
    url: str
    secret: str
    event: str
    body: bytes
    attempts: int = 0
    last_error: str = ""

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "endpoint": self.endpoint, "url": self.url,
                "event": self.event, "payload": json.loads(self.body),
                "attempts": self.attempts, "last_error": self.last_error}


@dataclass(frozen=True, slots=True)
class SetEndpoints:
    endpoints: dict[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Publish:
    event: str
    payload: dict[str, Any]
    handled: Callable[[], None] = lambda: None  # frees the publisher's backlog slot


@dataclass(frozen=True, slots=True)
class Resend:
    record: dict[str, Any]
    secret: str


@dataclass(frozen=True, slots=True)
class Tick:
    now: float


@dataclass
class _Queue:
    due: list[tuple[float, int, Delivery]] = field(default_factory=list)
    counter: int = 0


class WebhookSender(pykka.ThreadingActor):
    """See the module docstring."""

    use_daemon_thread = True

    def __init__(self, *, timeout: float, attempts: int, backoff: float,
                 dead: Callable[[dict[str, Any]], None], token: trio.lowlevel.TrioToken,
                 transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float], allow: TargetPolicy | None = None) -> None:
        super().__init__()
        self._clock = clock  # the engine's clock (wall seconds): timestamps and retries
        self._policy = allow or TargetPolicy.from_setting("")
        self._endpoints: dict[str, dict[str, Any]] = {}
        self._queue = _Queue()
        self._attempts, self._backoff = attempts, backoff
        self._dead, self._token = dead, token
        self._client = httpx.Client(timeout=timeout, transport=transport)

    def on_stop(self) -> None:
        self._client.close()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, SetEndpoints):
            self._endpoints = dict(message.endpoints)
        elif isinstance(message, Publish):
            try:
                body = json.dumps({"event": message.event, "data": message.payload,
                                   "ts": int(self._clock() * 1000)},
                                  ensure_ascii=False).encode()
                for endpoint_id, endpoint in self._endpoints.items():
                    if message.event in endpoint["events"] or "*" in endpoint["events"]:
                        self._try(Delivery("d" + secrets.token_hex(8), endpoint_id,
                                           endpoint["url"], endpoint["secret"], message.event,
                                           body))
            finally:
                message.handled()
        elif isinstance(message, Resend):
            record = message.record
            body = json.dumps(record["payload"], ensure_ascii=False).encode()
            self._try(Delivery(record["id"], record["endpoint"], record["url"], message.secret,
                               record["event"], body))
        elif isinstance(message, Tick):
            while self._queue.due and self._queue.due[0][0] <= message.now:
                _, _, delivery = heapq.heappop(self._queue.due)
                self._try(delivery)
        return None

    def _try(self, delivery: Delivery) -> None:
        delivery.attempts += 1
        started = self._clock()
        timestamp = str(int(started))
        try:
            url, host_header, extensions = self._policy.pin(delivery.url)
            response = self._client.post(url, content=delivery.body, headers={
                "Host": host_header,
                "Content-Type": "application/json", "X-Octim-Event": delivery.event,
                "X-Octim-Delivery": delivery.id, "X-Octim-Timestamp": timestamp,
                "X-Octim-Signature": sign(delivery.secret, timestamp, delivery.body)},
                extensions=extensions)
            if 200 <= response.status_code < 300:
                return
            delivery.last_error = f"HTTP {response.status_code}"
        except TargetRefused as exc:
            delivery.last_error = f"refused: {exc}"[:300]
        except httpx.HTTPError as exc:
            delivery.last_error = f"{type(exc).__name__}: {exc}"[:300]
        if delivery.attempts >= self._attempts:
            log.warning("webhook delivery failed for good", extra={
                "delivery": delivery.id, "url": delivery.url, "error": delivery.last_error})
            record = delivery.record()
            try:
                self._token.run_sync_soon(self._dead, record)
            except trio.RunFinishedError:
                pass
            return
        # The backoff counts from the attempt's start, not from when its failure was
        # known (a slow receiver does not push the schedule back).
        delay = self._backoff * 2 ** (delivery.attempts - 1)
        self._queue.counter += 1
        heapq.heappush(self._queue.due, (started + delay, self._queue.counter,
                                         delivery))
