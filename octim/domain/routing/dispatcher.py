"""The dispatcher: the one owner of routing decisions (分流) for this process.

It holds the agents (profile, presence, load), every waiting conversation
and the shops' routing policies, and decides with the Rust scorer on every
event that can change an answer: a conversation starts waiting, an agent
comes online or frees capacity, a transfer, a timer. Because one actor owns
all capacity counters, a burst of simultaneous arrivals can never push an
agent over capacity or assign a conversation twice.

Decisions are applied here (load, sticky record, routing trace, written to
the store) and then told to the ConversationActor, which records the
assignment in the conversation and tells the participants.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from octim.actors import Actor, ActorKind, Address, Message, thaw
from octim.domain import peak
from octim.domain.agents import KIND as AGENT
from octim.domain.agents import Announce
from octim.domain.bot import BotSettings, bot_starts
from octim.domain.context import EngineContext
from octim.domain.conversations.messages import CONVERSATION, AssignConversation, Unassign
from octim.domain.conversations.model import ConversationMeta, event_frame, pair_key
from octim.domain.customers import PAID, order_index_key
from octim.domain.routing import scorer
from octim.domain.routing.messages import (
    DISPATCHER,
    DISPATCHER_ID,
    AgentReplied,
    AgentStatus,
    AgentView,
    ConversationReleased,
    DeleteAgent,
    DeleteGroup,
    ForceAssign,
    GetAgent,
    ListAgents,
    ListGroups,
    MonitorView,
    PeakChanged,
    QueueView,
    RouteConversation,
    ShopChanged,
    ShopOnline,
    SimulateRoute,
    Tick,
    UpsertAgent,
    UpsertGroup,
)
from octim.domain.routing.policy import RoutingPolicy, Target, target
from octim.domain.routing.state import AgentState, Assigned, Waiting
from octim.domain.segments import is_member
from octim.errors import InvalidInput, NotFound, OctimError, VersionConflict
from octim.store import Delete, Op, Put, pack

log = logging.getLogger("octim.routing")

KIND, ID = DISPATCHER, DISPATCHER_ID
PLATFORM = "*"  # an agent serving shop "*" is platform staff: the overflow group
STATUSES = ("online", "busy", "away", "offline")
MAX_TRACES = 20
ROUTING_CACHE = 50_000  # routing records kept in memory (most recently touched)
DEFAULT_HANDLE_SECONDS = 120.0


@dataclass
class Decided:
    """One decision round: the agents considered, the batch, its queues, the decisions."""

    serving: list[AgentState]
    batch: scorer.Batch
    queue: Callable[[str, str | None], int]
    overflowing: set[str]
    decisions: list[scorer.Decision]


class Dispatcher(Actor[EngineContext]):
    """See the module docstring."""

    def __init__(self, address: Address, context: EngineContext) -> None:
        super().__init__(address, context)
        self.agents: dict[str, AgentState] = {}
        self.waiting: dict[str, Waiting] = {}
        self.assigned: dict[str, Assigned] = {}
        self.policies: dict[str, RoutingPolicy] = {}
        self.groups: dict[str, dict[str, dict[str, Any]]] = {}
        self.handle_seconds: dict[str, float] = {}  # per shop, moving average
        self.arrivals = 0
        self.last_tick = 0.0
        self.routing_records: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._peaks: dict[str, tuple[float, peak.PeakState]] = {}  # shop → (until, state)

    def now(self) -> float:
        return self.context.clock()

    def _peak(self, shop: str) -> peak.PeakState:
        """The shop's peak mode, read from the store at most once a second."""
        now = self.now()
        found = self._peaks.get(shop)
        if found is None or found[0] <= now:
            found = (now + 1.0, peak.state(self.context.store, shop, int(now * 1000)))
            self._peaks[shop] = found
        return found[1]

    def _capacity(self, agent: AgentState) -> int:
        """The agent's capacity now: ``max_concurrent``, scaled by the largest capacity
        factor of the shops they serve that are in peak mode."""
        factor = max((p.capacity_factor for p in (self._peak(s) for s in agent.shops
                                                  if s != PLATFORM) if p.on), default=1.0)
        return max(agent.max_concurrent, int(agent.max_concurrent * factor))

    # -- start-up: rebuild from the store -------------------------------------------

    async def on_start(self) -> None:
        store = self.context.store
        for _, raw in store.scan("agents"):
            self.agents[raw["id"]] = AgentState(raw["id"], raw["name"], tuple(raw["shops"]),
                                                tuple(raw["groups"]), raw["max_concurrent"],
                                                raw["weight"], raw.get("disabled", False),
                                                raw.get("version", 0))
        for key, cost in store.scan("idx_agent_open"):
            agent, conversation = key.decode().split("\0", 1)
            meta = ConversationMeta.load(store, conversation)
            if agent in self.agents and meta is not None:
                self.agents[agent].active[conversation] = cost
                self.assigned[conversation] = Assigned(agent, meta.shop, self.now(), 0.0)
        for agent in self.agents:  # after a restart of ours: who is connected now
            self._ask_status(agent)
        for _, entry in store.scan("routing"):
            if entry.get("waiting"):
                item = Waiting.from_record(entry["waiting"])
                self.waiting[item.conversation] = item
                self.arrivals = max(self.arrivals, item.arrival + 1)

    def _policy(self, shop: str) -> RoutingPolicy:
        if shop not in self.policies:
            raw = self.context.store.get("shops", shop.encode())
            self.policies[shop] = RoutingPolicy.from_record((raw or {}).get("routing"))
        return self.policies[shop]

    def _groups(self, shop: str) -> dict[str, dict[str, Any]]:
        if shop not in self.groups:
            prefix = pair_key(shop, "")
            self.groups[shop] = {
                key[len(prefix):].decode(): value for key, value in
                self.context.store.scan("groups", prefix, prefix[:-1] + b"\x01")}
        return self.groups[shop]

    # -- messages ---------------------------------------------------------------------

    async def receive(self, message: Message) -> Any:
        match message:
            case RouteConversation():
                await self._enqueue(message)
                await self._drive({message.shop})
            case ConversationReleased(conversation=conversation):
                shops = await self._release(conversation)
                await self._drive(shops)
            case AgentReplied(conversation=conversation):
                if conversation in self.assigned:
                    self.assigned[conversation].reply_deadline = 0.0
            case AgentStatus(agent=agent, status=status):
                await self._status(agent, status)
            case Tick():
                await self._tick()
            case ForceAssign(conversation=conversation, agent=agent):
                return await self._force(conversation, agent)
            case UpsertAgent():
                return await self._upsert_agent(message)
            case DeleteAgent(agent=agent):
                state = self.agents.pop(agent, None)
                await self.context.store.write((Delete("agents", agent.encode()),))
                if state is not None:
                    for conversation in list(state.active):
                        await self._requeue(conversation, "agent_deleted", exclude=agent)
                return None
            case GetAgent(agent=agent) | AgentView(agent=agent):
                state = self.agents.get(agent)
                if state is None:
                    raise NotFound(f"no agent {agent!r}")
                view = state.record()
                if isinstance(message, AgentView):
                    view.update(status=state.status, load=state.load,
                                conversations=sorted(state.active))
                return view
            case UpsertGroup(shop=shop, group=group, name=name):
                record_ = {"id": group, "shop": shop, "name": name}
                await self.context.store.write((Put("groups", pair_key(shop, group),
                                                    pack(record_)),))
                self._groups(shop)[group] = record_
                await self._drive({shop})
                return record_
            case DeleteGroup(shop=shop, group=group):
                await self.context.store.write((Delete("groups", pair_key(shop, group)),))
                self._groups(shop).pop(group, None)
                await self._drive({shop})
                return None
            case ShopOnline(shop=shop):
                return any(a.available and shop in a.shops
                           for a in self.agents.values())
            case MonitorView(shops=shops):
                return self._monitor_view(shops)
            case SimulateRoute():
                return self._simulate(message)
            case ListAgents(shop=shop):
                return [{**a.record(), "status": a.status, "load": a.load,
                         "capacity": self._capacity(a)}
                        for a in sorted(self.agents.values(), key=lambda a: a.id)
                        if shop in a.shops]
            case PeakChanged():  # capacities and queue caps change now, not in a second
                self._peaks.clear()
                await self._drive({w.shop for w in self.waiting.values()})
                return None
            case QueueView():
                now = self.now()
                queues: dict[str, dict[str, Any]] = {}
                for item in self.waiting.values():
                    entry = queues.setdefault(item.shop, {"queued": 0, "longest_wait": 0.0})
                    entry["queued"] += 1
                    entry["longest_wait"] = max(entry["longest_wait"],
                                                round(now - item.enqueued_at, 1))
                return queues
            case ListGroups(shop=shop):
                return sorted(self._groups(shop).values(), key=lambda g: g["id"])
            case ShopChanged(shop=shop):
                self.policies.pop(shop, None)
                await self._drive({shop})
                return None
            case _:
                raise InvalidInput(f"the dispatcher cannot handle {type(message).__name__}")
        return None

    def _monitor_view(self, shops: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        now = self.now()
        view: dict[str, dict[str, Any]] = {
            shop: {"agents": [], "assigned": 0, "queued": 0, "longest_wait": 0.0}
            for shop in shops}
        for agent in self.agents.values():
            for shop in agent.shops:
                if shop in view:
                    view[shop]["agents"].append({
                        "id": agent.id, "name": agent.name, "status": agent.status,
                        "load": agent.load, "max_concurrent": agent.max_concurrent})
        for assigned in self.assigned.values():
            if assigned.shop in view:
                view[assigned.shop]["assigned"] += 1
        for item in self.waiting.values():
            if item.shop in view:
                entry = view[item.shop]
                entry["queued"] += 1
                entry["longest_wait"] = max(entry["longest_wait"],
                                            round(now - item.enqueued_at, 1))
        for entry in view.values():
            entry["agents"].sort(key=lambda a: a["id"])
            counts = {status: 0 for status in STATUSES}
            for agent in entry["agents"]:
                counts[agent["status"]] += 1
            entry["agents_by_status"] = counts
        return view

    # -- agents and presence ---------------------------------------------------------

    async def _upsert_agent(self, m: UpsertAgent) -> dict[str, Any]:
        state = self.agents.get(m.agent)
        if m.only_shops is not None and state is not None and not set(state.shops) <= set(
                m.only_shops):
            raise NotFound(f"no agent {m.agent!r}")  # another shop's: not even its existence
        if m.expected_version is not None and m.expected_version != (
                state.version if state is not None else 0):
            raise VersionConflict(f"agent {m.agent!r} was changed by someone else since "
                                  "you loaded it: reload, then save again")
        before = set(state.shops) if state is not None else set()
        if state is None:
            state = self.agents[m.agent] = AgentState(m.agent, m.name, m.shops, m.groups,
                                                      m.max_concurrent, m.weight, m.disabled)
            # Maybe already connected when the profile appears: ask for the status.
            self._ask_status(m.agent)
        else:
            state.name, state.shops, state.groups = m.name, m.shops, m.groups
            state.max_concurrent, state.weight = m.max_concurrent, m.weight
            state.disabled = m.disabled
        state.version += 1
        await self.context.store.write((Put("agents", m.agent.encode(), pack(state.record())),))
        if state.disabled:  # their unanswered conversations go to someone who can answer
            for conversation in list(state.active):
                assigned = self.assigned.get(conversation)
                if assigned is not None and assigned.reply_deadline:
                    await self._requeue(conversation, "agent_disabled", exclude=state.id)
        await self._drive(set(m.shops) | before)
        return state.record()

    def _ask_status(self, agent: str) -> None:
        """Ask an active AgentActor to tell its status (an inactive one is offline:
        activating it would only say so)."""
        directory = self.context.directory
        assert directory is not None
        if directory.is_active(AGENT, agent):
            try:
                directory.ref(AGENT, agent).tell_nowait(Announce(agent))
            except OctimError:
                log.warning("agent status not asked", extra={"agent": agent})

    async def _status(self, agent: str, status: str) -> None:
        state = self.agents.get(agent)
        if state is None or status not in STATUSES or status == state.status:
            return  # staff without an agent profile take no routed conversations
        state.status = status
        if status == "offline":
            await self._drive(await self._went_offline(state) | set(state.shops))
        elif status == "online":
            await self._drive(self._shops_of(state))

    def _shops_of(self, state: AgentState) -> set[str]:
        """The shops an agent can serve now (platform agents: any shop with waiters)."""
        if PLATFORM in state.shops:
            return {w.shop for w in self.waiting.values()}
        return set(state.shops)

    async def _went_offline(self, state: AgentState) -> set[str]:
        shops: set[str] = set()
        for conversation in list(state.active):
            assigned = self.assigned.get(conversation)
            if assigned is None:
                continue
            if self._policy(assigned.shop).requeue_on_offline and assigned.reply_deadline:
                shops |= await self._requeue(conversation, "agent_offline", exclude=state.id)
        return shops

    # -- waiting --------------------------------------------------------------------

    async def _enqueue(self, m: RouteConversation) -> None:
        if m.conversation in self.assigned:
            await self._release(m.conversation)
        item = self._waiting_for(m, self.now(), self.context.now_ms(), self._peak(m.shop))
        self.arrivals += 1
        self.waiting[m.conversation] = item
        await self._save_routing(m.conversation, waiting=item.record())

    def _waiting_for(self, m: RouteConversation, now: float, now_ms: int,
                     peak_state: peak.PeakState) -> Waiting:
        """The queue entry for a conversation: target, priority, preference (changes
        nothing: the simulator calls it too)."""
        policy = self._policy(m.shop)
        groups = set(self._groups(m.shop))
        level = m.level
        for segment_id in policy.vip_segments:
            segment = self.context.store.get("segments", segment_id.encode())
            if segment is not None and is_member(self.context.store, segment, m.buyer, now_ms):
                level = max(level, policy.vip_level)  # a segment member is served as VIP
                break
        tgt = target(policy, groups, thaw(m.context), m.text, level)
        if m.group:
            if m.group not in groups:
                raise NotFound(f"no group {m.group!r} in shop {m.shop!r}")
            tgt = Target(m.group, tgt.priority, tgt.sla_seconds,
                         max(1, policy.group_costs.get(m.group, 1)),
                         (*tgt.rules, f"transfer:group {m.group}"), tgt.fired)
        if peak_state.on:
            tgt = self._peak_order(tgt, peak_state, m.shop, m.buyer,
                                   level >= policy.vip_level > 0, now_ms)
        item = Waiting(m.conversation, m.shop, m.buyer, tgt, self.arrivals, now,
                       exclude_agent=m.exclude_agent, reason=m.reason)
        dedicated = policy.dedicated.get(m.buyer)
        if m.reason == "transfer" and m.prefer_agent:
            item.prefer_agent, item.prefer_kind = m.prefer_agent, scorer.PREFER_DEDICATED
            item.wait_until = now + policy.transfer_wait
        elif dedicated:
            item.prefer_agent, item.prefer_kind = dedicated, scorer.PREFER_DEDICATED
        else:
            last = m.prefer_agent or self._sticky(m.buyer, m.shop, policy, now)
            if last:
                item.prefer_agent, item.prefer_kind = last, scorer.PREFER_STICKY
                item.wait_until = now + policy.sticky_wait if m.reason != "reopened" else 0.0
        return item

    def _peak_order(self, tgt: Target, state: peak.PeakState, shop: str, buyer: str,
                    vip: bool, now_ms: int) -> Target:
        """Peak mode's queue order: VIPs first (``vip_first``), then buyers with a paid
        order in the shop within ``recent_order_days`` (``after_sales``, 售后优先) or
        those without one (``pre_sales``, 询单优先); the SLA deadline orders each tier."""
        rules = list(tgt.rules)
        tier = tgt.priority if vip and state.vip_first else 0
        if vip and not state.vip_first:
            rules.append("peak:vip not first")
        bonus = 0
        if state.priority in peak.PRIORITIES:
            days = state.recent_order_days
            paid = recent_payer(self.context.store, buyer, shop, now_ms - days * peak.DAY_MS)
            if paid == (state.priority == "after_sales"):
                bonus = 1
            rules.append(f"peak:{state.priority} ({'a' if paid else 'no'} paid order "
                         f"in {days} d{': first' if bonus else ''})")
        return Target(tgt.group, tier * 2 + bonus, tgt.sla_seconds, tgt.cost, tuple(rules),
                      tgt.fired)

    def _sticky(self, buyer: str, shop: str, policy: RoutingPolicy, now: float) -> str:
        found = self.context.store.get("sticky", pair_key(buyer, shop))
        if found and policy.sticky_days > 0 and now - found[1] / 1000 <= policy.sticky_days * 86400:
            return str(found[0])
        return ""

    async def _release(self, conversation: str) -> set[str]:
        """Free the agent's capacity (or leave the queue). Returns shops to re-drive."""
        shops: set[str] = set()
        item = self.waiting.pop(conversation, None)
        if item is not None:
            shops.add(item.shop)
            await self._save_routing(conversation, waiting=None)
        assigned = self.assigned.pop(conversation, None)
        if assigned is not None:
            state = self.agents.get(assigned.agent)
            if state is not None:
                state.active.pop(conversation, None)
                shops |= set(state.shops)
            handled = max(0.0, self.now() - assigned.at)
            average = self.handle_seconds.get(assigned.shop, DEFAULT_HANDLE_SECONDS)
            self.handle_seconds[assigned.shop] = 0.8 * average + 0.2 * handled
            await self.context.store.submit(
                (Delete("idx_agent_open", pair_key(assigned.agent, conversation)),),
                _log_failure)
        return shops

    async def _requeue(self, conversation: str, reason: str, *, exclude: str) -> set[str]:
        assigned = self.assigned.get(conversation)
        meta = ConversationMeta.load(self.context.store, conversation)
        if meta is None:
            return await self._release(conversation)
        shops = await self._release(conversation)
        assert self.context.directory is not None
        await self.context.directory.ref(CONVERSATION, conversation).tell(
            Unassign(conversation, reason))
        await self._enqueue(RouteConversation(
            conversation, meta.shop, meta.buyer, meta.level, meta.context, meta.first_text,
            reason, "", "", exclude))
        log.info("conversation requeued", extra={"conversation": conversation,
                                                 "reason": reason, "agent": exclude,
                                                 "was": assigned and assigned.agent})
        return shops | {meta.shop}

    # -- deciding -------------------------------------------------------------------

    async def _drive(self, shops: Iterable[str]) -> None:
        """Decide every waiting conversation of ``shops`` against the agents serving them."""
        shops = {s for s in shops if s}
        items = [w for w in self.waiting.values() if w.shop in shops]
        if not items:
            return
        now = self.now()
        decided = self._decide(shops, items, now)
        for conversation_index, agent_index, rule in decided.decisions:
            item = items[conversation_index]
            agent = decided.serving[agent_index]
            trace = self._trace(item, decided.serving, decided.batch,
                                decided.queue(item.shop, item.target.group), agent.id,
                                scorer.RULES[rule], now)
            await self._assign(item, agent, trace, now)
        await self._publish_positions(shops, decided.serving, decided.batch, decided.queue)

    def _decide(self, shops: set[str], items: list[Waiting], now: float) -> Decided:
        """The scorer's decisions for ``items`` (waiting in ``shops``): pure, nothing
        is applied."""
        batch = scorer.Batch()
        queue_ids: dict[tuple[str, str], int] = {}

        def queue(shop: str, group: str | None) -> int:
            key = (shop, group or "*")
            if key not in queue_ids:
                queue_ids[key] = batch.add_queue(scorer.RANKINGS[self._policy(shop).ranking])
            return queue_ids[key]

        serving = [a for a in self.agents.values() if shops & set(a.shops)]
        # Platform overflow: shops that allow it and have nobody online borrow the
        # platform's agents (shops ["*"]) for their shop-wide queue.
        overflowing = {s for s in shops if self._policy(s).overflow_to_platform and not any(
            a.available and s in a.shops for a in serving)}
        if overflowing:
            serving += [a for a in self.agents.values() if PLATFORM in a.shops]
        index = {a.id: i for i, a in enumerate(serving)}
        for agent in serving:
            queues = []
            for shop in shops & set(agent.shops):
                queues.append(queue(shop, None))
                queues += [queue(shop, g) for g in agent.groups if g in self._groups(shop)]
            if PLATFORM in agent.shops:
                queues += [queue(shop, None) for shop in overflowing]
            batch.add_agent(self._capacity(agent), agent.load, agent.weight,
                            agent.last_assigned, agent.available, queues)
        for item in items:
            t = item.target
            group = None if item.shop in overflowing else t.group
            batch.add_waiting(queue(item.shop, group), t.priority,
                              item.enqueued_at + t.sla_seconds, item.arrival, t.cost,
                              index.get(item.prefer_agent, -1),
                              item.prefer_kind if item.prefer_agent in index else 0,
                              item.wait_until, index.get(item.exclude_agent, -1))
        return Decided(serving, batch, queue, overflowing, scorer.assign(batch, now))

    def _simulate(self, m: SimulateRoute) -> dict[str, Any]:
        """A new conversation decided on the current state at ``m.at``, nothing applied:
        the same targeting, preference, scorer and trace code as a real one."""
        now, now_ms = m.at, int(m.at * 1000)
        store = self.context.store
        shop_record = store.get("shops", m.shop.encode())
        if shop_record is None:
            raise NotFound(f"no shop {m.shop!r}")
        peak_state = peak.state(store, m.shop, now_ms)
        item = self._waiting_for(RouteConversation(
            "(simulated)", m.shop, m.buyer, m.level, m.context, m.text, "first_message",
            "", "", ""), now, now_ms, peak_state)
        items = [w for w in self.waiting.values() if w.shop == m.shop] + [item]
        decided = self._decide({m.shop}, items, now)
        mine = len(items) - 1
        loads = list(decided.batch.load)
        winner, rule = None, "waiting"
        for conversation_index, agent_index, decision_rule in decided.decisions:
            if conversation_index == mine:
                winner, rule = decided.serving[agent_index].id, scorer.RULES[decision_rule]
                break
            loads[agent_index] += items[conversation_index].target.cost
        queue = decided.queue(m.shop, None if m.shop in decided.overflowing
                              else item.target.group)
        trace = self._trace(item, decided.serving, decided.batch, queue, winner, rule, now,
                            loads)
        trace.pop("conversation")
        trace["fired"] = item.target.fired
        trace["overflow_to_platform"] = m.shop in decided.overflowing
        ranking = scorer.RANKINGS[self._policy(m.shop).ranking]
        by_id = {a.id: (i, a) for i, a in enumerate(decided.serving)}
        for candidate in trace["candidates"]:
            i, agent = by_id[candidate["agent"]]
            candidate["score"] = _rank_value(ranking, loads[i], self._capacity(agent),
                                             agent.weight, agent.last_assigned, now)
        settings = BotSettings.from_record(shop_record.get("bot"))
        online = any(a.available and m.shop in a.shops for a in self.agents.values())
        trace["starts_with"] = "bot" if peak_state.on or bot_starts(settings, now, online) \
            else "queue"
        trace["peak"] = peak_state.on
        if winner is None:
            assigned = {items[c].conversation for c, _, _ in decided.decisions}
            line = sorted((w for w in items if w.conversation not in assigned),
                          key=lambda w: (-w.target.priority, w.enqueued_at + w.target.sla_seconds,
                                         w.arrival))
            position = next(i for i, w in enumerate(line, start=1) if w is item)
            online_here = sum(1 for i, a in enumerate(decided.serving) if a.available and queue in
                              decided.batch.queue_ids[decided.batch.queue_offsets[i]:
                                                      decided.batch.queue_offsets[i + 1]])
            trace["position"] = position
            average = self.handle_seconds.get(m.shop, DEFAULT_HANDLE_SECONDS)
            trace["estimated_wait"] = (int(math.ceil(position / online_here) * average)
                                       if online_here else None)
        return trace

    def _trace(self, item: Waiting, serving: list[AgentState], batch: scorer.Batch,
               queue: int, winner: str | None, rule: str, now: float,
               loads: list[int] | None = None) -> dict[str, Any]:
        """Why this decision: candidates, who was filtered out and why, the winner."""
        load = batch.load if loads is None else loads
        candidates = []
        for i, agent in enumerate(serving):
            queues = batch.queue_ids[batch.queue_offsets[i]:batch.queue_offsets[i + 1]]
            if queue not in queues:
                continue
            if agent.id == winner:
                verdict = "winner"
            elif agent.id == item.exclude_agent:
                verdict = "excluded"
            elif agent.disabled:
                verdict = "disabled"
            elif agent.status != "online":
                verdict = agent.status
            elif load[i] + item.target.cost > self._capacity(agent):
                verdict = "full"
            elif agent.weight <= 0:
                verdict = "weight 0 (transfers only)"
            else:
                verdict = "ranked lower" if winner else "eligible"
            candidates.append({"agent": agent.id, "status": agent.status,
                               "load": load[i], "capacity": self._capacity(agent),
                               "weight": agent.weight,
                               "idle_s": round(now - agent.last_assigned, 1)
                               if agent.last_assigned else None, "verdict": verdict})
        t = item.target
        return {"at": int(now * 1000), "conversation": item.conversation, "shop": item.shop,
                "reason": item.reason, "group": t.group, "priority": t.priority,
                "cost": t.cost, "rules": list(t.rules),
                "ranking": self._policy(item.shop).ranking,
                "preference": {"agent": item.prefer_agent, "kind": {
                    0: None, 1: "dedicated", 2: "sticky"}[item.prefer_kind]}
                if item.prefer_agent else None,
                "decision": "assigned" if winner else "waiting", "rule": rule,
                "winner": winner, "candidates": candidates}

    async def _assign(self, item: Waiting, agent: AgentState, trace: dict[str, Any],
                      now: float) -> None:
        self.waiting.pop(item.conversation, None)
        agent.active[item.conversation] = item.target.cost
        agent.last_assigned = now
        if self.context.metrics is not None and item.reason != "forced":
            self.context.metrics.assign_seconds.observe(max(0.0, now - item.enqueued_at))
        no_reply = self._policy(item.shop).no_reply_seconds
        self.assigned[item.conversation] = Assigned(
            agent.id, item.shop, now, now + no_reply if no_reply > 0 else 0.0)
        await self._save_routing(item.conversation, waiting=None, trace=trace)
        await self.context.store.submit((
            Put("idx_agent_open", pair_key(agent.id, item.conversation), pack(item.target.cost)),
            Put("sticky", pair_key(item.buyer, item.shop), pack([agent.id, int(now * 1000)])),
        ), _log_failure)
        assert self.context.directory is not None
        await self.context.directory.ref(CONVERSATION, item.conversation).tell(
            AssignConversation(item.conversation, agent.id, trace["rule"], item.target.group))

    async def _force(self, conversation: str, agent_id: str) -> dict[str, Any]:
        agent = self.agents.get(agent_id)
        meta = ConversationMeta.load(self.context.store, conversation)
        if agent is None or meta is None:
            raise NotFound(f"no agent {agent_id!r} or conversation {conversation!r}")
        await self._release(conversation)
        now = self.now()
        item = Waiting(conversation, meta.shop, meta.buyer,
                       Target(None, 0, 0.0, 1, ("forced",)), self.arrivals, now, reason="forced")
        trace = {"at": int(now * 1000), "conversation": conversation, "shop": meta.shop,
                 "reason": "forced", "decision": "assigned", "rule": "forced",
                 "winner": agent_id, "candidates": []}
        await self._assign(item, agent, trace, now)
        await self._drive({meta.shop})
        return {"conversation": conversation, "agent": agent_id}

    async def _publish_positions(self, shops: set[str], serving: list[AgentState],
                                 batch: scorer.Batch, queue: Any) -> None:
        """Tell every waiting buyer their position and estimated wait when it changed."""
        for shop in shops:
            line = sorted((w for w in self.waiting.values() if w.shop == shop),
                          key=lambda w: (-w.target.priority, w.enqueued_at + w.target.sla_seconds,
                                         w.arrival))
            online_by_queue: dict[int, int] = {}
            for i, agent in enumerate(serving):
                if agent.available:
                    for q in batch.queue_ids[batch.queue_offsets[i]:batch.queue_offsets[i + 1]]:
                        online_by_queue[q] = online_by_queue.get(q, 0) + 1
            average = self.handle_seconds.get(shop, DEFAULT_HANDLE_SECONDS)
            cap = self._peak(shop).queue_cap if self._peak(shop).on else None
            for position, item in enumerate(line, start=1):
                online = online_by_queue.get(queue(shop, item.target.group), 0)
                data: dict[str, Any] = {"position": position}
                if online:
                    data["estimated_wait"] = int(math.ceil(position / online) * average)
                    if cap is not None and position > cap:
                        # Peak mode's queue cap: past it, leaving a message is offered
                        # beside the honest wait (the buyer may still wait).
                        data["mode"] = "leave_message"
                        data["reason"] = "queue_cap"
                else:
                    data["mode"] = "leave_message"  # nobody online: they see it on return
                state = (position, data.get("mode"))
                if state != item.published:
                    item.published = state
                    self.context.fanout.publish(event_frame(item.conversation, "queued", data),
                                                [item.buyer])

    # -- timers ---------------------------------------------------------------------

    async def _tick(self) -> None:
        now = self.now()
        shops: set[str] = set()
        for conversation, assigned in list(self.assigned.items()):
            if assigned.reply_deadline and now >= assigned.reply_deadline:
                shops |= await self._requeue(conversation, "no_reply", exclude=assigned.agent)
        for item in self.waiting.values():
            if self.last_tick < item.wait_until <= now:
                shops.add(item.shop)  # a preference wait ran out
        self.last_tick = now
        await self._drive(shops)

    async def _save_routing(self, conversation: str, *, waiting: dict[str, Any] | None,
                            trace: dict[str, Any] | None = None) -> None:
        # The dispatcher is the only writer of routing records. It keeps the
        # ones it touched lately in memory, so a read-modify-write never reads
        # a record whose previous write is still being committed.
        entry = self.routing_records.pop(conversation, None)
        if entry is None:
            entry = self.context.store.get("routing", conversation.encode()) or {"traces": []}
        entry["waiting"] = waiting
        if trace is not None:
            entry["traces"] = [*entry["traces"], trace][-MAX_TRACES:]
        self.routing_records[conversation] = entry
        if len(self.routing_records) > ROUTING_CACHE:
            self.routing_records.popitem(last=False)
        ops: tuple[Op, ...] = (Put("routing", conversation.encode(), pack(entry)),)
        await self.context.store.submit(ops, _log_failure)


def _rank_value(ranking: int, load: int, capacity: int, weight: float, last_assigned: float,
                now: float) -> dict[str, Any]:
    """What the shop's ranking compares for one agent, as the simulator shows it."""
    if ranking == scorer.FREE_RATIO:
        return {"by": "free_ratio", "value": round(max(0, capacity - load) / capacity, 3),
                "best": "highest"}
    if ranking == scorer.LONGEST_IDLE:
        return {"by": "idle_seconds", "value": round(now - last_assigned, 1)
                if last_assigned else None, "best": "highest (never assigned first)"}
    if ranking == scorer.WEIGHTED:
        return {"by": "load_per_weight", "value": round(load / weight, 3) if weight else None,
                "best": "lowest"}
    return {"by": "load", "value": load, "best": "lowest"}


def recent_payer(store: Any, buyer: str, shop: str, since_ms: int, limit: int = 200) -> bool:
    """Whether the buyer has an order in the shop paid at ``since_ms`` or later (reads at
    most ``limit`` of their orders there, skipping those created a day before it)."""
    prefix = order_index_key(buyer, shop, "")
    for key, created in store.scan("idx_customer_orders", prefix, prefix[:-1] + b"\x01",
                                   limit=limit):
        if created and int(created) < since_ms - peak.DAY_MS:
            continue
        order = store.get("orders", key[len(prefix):])
        if order is None or order["status"] not in PAID:
            continue
        if int((order.get("times") or {}).get("paid") or created or 0) >= since_ms:
            return True
    return False


def _log_failure(error: str | None) -> None:
    if error is not None:
        log.error("routing write failed", extra={"error": error})


DISPATCHER_KIND: ActorKind[EngineContext] = ActorKind(KIND, Dispatcher, mailbox_size=65536)
