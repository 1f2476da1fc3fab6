"""``GET /metrics``: the engine in Prometheus' text format (prometheus-client).

Little here is on the message path: three latency histograms (prometheus-client's
``Histogram``, 0.6 µs an observation on this machine) and plain integer tallies
(:class:`Tally`: frames in by type, errors sent by code). The parts of the engine keep
their own state (connections, live actors, the store writer's statistics, the outbox,
the dispatcher's queue, admission control, campaigns); a scrape reads them all and
renders them. Per-shop series exist only for the ``TOP_SHOPS`` shops with the longest
queues, so the number of series stays bounded however many shops there are.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)

if TYPE_CHECKING:
    from octim.engine import Engine

TOP_SHOPS = 10
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0, 300.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Tally:
    """Counters the gateway bumps as frames come and errors go (plain ints)."""

    frames: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


class _EngineCollector:
    """Reads the engine's state at each scrape (``queue``: the dispatcher's, asked just
    before)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.queue: dict[str, dict[str, Any]] = {}

    def collect(self) -> Iterator[Metric]:
        engine = self.engine
        tally = engine.tally
        frames = CounterMetricFamily("octim_frames_in", "WebSocket frames handled, by type",
                                     labels=["type"])
        for kind, n in sorted(tally.frames.items()):
            frames.add_metric([kind], n)
        yield frames
        errors = CounterMetricFamily("octim_frame_errors", "error frames sent, by code",
                                     labels=["code"])
        for code, n in sorted(tally.errors.items()):
            errors.add_metric([code], n)
        yield errors
        yield GaugeMetricFamily("octim_connections", "open WebSocket connections",
                                value=engine.fanout.count())
        actors = GaugeMetricFamily("octim_actors", "live actors, by kind", labels=["kind"])
        for kind, n in sorted(engine.directory.statistics().items()):
            actors.add_metric([kind], n)
        yield actors
        store = engine.store
        stats = store.statistics()
        for name, help_, value in (
                ("octim_store_commits", "store commits", stats.commits),
                ("octim_store_ops", "store operations committed", stats.ops),
                ("octim_store_requests", "write requests committed", stats.requests),
                ("octim_store_failed_requests", "write requests that failed",
                 stats.failed_requests),
                ("octim_store_parks", "commits the loop waited for", stats.parks),
                ("octim_store_late_parks", "of those, past a ceiling", stats.late_parks)):
            yield CounterMetricFamily(name, help_, value=value)
        yield GaugeMetricFamily("octim_store_largest_batch_ops",
                                "operations in the largest commit so far",
                                value=stats.largest_batch)
        recent = [took for _, took in list(stats.commit_log)]  # the latest 1,000
        commits = SummaryMetricFamily("octim_store_commit_seconds",
                                      "commit duration over the latest 1,000 commits",
                                      count_value=len(recent), sum_value=sum(recent))
        yield commits
        if len(recent) >= 10:
            cuts = statistics.quantiles(recent, n=100)
            quantiles = GaugeMetricFamily("octim_store_commit_seconds_quantile",
                                          "commit duration quantiles (latest 1,000)",
                                          labels=["quantile"])
            for q, index in (("0.5", 49), ("0.9", 89), ("0.99", 98)):
                quantiles.add_metric([q], cuts[index])
            yield quantiles
        admission = engine.admission
        yield GaugeMetricFamily("octim_loop_lag_seconds",
                                "the trio loop's worst wake-up delay in the last second",
                                value=admission.loop_lag())
        yield GaugeMetricFamily("octim_dispatcher_mailbox", "messages waiting for routing",
                                value=admission.mailbox_depth())
        yield GaugeMetricFamily("octim_overloaded",
                                "1 while admission control refuses new conversations",
                                value=1 if admission.overloaded() else 0)
        sheds = CounterMetricFamily("octim_admission_shed",
                                    "new conversations refused (rate_limited), by reason",
                                    labels=["reason"])
        reasons = ("loop_lag", "commit_latency", "mailbox", "ack_latency")
        for reason in (*reasons, *sorted(set(admission.sheds) - set(reasons))):
            sheds.add_metric([reason], admission.sheds.get(reason, 0))
        yield sheds
        for db, name, help_ in (
                ("outbox", "octim_outbox_pending", "webhook and channel deliveries queued"),
                ("webhook_dead", "octim_webhook_dead", "webhook deliveries given up"),
                ("channel_dead", "octim_channel_dead", "channel replies given up"),
                ("mail_outbox", "octim_mail_pending", "emails queued"),
                ("mail_dead", "octim_mail_dead", "emails given up")):
            yield GaugeMetricFamily(name, help_, value=store.count(db))
        yield CounterMetricFamily("octim_campaign_messages", "campaign messages sent",
                                  value=engine.campaigns.sent_total)
        queued = sum(v["queued"] for v in self.queue.values())
        yield GaugeMetricFamily("octim_queue_length", "conversations waiting for an agent",
                                value=queued)
        yield GaugeMetricFamily("octim_queue_longest_wait_seconds",
                                "the longest wait for an agent now",
                                value=max((v["longest_wait"] for v in self.queue.values()),
                                          default=0.0))
        top = sorted(self.queue.items(), key=lambda kv: (-kv[1]["queued"], kv[0]))[:TOP_SHOPS]
        by_shop = GaugeMetricFamily("octim_shop_queue_length",
                                    f"waiting conversations of the {TOP_SHOPS} shops with "
                                    "the longest queues", labels=["shop"])
        for shop, view in top:
            by_shop.add_metric([shop], view["queued"])
        yield by_shop


class Metrics:
    """The engine's registry (its own, never the process-wide default)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = _EngineCollector(engine)
        self.registry.register(self.collector)

        def histogram(name: str, doc: str) -> Histogram:
            return Histogram(name, doc, registry=self.registry, buckets=LATENCY_BUCKETS)

        self.ack_seconds = histogram(
            "octim_ack_seconds", "a send frame read from its socket to its ack queued for "
            "the sender (the commit included)")
        self.deliver_seconds = histogram(
            "octim_deliver_seconds", "a connection's outbox getting frames (a durable message, "
            "an event) to their socket write done, per write")
        self.assign_seconds = histogram(
            "octim_open_assigned_seconds", "a conversation starting to wait for an agent "
            "(its first message, a hand-off, a transfer) to its assignment (engine clock)")

    async def render(self) -> bytes:
        from octim.domain.routing.dispatcher import ID, KIND
        from octim.domain.routing.messages import QueueView

        self.collector.queue = await self.engine.directory.ref(KIND, ID).ask(QueueView())
        return bytes(generate_latest(self.registry))
