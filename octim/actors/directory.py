"""The Directory: finds actors by address, activates them, passivates idle ones.

Actors are virtual: an address always names an actor, whether or not its task
is running. The first message to an idle address activates it (``on_start``
loads its state from the store); an actor with no message for its kind's
``idle_timeout`` passivates (``on_stop`` saves it) and leaves memory. The
Directory is also the top supervisor: it receives escalated failures, stops
the actor and quarantines its address for a while (see ``octim.actors.actor``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Generic

import trio

from octim.actors.actor import ActorKind, ActorRef, Address, Ctx, _ActorCell
from octim.errors import ActorStopped, UnknownActorKind

log = logging.getLogger("octim.actors")


class Directory(Generic[Ctx]):
    """Registry of actor kinds and of the live actors. Use :func:`open_directory`."""

    def __init__(self, nursery: trio.Nursery, context: Ctx) -> None:
        self.context = context
        self._nursery = nursery
        self._kinds: dict[str, ActorKind[Ctx]] = {}
        self._live: dict[Address, _ActorCell] = {}
        # Cells that left the directory but are still running on_stop.
        self._leaving: dict[Address, _ActorCell] = {}
        self._quarantine: dict[Address, float] = {}
        self._closing = False

    def register(self, kind: ActorKind[Ctx]) -> None:
        """Make a kind of actor known; its ``name`` is the first part of addresses."""
        if kind.name in self._kinds:
            raise ValueError(f"actor kind {kind.name!r} is already registered")
        self._kinds[kind.name] = kind

    def ref(self, kind: str, actor_id: str) -> ActorRef:
        """The reference for ``kind/actor_id`` (activation happens on first send)."""
        if kind not in self._kinds:
            raise UnknownActorKind(f"no actor kind {kind!r}")
        return ActorRef(self, Address(kind, actor_id))

    def is_active(self, kind: str, actor_id: str) -> bool:
        """Whether that actor currently has a running task."""
        return Address(kind, actor_id) in self._live

    def mailbox_depth(self, kind: str, actor_id: str) -> int:
        """Messages waiting in that actor's mailbox (0 when it is not running)."""
        cell = self._live.get(Address(kind, actor_id))
        return 0 if cell is None else int(cell.receive.statistics().current_buffer_used)

    def statistics(self) -> dict[str, int]:
        """Live actors per kind."""
        counts = dict.fromkeys(self._kinds, 0)
        for address in self._live:
            counts[address.kind] += 1
        return counts

    # -- used by ActorRef and _ActorCell ------------------------------------

    def _cell(self, address: Address) -> _ActorCell:
        cell = self._live.get(address)
        if cell is not None:
            return cell
        if self._closing:
            raise ActorStopped("the engine is shutting down")
        until = self._quarantine.get(address)
        if until is not None:
            if trio.current_time() < until:
                raise ActorStopped(f"actor {address} is quarantined after repeated failures")
            del self._quarantine[address]
        kind = self._kinds.get(address.kind)
        if kind is None:
            raise UnknownActorKind(f"no actor kind {address.kind!r}")
        cell = _ActorCell(self, kind, address, predecessor=self._leaving.get(address))
        self._live[address] = cell
        self._nursery.start_soon(cell.run, name=f"actor {address}")
        return cell

    def _detach(self, cell: _ActorCell) -> None:
        """The cell stops taking messages: the next send activates a successor."""
        if self._live.get(cell.address) is cell:
            del self._live[cell.address]
            self._leaving[cell.address] = cell

    def _finished(self, cell: _ActorCell) -> None:
        """The cell's task has ended."""
        if self._live.get(cell.address) is cell:
            del self._live[cell.address]
        if self._leaving.get(cell.address) is cell:
            del self._leaving[cell.address]

    def _escalate(self, cell: _ActorCell, error: BaseException) -> None:
        policy = cell.kind.policy
        log.error("actor stopped after repeated failures; quarantined",
                  extra={"actor": str(cell.address), "error": repr(error),
                         "quarantine_s": policy.quarantine})
        self._quarantine[cell.address] = trio.current_time() + policy.quarantine
        self._detach(cell)

    async def aclose(self) -> None:
        """Stop every actor gracefully: each drains its mailbox, then ``on_stop``."""
        self._closing = True
        cells = list(self._live.values()) + list(self._leaving.values())
        for cell in cells:
            cell.close()
        for cell in cells:
            await cell.stopped.wait()


@asynccontextmanager
async def open_directory(context: Any) -> AsyncIterator[Directory[Any]]:
    """A Directory whose actors run in a nursery owned by this context manager."""
    async with trio.open_nursery() as nursery:
        directory: Directory[Any] = Directory(nursery, context)
        try:
            yield directory
        finally:
            with trio.CancelScope(shield=True):
                await directory.aclose()
            nursery.cancel_scope.cancel()
