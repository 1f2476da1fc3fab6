"""``octim-bench``: load scenarios against an OctIM engine, with a report and a chart.

    octim-bench steady --duration 20 --json steady.json --baseline --half-load
    octim-bench peak --duration 60 --json peak.json
    octim-bench connections --connections 20000 --duration 30 --json conns.json
    octim-bench fanout --subscribers 1000 --duration 10 --json fanout.json

Without ``--url`` it starts ``octim serve`` on a temporary data dir (and, with
``--baseline``, the bare relay) and stops them at the end. Clients run in
``--processes`` worker processes; ``--server-cpus``/``--client-cpus`` pin them.
Nothing here asserts a time: it measures and reports (bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio

from octim.bench import report as rep
from octim.bench.stats import per_second, summary_ms
from octim.bench.target import (
    Target,
    cpu_set,
    existing,
    pin,
    raise_nofile,
    start_engine,
    start_relay,
)

ENGINE_SETTINGS = {
    # A load generator's buyers send faster than a person; the engine's defaults
    # (20 frames/s per connection) protect it from abusive clients, not from this.
    "OCTIM_RATE_PER_SECOND": "1000", "OCTIM_RATE_BURST": "2000",
}


# -- workers -----------------------------------------------------------------------------


class Workers:
    """Client worker processes (octim.bench.worker) and their progress lines."""

    def __init__(self, configs: list[dict[str, Any]], cpus: str | None) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        self.lines: queue.Queue[tuple[int, dict[str, Any]]] = queue.Queue()
        for index, config in enumerate(configs):
            proc = subprocess.Popen([sys.executable, "-m", "octim.bench.worker"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                    preexec_fn=raise_nofile)
            pin(proc.pid, cpus)
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({"config": config}) + "\n")
            proc.stdin.flush()
            threading.Thread(target=self._pump, args=(index, proc), daemon=True).start()
            self.procs.append(proc)

    def _pump(self, index: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("{"):
                self.lines.put((index, json.loads(line)))
        self.lines.put((index, {"exited": proc.wait()}))

    def wait_for(self, key: str, timeout: float, show: Any = None) -> list[dict[str, Any]]:
        """The ``key`` message of every worker (others are passed to ``show``)."""
        got: dict[int, dict[str, Any]] = {}
        deadline = time.time() + timeout
        while len(got) < len(self.procs):
            try:
                index, message = self.lines.get(timeout=max(0.1, deadline - time.time()))
            except queue.Empty:
                raise RuntimeError(f"workers did not report {key!r} in {timeout:.0f} s") from None
            if key in message:
                got[index] = message[key]
            elif "exited" in message and index not in got:
                raise RuntimeError(f"worker {index} exited ({message['exited']}) before {key!r}")
            elif show is not None and "progress" in message:
                show(index, message["progress"])
        return [got[i] for i in range(len(self.procs))]

    def go(self, start: float) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({"go": start}) + "\n")
            proc.stdin.flush()

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


class Progress:
    """One status line on stderr, rewritten every second while the run goes."""

    def __init__(self, label: str, duration: float, quiet: bool) -> None:
        self.label, self.duration, self.quiet = label, duration, quiet
        self.latest: dict[int, dict[str, Any]] = {}
        self.start = time.time()
        self.shown = 0.0

    def update(self, index: int, progress: dict[str, Any]) -> None:
        self.latest[index] = progress
        now = time.time()
        if self.quiet or now - self.shown < 0.9:
            return
        self.shown = now
        total = Counter[str]()
        for value in self.latest.values():
            total.update({k: v for k, v in value.items() if isinstance(v, int)})
        p99 = [v["p99_ms"] for v in self.latest.values() if v.get("p99_ms") is not None]
        elapsed = min(self.duration, now - self.start)
        print(f"\r[{self.label}] {elapsed:5.1f}/{self.duration:.0f}s  sent {total['sent']:,}  "
              f"acked {total['acked']:,}  delivered {total['delivered']:,}  "
              f"conversations {total['conversations']:,}  "
              f"p99 {max(p99) if p99 else 0:.1f} ms  errors {total['errors']:,}  "
              f"disconnects {total['disconnects']:,}   ", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if not self.quiet:
            print(file=sys.stderr, flush=True)


def run_workers(target: Target, configs: list[dict[str, Any]], args: argparse.Namespace,
                label: str, setup_timeout: float = 600, on_go: Any = None) -> dict[str, Any]:
    """Start the workers, measure the server during the run, merge the results."""
    for config in configs:
        config.update(ws=target.ws, secret=target.secret, subprotocol=args.subprotocol,
                      duration=args.duration, drain=args.drain)
    rss_idle = target.rss()  # before any client connects
    workers = Workers(configs, args.client_cpus)
    progress = Progress(label, args.duration, args.quiet)
    try:
        if not args.quiet:
            print(f"[{label}] connecting {len(configs)} client process(es)…", file=sys.stderr,
                  flush=True)
        ready = workers.wait_for("ready", setup_timeout)
        rss_before = target.rss()
        cpu_before = target.cpu()
        start = time.time() + 0.5
        workers.go(start)
        if on_go is not None:
            on_go(start)
        progress.start = start
        peak_rss = [rss_before or 0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.5):
                rss = target.rss()
                if rss:
                    peak_rss.append(rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        results = workers.wait_for("result", args.duration + args.drain + 120, progress.update)
        cpu_after = target.cpu()
        stop.set()
        rss_after = target.rss()
        progress.done()
    finally:
        workers.close()
    merged = merge(results, ready, start, args.duration)
    if cpu_before is not None and cpu_after is not None:
        merged["server_cpu_seconds"] = round(cpu_after - cpu_before, 3)
        merged["server_cpu_us_per_msg"] = round(
            (cpu_after - cpu_before) / max(1, merged["acked"]) * 1e6, 1)
    if rss_idle:
        merged["server_rss_idle_mib"] = round(rss_idle / 1024, 1)
    if rss_before:
        merged["server_rss_before_mib"] = round(rss_before / 1024, 1)
        merged["server_rss_after_mib"] = round((rss_after or 0) / 1024, 1)
        merged["server_peak_rss_mib"] = round(max(peak_rss) / 1024, 1)
    return merged


def merge(results: list[dict[str, Any]], ready: list[dict[str, Any]], start: float,
          duration: float) -> dict[str, Any]:
    acks = [tuple(x) for r in results for x in r["acks"]]
    delivers = [tuple(x) for r in results for x in r["delivers"]]
    assigned = [tuple(x) for r in results for x in r["assigned"]]
    errors: Counter[str] = Counter()
    disconnects: Counter[str] = Counter()
    for r in results:
        errors.update(r["errors"])
        disconnects.update(r["disconnects"])
    in_window = sum(1 for due, lat in acks if start <= due + lat < start + duration)
    seconds = max(1, math.ceil(duration))
    return {
        "sent": sum(r["sent"] for r in results), "acked": len(acks),
        "delivered": len(delivers),
        "achieved_per_s": round(in_window / duration, 1),
        "send_ack_ms": summary_ms(lat for _, lat in acks),
        "send_deliver_ms": summary_ms(lat for _, lat in delivers),
        "open_assigned_ms": summary_ms(a for _, _, a in assigned if a != math.inf),
        "connect_ms": summary_ms(c for _, c, _ in assigned),
        "errors": dict(errors), "disconnects": dict(disconnects),
        # new conversations the engine refused (admission control), each tried again
        "shed": sum(r.get("shed", 0) for r in results),
        "connections": sum(r.get("connections", 0) for r in ready),
        "timeline": per_second(delivers or acks, start, seconds),
        "_acked": [tuple(x) for r in results for x in r["acked"]],
        "_assigned": assigned, "_results": results, "_start": start,
    }


# -- durability -----------------------------------------------------------------------------


def check_durability(target: Target, acked: list[tuple[str, str, int]]) -> dict[str, Any]:
    """Every acked message is in the store exactly once, at its acked seq (read back with
    ``sync`` as a platform admin, through the gateway)."""
    from octim.auth import issue_token
    from octim.testing.client import connect

    by_conversation: dict[str, dict[str, int]] = {}
    for conversation, client_id, seq in acked:
        by_conversation.setdefault(conversation, {})[client_id] = seq

    async def read_back() -> dict[str, Any]:
        missing = duplicated = moved = 0
        token = issue_token(target.secret, "bench-auditor", "platform_admin", ttl=3600)
        async with connect(target.ws, token) as auditor:
            for conversation, expected in by_conversation.items():
                seen = Counter[str]()
                at: dict[str, int] = {}
                for message in await auditor.sync(conversation):
                    seen[message["id"]] += 1
                    at[message["id"]] = message["seq"]
                for client_id, seq in expected.items():
                    if seen[client_id] == 0:
                        missing += 1
                    elif seen[client_id] > 1:
                        duplicated += 1
                    elif at[client_id] != seq:
                        moved += 1
        return {"acked": len(acked), "conversations": len(by_conversation),
                "missing": missing, "duplicated": duplicated, "wrong_seq": moved,
                "ok": missing == duplicated == moved == 0}

    return trio.run(read_back)


# -- scenarios ----------------------------------------------------------------------------------


def make_target(args: argparse.Namespace, settings: dict[str, str]) -> Target:
    if args.url:
        if not (args.ws and args.secret and args.api_key):
            raise SystemExit("--url needs --ws, --secret and --api-key too")
        return existing(args.url, args.ws, args.secret, args.api_key, args.pid)
    extra = dict(item.split("=", 1) for item in args.setting)
    return start_engine({**ENGINE_SETTINGS, **settings, **extra}, args.server_cpus)


def setup_shops(target: Target, prefix: str, shops: int, agents: int, capacity: int
                ) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Shops (bot off) and agents spread over them, created over HTTP."""
    shop_ids = [f"{prefix}s{i}" for i in range(shops)]
    agent_list = [(f"{prefix}a{i}", [shop_ids[i % shops]]) for i in range(agents)]
    if target.kind == "engine":
        with target.api() as api:
            for shop in shop_ids:
                api.put(f"/api/shops/{shop}", json={"name": f"压测店{shop}",
                                                    "bot": {"mode": "off"}}).raise_for_status()
            for agent, shops_of in agent_list:
                api.put(f"/api/agents/{agent}", json={
                    "name": agent, "shops": shops_of, "max_concurrent": capacity}
                        ).raise_for_status()
    return shop_ids, agent_list


