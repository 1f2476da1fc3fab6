"""Promotion-peak mode (大促模式): switched on for the platform or a shop, by hand or for
scheduled windows (docs/operations.md).

A record per scope in the ``peak`` database (``*``: the platform; else a shop id):
``{"on", "windows": [[from_ms, to_ms], …], "capacity_factor", "queue_cap"}``. A shop is in
peak mode while its own record or the platform's is on, or the engine's clock is inside
one of their windows. While it is:

* new conversations start **bot-first** (the bot answers; hand-off on request, anger or
  misses, as always);
* its agents' capacity is multiplied by ``capacity_factor`` (the shop's, else the
  platform's; 1.0 leaves it);
* past ``queue_cap`` waiting buyers, the queue offers the buyers behind it
  leave-a-message (a ticket), with the honest wait estimate beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PLATFORM = "*"


@dataclass(frozen=True, slots=True)
class PeakState:
    on: bool = False
    source: str | None = None  # "platform" or "shop": what switched it on
    capacity_factor: float = 1.0
    queue_cap: int | None = None


OFF = PeakState()


def active(record: dict[str, Any] | None, now_ms: int) -> bool:
    """Whether a scope's record switches peak mode on at ``now_ms``."""
    if not record:
        return False
    return bool(record.get("on")) or any(
        int(start) <= now_ms < int(end) for start, end in record.get("windows") or ())


def state(store: Any, shop: str, now_ms: int) -> PeakState:
    """The shop's peak mode now."""
    platform = store.get("peak", PLATFORM.encode())
    own = store.get("peak", shop.encode()) if shop != PLATFORM else None
    if active(own, now_ms):
        source = "shop"
    elif active(platform, now_ms):
        source = "platform"
    else:
        return OFF
    factor = (own or {}).get("capacity_factor") or (platform or {}).get("capacity_factor")
    cap = (own or {}).get("queue_cap") or (platform or {}).get("queue_cap")
    return PeakState(True, source, float(factor or 1.0), int(cap) if cap else None)
