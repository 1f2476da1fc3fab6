"""What a value from outside must be before OctIM keeps it: the storable subset.

Every frame and every HTTP body passes :func:`check_storable` at the edge, before
any actor sees it. A stored value must encode as msgpack (the store) *and* as
JSON (the other side of a conversation may speak ``octim.v1.json``, and the
HTTP API answers JSON), so the subset is the intersection of the two:

* ``None``, booleans, strings of valid Unicode (no lone UTF-16 surrogates),
* integers in ``[-2**63, 2**64 - 1]`` (msgpack's range),
* finite floats (no NaN, no ±Infinity: JSON has no spelling for them),
* lists, and maps whose keys are strings,
* nested at most :data:`MAX_DEPTH` levels, with at most :data:`MAX_NODES` values.

Anything else (bytes, big integers, NaN, deep nesting) is refused with
``invalid_body`` saying what and where, so one client's odd input can never
make an actor fail when it stores the value.

Encoded input is checked by ``octim._core`` scanning the bytes before they are
decoded (:func:`loads_json`, :func:`loads_msgpack`): a 256 KiB body costs a
fraction of a millisecond instead of a walk over every decoded value.
:func:`check_storable` is the reference implementation the scan is tested
against, and the fallback when the scan cannot follow the input's syntax.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgpack

from octim import _core
from octim.errors import InvalidInput

#: Deepest nesting accepted (a frame or body is level 1). Our own records need 6.
MAX_DEPTH = 32
#: Most values in one frame or body (every scalar, list and map counts one).
MAX_NODES = 100_000
MIN_INT = -(2**63)
MAX_INT = 2**64 - 1


class Unstorable(InvalidInput):
    """A value the store or the other side's codec cannot hold (code ``invalid_body``)."""


REASONS = {
    "too_deep": f"nested deeper than {MAX_DEPTH} levels",
    "too_many": f"more than {MAX_NODES} values",
    "non_finite": "NaN and Infinity are not allowed",
    "big_int": "integer outside 64 bits",
    "bad_text": "not valid Unicode (a lone surrogate, or not UTF-8)",
    "binary": "bytes and extension types cannot be stored",
    "key_not_text": "map keys must be strings",
}


def check_storable(value: Any, *, where: str = "body", max_depth: int = MAX_DEPTH,
                   max_nodes: int = MAX_NODES) -> None:
    """Raise :class:`Unstorable` unless ``value`` is in the storable subset (see above).

    Levels: the top value is level 1, the members of a level-n list or map are
    level n + 1; a value past ``max_depth`` is refused.
    """
    # Iterative: a hostile depth must not cost Python's own recursion limit.
    stack: list[tuple[Any, str, int]] = [(value, where, 1)]
    nodes = 0
    while stack:
        item, path, depth = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            raise Unstorable(f"{where}: {REASONS['too_many']}")
        if depth > max_depth:
            raise Unstorable(f"{path}: nested deeper than {max_depth} levels")
        kind = type(item)
        if kind is str:
            if not item.isascii():
                _check_text(item, path)
        elif kind is dict:
            for key, child in item.items():
                if type(key) is not str:
                    raise Unstorable(f"{path}: {REASONS['key_not_text']}")
                if not key.isascii():
                    _check_text(key, path)
                stack.append((child, f"{path}.{key}"[:200], depth + 1))
        elif kind is list or kind is tuple:
            for index, child in enumerate(item):
                stack.append((child, f"{path}[{index}]"[:200], depth + 1))
        elif kind is int:
            if not MIN_INT <= item <= MAX_INT:
                raise Unstorable(f"{path}: {REASONS['big_int']}")
        elif kind is float:
            if not math.isfinite(item):
                raise Unstorable(f"{path}: {REASONS['non_finite']}")
        elif item is None or kind is bool:
            pass
        else:
            raise Unstorable(f"{path}: a {kind.__name__} cannot be stored")


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Unstorable(f"{path}: not valid Unicode (a lone surrogate)") from None


def _refuse_constant(name: str) -> Any:
    raise Unstorable(f"{name} is not allowed")


def _refused(where: str, verdict: tuple[int, str], decode: Any, data: Any) -> Unstorable:
    """The error for a refused input, naming the field where the reference walk can
    find it (the rare path: decoding is bounded by the body limits), else the byte."""
    offset, reason = verdict
    if reason not in ("too_deep", "too_many"):
        try:
            check_storable(decode(data), where=where)
        except Unstorable as exc:
            return exc
        except (ValueError, RecursionError, msgpack.UnpackException):
            pass
    return Unstorable(f"{where}: {REASONS[reason]} (at byte {offset})")


def _lenient_json(data: str | bytes) -> Any:
    return json.loads(data)


def _lenient_msgpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def loads_json(data: str | bytes, *, where: str = "body") -> Any:
    """Parse JSON from outside, refusing anything not storable (:class:`Unstorable`);
    :class:`~octim.errors.InvalidInput` if it is not JSON at all.

    The bytes are scanned first; only input the scan cannot follow is decoded
    and then walked by :func:`check_storable`. Nesting so deep that the parser
    itself gives up is refused too, never raised as a crash.
    """
    verdict = _core.check_json(data, MAX_DEPTH, MAX_NODES)
    if verdict is None:
        try:  # storable as scanned: json's default decoder, no walk
            return json.loads(data)
        except ValueError as exc:
            raise InvalidInput(f"{where}: not valid JSON ({exc})") from None
    return _judge_json(data, verdict, where)


def _judge_json(data: str | bytes, verdict: tuple[int, str], where: str) -> Any:
    """The slow path of a JSON text the scan refused or could not follow."""
    if verdict[1] != "syntax":
        raise _refused(where, verdict, _lenient_json, data)
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise Unstorable(f"{where}: {REASONS['too_deep']}") from None
    except Unstorable as exc:
        raise Unstorable(f"{where}: {exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{where}: not valid JSON ({exc})") from None
    check_storable(value, where=where)  # the scan lost its way, the decoder did not
    return value


def check_json(data: str | bytes, *, where: str = "body") -> None:
    """Raise unless the JSON text is storable, without decoding it when the scan can
    tell (the HTTP guard: FastAPI decodes the body once, after). Input the scan
    cannot follow is decoded and walked (:func:`loads_json`)."""
    verdict = _core.check_json(data, MAX_DEPTH, MAX_NODES)
    if verdict is not None:
        _judge_json(data, verdict, where)


def loads_msgpack(data: bytes, *, where: str = "frame") -> Any:
    """Decode msgpack from outside, refusing anything not storable, like :func:`loads_json`."""
    verdict = _core.check_msgpack(data, MAX_DEPTH, MAX_NODES)
    if verdict is not None and verdict[1] != "syntax":
        raise _refused(where, verdict, _lenient_msgpack, data)
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, msgpack.UnpackException) as exc:
        # StackError (nesting past msgpack's own limit) is a ValueError too.
        raise InvalidInput(f"{where}: undecodable msgpack ({exc})") from None
    if verdict is not None:
        check_storable(value, where=where)
    return value
