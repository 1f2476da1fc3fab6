"""Signed HTTP deliveries out: webhooks to the platform and replies to ``api`` channels.

What to deliver is durable: the courier (:mod:`octim.courier`) keeps it in the store's
``outbox`` and decides when each attempt happens. The :class:`Poster`s here are pykka
ThreadingActors that make the HTTP calls on their own threads, so a slow or failing
receiver never slows chat traffic on the trio loop. Each delivery is a POST of JSON with

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

A 2xx answer is success; anything else is a failed attempt, retried by the courier.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
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
          "ticket.sla_breached", "notice.sent", "campaign.finished")


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


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST for the courier (octim.courier): what to send, and where to report."""

    key: bytes
    url: str
    secret: str
    event: str
    delivery: str
    body: bytes
    timestamp: str
    done: Callable[[bytes, str | None], None]  # on the trio thread: (key, error or None)


class Poster(pykka.ThreadingActor):
    """Posts one :class:`Attempt` at a time on its own thread, so a slow or failing
    receiver never slows chat traffic on the trio loop; reports each result back to
    trio. What to send and when (retries, dead letters) is the courier's."""

    use_daemon_thread = True

    def __init__(self, *, timeout: float, token: trio.lowlevel.TrioToken,
                 allow: TargetPolicy, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__()
        self._policy = allow
        self._token = token
        self._client = httpx.Client(timeout=timeout, transport=transport)

    def on_stop(self) -> None:
        self._client.close()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Attempt):
            error = self._post(message)
            try:
                self._token.run_sync_soon(message.done, message.key, error)
            except trio.RunFinishedError:
                pass
        return None

    def _post(self, attempt: Attempt) -> str | None:
        try:
            url, host_header, extensions = self._policy.pin(attempt.url)
            response = self._client.post(url, content=attempt.body, headers={
                "Host": host_header,
                "Content-Type": "application/json", "X-Octim-Event": attempt.event,
                "X-Octim-Delivery": attempt.delivery, "X-Octim-Timestamp": attempt.timestamp,
                "X-Octim-Signature": sign(attempt.secret, attempt.timestamp, attempt.body)},
                extensions=extensions)
            if 200 <= response.status_code < 300:
                return None
            return f"HTTP {response.status_code}"
        except TargetRefused as exc:
            return f"refused: {exc}"[:300]
        except Exception as exc:  # anything else (a URL httpx refuses…) is a failed attempt
            return f"{type(exc).__name__}: {exc}"[:300]
