"""One-shot timers on the engine's clock, fired at their time.

An actor that must act later (an agent's presence grace, a ticket's SLA breach or
auto-close) asks for a message to be told to an address at a time on
:attr:`EngineContext.clock`. The engine's timer task sleeps until the earliest timer
is due (waking early when an earlier one is set, and at least every ``routing_tick``,
since the engine's clock may be moved), tells each due message and waits until its
actor has handled it, so whatever that actor tells others in turn is queued before
the next. ``Engine.tick`` fires what is due too (tests call it after moving the
clock). Timers live in memory: a restart loses them together with the state that set
them (connections, graces); ticket desks set theirs again when they start.
"""

from __future__ import annotations

import heapq
import itertools

import trio

from octim.actors import Message


class Timers:
    """See the module docstring."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str, str, Message]] = []
        self._order = itertools.count()
        self._earlier: trio.Event | None = None  # set when a new earliest timer arrives

    def at(self, when: float, kind: str, actor_id: str, message: Message) -> None:
        """Tell ``message`` to actor (``kind``, ``actor_id``) once the clock reads ``when``."""
        earliest = self.next_at()
        heapq.heappush(self._heap, (when, next(self._order), kind, actor_id, message))
        if self._earlier is not None and (earliest is None or when < earliest):
            self._earlier.set()

    def next_at(self) -> float | None:
        """When the earliest timer is due (None: there is none)."""
        return self._heap[0][0] if self._heap else None

    async def wait_earlier(self) -> None:
        """Until a timer earlier than every other one is set."""
        self._earlier = trio.Event()
        await self._earlier.wait()

    def due(self, now: float) -> list[tuple[str, str, Message]]:
        """Take the timers due at ``now``, earliest first."""
        fired = []
        while self._heap and self._heap[0][0] <= now:
            _, _, kind, actor_id, message = heapq.heappop(self._heap)
            fired.append((kind, actor_id, message))
        return fired

    def __len__(self) -> int:
        return len(self._heap)
