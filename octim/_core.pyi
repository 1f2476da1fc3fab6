"""Type stub for the Rust extension ``octim._core`` (checked by mypy.stubtest)."""

__all__ = [
    "MAX_SCOPE_LEN",
    "__version__",
    "decode_key",
    "encode_key",
    "encode_key_run",
    "scope_bounds",
]

__version__: str
MAX_SCOPE_LEN: int

def encode_key(scope: str, seq: int) -> bytes:
    """Encode one ``(scope, seq)`` store key."""

def decode_key(key: bytes) -> tuple[str, int]:
    """Decode a store key into ``(scope, seq)``; raises ``octim.errors.InvalidKey``."""

def encode_key_run(scope: str, first: int, count: int) -> bytes:
    """Encode keys ``first .. first + count`` of one scope as one flat buffer."""

def scope_bounds(scope: str) -> tuple[bytes, bytes]:
    """The half-open byte range ``(lo, hi)`` holding every key of ``scope``."""
