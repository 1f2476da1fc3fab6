"""The dispatcher's in-memory state: agents, waiting conversations, assignments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from octim.domain.routing import scorer
from octim.domain.routing.policy import Target


@dataclass
class AgentState:
    id: str
    name: str
    shops: tuple[str, ...]
    groups: tuple[str, ...]
    max_concurrent: int
    weight: float
    disabled: bool = False
    version: int = 0
    status: str = "offline"  # as the agent's AgentActor last told
    active: dict[str, int] = field(default_factory=dict)  # conversation → cost
    last_assigned: float = 0.0  # since this process started: no lifetime counters

    @property
    def available(self) -> bool:
        """Takes routed conversations now."""
        return self.status == "online" and not self.disabled

    @property
    def load(self) -> int:
        return sum(self.active.values())

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "shops": list(self.shops),
                "groups": list(self.groups), "max_concurrent": self.max_concurrent,
                "weight": self.weight, "disabled": self.disabled, "version": self.version}


@dataclass
class Waiting:
    conversation: str
    shop: str
    buyer: str
    target: Target
    arrival: int
    enqueued_at: float
    prefer_agent: str = ""
    prefer_kind: int = scorer.PREFER_NONE
    wait_until: float = 0.0
    exclude_agent: str = ""
    reason: str = ""
    published: tuple[Any, ...] = ()  # the last queued event sent to the buyer

    def record(self) -> dict[str, Any]:
        t = self.target
        return {"conversation": self.conversation, "shop": self.shop, "buyer": self.buyer,
                "group": t.group, "priority": t.priority, "sla_seconds": t.sla_seconds,
                "cost": t.cost, "rules": list(t.rules), "arrival": self.arrival,
                "enqueued_at": self.enqueued_at, "prefer_agent": self.prefer_agent,
                "prefer_kind": self.prefer_kind, "wait_until": self.wait_until,
                "exclude_agent": self.exclude_agent, "reason": self.reason}

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> Waiting:
        t = Target(r["group"], r["priority"], r["sla_seconds"], r["cost"], tuple(r["rules"]))
        return cls(r["conversation"], r["shop"], r["buyer"], t, r["arrival"], r["enqueued_at"],
                   r["prefer_agent"], r["prefer_kind"], r["wait_until"], r["exclude_agent"],
                   r["reason"])


@dataclass
class Assigned:
    agent: str
    shop: str
    at: float
    reply_deadline: float  # 0 = replied (or no timer)


