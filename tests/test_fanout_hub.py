"""The Rust fan-out hub behaves exactly like its Python reference."""

from __future__ import annotations

from array import array
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from octim._core import FanoutHub
from octim.errors import InvalidArgument
from octim.gateway.hub_reference import ReferenceHub

CONNS = st.integers(min_value=0, max_value=7)


def outcome(fn: Any, *args: Any) -> Any:
    try:
        return ("ok", fn(*args))
    except InvalidArgument as exc:
        return ("invalid", str(exc))


class HubsAgree(RuleBasedStateMachine):
    """Random opens, pushes, drains and closes applied to both hubs."""

    @initialize()
    def start(self) -> None:
        self.rust = FanoutHub()
        self.ref = ReferenceHub()
        self.payloads = 0

    @rule(conn=CONNS, capacity=st.integers(min_value=0, max_value=6))
    def open(self, conn: int, capacity: int) -> None:
        assert outcome(self.rust.open, conn, capacity) == outcome(self.ref.open, conn, capacity)

    @rule(conn=CONNS)
    def close(self, conn: int) -> None:
        assert self.rust.close(conn) == self.ref.close(conn)

    @rule(recipients=st.lists(CONNS, max_size=8, unique=True), droppable=st.booleans(),
          key=st.none() | st.integers(min_value=0, max_value=3))
    def push(self, recipients: list[int], droppable: bool, key: int | None) -> None:
        self.payloads += 1
        payload = {"n": self.payloads}
        got = self.rust.push(payload, array("Q", recipients), droppable, key)
        assert got == self.ref.push(payload, recipients, droppable, key)

    @rule(batch=st.lists(st.tuples(st.lists(CONNS, max_size=4, unique=True), st.booleans(),
                                   st.none() | st.integers(min_value=0, max_value=3)),
                         max_size=4))
    def push_many(self, batch: list[tuple[list[int], bool, int | None]]) -> None:
        items = []
        for recipients, droppable, key in batch:
            self.payloads += 1
            items.append(({"n": self.payloads}, recipients, droppable, key))
        got = self.rust.push_many([(p, array("Q", r), d, k) for p, r, d, k in items])
        assert got == self.ref.push_many(items)

    @rule(conn=CONNS, most=st.integers(min_value=0, max_value=8))
    def drain(self, conn: int, most: int) -> None:
        assert self.rust.drain(conn, most) == self.ref.drain(conn, most)

    @invariant()
    def same_state(self) -> None:
        for conn in range(8):
            assert self.rust.pending(conn) == self.ref.pending(conn)
            assert self.rust.is_overflowed(conn) == self.ref.is_overflowed(conn)
        assert self.rust.connections() == self.ref.connections()
        assert self.rust.statistics() == self.ref.statistics()


TestHubsAgree = HubsAgree.TestCase
TestHubsAgree.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)


def test_one_payload_object_is_shared_not_copied() -> None:
    hub = FanoutHub()
    for conn in range(3):
        hub.open(conn, 4)
    payload = b"frame"
    hub.push(payload, array("Q", [0, 1, 2]))
    drained = [hub.drain(conn, 1)[0] for conn in range(3)]
    assert all(frame is payload for frame in drained)


def test_recipients_must_be_a_u64_buffer() -> None:
    hub = FanoutHub()
    with pytest.raises((TypeError, ValueError, BufferError)):
        hub.push(b"x", array("i", [1]))
