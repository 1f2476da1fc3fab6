"""Shared helpers for the benchmarks (run with ``pytest bench/``)."""

from __future__ import annotations

import statistics
from typing import Any


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) of ``samples``."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(samples: list[float]) -> dict[str, Any]:
    """p50/p99/p99.9/max of second-valued samples, in milliseconds."""
    return {
        "n": len(samples),
        "p50_ms": round(percentile(samples, 50) * 1e3, 3),
        "p99_ms": round(percentile(samples, 99) * 1e3, 3),
        "p999_ms": round(percentile(samples, 99.9) * 1e3, 3),
        "max_ms": round(max(samples) * 1e3, 3),
        "mean_ms": round(statistics.fmean(samples) * 1e3, 3),
    }
