"""``octim-bench`` runs each scenario end to end (tiny sizes) and writes its report.

These check that the tool works and that its report holds what bench/README.md
documents; they assert no speed (the numbers are measured and reported, not tested).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SMALL = ["--duration", "2", "--drain", "2", "--processes", "2", "--quiet"]


def bench(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "-m", "octim.bench", *args, *SMALL,
                             "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "report:" in result.stdout and "chart:" in result.stdout  # table, then paths
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    report: dict[str, Any] = json.loads(out.read_text())
    assert report["machine"]["cpus"] >= 1 and report["params"]["duration"] == 2
    return report


def test_steady_with_baseline_and_half_load(tmp_path: Path) -> None:
    report = bench(tmp_path, "steady", "--shops", "2", "--agents", "4", "--buyers", "20",
                   "--rate", "100", "--baseline", "--half-load")
    engine, baseline = report["engine"], report["baseline"]
    for run in (engine, baseline, report["half_load"]):
        assert run["sent"] > 0 and run["acked"] == run["sent"] and run["connections"] == 24
        assert set(run["send_deliver_ms"]) == {"count", "p50", "p95", "p99", "max"}
        assert run["open_assigned_ms"]["count"] == 20 and run["errors"] == {}
        assert run["timeline"] and "p99_ms" in run["timeline"][0]
    assert engine["server_cpu_us_per_msg"] > 0 and engine["server_peak_rss_mib"] > 0
    assert report["ratio"] == round(engine["achieved_per_s"] / baseline["achieved_per_s"], 3)
    assert report["durability"]["ok"] and report["durability"]["acked"] == engine["acked"]
    assert report["half_load"]["offered_per_s"] == engine["achieved_per_s"] / 2
    assert [t["name"] for t in report["targets"]] == [
        "steady throughput vs bare relay", "send→deliver p99 at half load"]


def test_peak_connections_and_fanout(tmp_path: Path) -> None:
    peak = bench(tmp_path, "peak", "--shops", "2", "--agents", "4", "--base-rate", "2",
                 "--factor", "3", "--ramp", "1", "--burst", "4", "--interval", "0.2",
                 "--assign-timeout", "5", "--live", "4", "--live-agents", "2",
                 "--live-rate", "10")
    for mode in ("peak_off", "peak_on"):  # both in one invocation, on fresh engines
        run = peak[mode]
        assert run["conversations"] >= 4 and sum(run["outcomes"].values()) == \
            run["conversations"], run["outcomes"]
        assert run["first_response_ms"]["count"] == run["conversations"]
        assert run["live_messages"] > 0 and run["live_send_deliver_ms"]["count"] > 0
        assert run["durability"]["ok"] and run["durability"]["acked"] == run["acked"] > 0
        assert run["engine_alive_at_end"] is True and run["metrics_timeline"]
    # Off: every buyer goes to an agent; on: the bot answers first, and its FAQ buyers
    # (3 in 5) leave content.
    assert peak["peak_off"]["outcomes"].get("bot", 0) == 0
    assert peak["peak_on"]["outcomes"].get("bot", 0) > 0
    assert peak["peak_on"]["bot_resolved_share"] > 0
    assert {t["name"] for t in peak["targets"]} >= {"never a crash"}

    conns = bench(tmp_path, "connections", "--connections", "100", "--heartbeat", "1")
    assert conns["engine"]["held"] == 100 and conns["engine"]["disconnects"] == {}
    assert conns["engine"]["kib_per_connection"] is not None
    assert conns["connections_report"]["engine_fd_limit"] > 100

    fan = bench(tmp_path, "fanout", "--subscribers", "10", "--rate", "5")
    assert fan["engine"]["delivered"] == fan["engine"]["expected_deliveries"] > 0


def test_every_octim_bench_flag_has_help_with_its_default() -> None:
    from octim.bench.cli import parser

    scenarios = parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, sub in scenarios.items():
        text = sub.format_help()
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, (name, action.option_strings)
        assert "(default: 20.0)" in text, name  # --duration, shown by the formatter
