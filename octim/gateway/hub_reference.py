"""Pure-Python reference of the Rust fan-out hub (``octim._core.FanoutHub``).

It defines the behaviour in plain Python: a hypothesis test drives both with
the same random operations and checks they agree, and the benchmark measures
both in one run. The engine uses the Rust hub.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from octim.errors import InvalidArgument


class _Outbox:
    __slots__ = ("capacity", "critical", "droppable", "droppable_head", "keys", "overflowed")

    def __init__(self, capacity: int) -> None:
        self.critical: deque[tuple[int, Any]] = deque()
        self.droppable: deque[list[Any]] = deque()  # [order, payload, key]
        self.droppable_head = 0
        self.keys: dict[int, int] = {}
        self.capacity = capacity
        self.overflowed = False

    def __len__(self) -> int:
        return len(self.critical) + len(self.droppable)

    def pop_droppable(self) -> Any:
        if not self.droppable:
            return None
        _, payload, key = self.droppable.popleft()
        if key is not None and self.keys.get(key) == self.droppable_head:
            del self.keys[key]
        self.droppable_head += 1
        return (payload,)


class ReferenceHub:
    """Same contract as ``octim._core.FanoutHub``."""

    def __init__(self) -> None:
        self._outboxes: dict[int, _Outbox] = {}
        self._order = 0
        self._stats = {"pushed": 0, "coalesced": 0, "dropped": 0, "overflows": 0}

    def open(self, conn: int, capacity: int) -> None:
        if capacity <= 0:
            raise InvalidArgument("invalid argument: outbox capacity must be positive")
        if conn in self._outboxes:
            raise InvalidArgument(f"invalid argument: connection {conn} already has an outbox")
        self._outboxes[conn] = _Outbox(capacity)

    def close(self, conn: int) -> bool:
        return self._outboxes.pop(conn, None) is not None

    def push(self, payload: Any, recipients: Iterable[int], droppable: bool = False,
             key: int | None = None) -> tuple[list[int], list[int]]:
        woken: list[int] = []
        overflowed: list[int] = []
        self._push(payload, recipients, droppable, key, woken, overflowed)
        return woken, overflowed

    def push_many(self, items: Iterable[tuple[Any, Iterable[int], bool, int | None]]
                  ) -> tuple[list[int], list[int]]:
        woken: list[int] = []
        overflowed: list[int] = []
        for payload, recipients, droppable, key in items:
            self._push(payload, recipients, droppable, key, woken, overflowed)
        return woken, overflowed

    def _push(self, payload: Any, recipients: Iterable[int], droppable: bool, key: int | None,
              woken: list[int], overflowed: list[int]) -> None:
        order = self._order
        self._order += 1
        stats = self._stats
        for conn in recipients:
            outbox = self._outboxes.get(conn)
            if outbox is None or outbox.overflowed:
                continue
            was_empty = len(outbox) == 0
            if droppable:
                if key is not None and key in outbox.keys:
                    outbox.droppable[outbox.keys[key] - outbox.droppable_head][1] = payload
                    stats["coalesced"] += 1
                    continue
                if len(outbox) >= outbox.capacity:
                    stats["dropped"] += 1
                    if outbox.pop_droppable() is None:
                        continue
                if key is not None:
                    outbox.keys[key] = outbox.droppable_head + len(outbox.droppable)
                outbox.droppable.append([order, payload, key])
            else:
                if len(outbox) >= outbox.capacity:
                    if outbox.pop_droppable() is not None:
                        stats["dropped"] += 1
                    else:
                        outbox.critical.clear()
                        outbox.droppable.clear()
                        outbox.keys.clear()
                        outbox.overflowed = True
                        stats["overflows"] += 1
                        overflowed.append(conn)
                        continue
                outbox.critical.append((order, payload))
            stats["pushed"] += 1
            if was_empty:
                woken.append(conn)

    def drain(self, conn: int, max: int) -> list[Any]:
        outbox = self._outboxes.get(conn)
        out: list[Any] = []
        if outbox is None:
            return out
        critical, droppable = outbox.critical, outbox.droppable
        while len(out) < max:
            if critical and (not droppable or critical[0][0] < droppable[0][0]):
                out.append(critical.popleft()[1])
            elif droppable:
                out.append(outbox.pop_droppable()[0])
            else:
                break
        return out

    def pending(self, conn: int) -> int:
        outbox = self._outboxes.get(conn)
        return 0 if outbox is None else len(outbox)

    def is_overflowed(self, conn: int) -> bool:
        outbox = self._outboxes.get(conn)
        return outbox is not None and outbox.overflowed

    def connections(self) -> int:
        return len(self._outboxes)

    def statistics(self) -> dict[str, int]:
        return dict(self._stats)
