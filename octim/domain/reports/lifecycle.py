"""Customer lifecycle (客户生命周期): each buyer's stage with each shop, from payments.

Recency, frequency and monetary value per (shop, buyer) are kept by the report fold
as orders are paid (``order_paid`` in the event log, once per order): a record
``rfm \\0 shop \\0 buyer`` with the number of paid orders, their sum and the first and
last payment. The stage is read off that record against the clock, so it moves from
active to at risk to lost as time passes without an event:

* ``new`` (新客): one paid order, paid within the last :data:`NEW_DAYS` days;
* ``active`` (活跃): paid within :data:`ACTIVE_DAYS` days and not new;
* ``at_risk`` (沉睡预警): last paid :data:`ACTIVE_DAYS`–:data:`LOST_DAYS` days ago;
* ``lost`` (流失): last paid more than :data:`LOST_DAYS` days ago.

A buyer who never paid has no stage (a prospect). The shop's counts per stage come
from a histogram of last payment days split by one order / repeat buyers
(``lifecycle \\0 shop``), kept by the same fold: a lifecycle report reads one record
and sums its days, whatever the number of buyers.
"""

from __future__ import annotations

from typing import Any

DAY_MS = 86_400_000
NEW_DAYS, ACTIVE_DAYS, LOST_DAYS = 30, 90, 180
STAGES = ("new", "active", "at_risk", "lost")


def rfm_key(shop: str, buyer: str) -> str:
    return f"rfm\0{shop}\0{buyer}"


def histogram_key(shop: str) -> str:
    return f"lifecycle\0{shop}"


def stage(orders: int, last_paid_ms: int, now_ms: int) -> str:
    days = (now_ms - last_paid_ms) // DAY_MS
    if days > LOST_DAYS:
        return "lost"
    if days > ACTIVE_DAYS:
        return "at_risk"
    if orders <= 1 and days <= NEW_DAYS:
        return "new"
    return "active"


def paid(old: dict[str, Any] | None, cents: int, ts: int) -> dict[str, Any]:
    """The buyer's record after one more paid order."""
    if old is None:
        return {"orders": 1, "cents": cents, "first": ts, "last": ts}
    return {"orders": old["orders"] + 1, "cents": old["cents"] + cents,
            "first": min(old["first"], ts), "last": max(old["last"], ts)}


def move(histogram: dict[str, Any] | None, old: dict[str, Any] | None,
         new: dict[str, Any]) -> dict[str, Any]:
    """The shop's histogram (``{"days": {day: [one order, repeat]}}``) with the buyer
    moved from where ``old`` put them to where ``new`` does."""
    days = dict((histogram or {}).get("days", {}))
    if old is not None:
        day, kind = str(old["last"] // DAY_MS), 0 if old["orders"] <= 1 else 1
        counts = list(days.get(day, (0, 0)))
        counts[kind] -= 1
        if any(counts):
            days[day] = counts
        else:
            days.pop(day, None)
    day, kind = str(new["last"] // DAY_MS), 0 if new["orders"] <= 1 else 1
    counts = list(days.get(day, (0, 0)))
    counts[kind] += 1
    days[day] = counts
    return {"days": days}


def counts(histogram: dict[str, Any] | None, now_ms: int) -> dict[str, int]:
    """How many buyers are in each stage at ``now_ms``."""
    out = dict.fromkeys(STAGES, 0)
    today = now_ms // DAY_MS
    for day, (one, repeat) in ((histogram or {}).get("days") or {}).items():
        age = today - int(day)
        if age > LOST_DAYS:
            out["lost"] += one + repeat
        elif age > ACTIVE_DAYS:
            out["at_risk"] += one + repeat
        elif age <= NEW_DAYS:
            out["new"] += one
            out["active"] += repeat
        else:
            out["active"] += one + repeat
    return out


def of_buyer(store: Any, shop: str, buyer: str, now_ms: int) -> dict[str, Any] | None:
    """One buyer's stage with one shop and the figures behind it (None: never paid)."""
    record = store.get("report_pending", rfm_key(shop, buyer).encode())
    if record is None:
        return None
    return {"stage": stage(record["orders"], record["last"], now_ms),
            "orders": record["orders"], "spent": round(record["cents"] / 100, 2),
            "first_paid": record["first"], "last_paid": record["last"],
            "recency_days": max(0, (now_ms - record["last"]) // DAY_MS)}


def report(store: Any, shop: str, now_ms: int) -> dict[str, Any]:
    """The shop's (``*``: every shop's) buyers by stage now, and their shares."""
    if shop == "*":
        low = b"lifecycle\0"
        found = dict.fromkeys(STAGES, 0)
        for _, histogram in store.scan("report_pending", low, low[:-1] + b"\x01"):
            for name, n in counts(histogram, now_ms).items():
                found[name] += n
    else:
        found = counts(store.get("report_pending", histogram_key(shop).encode()), now_ms)
    total = sum(found.values())
    return {"shop": shop, "at": now_ms, "buyers": total,
            "stages": [{"stage": name, "buyers": n,
                        "share": round(n / total, 4) if total else None}
                       for name, n in found.items()],
            "thresholds_days": {"new": NEW_DAYS, "active": ACTIVE_DAYS, "lost": LOST_DAYS}}