def split(items: list[Any], parts: int) -> list[list[Any]]:
    return [items[i::parts] for i in range(parts)]


def steady_run(target: Target, args: argparse.Namespace, rate: float, label: str,
               on_go: Any = None) -> dict[str, Any]:
    prefix = f"{label[0]}{int(time.time()) % 100000}-"
    per_agent = math.ceil(args.buyers / args.agents) + 2
    shops, agents = setup_shops(target, prefix, args.shops, args.agents, per_agent)
    buyers = [(f"{prefix}b{i}", shops[i % len(shops)]) for i in range(args.buyers)]
    processes = max(1, min(args.processes, len(shops)))
    configs = []
    for w in range(processes):
        mine = set(shops[w::processes])  # a shop's buyers and agents share a worker
        configs.append({"scenario": "steady", "prefix": f"{prefix}w{w}-",
                        "agents": [a for a in agents if a[1][0] in mine],
                        "buyers": [b for b in buyers if b[1] in mine],
                        "rate": rate * sum(1 for b in buyers if b[1] in mine) / len(buyers),
                        "expect_deliveries": 1})
    result = run_workers(target, configs, args, label, on_go=on_go)
    result["offered_per_s"] = rate
    # Carried less than offered, and the server's CPUs were the limit (not the clients):
    # this run measured the target's capacity.
    busy = result.get("server_cpu_us_per_msg", 0) * result["achieved_per_s"] / 1e6
    result["server_busy_cpus"] = round(busy, 2)
    cores = len(cpu_set(args.server_cpus)) if args.server_cpus else len(os.sched_getaffinity(0))
    result["saturated"] = result["achieved_per_s"] < 0.95 * rate and (
        "server_cpu_us_per_msg" not in result or busy >= 0.85 * cores)
    result["target"] = target.kind
    return result


