"""The store key codec: Rust (``octim._core``) against its Python reference, same run.

Every message a conversation stores is keyed ``(conversation, seq)``; the group-commit
writer encodes a run of them per commit (``encode_key_run``), readers decode them back.
"""

from __future__ import annotations

from typing import Any

import pytest

from octim.store import keys

SCOPE = "c19ab2f0e4d34c8a9b1e77"
RUN = 512  # keys in one run: a busy conversation's share of a large commit


def encode_many(encode: Any) -> list[bytes]:
    return [encode(SCOPE, seq) for seq in range(1, 1001)]


@pytest.mark.parametrize("kind", ["rust", "python"])
def test_encode_1000_keys(benchmark: Any, kind: str) -> None:
    encode = keys.encode_key if kind == "rust" else keys.reference_encode_key
    encoded = benchmark(encode_many, encode)
    assert encoded == encode_many(keys.reference_encode_key)  # identical bytes


@pytest.mark.parametrize("kind", ["rust", "python"])
def test_decode_1000_keys(benchmark: Any, kind: str) -> None:
    decode = keys.decode_key if kind == "rust" else keys.reference_decode_key
    encoded = encode_many(keys.reference_encode_key)
    decoded = benchmark(lambda: [decode(key) for key in encoded])
    assert decoded == [(SCOPE, seq) for seq in range(1, 1001)]


@pytest.mark.parametrize("kind", ["rust", "python"])
def test_encode_a_run_of_512(benchmark: Any, kind: str) -> None:
    encode_run = keys.encode_key_run if kind == "rust" else keys.reference_encode_key_run
    flat = benchmark(encode_run, SCOPE, 1, RUN)
    assert flat == keys.reference_encode_key_run(SCOPE, 1, RUN)
