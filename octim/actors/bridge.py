"""The bridge from pykka's threads back into trio.

A pykka ThreadingActor owns each blocking resource (the LMDB writer, later the
webhook sender). trio code hands it work with ``tell`` and awaits a
:class:`Reply`; the pykka thread fills the reply, which schedules the
wake-up on the trio loop through the run's ``TrioToken``. No thread is parked
per request and the trio loop never blocks on a pykka future.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

import trio

T = TypeVar("T")


class Reply(Generic[T]):
    """A one-shot answer slot awaited in trio.

    Filled with :meth:`fill` on the trio thread (actor asks), or with
    :meth:`set_result` / :meth:`set_exception` from any other thread (pykka).
    The first fill wins; later ones are ignored.
    """

    __slots__ = ("_callbacks", "_error", "_event", "_token", "_value")

    def __init__(self, token: trio.lowlevel.TrioToken | None = None) -> None:
        self._token = token if token is not None else trio.lowlevel.current_trio_token()
        self._event = trio.Event()
        self._value: T | None = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[T | None, BaseException | None], None]] | None = None

    def set_result(self, value: T) -> None:
        """Fill the slot with a value; callable from any thread."""
        deliver_many(self._token, ((self, value, None),))

    def set_exception(self, error: BaseException) -> None:
        """Fill the slot with an error that :meth:`wait` will raise; any thread."""
        deliver_many(self._token, ((self, None, error),))

    def fill(self, value: T | None = None, error: BaseException | None = None) -> None:
        """Fill the slot; trio thread only."""
        if self._event.is_set():
            return
        self._value, self._error = value, error
        self._event.set()
        callbacks, self._callbacks = self._callbacks, None
        for callback in callbacks or ():
            callback(value, error)

    def then(self, callback: Callable[[T | None, BaseException | None], None]) -> None:
        """Call ``callback(value, error)`` on the trio thread once filled (now if it is).

        For a waiter that should not hold a task: the gateway answers pipelined
        sends this way. Callbacks must not raise.
        """
        if self._event.is_set():
            callback(self._value, self._error)
        elif self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    async def wait(self) -> T:
        """Wait for the slot to be filled and return its value (or raise its error)."""
        await self._event.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


def deliver_many(
    token: trio.lowlevel.TrioToken,
    items: Iterable[tuple[Reply[T], T | None, BaseException | None]],
) -> None:
    """Fill many replies with one hop onto the trio loop (one wake-up per batch).

    If the trio run has already finished there is nobody left to wake, so the
    results are dropped.
    """
    batch = list(items)

    def fill_all() -> None:
        for reply, value, error in batch:
            reply.fill(value, error)

    try:
        token.run_sync_soon(fill_all)
    except trio.RunFinishedError:
        pass
