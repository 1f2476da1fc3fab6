"""The engine: one trio run holding the store, the actors and both servers.

Start-up order: store → Directory (actor kinds) → HTTP API → gateway → GC
tuned → ready. Shutdown runs it backwards: not ready → listeners close and
in-flight HTTP requests finish → gateway connections close (1001) → every
actor drains its mailbox and stops → the writer commits what it accepted →
the store closes.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import jieba
import trio

from octim.actors import ActorRef, Directory, open_directory
from octim.admission import Admission
from octim.api import create_app, serve_http
from octim.config import HostPort, Settings, env_var
from octim.courier import Courier
from octim.domain import channels
from octim.domain.agents import AGENT_KIND, DescribePresence
from octim.domain.agents import KIND as AGENT
from octim.domain.context import EngineContext
from octim.domain.conversations.actor import CONVERSATION_KIND, CloseIfIdle
from octim.domain.conversations.actor import KIND as CONVERSATION
from octim.domain.customers import CUSTOMER_KIND
from octim.domain.kb.knowledge import ID as KB_ID
from octim.domain.kb.knowledge import KB_KIND
from octim.domain.monitor import Monitor
from octim.domain.outreach.campaigns import Campaigns
from octim.domain.reports.feeder import Reports
from octim.domain.routing.dispatcher import DISPATCHER_KIND
from octim.domain.routing.dispatcher import ID as DISPATCHER_ID
from octim.domain.routing.dispatcher import KIND as DISPATCHER
from octim.domain.routing.messages import (
    AgentView,
    DeleteAgent,
    ForceAssign,
    Tick,
    UpsertAgent,
    UpsertGroup,
)
from octim.domain.shops import SHOP_KIND
from octim.domain.tickets import outmail
from octim.domain.tickets.desk import TICKET_DESK_KIND
from octim.domain.tickets.outmail import MAILER_KIND
from octim.errors import ConfigError, InvalidInput, NotFound, OctimError
from octim.events import EventBus
from octim.gateway import Gateway
from octim.gateway.fanout import Fanout
from octim.metrics import Metrics, Tally
from octim.peak_watch import PeakWatch
from octim.store import Store, open_store
from octim.store.crypto import load_keys
from octim.store.env import ENGINE_LOCK_FILE, hold_lock
from octim.values import check_storable

log = logging.getLogger("octim.engine")


@dataclass(frozen=True, slots=True)
class Listening:
    """Where a started engine listens."""

    http: HostPort
    ws: HostPort
    tls: bool = False

    @property
    def http_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.http}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://{self.ws}/ws"


def tune_interpreter(gc_threshold: int, freeze: bool, switch_interval: float) -> None:
    """Latency hygiene once start-up is done (numbers in bench/README.md).

    * ``gc.freeze()`` moves start-up objects out of the collector's sight, so
      full collections stop rescanning them (``bench/test_gc_bench.py``).
    * A higher generation-0 threshold makes collections rarer under the
      per-message allocation churn.
    * A 1 ms GIL switch interval (CPython's default is 5 ms) lets the store's
      writer thread, which releases and retakes the GIL around every LMDB
      call, get in while the trio loop is busy; it halved the p99 wait for
      durability at 20k appends/s (``bench/test_store_bench.py``).
    """
    gc.collect()
    if freeze:
        gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gc_threshold, gen1, gen2)
    sys.setswitchinterval(switch_interval)


@contextmanager
def _listener(setting: str, bind: HostPort) -> Iterator[None]:
    """A listener that cannot open says which one, where, and why."""
    try:
        yield
    except* OSError as group:
        reason = next((e.strerror or str(e) for e in group.exceptions
                       if isinstance(e, OSError)), "")
        what = {"http": "the HTTP API", "ws": "the WebSocket gateway"}[setting]
        raise ConfigError(f"{setting} ({env_var(setting)})",
                          f"{what} cannot listen on {bind}: {reason}") from None


class Engine:
    """A whole OctIM node. Run it with ``await nursery.start(engine.run)``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ready = False
        self._stop = trio.Event()
        self._firing = trio.Lock()
        self._context: EngineContext | None = None
        self.fanout = Fanout(settings.outbox_frames)
        self.events: EventBus
        self.courier: Courier
        self.listening: Listening | None = None  # set by open_engine
        self.gateway = Gateway(self)
        self.monitor = Monitor(self)
        self.reports: Reports | None = None  # while running (it reads the store)
        self.campaigns = Campaigns(self)
        self.tally = Tally()
        self.admission = Admission(self)
        self.peak = PeakWatch(self)
        self.metrics = Metrics(self)
        self.ws_bound: HostPort | None = None  # where the gateway listens, once it does

    @property
    def context(self) -> EngineContext:
        """What the actors share (only while running)."""
        if self._context is None:
            raise RuntimeError("the engine is not running")
        return self._context

    @property
    def store(self) -> Store:
        """The durable store (only while running)."""
        return self.context.store

    @property
    def directory(self) -> Directory[EngineContext]:
        """The actor Directory (only while running)."""
        directory = self.context.directory
        assert directory is not None
        return directory

    # -- the platform API for embedding programs (the same operations as HTTP) -------
    # Free-form values pass the same storable check as HTTP bodies (octim.values).

    async def put_shop(self, shop: str, name: str, *, categories: tuple[str, ...] = (),
                       settings: dict[str, Any] | None = None,
                       routing: dict[str, Any] | None = None,
                       bot: dict[str, Any] | None = None) -> dict[str, Any]:
        """Create or replace a shop; ``routing`` and ``bot`` are validated like HTTP bodies."""
        from octim.api.kb import BotSettingsBody
        from octim.api.routing import RoutingPolicyBody
        from octim.domain.shops import KIND as SHOP
        from octim.domain.shops import UpsertShop, validate_shop_id

        check_storable({"settings": settings, "routing": routing, "bot": bot}, where="shop")
        policy = RoutingPolicyBody.model_validate(routing).as_record() if routing else None
        bot_settings = BotSettingsBody.model_validate(bot).model_dump(exclude_none=True) \
            if bot else None
        return dict(await self.directory.ref(SHOP, validate_shop_id(shop)).ask(
            UpsertShop(shop, name, settings or {}, tuple(categories), policy, bot_settings)))

    async def create_ticket(self, shop: str, subject: str, *, idempotency_key: str = "",
                            by: str = "api", **fields: Any) -> dict[str, Any]:
        """Open a ticket (fields validated like ``POST /api/tickets``); with an
        ``idempotency_key`` a repeat answers the same ticket (``repeated`` True)."""
        from octim.api.tickets import TicketBody
        from octim.domain.tickets.desk import KIND as TICKETS
        from octim.domain.tickets.desk import CreateTicket

        body = TicketBody.model_validate({"shop": shop, "subject": subject, **fields})
        if shop != "*" and self.store.get("shops", shop.encode()) is None:
            raise NotFound(f"no shop {shop!r}")
        values = body.model_dump(exclude_unset=True)
        key = f"{by}\x1f{idempotency_key}" if idempotency_key else ""
        return dict(await self.directory.ref(TICKETS, shop).ask(
            CreateTicket(values, by, "api", key)))

    async def ticket(self, ticket: str) -> dict[str, Any]:
        """A ticket's record (with its label)."""
        from octim.domain.tickets.desk import KIND as TICKETS
        from octim.domain.tickets.desk import GetTicket

        return dict(await self.directory.ref(TICKETS, self._ticket_shop(ticket)).ask(
            GetTicket(ticket)))

    async def update_ticket(self, ticket: str, *, by: str = "api", **changes: Any
                            ) -> dict[str, Any]:
        """Change fields or status (validated like ``PATCH /api/tickets/{id}``)."""
        from octim.api.tickets import TicketPatch
        from octim.domain.tickets.desk import KIND as TICKETS
        from octim.domain.tickets.desk import UpdateTicket

        valid = TicketPatch.model_validate(changes).model_dump(exclude_unset=True)
        return dict(await self.directory.ref(TICKETS, self._ticket_shop(ticket)).ask(
            UpdateTicket(ticket, valid, by, "api")))

    async def comment_ticket(self, ticket: str, body: str, *, public: bool = False,
                             by: str = "api") -> dict[str, Any]:
        """A public reply or an internal note on a ticket."""
        from octim.domain.tickets.desk import KIND as TICKETS
        from octim.domain.tickets.desk import CommentTicket

        return dict(await self.directory.ref(TICKETS, self._ticket_shop(ticket)).ask(
            CommentTicket(ticket, body, public, by, "api")))

    def _ticket_shop(self, ticket: str) -> str:
        raw = self.store.get("tickets", ticket.encode())
        if raw is None:
            raise NotFound(f"no ticket {ticket!r}")
        return str(raw["shop"])

    async def put_group(self, shop: str, group: str, name: str) -> dict[str, Any]:
        """Create or replace a skill group of a shop."""
        return dict(await self._dispatcher().ask(UpsertGroup(shop, group, name)))

    async def put_agent(self, agent: str, name: str, shops: tuple[str, ...],
                        groups: tuple[str, ...] = (), *, max_concurrent: int = 5,
                        weight: float = 1.0, disabled: bool = False) -> dict[str, Any]:
        """Create or replace an agent (sub-account); a ``disabled`` one gets no routed
        conversations."""
        if not shops or max_concurrent < 1 or weight < 0:
            raise InvalidInput("an agent needs shops, max_concurrent >= 1 and weight >= 0")
        return dict(await self._dispatcher().ask(
            UpsertAgent(agent, name, shops, groups, max_concurrent, weight, disabled)))

    async def agent(self, agent: str) -> dict[str, Any]:
        """An agent's profile, live routing state (status, load, conversations) and
        presence (connections, chosen status, today's seconds online, busy and away)."""
        view = dict(await self._dispatcher().ask(AgentView(agent)))
        view["presence"] = await self.directory.ref(AGENT, agent).ask(DescribePresence(agent))
        return view

    async def simulate_route(self, shop: str, *, text: str = "", context: dict[str, Any] | None
                             = None, buyer: str = "simulated-buyer", level: int = 0,
                             at: float | None = None) -> dict[str, Any]:
        """What routing would do with a new conversation of ``shop`` now (or at ``at``,
        engine seconds), changing nothing: the rule that fires, each candidate agent with
        its score and verdict, the winner or the queue position (docs/admin.md)."""
        from octim.domain.routing.messages import SimulateRoute

        return dict(await self._dispatcher().ask(SimulateRoute(
            shop, buyer, level, context or {}, text,
            self.context.clock() if at is None else at)))

    async def delete_agent(self, agent: str) -> None:
        """Remove an agent; their conversations go back to the queue."""
        await self._dispatcher().ask(DeleteAgent(agent))

    async def assign(self, conversation: str, agent: str) -> None:
        """Assign directly (supervisor override)."""
        await self._dispatcher().ask(ForceAssign(conversation, agent))

    def routing_trace(self, conversation: str) -> dict[str, Any]:
        """The routing decisions of a conversation and its waiting record."""
        entry = self.store.get("routing", conversation.encode())
        if entry is None:
            raise NotFound(f"no routing record for {conversation!r}")
        return dict(entry)

    async def upsert_customer(self, customer: str, **fields: Any) -> dict[str, Any]:
        """Create or replace a buyer (fields as ``PUT /api/customers/{id}``)."""
        from octim.api.customers import CustomerBody
        from octim.domain.customers import KIND as CUSTOMER
        from octim.domain.customers import UpsertCustomer

        check_storable(fields, where="customer")
        body = CustomerBody.model_validate(fields).model_dump()
        return dict(await self.directory.ref(CUSTOMER, customer).ask(UpsertCustomer(body)))

    async def upsert_order(self, order: str, **fields: Any) -> dict[str, Any]:
        """Create or replace an order (fields as ``PUT /api/orders/{id}``)."""
        from octim.api.customers import OrderBody
        from octim.domain.customers import KIND as CUSTOMER
        from octim.domain.customers import UpsertOrder

        check_storable(fields, where="order")
        body = OrderBody.model_validate(fields).model_dump()
        return dict(await self.directory.ref(CUSTOMER, body["customer"]).ask(
            UpsertOrder({"id": order, **body})))

    async def open_conversation(self, shop: str, buyer: str, *, level: int = 0,
                                context: dict[str, Any] | None = None) -> str:
        """Open (or find) the buyer's conversation with a shop; returns its id."""
        from octim.domain.shops import KIND as SHOP
        from octim.domain.shops import OpenConversation

        check_storable(context or {}, where="context")
        opened = await self.directory.ref(SHOP, shop).ask(
            OpenConversation(shop, buyer, level, context or {}))
        return str(opened["conversation"])

    async def report(self, shop: str, first: str, last: str, *, agent: str = "",
                     granularity: str = "day", tz: str = "Asia/Shanghai",
                     name: str = "overview", channel: str = "", entry: str = "",
                     group: str = "") -> dict[str, Any]:
        """A report (``GET /api/reports/{name}``: ``overview``, ``conversion``, ``queue``,
        ``tickets``) of ``shop`` (``*``: the platform), one of its agents, or one channel,
        entry page or group of it, for the days ``first``..``last`` (YYYY-MM-DD, both
        included) in ``tz``; the counters catch up with the log first (docs/reports.md)."""
        import datetime
        from zoneinfo import ZoneInfo

        from octim.domain.reports.counting import DIMENSIONS
        from octim.domain.reports.read import GRANULARITIES, VIEWS, report, view

        if granularity not in GRANULARITIES:
            raise InvalidInput(f"granularity is one of {', '.join(GRANULARITIES)}")
        if name != "overview" and name not in VIEWS:
            raise InvalidInput(f"report is overview or one of {', '.join(VIEWS)}")
        chosen = [(k, v) for k, v in (("channel", channel), ("entry", entry),
                                      ("group", group)) if v]
        if len(chosen) + bool(agent) > 1:
            raise InvalidInput("one of agent, group, channel or entry at a time")
        for dimension, value in chosen:
            agent = DIMENSIONS[dimension] + value
        zone = ZoneInfo(tz)
        start = datetime.datetime.combine(datetime.date.fromisoformat(first),
                                          datetime.time(), zone)
        end = datetime.datetime.combine(datetime.date.fromisoformat(last)
                                        + datetime.timedelta(days=1), datetime.time(), zone)
        assert self.reports is not None
        await self.reports.catch_up()
        found = view(report(self.store, shop, agent, int(start.timestamp() * 1000),
                            int(end.timestamp() * 1000), granularity, zone), name)
        return {**found, "from": first, "to": last}

    async def lifecycle(self, shop: str) -> dict[str, Any]:
        """The shop's (``*``: every shop's) buyers per lifecycle stage now
        (``GET /api/reports/lifecycle``, docs/reports.md)."""
        from octim.domain.reports import lifecycle

        assert self.reports is not None
        await self.reports.catch_up()
        return lifecycle.report(self.store, shop, self.context.now_ms())

    async def put_channel(self, channel: str, **fields: Any) -> dict[str, Any]:
        """Create or replace a channel of a shop (fields as ``PUT /api/channels/{id}``;
        docs/channels.md); a generated secret is in this answer only."""
        from octim.api.channels import ChannelBody, save_channel
        from octim.domain.channels import validate_channel_id

        validate_channel_id(channel)
        return await save_channel(self, channel, ChannelBody.model_validate(fields),
                                  platform=True)

    async def channel_message(self, channel: str, **message: Any) -> dict[str, Any]:
        """A message of an api channel's external user, as ``POST
        /api/channels/{id}/messages`` takes it (``user``, ``id``, ``kind``, ``body``, ``ts``,
        ``name``, ``context``) but unsigned: an embedding program is trusted."""
        from octim.api.channels import InboundBody, receive_message

        record = self.context.channels.get(channel)
        if record is None or record["type"] != "api":
            raise NotFound(f"no api channel {channel!r}")
        check_storable(message, where="message")
        return await receive_message(self, record, InboundBody.model_validate(message))

    async def put_kb_entry(self, entry_id: str, **fields: Any) -> dict[str, Any]:
        """Create or replace a knowledge-base entry (``PUT /api/kb/{id}``)."""
        from octim.domain.kb.knowledge import UpsertEntry

        check_storable(fields, where="entry")
        return dict(await self.directory.ref(KB_KIND.name, KB_ID).ask(
            UpsertEntry({"id": entry_id, **fields})))

    async def ask_kb(self, question: str, shop: str | None = None, *,
                     staff: bool = False) -> dict[str, Any]:
        """What the bot would say (``POST /api/kb/ask``): ``{"id", "answer", "score",
        "confidence", "answered", "suggestions"}``; ``staff``: internal entries too."""
        from octim.domain.kb.knowledge import AskKb

        return dict(await self.directory.ref(KB_KIND.name, KB_ID).ask(
            AskKb(question, shop, staff)))

    async def kb_proposals(self, shop: str | None = None, limit: int = 100
                           ) -> list[dict[str, Any]]:
        """What traffic taught the bot, waiting for review (``GET /api/kb-proposals``)."""
        from octim.domain.kb.knowledge import ListProposals

        return list(await self.directory.ref(KB_KIND.name, KB_ID).ask(
            ListProposals(shop, limit)))

    async def decide_kb_proposal(self, proposal: str, approve: bool) -> dict[str, Any]:
        """Approve or reject a proposal (``POST /api/kb-proposals/{id}/approve|reject``)."""
        from octim.domain.kb.knowledge import DecideProposal

        return dict(await self.directory.ref(KB_KIND.name, KB_ID).ask(
            DecideProposal(proposal, approve, None)))

    async def set_kb_synonyms(self, shop: str | None, synonyms: dict[str, str]
                              ) -> dict[str, Any]:
        """A shop's synonym list, or the platform's (``PUT /api/kb-synonyms``)."""
        from octim.domain.kb.knowledge import PLATFORM_SYNONYMS, PutSynonyms

        return dict(await self.directory.ref(KB_KIND.name, KB_ID).ask(
            PutSynonyms(shop or PLATFORM_SYNONYMS, synonyms)))

    async def link_identities(self, customer: str, identities: list[dict[str, str]]
                              ) -> dict[str, Any]:
        """Link identities to a buyer (``PUT /api/customers/{id}/identities``)."""
        from octim.api.channels import IdentitiesBody

        body = IdentitiesBody.model_validate({"identities": identities})
        return dict(await self.context.channels.link(
            customer, [i.model_dump(exclude_none=True) for i in body.identities]))

    async def order_events(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Order events → service notices (``POST /api/events/orders``, docs/outreach.md);
        one result per event."""
        from octim.api.outreach import OrderEvents
        from octim.domain.outreach.notices import send_notices

        body = OrderEvents.model_validate({"events": events})
        return await send_notices(self, [event.model_dump() for event in body.events])

    async def preview_campaign(self, shop: str, segment: str) -> dict[str, Any]:
        """A segment's audience now, and what the gate would say to it
        (``POST /api/campaigns/preview``)."""
        from octim.api.campaigns import PreviewBody
        from octim.domain.outreach.campaigns import check_audience, preview

        body = PreviewBody.model_validate({"shop": shop, "segment": segment})
        found = check_audience(self.store, body.shop, body.segment)
        return await preview(self, body.shop, found, self.settings.campaign_max_audience)

    async def create_campaign(self, shop: str, name: str, segment: str,
                              message: dict[str, Any], **fields: Any) -> dict[str, Any]:
        """A campaign (``POST /api/campaigns``: ``schedule``, ``rate``,
        ``attribution_hours`` validated the same way; docs/outreach.md)."""
        from octim.api.campaigns import CampaignBody, checked

        body = CampaignBody.model_validate({"shop": shop, "name": name, "segment": segment,
                                            "message": message, **fields})
        return await self.campaigns.create(checked(self, body), "api")

    async def campaign(self, campaign: str, run: int | None = None) -> dict[str, Any]:
        """A campaign's record with the results of a run (the latest by default)."""
        record = self.campaigns.get(campaign)
        results = await self.campaigns.results(campaign, run) if record["run"] else None
        return {**record, "results": results}

    async def control_campaign(self, campaign: str, action: str) -> dict[str, Any]:
        """``pause``, ``resume`` or ``cancel`` a campaign."""
        return await self.campaigns.control(campaign, action)

    async def post_message(self, conversation: str, text: str, *,
                           as_: str = "system") -> dict[str, Any]:
        """Post as ``system`` (a notice) or ``bot``; returns the stored message."""
        from octim.domain.conversations.messages import Post

        if self.store.get("conversations", conversation.encode()) is None:
            raise NotFound(f"no conversation {conversation!r}")
        return dict(await self.directory.ref(CONVERSATION, conversation).ask(
            Post(conversation, as_, text)))

    def subscribe(self, events: set[str] | None = None, buffer: int = 1000
                  ) -> AbstractContextManager[trio.MemoryReceiveChannel[dict[str, Any]]]:
        """Durable events (``{"event", "data"}``) as they happen, e.g. ``message.sent``."""
        return self.events.subscribe(frozenset(events) if events else None, buffer)

    def _dispatcher(self) -> ActorRef:
        return self.directory.ref(DISPATCHER, DISPATCHER_ID)

    def stop(self) -> None:
        """Begin a clean shutdown; :meth:`run` returns when it is complete."""
        self.ready = False
        self._stop.set()

    async def run(self, *, task_status: trio.TaskStatus[Listening] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Run until :meth:`stop`; reports where it listens once ready."""
        s = self.settings
        Path(s.data).mkdir(parents=True, exist_ok=True)
        # One engine per data directory: a second one would assign the same
        # sequence numbers to different messages. Tools (kb import, rekey) may
        # still open the store beside it.
        lock = hold_lock(Path(s.data), exclusive=True, name=ENGINE_LOCK_FILE,
                         holder="another engine")
        try:
            await self._run(task_status)
        finally:
            lock.close()

    async def _run(self, task_status: trio.TaskStatus[Listening]) -> None:
        s = self.settings
        async with open_store(s.data, map_size=s.map_size, max_batch=s.commit_max_batch,
                              keys=load_keys(s.data_key, s.data_key_file)) as store:
            context = EngineContext(s, store, self.fanout)
            # Through the context, so a clock a test injects later is the one read.
            self.courier = Courier(s, store, lambda: context.clock())
            self.events = EventBus(s, store, lambda: context.clock(), self.courier)
            context.emit = self.events.emit
            context.stage = self.events.stage
            context.publish = self.events.publish
            context.is_warm = self.peak.is_warm
            context.metrics = self.metrics
            channels.install(context, self.courier)
            self.courier.open()
            self.reports = Reports(store)
            self.reports.open()
            async with open_directory(context) as directory:
                context.directory = directory
                directory.register(SHOP_KIND)
                directory.register(CONVERSATION_KIND)
                directory.register(DISPATCHER_KIND)
                directory.register(KB_KIND)
                directory.register(CUSTOMER_KIND)
                directory.register(AGENT_KIND)
                directory.register(TICKET_DESK_KIND)
                directory.register(MAILER_KIND)
                self._context = context
                self.campaigns = Campaigns(self)
                self.campaigns.open()
                try:
                    await self._serve(task_status)
                finally:
                    self.ready = False
                    log.info("stopping actors")
            try:  # a clean stop leaves the reports nothing to replay at the next start
                await self.reports.checkpoint()
            except Exception as exc:  # the next start replays from the last checkpoint
                log.error("reports' pending state not checkpointed", exc_info=exc)
            self.courier.close()
            stats = store.statistics()
            log.info("committing and closing the store",
                     extra={"commits": stats.commits, "parks": stats.parks,
                            "late_parks": stats.late_parks})
        self._context = None
        log.info("stopped")

    async def _serve(self, task_status: trio.TaskStatus[Listening]) -> None:
        s = self.settings
        async with trio.open_nursery() as servers:
            with _listener("http", s.http):
                http = await servers.start(
                    partial(serve_http, grace=s.shutdown_grace, certfile=s.tls_cert or None,
                            keyfile=s.tls_key or None, read_timeout=s.read_timeout,
                            handshake_timeout=s.handshake_timeout),
                    create_app(self), s.http, self._stop.wait)
            with _listener("ws", s.ws):
                ws = await servers.start(self.gateway.serve, s.ws)
            self.ws_bound = ws
            # jieba loads its dictionary on first use (~0.7 s of CPU): do it now, not
            # inside the first buyer question the bot or agent assist sees.
            jieba.initialize()
            sweeper, ticker = trio.CancelScope(), trio.CancelScope()
            self.monitor.open()
            courier = trio.CancelScope()
            servers.start_soon(self._courier_forever, courier)
            servers.start_soon(self._sweep_forever, sweeper)
            servers.start_soon(self._tick_forever, ticker)
            timer_task = trio.CancelScope()
            servers.start_soon(self._timers_forever, timer_task)
            campaigns = trio.CancelScope()
            servers.start_soon(self._campaigns_forever, campaigns)
            probe = trio.CancelScope()
            servers.start_soon(self._probe_forever, probe)
            peaks = trio.CancelScope()
            servers.start_soon(self._peak_forever, peaks)
            if outmail.enabled(s):  # replies left in the outbox by the last run go out now
                self.directory.ref(outmail.KIND, outmail.ID).tell_nowait(outmail.Kick())
            tune_interpreter(s.gc_threshold, s.gc_freeze, s.switch_interval)
            listening = Listening(http, ws, bool(s.tls_cert))
            self.ready = True
            log.info("ready", extra={"http": listening.http_url, "ws": listening.ws_url,
                                     "data": str(s.data)})
            task_status.started(listening)
            await self._stop.wait()
            log.info("shutting down")
            sweeper.cancel()
            ticker.cancel()
            probe.cancel()
            peaks.cancel()
            campaigns.cancel()  # what it did is saved below; a send in flight is redone
            await self.campaigns.flush()
            # What receivers answered is recorded before the courier stops.
            await self.courier.drain(s.webhook_timeout + 1)
            courier.cancel()
            timer_task.cancel()
            self.gateway.close()

    async def _probe_forever(self, scope: trio.CancelScope) -> None:
        with scope:
            await self.admission.probe()

    async def _peak_forever(self, scope: trio.CancelScope) -> None:
        with scope:
            await self.peak.run()

    async def _campaigns_forever(self, scope: trio.CancelScope) -> None:
        with scope:
            await self.campaigns.run()

    async def _courier_forever(self, scope: trio.CancelScope) -> None:
        with scope:
            await self.courier.run()

    async def _sweep_forever(self, scope: trio.CancelScope) -> None:
        with scope:
            while True:
                await trio.sleep(self.settings.sweep_interval)
                await self.sweep()

    async def _tick_forever(self, scope: trio.CancelScope) -> None:
        with scope:
            while True:
                await self.tick()
                await trio.sleep(self.settings.routing_tick)

    async def _timers_forever(self, scope: trio.CancelScope) -> None:
        """Fire the actors' timers at their time: sleep until the earliest is due (or a
        new one is earlier), at most ``routing_tick`` (the engine's clock may be moved)."""
        timers = self.context.timers
        with scope:
            while True:
                await self.fire_timers()
                earliest = timers.next_at()
                delay = self.settings.routing_tick if earliest is None else min(
                    self.settings.routing_tick, max(0.0, earliest - self.context.clock()))
                with trio.move_on_after(delay):
                    await timers.wait_earlier()

    async def fire_timers(self) -> None:
        """Tell every actor timer that is due on the engine's clock, one at a time; a
        second caller waits for a firing in progress, so when it returns every timer due
        when it was called has been handled."""
        async with self._firing:
            for kind, actor_id, message in self.context.timers.due(self.context.clock()):
                try:  # asked, so what it tells others is queued before what comes next
                    await self.directory.ref(kind, actor_id).ask(message)
                except OctimError as exc:
                    log.warning("timer not delivered", extra={
                        "actor": f"{kind}/{actor_id}", "error": repr(exc)})

    async def tick(self) -> None:
        """Fire the actors' timers that are due (presence grace, SLA breaches, ticket
        auto-close), let the dispatcher check its own (no-reply, waits) and the webhook
        sender retry what is due. Runs every ``routing_tick``; tests call it directly
        after moving the clock. (Actor timers also fire at their own time, without a
        tick, from a task that sleeps until the earliest is due.)"""
        await self.fire_timers()
        await self.directory.ref(DISPATCHER, DISPATCHER_ID).ask(Tick())
        self.courier.tick(self.context.clock())
        await self.monitor.catch_up()
        if self.reports is not None and self.reports.due(self.context.clock(),
                                                          self.settings.report_interval):
            await self.reports.catch_up()

    async def sweep(self) -> int:
        """Ask every open conversation idle past the auto-close time to close; returns
        how many were asked. Runs every ``sweep_interval``; tests call it directly."""
        context = self.context
        cutoff = context.now_ms() - self.settings.auto_close_after * 1000
        asked = 0
        for key, last_activity in context.store.scan("idx_open_conversations"):
            if last_activity <= cutoff:
                conversation = key.decode()
                try:
                    await self.directory.ref(CONVERSATION, conversation).tell(
                        CloseIfIdle(conversation))
                    asked += 1
                except OctimError as exc:
                    log.warning("sweep could not reach a conversation",
                                extra={"conversation": conversation, "error": repr(exc)})
        return asked


@asynccontextmanager
async def open_engine(data: str | os.PathLike[str], **settings: Any) -> AsyncIterator[Engine]:
    """An engine for embedding programs, running until the block ends.

    ``settings`` are :class:`~octim.config.Settings` fields. Unlike ``octim
    serve``, listeners default to free loopback ports and the secret and API key
    are generated when not given (read them from ``engine.settings``).
    """
    import secrets as _secrets

    from octim.config import load_settings

    flags: dict[str, Any] = {"data": data, "http": "127.0.0.1:0", "ws": "127.0.0.1:0",
                             "secret": _secrets.token_urlsafe(48),
                             "api_key": _secrets.token_urlsafe(24), **settings}
    engine = Engine(load_settings(env={}, flags=flags))
    async with trio.open_nursery() as nursery:
        engine.listening = await nursery.start(engine.run)
        try:
            yield engine
        finally:
            engine.stop()
