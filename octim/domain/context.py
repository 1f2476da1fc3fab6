"""What every domain actor can reach: settings, the store, the Directory, delivery."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from octim.config import host_list
from octim.domain.timers import Timers
from octim.events import Staged

if TYPE_CHECKING:
    from octim.actors import Directory
    from octim.config import Settings
    from octim.gateway.fanout import Fanout
    from octim.store import Store


@dataclass(slots=True)
class EngineContext:
    """Shared services handed to every actor at construction."""

    settings: Settings
    store: Store
    fanout: Fanout
    directory: Directory[EngineContext] | None = None
    clock: Callable[[], float] = field(default=time.time)  # wall time in seconds; tests inject
    # Where domain events go once durable (webhooks, embedding subscribers).
    emit: Callable[[str, dict[str, Any]], None] = field(default=lambda event, data: None)
    # Events of a change not yet committed: their deliveries' store operations, to add
    # to its commit (``stage``), and what to do once that commit is durable (``publish``).
    stage: Callable[[list[tuple[str, dict[str, Any]]]], Staged] = field(default=Staged)
    publish: Callable[[Staged], None] = field(default=lambda staged: None)
    channels: Any = None  # octim.domain.channels.Channels, while the engine runs
    timers: Timers = field(default_factory=Timers)  # on ``clock``, fired by the engine's tick
    metrics: Any = None  # octim.metrics.Metrics (its latency histograms), while running
    # Whether a shop is in (or about to be in) peak mode: its actors then stay active.
    is_warm: Callable[[str], bool] = field(default=lambda shop: False)

    @property
    def image_hosts(self) -> frozenset[str]:
        """The hosts card images may come from (setting ``image_hosts``)."""
        return host_list(self.settings.image_hosts)

    def now_ms(self) -> int:
        """Wall time in milliseconds (the ``ts`` of frames and records)."""
        return int(self.clock() * 1000)
