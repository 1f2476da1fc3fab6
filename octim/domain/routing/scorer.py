"""The routing scorer's Python face: batches as flat arrays, Rust and reference.

:class:`Batch` collects agents and waiting conversations into typed
``array`` buffers (struct-of-arrays), which cross into Rust without
per-item conversion. :func:`assign` runs the Rust scorer
(``octim._core.assign_batch``, GIL released); :func:`assign_reference` is the
same policy in plain Python, kept identical by a hypothesis differential
test. The policy is documented in ``octim_core/src/scorer.rs`` and
docs/routing.md.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from octim._core import assign_batch

LEAST_LOAD, FREE_RATIO, LONGEST_IDLE, WEIGHTED = 0, 1, 2, 3
RANKINGS = {"least_load": LEAST_LOAD, "free_ratio": FREE_RATIO,
            "longest_idle": LONGEST_IDLE, "weighted": WEIGHTED}
RANKED, DEDICATED, STICKY = 0, 1, 2
RULES = {RANKED: "ranked", DEDICATED: "dedicated", STICKY: "sticky"}
PREFER_NONE, PREFER_DEDICATED, PREFER_STICKY = 0, 1, 2


@dataclass
class Batch:
    """Agents and waiting conversations, as the scorer takes them."""

    rankings: bytearray = field(default_factory=bytearray)  # one code per queue
    capacity: array[int] = field(default_factory=lambda: array("I"))
    load: array[int] = field(default_factory=lambda: array("I"))
    weight: array[float] = field(default_factory=lambda: array("d"))
    last_assigned: array[float] = field(default_factory=lambda: array("d"))
    available: bytearray = field(default_factory=bytearray)
    queue_offsets: array[int] = field(default_factory=lambda: array("I", [0]))
    queue_ids: array[int] = field(default_factory=lambda: array("I"))
    queue: array[int] = field(default_factory=lambda: array("I"))
    priority: array[int] = field(default_factory=lambda: array("i"))
    sla_due: array[float] = field(default_factory=lambda: array("d"))
    arrival: array[int] = field(default_factory=lambda: array("Q"))
    cost: array[int] = field(default_factory=lambda: array("I"))
    preferred: array[int] = field(default_factory=lambda: array("i"))
    prefer_kind: bytearray = field(default_factory=bytearray)
    wait_until: array[float] = field(default_factory=lambda: array("d"))
    exclude: array[int] = field(default_factory=lambda: array("i"))

    def add_queue(self, ranking: int) -> int:
        """A new queue (a shop's group) ranked by ``ranking``; returns its id."""
        self.rankings.append(ranking)
        return len(self.rankings) - 1

    def add_agent(self, capacity: int, load: int, weight: float, last_assigned: float,
                  available: bool, queues: list[int]) -> int:
        """An agent serving ``queues``; returns its index."""
        self.capacity.append(capacity)
        self.load.append(load)
        self.weight.append(weight)
        self.last_assigned.append(last_assigned)
        self.available.append(1 if available else 0)
        self.queue_ids.extend(sorted(set(queues)))
        self.queue_offsets.append(len(self.queue_ids))
        return len(self.capacity) - 1

    def add_waiting(self, queue: int, priority: int, sla_due: float, arrival: int, cost: int,
                    preferred: int = -1, prefer_kind: int = PREFER_NONE,
                    wait_until: float = 0.0, exclude: int = -1) -> int:
        """A waiting conversation; returns its index."""
        self.queue.append(queue)
        self.priority.append(priority)
        self.sla_due.append(sla_due)
        self.arrival.append(arrival)
        self.cost.append(cost)
        self.preferred.append(preferred)
        self.prefer_kind.append(prefer_kind)
        self.wait_until.append(wait_until)
        self.exclude.append(exclude)
        return len(self.queue) - 1


Decision = tuple[int, int, int]  # (conversation index, agent index, rule)


def assign(batch: Batch, now: float) -> list[Decision]:
    """Decide the batch with the Rust scorer."""
    b = batch
    conversations, agents, rules = assign_batch(
        b.capacity, b.load, b.weight, b.last_assigned, bytes(b.available), b.queue_offsets,
        b.queue_ids, b.queue, b.priority, b.sla_due, b.arrival, b.cost, b.preferred,
        bytes(b.prefer_kind), b.wait_until, b.exclude, bytes(b.rankings), now)
    return list(zip(conversations, agents, rules, strict=True))


def assign_reference(batch: Batch, now: float) -> list[Decision]:
    """The same decisions in plain Python (the definition the Rust code must match)."""
    b = batch
    n = len(b.capacity)
    members: list[list[int]] = [[] for _ in b.rankings]
    for agent in range(n):
        for queue in b.queue_ids[b.queue_offsets[agent]:b.queue_offsets[agent + 1]]:
            members[queue].append(agent)
    member_sets = [set(m) for m in members]
    order = sorted(range(len(b.queue)), key=lambda c: (-b.priority[c], b.sla_due[c],
                                                        b.arrival[c], c))
    load = list(b.load)
    last = list(b.last_assigned)
    turn = [0] * n
    blocked: list[int | None] = [None] * n
    out: list[Decision] = []

    def has_room(agent: int, cost: int, priority: int) -> bool:
        limit = blocked[agent]
        return (b.available[agent] != 0 and load[agent] + cost <= b.capacity[agent]
                and (limit is None or priority > limit))

    def key(ranking: int, agent: int) -> tuple[float, float, int, int]:
        capacity = b.capacity[agent]
        if ranking == LEAST_LOAD:
            primary = float(load[agent])
        elif ranking == FREE_RATIO:
            primary = -((capacity - min(load[agent], capacity)) / capacity)
        elif ranking == LONGEST_IDLE:
            primary = last[agent]
        else:
            primary = load[agent] / b.weight[agent]
        return (primary, last[agent], turn[agent], agent)

    for c in order:
        queue, cost, priority = b.queue[c], b.cost[c], b.priority[c]
        chosen: tuple[int, int] | None = None
        excluded, preferred = b.exclude[c], b.preferred[c]
        if preferred >= 0 and b.prefer_kind[c] != PREFER_NONE and preferred != excluded:
            if preferred in member_sets[queue] and has_room(preferred, cost, priority):
                rule = DEDICATED if b.prefer_kind[c] == PREFER_DEDICATED else STICKY
                chosen = (preferred, rule)
            elif b.wait_until[c] > now:
                continue
        if chosen is None:
            candidates = [a for a in members[queue] if a != excluded and b.weight[a] > 0
                          and has_room(a, cost, priority)]
            if candidates:
                ranking = b.rankings[queue]
                chosen = (min(candidates, key=lambda a: key(ranking, a)), RANKED)
        if chosen is None:
            for agent in members[queue]:
                limit = blocked[agent]
                blocked[agent] = priority if limit is None else max(limit, priority)
            continue
        agent, rule = chosen
        load[agent] += cost
        last[agent] = now
        turn[agent] = len(out) + 1
        out.append((c, agent, rule))
    return out
