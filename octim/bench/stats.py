"""Latency samples → percentiles, and per-second series for the chart."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

PERCENTILES = (50, 95, 99)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summary_ms(seconds: Iterable[float]) -> dict[str, Any]:
    """count, p50/p95/p99/max in milliseconds (None when there were no samples)."""
    values = sorted(seconds)
    if not values:
        return {"count": 0, **{f"p{p}": None for p in PERCENTILES}, "max": None}
    return {"count": len(values),
            **{f"p{p}": round(percentile(values, p) * 1000, 3) for p in PERCENTILES},
            "max": round(values[-1] * 1000, 3)}


def per_second(samples: Iterable[tuple[float, float]], start: float, seconds: int
               ) -> list[dict[str, Any]]:
    """(wall time the message was due, latency) → one row per second of the run:
    messages completed that second and their p50/p99 in ms."""
    buckets: dict[int, list[float]] = defaultdict(list)
    for due, latency in samples:
        second = int(due + latency - start)
        if 0 <= second < seconds:
            buckets[second].append(latency)
    rows = []
    for second in range(seconds):
        values = sorted(buckets.get(second, ()))
        rows.append({"second": second, "count": len(values),
                     "p50_ms": round(percentile(values, 50) * 1000, 3) if values else None,
                     "p99_ms": round(percentile(values, 99) * 1000, 3) if values else None})
    return rows
