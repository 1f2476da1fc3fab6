"""Live delivery: which connections a user has, and pushing frames to them.

The gateway owns this registry (connections attach after ``welcome`` and
detach when they close). Actors call :meth:`Fanout.publish`; it encodes a
frame once per subprotocol in use, pushes the shared payload into the Rust
hub's bounded outboxes and wakes every connection whose outbox just became
non-empty (its session starts a writer task that drains it and ends; an idle
connection holds no writer task). A connection whose outbox overflows is a slow
consumer: its writer closes it with 4008 and the client resyncs.
"""

from __future__ import annotations

import itertools
import secrets
from array import array
from collections.abc import Callable, Iterable
from typing import Any

from octim._core import FanoutHub
from octim.gateway.codec import FrameCodec


def _never(conn: Connection) -> None:
    pass


class Connection:
    """One authenticated WebSocket connection as delivery sees it."""

    __slots__ = ("codec", "id", "name", "overflowed", "role", "shops", "user", "wake")

    def __init__(self, conn_id: int, user: str, role: str, shops: tuple[str, ...],
                 codec: FrameCodec, wake: Callable[[Connection], None] = _never,
                 node: str = "") -> None:
        self.id = conn_id  # the hub's outbox number: meaningful in this process only
        #: the connection's name anywhere (``<node>/<number>``): what actor messages carry
        self.name = f"{node}/{conn_id}"
        self.user = user
        self.role = role
        self.shops = shops
        self.codec = codec
        self.wake = wake  # called (trio thread) when the outbox needs draining
        self.overflowed = False


class Fanout:
    """The connection registry and the hub; see the module docstring."""

    def __init__(self, outbox_frames: int, node: str = "") -> None:
        self.hub = FanoutHub()
        #: this process's name in connection names (random unless configured)
        self.node = node or secrets.token_hex(6)
        self._prefix = self.node + "/"
        self._outbox_frames = outbox_frames
        self._ids = itertools.count(1)
        self._conns: dict[int, Connection] = {}
        self._by_user: dict[str, set[int]] = {}

    def attach(self, user: str, role: str, shops: tuple[str, ...],
               codec: FrameCodec, wake: Callable[[Connection], None] = _never) -> Connection:
        """Register a new connection and give it an outbox; ``wake(conn)`` is called
        when its outbox becomes non-empty or overflows."""
        conn = Connection(next(self._ids), user, role, shops, codec, wake, self.node)
        self.hub.open(conn.id, self._outbox_frames)
        self._conns[conn.id] = conn
        self._by_user.setdefault(user, set()).add(conn.id)
        return conn

    def detach(self, conn: Connection) -> None:
        """Forget a closed connection and free its outbox."""
        self.hub.close(conn.id)
        self._conns.pop(conn.id, None)
        ids = self._by_user.get(conn.user)
        if ids is not None:
            ids.discard(conn.id)
            if not ids:
                del self._by_user[conn.user]

    def count(self) -> int:
        """Open connections."""
        return len(self._conns)

    def connections_of(self, user: str) -> list[Connection]:
        """A user's open connections."""
        return [self._conns[i] for i in self._by_user.get(user, ())]

    def publish(self, frame: dict[str, Any], users: Iterable[str], *,
                exclude: str | None = None, droppable: bool = False,
                key: int | None = None) -> None:
        """Deliver ``frame`` to every connection of ``users`` except the one named
        ``exclude`` (a :attr:`Connection.name`; another process's name excludes none
        here)."""
        skip = int(exclude[len(self._prefix):]) if exclude and \
            exclude.startswith(self._prefix) else 0
        by_codec: dict[str, tuple[FrameCodec, array[int]]] = {}
        for user in set(users):
            for conn_id in self._by_user.get(user, ()):
                if conn_id == skip:
                    continue
                codec = self._conns[conn_id].codec
                entry = by_codec.get(codec.subprotocol)
                if entry is None:
                    entry = by_codec[codec.subprotocol] = (codec, array("Q"))
                entry[1].append(conn_id)
        for codec, recipients in by_codec.values():
            woken, overflowed = self.hub.push(codec.encode(frame), recipients, droppable, key)
            self._wake(woken, overflowed)

    def push_to(self, conn: Connection, frame: dict[str, Any]) -> None:
        """Queue a frame for one connection (a reply that must not block its reader)."""
        recipients = array("Q", (conn.id,))
        self._wake(*self.hub.push(conn.codec.encode(frame), recipients, False, None))

    def _wake(self, woken: list[int], overflowed: list[int]) -> None:
        for conn_id in overflowed:
            conn = self._conns.get(conn_id)
            if conn is not None:
                conn.overflowed = True
                conn.wake(conn)
        for conn_id in woken:
            conn = self._conns.get(conn_id)
            if conn is not None:
                conn.wake(conn)
