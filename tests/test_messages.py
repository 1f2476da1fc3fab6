"""Every actor message type is an immutable record that round-trips through msgpack."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import octim.domain.routing.dispatcher
import octim.domain.shops  # noqa: F401  (defines message types)
import tests.test_actors  # noqa: F401  (the runtime tests' message types count too)
from octim.actors import Message, freeze, from_wire, message_types, to_wire
from octim.errors import InvalidInput

scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
           | st.floats(allow_nan=False) | st.text(max_size=20) | st.binary(max_size=20))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)


def strategy_for(annotation: Any) -> st.SearchStrategy[Any]:
    """A strategy per field type; a message with another field type fails this test."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(strategy_for(a) for a in typing.get_args(annotation)))
    if annotation is type(None):
        return st.none()
    if annotation is str:
        return st.text(max_size=30)
    if annotation is int:
        return st.integers(-(2**63), 2**64 - 1)
    if annotation is float:
        return st.floats(allow_nan=False)
    if annotation is bool:
        return st.booleans()
    if annotation is bytes:
        return st.binary(max_size=30)
    if origin is tuple:
        (item, _) = typing.get_args(annotation)
        return st.lists(strategy_for(item), max_size=4).map(tuple)
    if origin in (Mapping, dict):
        return st.dictionaries(st.text(max_size=8), values, max_size=4)
    if annotation is Any:
        return values
    raise AssertionError(f"no strategy for message field type {annotation!r}")


def instances(cls: type[Message]) -> st.SearchStrategy[Message]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: strategy_for(hints[f.name]) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))


ALL_TYPES = sorted(message_types().items())


def test_the_registry_knows_the_engine_messages() -> None:
    assert {"UpsertShop", "GetShop", "DeleteShop"} <= set(message_types())


@pytest.mark.parametrize(("name", "cls"), ALL_TYPES, ids=[n for n, _ in ALL_TYPES])
def test_round_trips_through_msgpack(name: str, cls: type[Message]) -> None:
    @given(instances(cls))
    def check(message: Message) -> None:
        decoded = from_wire(to_wire(message))
        assert type(decoded) is cls
        assert decoded == message

    check()


@pytest.mark.parametrize(("name", "cls"), ALL_TYPES, ids=[n for n, _ in ALL_TYPES])
def test_is_immutable(name: str, cls: type[Message]) -> None:
    field = dataclasses.fields(cls)[0] if dataclasses.fields(cls) else None  # type: ignore[arg-type]
    if field is None:
        pytest.skip("no fields")

    @given(instances(cls))
    def check(message: Message) -> None:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(message, field.name, None)

    check()


def test_containers_are_frozen_deeply() -> None:
    frozen = freeze({"a": [1, {"b": [2]}]})
    with pytest.raises(TypeError):
        frozen["a"] = 1  # type: ignore[index]
    assert isinstance(frozen["a"], tuple)
    with pytest.raises(TypeError):
        frozen["a"][1]["c"] = 3


@pytest.mark.parametrize("raw", [b"", b"\x93\x01", b"\x92\xa7Unknown\x80", b"\x92\xa6GetShop\x80"])
def test_garbage_is_rejected_with_invalid_input(raw: bytes) -> None:
    with pytest.raises(InvalidInput):
        from_wire(raw)
