"""The Rust routing scorer returns exactly the reference's assignments."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from octim.domain.routing.scorer import (
    PREFER_DEDICATED,
    PREFER_NONE,
    PREFER_STICKY,
    Batch,
    assign,
    assign_reference,
)
from octim.errors import InvalidArgument

times = st.integers(min_value=0, max_value=100).map(float)


@st.composite
def batches(draw: st.DrawFn) -> tuple[Batch, float]:
    batch = Batch()
    queues = draw(st.integers(min_value=1, max_value=4))
    for _ in range(queues):
        batch.add_queue(draw(st.integers(min_value=0, max_value=3)))
    agents = draw(st.integers(min_value=0, max_value=8))
    for _ in range(agents):
        capacity = draw(st.integers(min_value=1, max_value=4))
        batch.add_agent(capacity, draw(st.integers(min_value=0, max_value=capacity)),
                        draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0])), draw(times),
                        draw(st.booleans()),
                        draw(st.lists(st.integers(min_value=0, max_value=queues - 1),
                                      max_size=queues)))
    for _ in range(draw(st.integers(min_value=0, max_value=20))):
        kind = draw(st.sampled_from([PREFER_NONE, PREFER_DEDICATED, PREFER_STICKY]))
        preferred = draw(st.integers(min_value=0, max_value=agents - 1)) if agents and \
            kind != PREFER_NONE else -1
        batch.add_waiting(draw(st.integers(min_value=0, max_value=queues - 1)),
                          draw(st.integers(min_value=0, max_value=2)), draw(times),
                          draw(st.integers(min_value=0, max_value=5)),
                          draw(st.integers(min_value=1, max_value=3)), preferred,
                          kind if preferred >= 0 else PREFER_NONE, draw(times),
                          draw(st.integers(min_value=-1, max_value=agents - 1)))
    return batch, draw(times)


@settings(max_examples=500, deadline=None)
@given(batches())
def test_rust_and_reference_agree(case: tuple[Batch, float]) -> None:
    batch, now = case
    assert assign(batch, now) == assign_reference(batch, now)


@settings(max_examples=200, deadline=None)
@given(batches())
def test_no_agent_goes_over_capacity_and_nothing_is_assigned_twice(
        case: tuple[Batch, float]) -> None:
    batch, now = case
    decided = assign(batch, now)
    assert len({c for c, _, _ in decided}) == len(decided)
    load = list(batch.load)
    for conversation, agent, rule in decided:
        load[agent] += batch.cost[conversation]
        assert load[agent] <= batch.capacity[agent]
        assert batch.available[agent] and agent != batch.exclude[conversation]
        assert batch.weight[agent] > 0 or rule != 0  # weight 0: never by ranking


def test_bad_buffers_raise_invalid_argument() -> None:
    batch = Batch()
    batch.add_queue(0)
    batch.add_agent(1, 0, 1.0, 0.0, True, [0])
    batch.add_waiting(5, 0, 0.0, 0, 1)  # no queue 5
    with pytest.raises(InvalidArgument):
        assign(batch, 0.0)


@pytest.mark.parametrize("decide", [assign, assign_reference])
def test_agents_assigned_in_the_same_batch_rotate_by_turn(decide: object) -> None:
    batch = Batch()
    queue = batch.add_queue(2)  # longest idle
    batch.add_agent(5, 0, 1.0, 50.0, True, [queue])  # agent 0: busier lately
    batch.add_agent(5, 0, 1.0, 10.0, True, [queue])  # agent 1: idle longest
    for n in range(4):
        batch.add_waiting(queue, 0, 0.0, n, 1)
    got = decide(batch, 100.0)  # type: ignore[operator]
    assert [agent for _, agent, _ in got] == [1, 0, 1, 0]
