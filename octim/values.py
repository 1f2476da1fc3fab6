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
``invalid_body`` naming where it was found, so one client's odd input can never
make an actor fail when it stores the value.
"""

from __future__ import annotations

import json
import math
from typing import Any

from octim.errors import InvalidInput

#: Deepest nesting accepted (a frame or body is level 1). Our own records need 6.
MAX_DEPTH = 32
#: Most values in one frame or body (every scalar, list and map counts one).
MAX_NODES = 100_000
MIN_INT = -(2**63)
MAX_INT = 2**64 - 1


class Unstorable(InvalidInput):
    """A value the store or the other side's codec cannot hold (code ``invalid_body``)."""


def check_storable(value: Any, *, where: str = "body", max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`Unstorable` unless ``value`` is in the storable subset (see above)."""
    # Iterative: a hostile depth must not cost Python's own recursion limit.
    stack: list[tuple[Any, str, int]] = [(value, where, 1)]
    nodes = 0
    while stack:
        item, path, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise Unstorable(f"{where}: more than {MAX_NODES} values")
        kind = type(item)
        if kind is str:
            if not item.isascii():
                _check_text(item, path)
        elif kind is dict:
            if depth >= max_depth and item:
                raise Unstorable(f"{path}: nested deeper than {max_depth} levels")
            for key, child in item.items():
                if type(key) is not str:
                    raise Unstorable(f"{path}: map keys must be strings")
                if not key.isascii():
                    _check_text(key, path)
                stack.append((child, f"{path}.{key}"[:200], depth + 1))
        elif kind is list or kind is tuple:
            if depth >= max_depth and item:
                raise Unstorable(f"{path}: nested deeper than {max_depth} levels")
            for index, child in enumerate(item):
                stack.append((child, f"{path}[{index}]"[:200], depth + 1))
        elif kind is int:
            if not MIN_INT <= item <= MAX_INT:
                raise Unstorable(f"{path}: integer outside 64 bits")
        elif kind is float:
            if not math.isfinite(item):
                raise Unstorable(f"{path}: NaN and Infinity are not allowed")
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


def loads_json(data: str | bytes, *, where: str = "body") -> Any:
    """Parse JSON from outside and check the result is storable; ``Unstorable`` if not.

    NaN and Infinity are refused while parsing; nesting so deep that the parser
    itself gives up is refused too, never raised as a crash.
    """
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise Unstorable(f"{where}: nested deeper than {MAX_DEPTH} levels") from None
    except Unstorable as exc:
        raise Unstorable(f"{where}: {exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{where}: not valid JSON ({exc})") from None
    check_storable(value, where=where)
    return value
