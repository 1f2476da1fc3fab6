"""The engine's watch over peak windows (octim/domain/peak.py, docs/operations.md).

One task follows the ``peak`` records on the engine's clock. It sleeps until the next
edge of any window (its pre-warm time, its start, its end), or until a record changes,
and at most ``routing_tick`` (a test may move the clock). At an edge:

* when the set of scopes in peak mode changed, the dispatcher is told at once
  (``PeakChanged``: capacity factors and queue caps apply to the buyers already waiting,
  not only to the next arrival), and the switch is logged;
* a scope that enters its pre-warm lead (``peak_prewarm`` seconds before a window, or
  when switched on by hand) is warmed: its shops' actors are activated and stay active
  while it lasts, its agents' actors too, the knowledge-base index is loaded and asked
  once per shop, and what is now warm is frozen out of the garbage collector's way.
"""

from __future__ import annotations

import gc
import logging
from typing import TYPE_CHECKING, Any

import trio

from octim.domain import peak
from octim.domain.agents import KIND as AGENT
from octim.domain.agents import DescribePresence
from octim.domain.kb.knowledge import ID as KB_ID
from octim.domain.kb.knowledge import KIND as KB
from octim.domain.kb.knowledge import AskKb
from octim.domain.routing.messages import DISPATCHER, DISPATCHER_ID, PeakChanged
from octim.domain.shops import KIND as SHOP
from octim.domain.shops import GetShop
from octim.errors import OctimError

if TYPE_CHECKING:
    from octim.engine import Engine

log = logging.getLogger("octim.peak")


class PeakWatch:
    """See the module docstring."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.active: set[str] = set()  # scopes in peak mode at the last check
        self.warmed: dict[str, int] = {}  # scope → when it was warmed (ms), while warm
        self._changed = trio.Event()

    def changed(self) -> None:
        """A peak record was written: check now."""
        self._changed.set()

    def is_warm(self, shop: str) -> bool:
        """Whether the shop's actors are to stay active (its peak, or the platform's)."""
        return shop in self.warmed or peak.PLATFORM in self.warmed

    def _records(self) -> dict[str, dict[str, Any]]:
        return {key.decode(): record for key, record in self.engine.store.scan("peak")}

    async def run(self) -> None:
        engine = self.engine
        while True:
            self._changed = trio.Event()
            await self.check()
            now = engine.context.now_ms()
            edge = peak.next_edge(self._records().values(), now,
                                  int(engine.settings.peak_prewarm * 1000))
            delay = engine.settings.routing_tick
            if edge is not None:
                delay = min(delay, max(0.0, (edge - now) / 1000))
            with trio.move_on_after(delay):
                await self._changed.wait()

    async def check(self) -> None:
        """Tell the dispatcher when peak mode switched, and warm what enters its lead."""
        engine = self.engine
        now = engine.context.now_ms()
        lead = int(engine.settings.peak_prewarm * 1000)
        records = self._records()
        active = {scope for scope, record in records.items() if peak.active(record, now)}
        if active != self.active:
            for scope in sorted(active - self.active):
                log.info("peak mode on", extra={"shop": scope})
            for scope in sorted(self.active - active):
                log.info("peak mode off", extra={"shop": scope})
            self.active = active
            await engine.directory.ref(DISPATCHER, DISPATCHER_ID).ask(PeakChanged())
        warm = {scope for scope, record in records.items() if peak.warming(record, now, lead)}
        for scope in set(self.warmed) - warm:
            del self.warmed[scope]  # its actors may passivate again
        for scope in sorted(warm - set(self.warmed)):
            self.warmed[scope] = now
            await self.prewarm(scope)

    async def prewarm(self, scope: str) -> dict[str, int]:
        """Activate a scope's shops, their agents and the knowledge base; returns counts."""
        engine = self.engine
        store, directory = engine.store, engine.directory
        if scope == peak.PLATFORM:
            shops = [key.decode() for key, _ in store.scan("shops")]
        else:
            shops = [scope] if store.get("shops", scope.encode()) is not None else []
        wanted = set(shops)
        agents = [raw["id"] for _, raw in store.scan("agents")
                  if scope == peak.PLATFORM or wanted & set(raw["shops"])]
        done = {"shops": 0, "agents": 0}
        for shop in shops:
            try:
                await directory.ref(SHOP, shop).ask(GetShop(shop))
                # Loads the index (once) and the segmenter's caches for the shop's words.
                await directory.ref(KB, KB_ID).ask(AskKb("你好", shop))
                done["shops"] += 1
            except OctimError as exc:
                log.warning("shop not pre-warmed", extra={"shop": shop, "error": repr(exc)})
            await trio.lowlevel.checkpoint()
        for agent in agents:
            try:
                await directory.ref(AGENT, agent).ask(DescribePresence(agent))
                done["agents"] += 1
            except OctimError as exc:
                log.warning("agent not pre-warmed", extra={"agent": agent, "error": repr(exc)})
        if engine.settings.gc_freeze:  # what is warm now is not rescanned by full collections
            gc.collect()
            gc.freeze()
        log.info("peak pre-warmed", extra={"shop": scope, **done})
        return done
