"""What every domain actor can reach: the store and the Directory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from octim.actors import Directory
    from octim.store import Store


@dataclass(slots=True)
class EngineContext:
    """Shared, read-only services handed to every actor at construction."""

    store: Store
    directory: Directory[EngineContext] | None = None
