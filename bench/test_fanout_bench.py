"""Fan-out hub: one event to 1, 100 and 10,000 recipients, Rust against its
Python reference in the same run. Target: >= 10x at 10,000 recipients.

Run: ``pytest bench/test_fanout_bench.py``.
"""

from __future__ import annotations

from array import array
from typing import Any

import pytest

from octim._core import FanoutHub
from octim.gateway.hub_reference import ReferenceHub

SIZES = (1, 100, 10_000)
FRAME = b'{"type":"msg","conversation":"c1","seq":42,"kind":"text","body":{"text":"hi"}}'
RESULTS: dict[tuple[str, int], float] = {}


def make_hub(kind: str, n: int) -> tuple[Any, Any]:
    hub: Any = FanoutHub() if kind == "rust" else ReferenceHub()
    for conn in range(n):
        hub.open(conn, 1024)
    recipients = array("Q", range(n)) if kind == "rust" else list(range(n))
    return hub, recipients


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kind", ["rust", "python"])
def test_push_one_event(benchmark: Any, kind: str, n: int) -> None:
    benchmark.group = f"fanout-{n}-recipients"
    hub, recipients = make_hub(kind, n)
    pushes = 0

    def push() -> None:
        nonlocal pushes
        _, overflowed = hub.push(FRAME, recipients)
        pushes += 1
        assert not overflowed

    def drain_all() -> tuple[tuple[()], dict[str, Any]]:
        if pushes and pushes % 500 == 0:  # keep outboxes from filling up
            for conn in range(n):
                hub.drain(conn, 1024)
        return (), {}

    benchmark.pedantic(push, setup=drain_all, rounds=2000 if n < 10_000 else 300)
    RESULTS[(kind, n)] = benchmark.stats.stats.median
    assert hub.pending(n - 1) >= 1 and hub.drain(n - 1, 1) == [FRAME]
    if ("rust", n) in RESULTS and ("python", n) in RESULTS:
        ratio = RESULTS[("python", n)] / RESULTS[("rust", n)]
        benchmark.extra_info["rust_speedup"] = round(ratio, 1)
        print(f"\n{n} recipients: rust {RESULTS[('rust', n)] * 1e6:.1f} us, python "
              f"{RESULTS[('python', n)] * 1e6:.1f} us per event: {ratio:.1f}x")
        if n == 10_000:
            assert ratio >= 10, f"only {ratio:.1f}x at 10,000 recipients"