class CampaignLoad:
    """A campaign sent while the steady load runs (``--campaign N``): N buyers with
    consent, a segment of them in a shop of their own, and a campaign to it started when
    the load starts; its progress is sampled once a second through the API."""

    def __init__(self, target: Target, prefix: str, recipients: int, rate: float) -> None:
        self.target, self.rate, self.recipients = target, rate, recipients
        self.shop = f"{prefix}promo"
        self.samples: list[tuple[float, int, str]] = []  # time, sent, phase
        self.campaign: str | None = None
        self.stop = threading.Event()
        with target.api() as api:
            api.put(f"/api/shops/{self.shop}", json={
                "name": "大促店", "bot": {"mode": "off"},
                "settings": {"outreach": {"quiet_start": "00:00", "quiet_end": "00:00"}}}
                    ).raise_for_status()  # no quiet hours: the bench runs at any hour
            for first in range(0, recipients, 1000):
                api.post("/api/customers/bulk", json=[
                    {"id": f"{prefix}cb{n}", "tags": ["bench-promo"],
                     "attributes": {"marketing_consent": True}}
                    for n in range(first, min(recipients, first + 1000))]).raise_for_status()
            api.put(f"/api/segments/{prefix}promo", json={
                "name": "大促人群", "shop": self.shop, "rule": {"tags_any": ["bench-promo"]}}
                    ).raise_for_status()
        self.segment = f"{prefix}promo"

    def start(self, at: float) -> None:
        def run() -> None:
            time.sleep(max(0.0, at - time.time()))
            with self.target.api() as api:
                self.campaign = api.post("/api/campaigns", json={
                    "shop": self.shop, "name": "压测活动", "segment": self.segment,
                    "rate": self.rate, "message": {"text": "双11 会员专享：满300减50",
                                                   "coupon": {"title": "满300减50",
                                                              "amount": 50, "threshold": 300}}}
                                         ).json()["id"]
                while not self.stop.wait(1.0):
                    found = [c for c in api.get("/api/campaigns",
                                                params={"shop": self.shop}).json()
                             if c["id"] == self.campaign]
                    progress = (found[0].get("progress") or {}) if found else {}
                    self.samples.append((time.time(), int(progress.get("sent", 0)),
                                         str(progress.get("phase"))))

        threading.Thread(target=run, daemon=True).start()

    def summary(self, start: float, duration: float) -> dict[str, Any]:
        """What the campaign did inside the load's window: when it began sending, and the
        rate it sent at from then on (against its configured rate)."""
        self.stop.set()
        inside = [s for s in self.samples if s[0] <= start + duration]
        sending = [s for s in inside if s[1] > 0]
        first, last = (sending[0], sending[-1]) if len(sending) >= 2 else (None, None)
        rate = None if first is None or last is None or last[0] <= first[0] else round(
            (last[1] - first[1]) / (last[0] - first[0]), 1)
        return {"recipients": self.recipients, "configured_per_s": self.rate,
                "audience_seconds": None if not sending else round(sending[0][0] - start, 1),
                "sent_in_window": inside[-1][1] if inside else 0,
                "achieved_per_s": rate,
                "at_rate": None if rate is None else rate >= 0.9 * self.rate}


