"""Actor messages: immutable records that round-trip through msgpack.

In one process messages pass by reference; because every one of them can be
encoded with :func:`to_wire` and decoded with :func:`from_wire`, an actor can
later live in another process without changing its callers. Declare one with
``@record`` on a subclass of :class:`Message`; commands are imperative
(``UpsertShop``), events past tense (``ShopUpdated``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar, dataclass_transform

import msgpack

from octim.errors import InvalidInput

M = TypeVar("M", bound="type[Message]")


def freeze(value: Any) -> Any:
    """Deep-freeze containers: lists become tuples, dicts read-only mappings."""
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    return value


def thaw(value: Any) -> Any:
    """The plain-Python (JSON/msgpack friendly) copy of a frozen value."""
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    return value


class Message:
    """Base class of every actor message. Subclasses are declared with ``@record``."""

    __slots__ = ()

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:  # type: ignore[attr-defined]
            value = getattr(self, name)
            if isinstance(value, list | tuple | Mapping):  # only containers change
                object.__setattr__(self, name, freeze(value))


@dataclass_transform(frozen_default=True)
def record(cls: M) -> M:
    """Make ``cls`` a frozen, slotted dataclass message."""
    return dataclasses.dataclass(frozen=True, slots=True)(cls)  # type: ignore[return-value]


def message_types() -> dict[str, type[Message]]:
    """Every message class defined so far, by wire name (its class name)."""
    found: dict[str, type[Message]] = {}
    stack: list[type[Message]] = list(Message.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        # dataclass(slots=True) replaces the class it decorates; the discarded
        # original has no __slots__ of its own and must not count.
        if dataclasses.is_dataclass(cls) and "__slots__" in cls.__dict__:
            other = found.setdefault(cls.__name__, cls)
            if other is not cls:
                raise TypeError(f"two message classes are named {cls.__name__}")
    return found


def _encode_default(value: Any) -> Any:
    if isinstance(value, MappingProxyType):
        return dict(value)
    raise TypeError(f"cannot encode {type(value).__name__} in a message")


def to_wire(message: Message) -> bytes:
    """Encode a message as msgpack: ``[wire name, {field: value}]``."""
    fields = {f.name: getattr(message, f.name) for f in dataclasses.fields(message)}  # type: ignore[arg-type]
    return bytes(msgpack.packb([type(message).__name__, fields], default=_encode_default,
                               use_bin_type=True))


def from_wire(raw: bytes, lookup: Callable[[], dict[str, type[Message]]] = message_types
              ) -> Message:
    """Decode what :func:`to_wire` produced."""
    try:
        name, fields = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        cls = lookup()[name]
        return cls(**fields)
    except (ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
        raise InvalidInput(f"undecodable actor message: {exc}") from exc
