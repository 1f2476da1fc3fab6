"""What the interpreter tuning in ``octim.engine.tune_interpreter`` buys.

A node holds many long-lived objects (connections, actor state, caches). A
full collection walks all of them unless they were frozen after start-up.
Run: ``pytest bench/test_gc_bench.py``.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from typing import Any

import pytest

LONG_LIVED = 1_000_000  # e.g. ~20k conversations' worth of state dicts and lists


@pytest.fixture
def heap() -> Iterator[list[dict[str, Any]]]:
    objects = [{"id": i, "tags": [i], "seq": i} for i in range(LONG_LIVED // 2)]
    yield objects
    del objects
    # Leave the interpreter as the engine (and the other benchmarks) run it:
    # everything alive now frozen, out of later full collections.
    gc.unfreeze()
    gc.collect()
    gc.freeze()


@pytest.mark.benchmark(group="gc-full-collection")
def test_full_collection_unfrozen(benchmark: Any, heap: list[dict[str, Any]]) -> None:
    gc.unfreeze()
    benchmark.pedantic(gc.collect, rounds=5)


@pytest.mark.benchmark(group="gc-full-collection")
def test_full_collection_after_freeze(benchmark: Any, heap: list[dict[str, Any]]) -> None:
    gc.collect()
    gc.freeze()
    benchmark.pedantic(gc.collect, rounds=5)


@pytest.mark.parametrize("threshold", [700, 50_000])
def test_collections_per_million_short_lived_allocations(benchmark: Any, threshold: int) -> None:
    """Per-message churn (a frame dict, a record, a list) under each gen-0 threshold."""
    old = gc.get_threshold()
    counts: list[int] = []

    def churn() -> None:
        before = sum(s["collections"] for s in gc.get_stats())
        started = time.perf_counter()
        for i in range(333_334):
            frame = {"type": "msg", "seq": i, "body": [i]}
            del frame
        counts.append(sum(s["collections"] for s in gc.get_stats()) - before)
        benchmark.extra_info["seconds"] = round(time.perf_counter() - started, 4)

    gc.set_threshold(threshold, old[1], old[2])
    try:
        benchmark.pedantic(churn, rounds=3)
    finally:
        gc.set_threshold(*old)
    benchmark.extra_info["collections"] = counts[-1]
