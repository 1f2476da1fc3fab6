"""Messages the dispatcher handles (immutable records; see octim.actors.messages)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from octim.actors import Message, record

DISPATCHER, DISPATCHER_ID = "dispatcher", "main"  # the dispatcher's address


@record
class UpsertAgent(Message):
    """Create or replace an agent (sub-account)."""

    agent: str
    name: str
    shops: tuple[str, ...]
    groups: tuple[str, ...]
    max_concurrent: int
    weight: float
    disabled: bool = False  # a disabled sub-account takes no routed conversations
    expected_version: int | None = None  # refuse the change if the agent moved on
    only_shops: tuple[str, ...] | None = None  # a shop admin's: may touch only these


@record
class DeleteAgent(Message):
    agent: str


@record
class GetAgent(Message):
    agent: str


@record
class UpsertGroup(Message):
    """Create or replace a skill group of a shop."""

    shop: str
    group: str
    name: str


@record
class DeleteGroup(Message):
    shop: str
    group: str


@record
class ListGroups(Message):
    shop: str


@record
class ShopChanged(Message):
    """A shop's record (and routing policy) changed; reload it."""

    shop: str


@record
class AgentStatus(Message):
    """An agent's status changed (told by their AgentActor, octim.domain.agents):
    online, busy, away, or offline (the presence grace is over)."""

    agent: str
    status: str


@record
class RouteConversation(Message):
    """A conversation starts (or starts again) waiting for an agent."""

    conversation: str
    shop: str
    buyer: str
    level: int
    context: Mapping[str, Any]
    text: str
    reason: str  # first_message | reopened | transfer | no_reply | agent_offline
    group: str  # forced target group ('' = by the targeting rules)
    prefer_agent: str  # transfer target or last agent ('' = none)
    exclude_agent: str  # never this agent ('' = none)


@record
class ConversationReleased(Message):
    """The conversation no longer needs (or holds) an agent: resolved, closed, moved."""

    conversation: str


@record
class AgentReplied(Message):
    """The assigned agent answered: the no-reply timer stops."""

    conversation: str


@record
class ForceAssign(Message):
    """A supervisor (or the platform) assigns directly, capacity notwithstanding."""

    conversation: str
    agent: str


@record
class ShopOnline(Message):
    """Ask whether any agent of the shop is online (the bot's when_no_agent mode)."""

    shop: str


@record
class MonitorView(Message):
    """The live monitor's view of some shops: agents with status and load, the queue."""

    shops: tuple[str, ...]


@record
class PeakChanged(Message):
    """A peak-mode record changed (octim/domain/peak.py)."""


@record
class QueueView(Message):
    """Every shop with conversations waiting: how many, and the longest wait (s)."""


@record
class Tick(Message):
    """Check timers: presence grace, no-reply deadlines, preference waits."""


@record
class AgentView(Message):
    """Ask for an agent's live routing state."""

    agent: str




@record
class SimulateRoute(Message):
    """What routing would do with a new conversation now, without changing anything:
    the targeting rule, the candidates and why each was or was not chosen, the queue
    position and the estimated wait (the routing simulator)."""

    shop: str
    buyer: str
    level: int
    context: Mapping[str, Any]
    text: str
    at: float  # the moment to evaluate sticky windows and peak mode at (engine seconds)


@record
class ListAgents(Message):
    """A shop's agents: profile, version, status and load (the admin console's team)."""

    shop: str
