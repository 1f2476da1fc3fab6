"""Routing scorer: a backlog of 10,000 waiting conversations over 2,000 agents,
Rust against the Python reference in the same run. Targets: Rust <= 20 ms and
>= 20x faster than the reference.

Run: ``pytest bench/test_scorer_bench.py``.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from octim.domain.routing.scorer import (
    PREFER_NONE,
    PREFER_STICKY,
    RANKINGS,
    Batch,
    assign,
    assign_reference,
)

RESULTS: dict[str, float] = {}
SHOPS, GROUPS_PER_SHOP = 100, 3


def backlog() -> Batch:
    """100 shops x 3 groups; 2,000 agents (20 per shop, in 1-2 groups, some busy,
    some serving two shops); 10,000 waiting conversations, some with sticky agents."""
    rng = random.Random(7)
    batch = Batch()
    rankings = list(RANKINGS.values())
    for q in range(SHOPS * GROUPS_PER_SHOP):
        batch.add_queue(rankings[q % len(rankings)])
    for agent in range(2_000):
        shop = agent % SHOPS
        queues = [shop * GROUPS_PER_SHOP + rng.randrange(GROUPS_PER_SHOP)]
        if rng.random() < 0.5:
            queues.append(shop * GROUPS_PER_SHOP + rng.randrange(GROUPS_PER_SHOP))
        if rng.random() < 0.1:
            queues.append(rng.randrange(SHOPS * GROUPS_PER_SHOP))
        capacity = rng.choice([3, 5, 8])
        batch.add_agent(capacity, rng.randrange(capacity), rng.choice([1.0, 1.0, 2.0]),
                        rng.uniform(0, 1000), rng.random() < 0.8, queues)
    for n in range(10_000):
        sticky = rng.random() < 0.2
        batch.add_waiting(rng.randrange(SHOPS * GROUPS_PER_SHOP), rng.choice([0, 0, 0, 1, 2]),
                          rng.uniform(1000, 1300), n, rng.choice([1, 1, 2]),
                          rng.randrange(2_000) if sticky else -1,
                          PREFER_STICKY if sticky else PREFER_NONE,
                          1000.0 + (5 if rng.random() < 0.3 else 0))
    return batch


@pytest.mark.parametrize("kind", ["rust", "python"])
def test_backlog_of_10k_over_2k_agents(benchmark: Any, kind: str) -> None:
    benchmark.group = "scorer-10k-waiting-2k-agents"
    batch = backlog()
    run = assign if kind == "rust" else assign_reference
    decided = benchmark.pedantic(run, args=(batch, 1000.0), rounds=15 if kind == "rust" else 3)
    assert decided == assign_reference(batch, 1000.0) if kind == "rust" else decided
    benchmark.extra_info["assigned"] = len(decided)
    RESULTS[kind] = benchmark.stats.stats.median
    if kind == "python" and "rust" in RESULTS:
        ratio = RESULTS["python"] / RESULTS["rust"]
        benchmark.extra_info["rust_speedup"] = round(ratio, 1)
        print(f"\nscorer: rust {RESULTS['rust'] * 1e3:.2f} ms, python "
              f"{RESULTS['python'] * 1e3:.1f} ms, {len(decided)} assigned: {ratio:.1f}x")
        assert RESULTS["rust"] <= 0.020, "over 20 ms"
        assert ratio >= 20, f"only {ratio:.1f}x"
