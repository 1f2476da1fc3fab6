"""One-shot timers on the engine's clock, fired by the engine's tick.

An actor that must act later (an agent's presence grace) asks for a message to be
told to an address at a time on :attr:`EngineContext.clock`. The engine's tick
(every ``routing_tick``, and whenever a test calls ``Engine.tick``) tells each due
message and waits until its actor has handled it, so whatever that actor tells
others in turn is queued before the rest of the tick runs. Timers live in memory: a
restart loses them together with the state that set them (connections, graces).
"""

from __future__ import annotations

import heapq
import itertools

from octim.actors import Message


class Timers:
    """See the module docstring."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str, str, Message]] = []
        self._order = itertools.count()

    def at(self, when: float, kind: str, actor_id: str, message: Message) -> None:
        """Tell ``message`` to actor (``kind``, ``actor_id``) once the clock reads ``when``."""
        heapq.heappush(self._heap, (when, next(self._order), kind, actor_id, message))

    def due(self, now: float) -> list[tuple[str, str, Message]]:
        """Take the timers due at ``now``, earliest first."""
        fired = []
        while self._heap and self._heap[0][0] <= now:
            _, _, kind, actor_id, message = heapq.heappop(self._heap)
            fired.append((kind, actor_id, message))
        return fired

    def __len__(self) -> int:
        return len(self._heap)
