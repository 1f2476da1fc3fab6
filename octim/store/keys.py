"""Store key encoding: the fast codec from ``octim._core`` and its Python reference.

A key is ``scope + b"\\x00" + seq.to_bytes(8, "big")``, so LMDB's byte order is
(scope, seq) order. The Rust functions are the ones the engine uses; the
``reference_*`` functions define the behaviour in plain Python and a property
test checks that both agree.
"""

from __future__ import annotations

from octim._core import MAX_SCOPE_LEN, decode_key, encode_key, encode_key_run, scope_bounds
from octim.errors import InvalidKey

__all__ = [
    "MAX_SCOPE_LEN",
    "decode_key",
    "encode_key",
    "encode_key_run",
    "reference_decode_key",
    "reference_encode_key",
    "reference_encode_key_run",
    "reference_scope_bounds",
    "scope_bounds",
]

_SUFFIX = 9
_MAX_RUN = 1 << 20
_U64 = (1 << 64) - 1


def _check_scope(raw: bytes) -> None:
    if not raw:
        raise InvalidKey("invalid key: scope is empty")
    if len(raw) > MAX_SCOPE_LEN:
        raise InvalidKey(f"invalid key: scope is {len(raw)} bytes, the limit is {MAX_SCOPE_LEN}")
    if b"\x00" in raw:
        raise InvalidKey("invalid key: scope contains a NUL byte")


def _check_seq(seq: int) -> None:
    if not 0 <= seq <= _U64:
        raise OverflowError("seq out of range for u64")


def reference_encode_key(scope: str, seq: int) -> bytes:
    """Python reference of :func:`encode_key`."""
    raw = scope.encode()
    _check_scope(raw)
    _check_seq(seq)
    return raw + b"\x00" + seq.to_bytes(8, "big")


def reference_encode_key_run(scope: str, first: int, count: int) -> bytes:
    """Python reference of :func:`encode_key_run`."""
    raw = scope.encode()
    _check_scope(raw)
    _check_seq(first)
    _check_seq(count)
    if count == 0:
        return b""
    if count > _MAX_RUN:
        raise InvalidKey(f"invalid key: run of {count} keys, the limit is {_MAX_RUN}")
    if first + count - 1 > _U64:
        raise InvalidKey("invalid key: sequence run overflows u64")
    return b"".join(raw + b"\x00" + s.to_bytes(8, "big") for s in range(first, first + count))


def reference_decode_key(key: bytes) -> tuple[str, int]:
    """Python reference of :func:`decode_key`."""
    if len(key) < _SUFFIX + 1:
        raise InvalidKey(
            f"invalid key: key is {len(key)} bytes, shorter than the minimum {_SUFFIX + 1}"
        )
    raw, suffix = key[:-_SUFFIX], key[-_SUFFIX:]
    if suffix[0] != 0:
        raise InvalidKey("invalid key: separator byte missing")
    _check_scope(raw)
    try:
        scope = raw.decode()
    except UnicodeDecodeError:
        raise InvalidKey("invalid key: scope is not UTF-8") from None
    return scope, int.from_bytes(suffix[1:], "big")


def reference_scope_bounds(scope: str) -> tuple[bytes, bytes]:
    """Python reference of :func:`scope_bounds`."""
    raw = scope.encode()
    _check_scope(raw)
    return raw + b"\x00", raw + b"\x01"
