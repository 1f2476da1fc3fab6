"""Type stub for the Rust extension ``octim._core`` (checked by mypy.stubtest)."""

from typing import Any, final

from typing_extensions import Buffer

__all__ = [
    "MAX_SCOPE_LEN",
    "SOURCE_DIGEST",
    "FanoutHub",
    "TextIndex",
    "__version__",
    "assign_batch",
    "check_json",
    "check_msgpack",
    "decode_key",
    "encode_key",
    "encode_key_run",
    "scope_bounds",
]

__version__: str
MAX_SCOPE_LEN: int
SOURCE_DIGEST: str

def encode_key(scope: str, seq: int) -> bytes:
    """Encode one ``(scope, seq)`` store key."""

def decode_key(key: bytes) -> tuple[str, int]:
    """Decode a store key into ``(scope, seq)``; raises ``octim.errors.InvalidKey``."""

def encode_key_run(scope: str, first: int, count: int) -> bytes:
    """Encode keys ``first .. first + count`` of one scope as one flat buffer."""

def scope_bounds(scope: str) -> tuple[bytes, bytes]:
    """The half-open byte range ``(lo, hi)`` holding every key of ``scope``."""

def check_json(data: str | bytes, max_depth: int, max_nodes: int) -> tuple[int, str] | None:
    """``None`` if the JSON text is storable, else ``(byte offset, reason)``."""

def check_msgpack(data: bytes, max_depth: int, max_nodes: int) -> tuple[int, str] | None:
    """``None`` if the msgpack value is storable, else ``(byte offset, reason)``."""

@final
class TextIndex:
    """Texts by slot; ``find`` returns the slots whose text contains a needle."""

    def __init__(self) -> None: ...
    def set(self, slot: int, text: str) -> None: ...
    def remove(self, slot: int) -> bool: ...
    def find(self, needle: str) -> list[int]: ...
    def __len__(self) -> int: ...

@final
class FanoutHub:
    """Bounded per-connection outboxes with priorities, coalescing and one shared payload."""

    def __init__(self) -> None: ...
    def open(self, conn: int, capacity: int) -> None: ...
    def close(self, conn: int) -> bool: ...
    def push(
        self, payload: object, recipients: Buffer, droppable: bool = False, key: int | None = None
    ) -> tuple[list[int], list[int]]: ...
    def push_many(
        self, items: list[tuple[object, Buffer, bool, int | None]]
    ) -> tuple[list[int], list[int]]: ...
    def drain(self, conn: int, max: int) -> list[Any]: ...
    def pending(self, conn: int) -> int: ...
    def is_overflowed(self, conn: int) -> bool: ...
    def connections(self) -> int: ...
    def statistics(self) -> dict[str, int]: ...

def assign_batch(
    capacity: Buffer,
    load: Buffer,
    weight: Buffer,
    last_assigned: Buffer,
    available: bytes,
    queue_offsets: Buffer,
    queue_ids: Buffer,
    queue: Buffer,
    priority: Buffer,
    sla_due: Buffer,
    arrival: Buffer,
    cost: Buffer,
    preferred: Buffer,
    prefer_kind: bytes,
    wait_until: Buffer,
    exclude: Buffer,
    rankings: bytes,
    now: float,
) -> tuple[list[int], list[int], list[int]]:
    """Assign a batch of waiting conversations to agents (GIL released)."""
