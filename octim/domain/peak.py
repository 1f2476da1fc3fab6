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
  leave-a-message (a ticket), with the honest wait estimate beside it;
* its queue is ordered VIPs first (``vip_first``, on by default) and then, with
  ``priority``, buyers with a paid order in the shop within ``recent_order_days`` first
  (``after_sales``, 售后优先) or those without one first (``pre_sales``, 询单优先).

A window is **pre-warmed** ``peak_prewarm`` seconds before it starts (the engine's peak
task, :func:`next_edge`): the shop's actors are activated and kept active while peak
mode lasts, its agents' actors and the knowledge-base index are loaded, and what is now
warm is frozen out of the garbage collector's way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

PLATFORM = "*"
PRIORITIES = ("after_sales", "pre_sales")  # 售后优先 / 询单优先
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class PeakState:
    on: bool = False
    source: str | None = None  # "platform" or "shop": what switched it on
    capacity_factor: float = 1.0
    queue_cap: int | None = None
    vip_first: bool = True
    priority: str | None = None  # one of PRIORITIES, or None: the routing policy's order
    recent_order_days: int = 7


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
    # The shop's own settings, where it has them, else the platform's.
    base = own if own and source == "shop" else (platform or {})
    factor = (own or {}).get("capacity_factor") or (platform or {}).get("capacity_factor")
    cap = (own or {}).get("queue_cap") or (platform or {}).get("queue_cap")
    return PeakState(True, source, float(factor or 1.0), int(cap) if cap else None,
                     bool(base.get("vip_first", True)), base.get("priority"),
                     int(base.get("recent_order_days") or 7))


def next_edge(records: Iterable[dict[str, Any]], after_ms: int, lead_ms: int) -> int | None:
    """The earliest time after ``after_ms`` a window pre-warms, starts or ends."""
    times = [t for record in records for start, end in record.get("windows") or ()
             for t in (int(start) - lead_ms, int(start), int(end)) if t > after_ms]
    return min(times, default=None)


def warming(record: dict[str, Any], now_ms: int, lead_ms: int) -> bool:
    """Whether a scope is in peak mode or within ``lead_ms`` of a window's start."""
    return active(record, now_ms) or any(
        int(start) - lead_ms <= now_ms < int(end) for start, end in record.get("windows") or ())
