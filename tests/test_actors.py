"""The actor runtime, on trio's autojump clock: ordering, backpressure,
supervision, passivation and shutdown."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing

from octim.actors import (
    Actor,
    ActorKind,
    Address,
    Message,
    SupervisionPolicy,
    open_directory,
    record,
)
from octim.errors import ActorCrashed, ActorStopped, MailboxFull, NotFound


@dataclass
class World:
    """The test's stand-in for durable storage and an observation log."""

    saved: dict[Address, int] = field(default_factory=dict)
    seen: dict[Address, list[Any]] = field(default_factory=dict)
    starts: int = 0
    stops: int = 0
    gate: trio.Event = field(default_factory=trio.Event)
    stop_delay: float = 0.0


@record
class Add(Message):
    sender: str
    n: int


@record
class Get(Message):
    pass


@record
class Boom(Message):
    pass


@record
class Missing(Message):
    pass


@record
class WaitForGate(Message):
    pass


class Counter(Actor[World]):
    def __init__(self, address: Address, context: World) -> None:
        super().__init__(address, context)
        self.count = 0

    async def on_start(self) -> None:
        self.context.starts += 1
        self.count = self.context.saved.get(self.address, 0)
        if self.count < 0:
            raise RuntimeError("state cannot be loaded")

    async def on_stop(self) -> None:
        await trio.sleep(self.context.stop_delay)
        self.context.saved[self.address] = self.count
        self.context.stops += 1

    async def receive(self, message: Message) -> Any:
        match message:
            case Add(sender=sender, n=n):
                self.count += n
                self.context.seen.setdefault(self.address, []).append((sender, n))
            case Get():
                return self.count
            case Boom():
                raise RuntimeError("boom")
            case Missing():
                raise NotFound("nothing here")
            case WaitForGate():
                await self.context.gate.wait()
        return None


def counter_kind(**kw: Any) -> ActorKind[World]:
    return ActorKind("counter", Counter, **kw)


async def test_messages_from_one_sender_arrive_in_order(autojump_clock: Any) -> None:
    world = World()
    async with open_directory(world) as directory:
        directory.register(counter_kind(mailbox_size=4))
        ref = directory.ref("counter", "c1")

        async def sender(name: str) -> None:
            for i in range(50):
                await ref.tell(Add(name, i))

        async with trio.open_nursery() as nursery:
            for name in "abc":
                nursery.start_soon(sender, name)
        assert await ref.ask(Get()) == 3 * sum(range(50))
    seen = world.seen[Address("counter", "c1")]
    for name in "abc":
        assert [n for s, n in seen if s == name] == list(range(50))


async def test_full_mailbox_applies_backpressure(autojump_clock: Any) -> None:
    world = World()
    async with open_directory(world) as directory:
        directory.register(counter_kind(mailbox_size=2))
        ref = directory.ref("counter", "slow")
        await ref.tell(WaitForGate())
        await trio.testing.wait_all_tasks_blocked()  # the actor is now inside WaitForGate
        ref.tell_nowait(Add("x", 1))
        ref.tell_nowait(Add("x", 2))
        with pytest.raises(MailboxFull):
            ref.tell_nowait(Add("x", 3))

        sent = trio.Event()

        async def blocked_sender() -> None:
            await ref.tell(Add("x", 3))
            sent.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(blocked_sender)
            await trio.testing.wait_all_tasks_blocked()
            assert not sent.is_set()  # waiting for space, not dropped, not queued past the bound
            world.gate.set()
        assert sent.is_set()
        assert await ref.ask(Get()) == 6


async def test_passivation_and_reactivation_keep_state(autojump_clock: Any) -> None:
    world = World()
    async with open_directory(world) as directory:
        directory.register(counter_kind(idle_timeout=10.0))
        ref = directory.ref("counter", "p")
        await ref.tell(Add("x", 5))
        assert await ref.ask(Get()) == 5
        assert directory.is_active("counter", "p")
        await trio.sleep(11)
        assert not directory.is_active("counter", "p")
        assert world.saved[Address("counter", "p")] == 5
        assert world.stops == 1
        assert await ref.ask(Get()) == 5  # activated again from the saved state
        assert world.starts == 2


