"""The Rust storable scan (``octim._core.check_json`` / ``check_msgpack``) agrees
with the Python reference (``octim.values.check_storable`` over decoded values),
and never lets an unstorable value through on input it does not understand."""

from __future__ import annotations

import json
import math
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from octim import _core
from octim.values import MAX_DEPTH, MAX_NODES, Unstorable, check_storable, loads_json

LIMIT_DEPTH, LIMIT_NODES = 6, 40  # small limits, so the draws reach them

text = st.text(max_size=6) | st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
                                     min_size=1, max_size=2)
scalars = (st.none() | st.booleans() | st.integers(-(2**65), 2**65) | st.floats() | text |
           st.sampled_from([2**63 - 1, -(2**63), 2**64 - 1, 2**64, -(2**63) - 1]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) |
                      st.dictionaries(text, inner, max_size=4), max_leaves=60)


def storable(value: Any) -> bool:
    try:
        check_storable(value, max_depth=LIMIT_DEPTH, max_nodes=LIMIT_NODES)
    except Unstorable:
        return False
    return True


@settings(max_examples=600, deadline=None)
@given(values)
def test_json_scan_agrees_with_the_reference(value: Any) -> None:
    encoded = json.dumps(value)  # escapes lone surrogates; NaN and Infinity as words
    verdict = _core.check_json(encoded, LIMIT_DEPTH, LIMIT_NODES)
    assert verdict is None or verdict[1] != "syntax", (encoded, verdict)
    assert (verdict is None) == storable(json.loads(encoded)), (encoded, verdict)
    as_bytes = _core.check_json(encoded.encode(), LIMIT_DEPTH, LIMIT_NODES)
    assert as_bytes == verdict


def _packable(value: Any) -> bytes | None:
    try:
        return bytes(msgpack.packb(value, use_bin_type=True))
    except (OverflowError, UnicodeEncodeError, ValueError):
        return None  # msgpack cannot say it at all


@settings(max_examples=600, deadline=None)
@given(values | st.binary(max_size=8))
def test_msgpack_scan_agrees_with_the_reference(value: Any) -> None:
    encoded = _packable(value)
    if encoded is None:
        return
    verdict = _core.check_msgpack(encoded, LIMIT_DEPTH, LIMIT_NODES)
    assert verdict is None or verdict[1] != "syntax", (encoded, verdict)
    decoded = msgpack.unpackb(encoded, raw=False, strict_map_key=False)
    assert (verdict is None) == storable(decoded), (value, verdict)


def _safe(decode: Any, verdict: tuple[int, str] | None, data: Any) -> None:
    """Whatever the scan says, a value it passes decodes to something storable."""
    if verdict is not None:
        return
    try:
        value = decode(data)
    except (ValueError, msgpack.UnpackException, RecursionError):
        return  # the decoder refuses it: BadFrame / invalid JSON
    assert storable(value), (data, value)


@settings(max_examples=1500, deadline=None)
@given(st.text(alphabet='[]{}",:0123456789.-eE+ NaIfinity\\u0041dDtrueflsn', max_size=40))
def test_json_scan_never_passes_an_unstorable_text(data: str) -> None:
    _safe(json.loads, _core.check_json(data, LIMIT_DEPTH, LIMIT_NODES), data)


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=40))
def test_msgpack_scan_never_passes_unstorable_bytes(data: bytes) -> None:
    _safe(lambda d: msgpack.unpackb(d, raw=False, strict_map_key=False),
          _core.check_msgpack(data, LIMIT_DEPTH, LIMIT_NODES), data)


@pytest.mark.parametrize("text", ["1e400", "-1e400", '"\\ud800"', "[NaN]", str(2**64),
                                  "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)])
def test_loads_json_refuses_with_invalid_body(text: str) -> None:
    with pytest.raises(Unstorable):
        loads_json(text)


def test_loads_json_walks_what_the_scan_cannot_follow() -> None:
    # A BOM the scan does not skip: the decoder reads it, the walk still checks.
    with pytest.raises(Unstorable):
        loads_json(b"\xef\xbb\xbf" + json.dumps({"x": float("nan")}).encode())
    assert loads_json(b"\xef\xbb\xbf[1]") == [1]
    assert math.isfinite(loads_json("[1.5]")[0])
    assert MAX_NODES > LIMIT_NODES
