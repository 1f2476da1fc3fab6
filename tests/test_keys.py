"""The Rust key codec agrees with its Python reference, errors included."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from octim.errors import InvalidKey, OctimError
from octim.store import keys

scopes = st.text(min_size=0, max_size=600)
seqs = st.integers(min_value=0, max_value=2**64 - 1)


def outcome(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args)
    except InvalidKey as exc:
        return "invalid", str(exc)
    except OverflowError:
        return "overflow", None


@given(scopes, seqs)
def test_encode_agrees(scope: str, seq: int) -> None:
    assert outcome(keys.encode_key, scope, seq) == outcome(keys.reference_encode_key, scope, seq)


@given(st.binary(max_size=64))
def test_decode_agrees_on_arbitrary_bytes(raw: bytes) -> None:
    assert outcome(keys.decode_key, raw) == outcome(keys.reference_decode_key, raw)


@given(scopes, seqs)
def test_decode_inverts_encode(scope: str, seq: int) -> None:
    kind, key = outcome(keys.encode_key, scope, seq)
    if kind == "ok":
        assert keys.decode_key(key) == (scope, seq)


@given(st.text(min_size=1, max_size=20), seqs, st.integers(min_value=0, max_value=40))
def test_run_agrees(scope: str, first: int, count: int) -> None:
    assert outcome(keys.encode_key_run, scope, first, count) == outcome(
        keys.reference_encode_key_run, scope, first, count)


@given(scopes)
def test_bounds_agree(scope: str) -> None:
    assert outcome(keys.scope_bounds, scope) == outcome(keys.reference_scope_bounds, scope)


@given(st.lists(st.tuples(st.text(min_size=1, max_size=8).filter(lambda s: "\0" not in s), seqs),
                min_size=2, max_size=20))
def test_byte_order_is_scope_then_seq(pairs: list[tuple[str, int]]) -> None:
    encoded = sorted(keys.encode_key(s, q) for s, q in pairs)
    decoded = [keys.decode_key(k) for k in encoded]
    assert decoded == sorted(decoded, key=lambda p: (p[0].encode(), p[1]))


def test_rust_errors_are_octim_errors() -> None:
    with pytest.raises(InvalidKey) as info:
        keys.decode_key(b"x")
    assert isinstance(info.value, OctimError)
    assert info.value.code == "invalid_key"
