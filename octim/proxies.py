"""Which peers may speak for a client: the ``trusted_proxies`` setting and
``X-Forwarded-For``, shared by the HTTP guard and the WebSocket gateway."""

from __future__ import annotations

import ipaddress

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 127.0.0.1"`` as networks (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False)
                 for part in text.split(",") if part.strip())


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