def cmd_steady(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {}
    if args.baseline:
        relay = start_relay(args.server_cpus)
        try:
            report["baseline"] = steady_run(relay, args, args.rate, "baseline")
        finally:
            relay.stop()
    engine = make_target(args, {})
    try:
        report["engine"] = steady_run(engine, args, args.rate, "engine")
        report["durability"] = check_durability(engine, report["engine"]["_acked"])
    finally:
        engine.stop()
    if args.half_load:
        # A fresh engine: the first one may still be working off an overload's backlog.
        half = max(1.0, report["engine"]["achieved_per_s"] / 2)
        engine = make_target(args, {})
        try:
            report["half_load"] = steady_run(engine, args, half, "half_load")
            report["half_load"]["durability"] = check_durability(
                engine, report["half_load"]["_acked"])
        finally:
            engine.stop()
        if args.campaign:
            # The same half load with a campaign sending beside it, on a fresh engine.
            engine = make_target(args, {"OCTIM_CAMPAIGN_MAX_RATE": str(
                max(200.0, args.campaign_rate))})
            try:
                load = CampaignLoad(engine, f"k{int(time.time()) % 100000}-", args.campaign,
                                    args.campaign_rate)
                found = steady_run(engine, args, half, "half_load_campaign", on_go=load.start)
                found["campaign"] = load.summary(found["_start"], args.duration)
                found["durability"] = check_durability(engine, found["_acked"])
                report["half_load_campaign"] = found
            finally:
                engine.stop()
    both = True
    if args.baseline:
        report["ratio"] = round(report["engine"]["achieved_per_s"] /
                                max(1.0, report["baseline"]["achieved_per_s"]), 3)
        idle = [f"{name} (server {report[name]['server_busy_cpus']} CPUs busy)"
                for name in ("engine", "baseline") if not report[name]["saturated"]]
        both = not idle
        # A capacity compares only with a capacity: say which side was not one.
        report["saturation"] = "both saturated" if both else \
            "not saturated: " + ", ".join(idle) + "; the ratio is not a capacity ratio"
    deliver = (report.get("half_load") or report["engine"])["send_deliver_ms"]
    report["targets"] = [
        {"name": "steady throughput vs bare relay", "target": "≥ 0.5",
         "measured": report.get("ratio"),
         "met": None if "ratio" not in report or not both else report["ratio"] >= 0.5},
        {"name": "send→deliver p99 at half load", "target": "≤ 10 ms",
         "measured": deliver["p99"],
         "met": None if not args.half_load or deliver["p99"] is None else deliver["p99"] <= 10},
    ]
    if "half_load_campaign" in report:
        found = report["half_load_campaign"]
        p99, campaign = found["send_deliver_ms"]["p99"], found["campaign"]
        report["targets"] += [
            {"name": "send→deliver p99 at half load, a campaign sending", "target": "≤ 10 ms",
             "measured": p99, "met": None if p99 is None else p99 <= 10},
            {"name": "the campaign's send rate meanwhile",
             "target": f"≥ 0.9 × {campaign['configured_per_s']:g}/s",
             "measured": campaign["achieved_per_s"], "met": campaign["at_rate"]}]
    return report


#: The knowledge base every shop's bot answers from in the peak scenario (platform-wide),
#: and the buyers' phrasings of those questions.
PEAK_KB = (
    ("peak-ship", "什么时候发货", ["下单后多久发货", "几天能发出"], "付款后48小时内发货。"),
    ("peak-express", "用什么快递", ["发什么快递", "默认快递是哪家"], "默认发中通，可发顺丰。"),
    ("peak-return", "支持七天无理由退货吗", ["能退货吗", "七天无理由"], "支持七天无理由退货。"),
    ("peak-coupon", "有优惠券吗", ["怎么领优惠券", "有没有优惠"], "店铺首页可领满300减30的券。"),
)
PEAK_FAQ = ("你好，请问什么时候发货？", "用什么快递呀", "这个支持七天无理由退货吗", "有优惠券吗")
PEAK_QUESTION = "我的订单地址填错了，能帮我改一下吗"


def _metrics_sampler(target: Target, seconds: float) -> tuple[threading.Thread,
                                                              list[dict[str, float]]]:
    """Read ``GET /metrics`` once a second: the queue, the loop lag, sheds."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: list[dict[str, float]] = []

    def sample() -> None:
        began = time.time()
        with target.api() as api:
            while time.time() - began < seconds:
                at = time.time()
                try:
                    text = api.get("/metrics").text
                except Exception:  # a scrape that fails is a gap, not a failed run
                    text = ""
                row: dict[str, float] = {"second": round(at - began, 1)}
                for family in text_string_to_metric_families(text):
                    for sample_ in family.samples:
                        if sample_.name in ("octim_queue_length", "octim_loop_lag_seconds",
                                            "octim_overloaded"):
                            row[sample_.name] = sample_.value
                        elif sample_.name == "octim_admission_shed_total":
                            row["shed"] = row.get("shed", 0) + sample_.value
                samples.append(row)
                time.sleep(max(0.0, 1.0 - (time.time() - at)))

    return threading.Thread(target=sample, daemon=True), samples


def peak_run(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    """One run of the peak scenario on a fresh engine, peak mode ``off`` or ``on``."""
    engine = make_target(args, {})
    alive, durability = True, None
    try:
        prefix = f"{mode[1]}{int(time.time()) % 100000}-"
        shops, agents = setup_shops(engine, prefix, args.shops, args.agents, args.capacity)
        live_shop, live_agents = setup_shops(engine, f"{prefix}live-", 1, args.live_agents,
                                             math.ceil(args.live / max(1, args.live_agents)) + 1)
        if engine.kind == "engine":
            with engine.api() as api:
                for entry_id, question, similar, answer in PEAK_KB:
                    api.put(f"/api/kb/{entry_id}", json={
                        "question": question, "similar": similar,
                        "answer": answer, "category": "售前", "shop": None}).raise_for_status()
        processes = max(1, min(args.processes, len(shops)))
        configs: list[dict[str, Any]] = [{
            "scenario": "steady", "prefix": f"{prefix}live-m", "agents": live_agents,
            "buyers": [(f"{prefix}live-b{i}", live_shop[0]) for i in range(args.live)],
            "rate": args.live_rate, "expect_deliveries": 1}]
        for w in range(processes):
            mine = shops[w::processes]
            configs.append({"scenario": "peak", "prefix": f"{prefix}w{w}-", "shops": mine,
                            "agents": [a for a in agents if a[1][0] in set(mine)],
                            "base_rate": args.base_rate / processes, "factor": args.factor,
                            "ramp": args.ramp, "burst": args.burst // processes,
                            "faq": PEAK_FAQ, "question": PEAK_QUESTION, "url": engine.http,
                            "interval": args.interval, "assign_timeout": args.assign_timeout,
                            "expect_deliveries": 0})
        sampler, samples = _metrics_sampler(engine, args.duration + 2 * args.assign_timeout)

        def switch(start: float) -> None:
            # As the ramp starts (the running conversations were assigned before it).
            if mode == "on":
                with engine.api() as api:
                    api.put("/api/platform/peak", json={
                        "on": True, "capacity_factor": args.capacity_factor,
                        "queue_cap": args.queue_cap}).raise_for_status()
            sampler.start()

        result = run_workers(engine, configs, args, f"peak {mode}", on_go=switch)
        live, ramp = result["_results"][0], result["_results"][1:]
        outcomes = [tuple(o) for r in ramp for o in r["outcomes"]]
        counts = Counter(o for _, _, o in outcomes)
        answered = [f for _, f, _ in outcomes if f != math.inf]
        start = result["_start"]
        top = [f for due, f, _ in outcomes if due >= start + args.ramp]
        result.update({
            "conversations": len(outcomes),
            "outcomes": dict(counts.most_common()),
            "first_response_ms": summary_ms(answered + [math.inf] * (
                len(outcomes) - len(answered))),
            "first_response_top_ms": summary_ms(top),
            "bot_resolved_share": round(counts["bot"] / max(1, len(outcomes)), 3),
            "live_send_deliver_ms": summary_ms(lat for _, lat in live["delivers"]),
            "live_messages": len(live["delivers"]),
            "queue_max": max((row.get("octim_queue_length", 0) for row in samples), default=None),
            "loop_lag_max_ms": round(1000 * max(
                (row.get("octim_loop_lag_seconds", 0) for row in samples), default=0), 1),
            "seconds_overloaded": sum(1 for row in samples if row.get("octim_overloaded")),
            "metrics_timeline": samples,
            "offered_conversations": {"base_per_s": args.base_rate,
                                      "top_per_s": args.base_rate * args.factor,
                                      "burst": args.burst},
        })
        sampler.join(timeout=5)
        alive = engine.process is None or engine.process.poll() is None
        durability = check_durability(engine, result["_acked"]) if alive else None
    finally:
        code = engine.stop()
    result.update(durability=durability, engine_alive_at_end=alive, engine_exit_code=code)
    return result


def cmd_peak(args: argparse.Namespace) -> dict[str, Any]:
    """Peak mode off, then on, each on a fresh engine with the same load (``--mode``)."""
    report: dict[str, Any] = {}
    modes = ("off", "on") if args.mode == "both" else (args.mode,)
    for mode in modes:
        report[f"peak_{mode}"] = peak_run(args, mode)
    on = report.get("peak_on") or report[f"peak_{modes[-1]}"]
    first = on["first_response_ms"]["p99"]
    live = on["live_send_deliver_ms"]["p99"]
    lost = [r["durability"] for r in report.values() if r.get("durability") is not None]
    report["targets"] = [
        {"name": f"first response p99 (bot or human), peak {modes[-1]}", "target": "≤ 1000 ms",
         "measured": first, "met": None if first is None else first <= 1000},
        {"name": "running conversations' send→deliver p99", "target": "≤ 50 ms",
         "measured": live, "met": None if live is None else live <= 50},
        {"name": "no acked message lost (every run)", "target": "0 missing",
         "measured": sum(d["missing"] for d in lost) if lost else None,
         "met": all(d["ok"] for d in lost) if lost else None},
        {"name": "never a crash", "target": "engine alive",
         "measured": all(r["engine_alive_at_end"] for r in report.values()
                         if isinstance(r, dict) and "engine_alive_at_end" in r),
         "met": all(r["engine_alive_at_end"] for r in report.values()
                    if isinstance(r, dict) and "engine_alive_at_end" in r)},
    ]
    return report


def cmd_connections(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {}
    targets: list[tuple[str, Any]] = [("engine", lambda: make_target(
        args, {"OCTIM_HEARTBEAT_INTERVAL": str(args.heartbeat)}))]
    if args.baseline:
        targets.insert(0, ("baseline", lambda: start_relay(args.server_cpus)))
    for name, make in targets:
        target = make()
        try:
            time.sleep(1.0)
            processes = max(1, args.processes)
            configs = [{"scenario": "connections", "prefix": f"c{w}-",
                        "count": len(part), "expect_deliveries": 0}
                       for w, part in enumerate(split(list(range(args.connections)), processes))]
            result = run_workers(target, configs, args, name)
            held = sum(r.get("held", 0) for r in result["_results"])
            # Idle server before any client, then with every connection open and idle.
            before = result.get("server_rss_idle_mib")
            during = result.get("server_rss_before_mib")
            result["held"] = result["connections"] = held
            result["failed"] = dict(sum((Counter(r.get("failed", {}))
                                         for r in result["_results"]), Counter()))
            result["connect_seconds"] = max(r.get("connect_seconds", 0)
                                            for r in result["_results"])
            if before is not None and during is not None and held:
                result["kib_per_connection"] = round((during - before) * 1024 / held, 1)
            result["target"] = target.kind
            result["server_fd_limit"] = target.fd_limit()
            report[name] = result
        finally:
            target.stop()
    engine = report["engine"]
    report["connections_report"] = {
        "engine_held": engine["held"], "kib_per_connection": engine.get("kib_per_connection"),
        "engine_fd_limit": engine.get("server_fd_limit"),
        **({"baseline_kib_per_connection": report["baseline"].get("kib_per_connection")}
           if args.baseline else {})}
    per = engine.get("kib_per_connection")
    report["targets"] = [
        {"name": "idle connections held by one engine", "target": "≥ 20,000",
         "measured": engine["held"], "met": engine["held"] >= 20_000},
        {"name": "memory per idle connection", "target": "≤ 25 KiB", "measured": per,
         "met": None if per is None else per <= 25},
    ]
    return report


def cmd_fanout(args: argparse.Namespace) -> dict[str, Any]:
    engine = make_target(args, {})
    try:
        prefix = f"f{int(time.time()) % 100000}-"
        [shop], [(agent, _)] = setup_shops(engine, prefix, 1, 1, 10)
        processes = max(1, args.processes)
        configs = [{"scenario": "fanout", "shop": shop, "agent": agent, "sender": w == 0,
                    "subscribers": len(part), "rate": args.rate,
                    "expect_deliveries": args.subscribers}
                   for w, part in enumerate(split(list(range(args.subscribers)), processes))]
        result = run_workers(engine, configs, args, "fanout")
        result["offered_per_s"] = args.rate
        result["deliveries_per_s"] = round(result["delivered"] / args.duration, 1)
        result["expected_deliveries"] = result["sent"] * args.subscribers
    finally:
        engine.stop()
    return {"engine": result, "targets": []}


# -- main -----------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    common.add_argument("--json", type=Path, default=None,
                        help="write the report here (if unset: octim-bench-<scenario>.json)")
    common.add_argument("--chart", type=Path, default=None,
                        help="PNG chart (if unset: the --json path with .png)")
    common.add_argument("--url", help="an engine's HTTP base URL (if unset: start one)")
    common.add_argument("--ws", help="its gateway URL, e.g. ws://127.0.0.1:8081/ws")
    common.add_argument("--secret", help="its JWT secret (to mint test tokens)")
    common.add_argument("--api-key", help="its API key (to create shops and agents)")
    common.add_argument("--pid", type=int, help="its process id, for CPU and memory")
    common.add_argument("--setting", action="append", default=[], metavar="OCTIM_X=VALUE",
                        help="extra environment for the engine it starts")
    common.add_argument("--processes", type=int, default=2, help="client processes")
    common.add_argument("--server-cpus", help="pin the server, e.g. 0")
    common.add_argument("--client-cpus", help="pin the clients, e.g. 1")
    common.add_argument("--subprotocol", choices=("msgpack", "json"), default="msgpack",
                        help="the clients' WebSocket subprotocol")
    common.add_argument("--drain", type=float, default=5.0,
                        help="seconds to wait for acks and deliveries after the load")
    common.add_argument("--quiet", action="store_true", help="no progress line")

    p = argparse.ArgumentParser(prog="octim-bench", description=__doc__.split("\n")[0])
    shown = argparse.ArgumentDefaultsHelpFormatter  # every flag's default in its help
    sub = p.add_subparsers(dest="scenario", required=True)
    steady = sub.add_parser("steady", parents=[common],
                            help="buyers chatting at a fixed rate", formatter_class=shown)
    steady.add_argument("--shops", type=int, default=10, help="shops created")
    steady.add_argument("--agents", type=int, default=100, help="agents, spread over them")
    steady.add_argument("--buyers", type=int, default=900,
                        help="buyers, each with one conversation")
    steady.add_argument("--rate", type=float, default=2000.0, help="messages/s offered")
    steady.add_argument("--baseline", action="store_true",
                        help="also run it through the bare trio-websocket relay")
    steady.add_argument("--campaign", type=int, default=0, metavar="N",
                        help="with --half-load: run it again with a campaign to N buyers")
    steady.add_argument("--campaign-rate", type=float, default=200.0,
                        help="the campaign's messages/s")
    steady.add_argument("--half-load", action="store_true",
                        help="then run again at half the achieved rate (latency target)")
    peak = sub.add_parser("peak", parents=[common],
                          help="a 双11 ramp of new conversations, peak mode off and on",
                          formatter_class=shown)
    peak.add_argument("--shops", type=int, default=10, help="shops the buyers arrive at")
    peak.add_argument("--agents", type=int, default=60, help="agents, spread over them")
    peak.add_argument("--capacity", type=int, default=10, help="conversations per agent")
    peak.add_argument("--base-rate", type=float, default=5.0, help="new conversations/s at 1×")
    peak.add_argument("--factor", type=float, default=10.0, help="the top of the ramp, × base")
    peak.add_argument("--ramp", type=float, default=None,
                      help="seconds from 1× to the top (if unset: 2/3 of --duration)")
    peak.add_argument("--burst", type=int, default=100,
                      help="conversations opened at once at the top")
    peak.add_argument("--interval", type=float, default=1.0,
                      help="seconds a buyer talks with an agent before thanking")
    peak.add_argument("--assign-timeout", type=float, default=30.0,
                      help="seconds a buyer waits for each answer before leaving")
    peak.add_argument("--mode", choices=("both", "off", "on"), default="both",
                      help="peak mode off then on, each on a fresh engine")
    peak.add_argument("--capacity-factor", type=float, default=2.0,
                      help="agents' capacity × this in peak mode")
    peak.add_argument("--queue-cap", type=int, default=20,
                      help="waiting buyers per shop before leave-a-message")
    peak.add_argument("--live", type=int, default=50,
                      help="conversations already running when the ramp starts")
    peak.add_argument("--live-agents", type=int, default=10,
                      help="agents serving them, in a shop of their own")
    peak.add_argument("--live-rate", type=float, default=100.0,
                      help="messages/s in the running conversations")
    conns = sub.add_parser("connections", parents=[common], help="idle connections held",
                           formatter_class=shown)
    conns.add_argument("--connections", type=int, default=20000,
                       help="idle authenticated connections to hold")
    conns.add_argument("--heartbeat", type=float, default=5.0,
                       help="the engine's ping interval while they idle (seconds)")
    conns.add_argument("--baseline", action="store_true",
                       help="also hold them on the bare relay")
    fan = sub.add_parser("fanout", parents=[common], help="one event to many subscribers",
                         formatter_class=shown)
    fan.add_argument("--subscribers", type=int, default=1000,
                     help="connections of the one agent (workbench tabs)")
    fan.add_argument("--rate", type=float, default=20.0, help="events/s")
    return p


COMMANDS = {"steady": cmd_steady, "peak": cmd_peak, "connections": cmd_connections,
            "fanout": cmd_fanout}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.scenario == "peak" and args.ramp is None:
        args.ramp = args.duration * 2 / 3
    raise_nofile()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    report = COMMANDS[args.scenario](args)
    report = {"scenario": args.scenario, "started": started, "machine": rep.machine(),
              "params": {k: (str(v) if isinstance(v, Path) else v)
                         for k, v in vars(args).items() if k not in ("secret", "api_key")},
              **report}
    for name in rep.RUNS:  # internals out
        for key in [k for k in report.get(name) or {} if k.startswith("_")]:
            del report[name][key]
    path = args.json or Path(f"octim-bench-{args.scenario}.json")
    rep.write_json(report, path)
    chart_path = args.chart or path.with_suffix(".png")
    problem = rep.chart(report, chart_path)
    print(rep.table(report))
    print(f"report: {path}" + (f"   chart: {chart_path}" if problem is None
                               else f"   (no chart: {problem})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
