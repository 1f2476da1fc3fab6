"""Address-list settings and which peers may speak for a client: the one parser
of ``trusted_proxies`` and ``webhook_allow``, and ``X-Forwarded-For`` for the
HTTP guard and the WebSocket gateway."""

from __future__ import annotations

import ipaddress
import re

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*\.?")


def parse_targets(text: str, *, names: bool) -> tuple[tuple[Network, ...], frozenset[str]]:
    """``"10.0.0.0/8, 127.0.0.1, hooks.internal"`` as networks (a bare address is a
    /32 or /128) and, when ``names``, lower-case host names; ``ValueError`` naming
    the first part that is neither."""
    networks: list[Network] = []
    hosts: set[str] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            if not names or not _HOST_NAME.fullmatch(part):
                what = "an address, network or host name" if names else "an address or network"
                raise ValueError(f"{part!r} is not {what}") from None
            hosts.add(part.lower().rstrip("."))
    return tuple(networks), frozenset(hosts)


def parse_networks(text: str) -> tuple[Network, ...]:
    """The networks of an address-list setting that takes no host names."""
    return parse_targets(text, names=False)[0]


def in_networks(address: str, networks: tuple[Network, ...]) -> bool:
    """Whether ``address`` (an IP literal) lies in one of ``networks``."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return any(ip in net for net in networks)


def forwarded_client(peer: str | None, forwarded_for: str | None,
                     trusted: tuple[Network, ...]) -> str | None:
    """The client's address: the rightmost ``X-Forwarded-For`` hop that is not a
    trusted proxy, if the peer itself is trusted; else the peer."""
    if peer is None or not forwarded_for or not in_networks(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not in_networks(hop, trusted):
            return hop
    return hops[0] if hops else peer
