"""The load test report: JSON (schema in bench/README.md), a terminal table, a PNG chart."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from octim._version import __version__


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh
                          if line.startswith("model name")), "")
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "system": platform.platform(), "octim": __version__}


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
    return str(value)


ROWS = (
    ("offered msgs/s", ("offered_per_s",)),
    ("achieved msgs/s", ("achieved_per_s",)),
    ("sent / acked / delivered", None),
    ("send→ack p50/p95/p99/max ms", ("send_ack_ms",)),
    ("send→deliver p50/p95/p99/max ms", ("send_deliver_ms",)),
    ("open→assigned p50/p95/p99 ms", ("open_assigned_ms",)),
    ("connections held", ("connections",)),
    ("server KiB per idle connection", ("kib_per_connection",)),
    ("server CPU µs/msg", ("server_cpu_us_per_msg",)),
    ("server peak RSS MiB", ("server_peak_rss_mib",)),
    ("opens refused (rate_limited), retried", ("shed",)),
    ("new conversations", ("conversations",)),
    ("outcomes", ("outcomes",)),
    ("first response p50/p95/p99/max ms", ("first_response_ms",)),
    ("… at the top of the ramp", ("first_response_top_ms",)),
    ("bot-resolved share", ("bot_resolved_share",)),
    ("running chats send→deliver p50/p95/p99/max ms", ("live_send_deliver_ms",)),
    ("queue length max (/metrics, 1 s)", ("queue_max",)),
    ("loop lag max ms (/metrics, 1 s)", ("loop_lag_max_ms",)),
    ("seconds overloaded", ("seconds_overloaded",)),
    ("acked loss", ("durability",)),
    ("errors", ("errors",)),
    ("disconnects", ("disconnects",)),
)


def _cell(run: dict[str, Any] | None, label: str, keys: tuple[str, ...] | None) -> str:
    if run is None:
        return ""
    if keys is not None and keys[0] in ("offered_per_s", "achieved_per_s",
                                        "server_cpu_us_per_msg") and not run.get("sent"):
        return ""  # no messages in this scenario
    if keys is None:
        if not run.get("sent"):
            return ""
        return f"{_fmt(run.get('sent'))} / {_fmt(run.get('acked'))} / {_fmt(run.get('delivered'))}"
    value = run.get(keys[0])
    if isinstance(value, dict) and "count" in value:
        if not value["count"]:
            return "–"
        parts = ("p50", "p95", "p99") if "open" in label else ("p50", "p95", "p99", "max")
        return " / ".join(_fmt(value[p]) for p in parts)
    return _fmt(value)


RUNS = ("engine", "baseline", "half_load", "half_load_campaign", "peak_off", "peak_on")


def table(report: dict[str, Any]) -> str:
    """The report as a text table: one column per run."""
    runs = [(name, report[name]) for name in RUNS if report.get(name)]
    header = ["", *[name for name, _ in runs]]
    body = [[label, *[_cell(run, label, keys) for _, run in runs]] for label, keys in ROWS
            if any(_cell(run, label, keys) not in ("", "–", "none") for _, run in runs)]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = [f"octim-bench {report['scenario']} · {report['params'].get('duration')} s · "
             f"{report['machine']['cpus']} CPUs · {report['machine']['cpu_model']}"]
    for row in [header, *body]:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
    for key, label in (("ratio", "engine / bare relay"), ("saturation", "saturation"),
                       ("durability", "durability"),
                       ("connections_report", "connections")):
        if report.get(key) is not None:
            lines.append(f"{label}: {_fmt(report[key])}")
    if (report.get("half_load_campaign") or {}).get("campaign"):
        lines.append(f"campaign: {_fmt(report['half_load_campaign']['campaign'])}")
    for target in report.get("targets", []):
        mark = {True: "MET", False: "NOT MET", None: "n/a"}[target["met"]]
        lines.append(f"target {target['name']}: {target['target']} → {target['measured']} "
                     f"[{mark}]")
    return "\n".join(lines)


def chart(report: dict[str, Any], path: Path) -> str | None:
    """Throughput and latency percentiles over time; returns an error text when the chart
    cannot be drawn (matplotlib missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: pip install 'octim[bench]' for the chart"
    runs = [(name, report[name]) for name in RUNS
            if report.get(name) and report[name].get("timeline")]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    colors = {"engine": "tab:blue", "baseline": "tab:gray", "half_load": "tab:green",
              "half_load_campaign": "tab:orange", "peak_off": "tab:red", "peak_on": "tab:purple"}
    for name, run in runs:
        seconds = [row["second"] for row in run["timeline"]]
        top.plot(seconds, [row["count"] for row in run["timeline"]], color=colors[name],
                 label=f"{name} messages/s")
        for p, style in (("p50_ms", "--"), ("p99_ms", "-")):
            bottom.plot(seconds, [row[p] if row[p] is not None else float("nan")
                                  for row in run["timeline"]], style, color=colors[name],
                        label=f"{name} {p.split('_')[0]}")
    top.set_ylabel("messages/s")
    top.legend(loc="best")
    top.grid(alpha=0.3)
    bottom.set_ylabel("send→deliver ms")
    bottom.set_xlabel("second of the run")
    bottom.set_yscale("log")
    bottom.legend(loc="best")
    bottom.grid(alpha=0.3)
    fig.suptitle(f"octim-bench {report['scenario']} ({report['machine']['cpus']} CPUs)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None
