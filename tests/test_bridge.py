"""trio awaits a pykka actor's answers without blocking the loop and without
a thread per request."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import trio

from octim.actors import Reply


class Doubler(pykka.ThreadingActor):  # type: ignore[misc]
    def on_receive(self, message: Any) -> None:
        value, reply = message
        if value < 0:
            reply.set_exception(ValueError("negative"))
        else:
            reply.set_result(value * 2)


async def test_many_concurrent_answers_come_back_through_the_token() -> None:
    ref = Doubler.start()
    try:
        # Threads of earlier tests (an engine's poster threads) may still be ending: what
        # matters is that no new one starts here.
        threads_before = set(threading.enumerate())
        ticks = 0
        results: dict[int, int] = {}

        async def heartbeat() -> None:  # the loop keeps running while answers are pending
            nonlocal ticks
            while True:
                ticks += 1
                await trio.sleep(0)

        async def ask(i: int) -> None:
            reply: Reply[int] = Reply()
            ref.tell((i, reply))
            results[i] = await reply.wait()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(heartbeat)
            async with trio.open_nursery() as asks:
                for i in range(500):
                    asks.start_soon(ask, i)
                started = set(threading.enumerate()) - threads_before
                assert not started, started  # no thread per request
            nursery.cancel_scope.cancel()
        assert results == {i: 2 * i for i in range(500)}
        assert ticks > 0
        failing: Reply[int] = Reply()
        ref.tell((-1, failing))
        try:
            await failing.wait()
        except ValueError as exc:
            assert str(exc) == "negative"
        else:
            raise AssertionError("the error did not cross over")
    finally:
        ref.stop()
