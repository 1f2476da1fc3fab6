"""The AgentActor: one staff member's presence, connections and time on duty.

One actor per staff user (id: the user id), activated by their first connection.
It owns:

- **connections**: the names of the user's open WebSocket connections (a
  :attr:`~octim.gateway.fanout.Connection.name`, so they may live in any gateway);
- **presence**: the status the agent chose (``online``, ``busy``, ``away``) and the
  status that counts, which is ``offline`` once the last connection has been closed
  for ``presence_grace`` seconds (a timer on the engine's clock, so a page reload or
  a short network drop does not take conversations away);
- **time on duty**: per UTC day, the milliseconds spent online, busy and away
  (database ``agent_time``, written at every change of status), which reports read.

The dispatcher keeps the capacity counters (their one owner) and learns the status
from here: every change is told to it as :class:`AgentStatus`. It never reads
connections itself.
"""

from __future__ import annotations

import logging
from typing import Any

from octim.actors import Actor, ActorKind, Address, Message, record
from octim.domain.context import EngineContext
from octim.domain.conversations.model import pair_key
from octim.domain.monitor import day_of
from octim.domain.routing.messages import DISPATCHER, DISPATCHER_ID, AgentStatus
from octim.errors import InvalidInput
from octim.store import Put, pack

log = logging.getLogger("octim.agents")

KIND = "agent"
CHOSEN = ("online", "busy", "away")  # what an agent may pick; "offline" is not a choice
DAY_MS = 86_400_000


@record
class Connected(Message):
    """A connection of the user's opened (``connection``: its name)."""

    agent: str
    connection: str


@record
class Disconnected(Message):
    """A connection of the user's closed."""

    agent: str
    connection: str


@record
class ChoosePresence(Message):
    """The agent picks a status (online, busy, away) from one of their connections."""

    agent: str
    status: str


@record
class GraceOver(Message):
    """The presence grace that started with disconnection number ``token`` is over."""

    agent: str
    token: int


@record
class Announce(Message):
    """Tell the dispatcher the current status (it has just learned of this agent)."""

    agent: str


@record
class DescribePresence(Message):
    """Answers status, chosen status, connection count and today's time on duty."""

    agent: str


def time_key(agent: str, day: str) -> bytes:
    """The ``agent_time`` key of one agent's UTC day (YYYY-MM-DD)."""
    return pair_key(agent, day)


class AgentActor(Actor[EngineContext]):
    """See the module docstring."""

    def __init__(self, address: Address, context: EngineContext) -> None:
        super().__init__(address, context)
        self.connections: set[str] = set()
        self.chosen = "online"
        self.status = "offline"
        self.since = 0  # ms: when ``status`` began (the open interval of time on duty)
        self.grace = 0  # the number of the last disconnection; its timer carries it
        self.in_grace = False
        self.days: dict[str, dict[str, int]] = {}  # day → ms per status (touched days)

    @property
    def id(self) -> str:
        return self.address.id

    async def on_start(self) -> None:
        self.since = self.context.now_ms()

    async def on_stop(self) -> None:
        # Shutting down (or a restart): the open interval ends here.
        await self._account(self.context.now_ms())

    def may_passivate(self) -> bool:
        """Stay active while connected or in grace (that state lives only here), and
        while a shop the agent serves is in peak mode (pre-warmed)."""
        if self.connections or self.in_grace:
            return False
        profile = self.context.store.get("agents", self.id.encode())
        return not any(self.context.is_warm(shop) for shop in (profile or {}).get("shops", ()))

    async def receive(self, message: Message) -> Any:
        match message:
            case Connected(connection=connection):
                self.connections.add(connection)
                self.in_grace = False
                if self.status == "offline":
                    self.chosen = "online"
                await self._settle()
            case Disconnected(connection=connection):
                self.connections.discard(connection)
                if not self.connections and self.status != "offline":
                    self.grace += 1
                    self.in_grace = True
                    self.context.timers.at(
                        self.context.clock() + self.context.settings.presence_grace,
                        KIND, self.id, GraceOver(self.id, self.grace))
            case GraceOver(token=token):
                if token == self.grace and self.in_grace:
                    self.in_grace = False
                    await self._settle()
            case ChoosePresence(status=status):
                if status not in CHOSEN:
                    raise InvalidInput(f"presence is one of {', '.join(CHOSEN)}")
                if self.connections:  # only a connected agent picks a status
                    self.chosen = status
                    await self._settle()
            case Announce():
                await self._tell_dispatcher()
            case DescribePresence():
                now = self.context.now_ms()
                today = dict(self._day(day_of(now)))
                if self.status != "offline":  # the open interval, up to now
                    start = max(self.since, now - now % DAY_MS)
                    today[self.status] = today.get(self.status, 0) + now - start
                return {"status": self.status, "chosen": self.chosen,
                        "connections": len(self.connections),
                        "today": {k: round(v / 1000) for k, v in today.items()}}
            case _:
                raise InvalidInput(f"agent actor cannot handle {type(message).__name__}")
        return None

    async def _settle(self) -> None:
        """Work out the status that counts; on a change, record the time and tell."""
        status = self.chosen if self.connections or self.in_grace else "offline"
        if status == self.status:
            return
        await self._account(self.context.now_ms())
        self.status = status
        await self._tell_dispatcher()

    async def _tell_dispatcher(self) -> None:
        assert self.context.directory is not None
        await self.context.directory.ref(DISPATCHER, DISPATCHER_ID).tell(
            AgentStatus(self.id, self.status))

    def _day(self, day: str) -> dict[str, int]:
        if day not in self.days:
            stored = self.context.store.get("agent_time", time_key(self.id, day))
            self.days = {day: dict(stored) if stored else {}}  # older days are written
        return self.days[day]

    async def _account(self, now: int) -> None:
        """Add the time since ``since`` to the current status, split at UTC midnight,
        and write the days it touched."""
        start, ops = self.since, []
        self.since = now
        if self.status == "offline":
            return
        while start < now:
            end = min(now, start - start % DAY_MS + DAY_MS)
            day = day_of(start)
            totals = self._day(day)
            totals[self.status] = totals.get(self.status, 0) + end - start
            ops.append(Put("agent_time", time_key(self.id, day), pack(totals)))
            start = end
        if ops:
            await self.context.store.write(ops)


AGENT_KIND: ActorKind[EngineContext] = ActorKind(KIND, AgentActor, mailbox_size=256,
                                                 idle_timeout=300.0)