async def test_message_during_passivation_waits_for_the_saved_state(autojump_clock: Any) -> None:
    world = World(stop_delay=1.0)  # on_stop takes a second to save
    async with open_directory(world) as directory:
        directory.register(counter_kind(idle_timeout=10.0))
        ref = directory.ref("counter", "race")
        await ref.tell(Add("x", 7))
        await trio.sleep(10.5)  # passivation has begun; the save is still running
        assert not directory.is_active("counter", "race")
        assert Address("counter", "race") not in world.saved
        assert await ref.ask(Get()) == 7  # the successor started only after the save


async def test_rejection_is_answered_and_keeps_state(autojump_clock: Any) -> None:
    world = World()
    async with open_directory(world) as directory:
        directory.register(counter_kind())
        ref = directory.ref("counter", "r")
        await ref.tell(Add("x", 2))
        with pytest.raises(NotFound):
            await ref.ask(Missing())
        assert await ref.ask(Get()) == 2
        assert world.starts == 1


async def test_crash_restarts_from_saved_state(autojump_clock: Any) -> None:
    world = World()
    address = Address("counter", "k")
    world.saved[address] = 10
    async with open_directory(world) as directory:
        directory.register(counter_kind())
        ref = directory.ref("counter", "k")
        await ref.tell(Add("x", 1))  # in memory only; lost with the crashed instance
        with pytest.raises(ActorCrashed) as info:
            await ref.ask(Boom())
        assert isinstance(info.value.__cause__, RuntimeError)
        assert await ref.ask(Get()) == 10
        assert world.starts == 2


async def test_repeated_crashes_never_quarantine_an_actor_others_use(
        autojump_clock: Any) -> None:
    # One client sending a message that crashes the actor, again and again,
    # costs that client its answers; the actor stays up for everyone else.
    world = World()
    async with open_directory(world) as directory:
        directory.register(counter_kind())
        shared = directory.ref("counter", "shared")
        await shared.tell(Add("x", 1))
        await shared.ask(Get())
        world.saved[Address("counter", "shared")] = 1
        for _ in range(20):
            with pytest.raises(ActorCrashed):
                await shared.ask(Boom())
            assert await shared.ask(Get()) == 1  # restarted from the store, still serving
        assert world.starts == 21


async def test_failing_start_quarantines_only_that_address(autojump_clock: Any) -> None:
    world = World()
    policy = SupervisionPolicy(quarantine=30.0)
    async with open_directory(world) as directory:
        directory.register(counter_kind(policy=policy))
        bad, good = directory.ref("counter", "bad"), directory.ref("counter", "good")
        await good.tell(Add("x", 1))
        world.saved[Address("counter", "bad")] = -1  # on_start refuses to load this
        with pytest.raises(ActorStopped):
            await bad.ask(Get())
        with pytest.raises(ActorStopped):
            await bad.ask(Get())  # quarantined: not even tried
        assert await good.ask(Get()) == 1  # the neighbour never noticed
        del world.saved[Address("counter", "bad")]
        await trio.sleep(31)
        assert await bad.ask(Get()) == 0  # quarantine over: activated afresh


async def test_shutdown_drains_mailboxes_and_stops_every_actor(autojump_clock: Any) -> None:
    world = World()
    async with open_directory(world) as directory:
        directory.register(counter_kind(mailbox_size=100))
        for i in range(3):
            ref = directory.ref("counter", f"s{i}")
            for _ in range(10):
                ref.tell_nowait(Add("x", 1))
    assert world.saved == {Address("counter", f"s{i}"): 10 for i in range(3)}
    assert world.stops == 3


async def test_sends_after_shutdown_are_refused(autojump_clock: Any) -> None:
    world = World()
    async with open_directory(world) as directory:
        directory.register(counter_kind())
        ref = directory.ref("counter", "late")
    with pytest.raises(ActorStopped):
        await ref.tell(Add("x", 1))
