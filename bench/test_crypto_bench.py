"""Encryption at rest, per message: the seals one chat message costs the engine.

One message commits four puts, two of them sealed (the message record in
``messages`` and the conversation's meta in ``conversations``); a delivery
reads nothing back. The ratio to compare against is ``octim-bench steady``'s
server CPU per message (about 1,000 µs on this machine; bench/README.md), both
numbers from the same machine.

Run: ``pytest bench/test_crypto_bench.py``.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from octim.store import Put, pack
from octim.store.crypto import SEALED, Sealer, aad, parse_keys
from octim.store.keys import encode_key

MESSAGE = pack({"seq": 42, "id": "c-123-42", "from": "buyer-1", "role": "buyer", "kind": "text",
                "body": {"text": "你好，这件羽绒服有L码吗？今天下单明天能发货吗" * 2},
                "ts": 1796150000000})
META = pack({"shop": "uniqlo-style", "buyer": "buyer-1", "state": "assigned", "agent": "a1",
             "last_seq": 42, "updated": 1796150000000, "preview": "你好，这件羽绒服有L码吗",
             "reads": {"buyer-1": 42, "a1": 41}, "level": 2, "routed": True})


def message_ops() -> list[Put]:
    return [Put("messages", encode_key("c-123", 42), MESSAGE),
            Put("client_ids", b"c-123\0buyer-1\x1fm42", pack([42, 1796150000000])),
            Put("idx_open_conversations", b"c-123", pack(1796150000000)),
            Put("conversations", b"c-123", META)]


def seal_ops(sealer: Sealer, ops: list[Put]) -> list[Put]:
    """What Store._enqueue does with a request's ops."""
    return [Put(op.db, op.key, sealer.seal(op.value, aad(op.db, op.key)))
            if op.db in SEALED else op for op in ops]


def sealer() -> Sealer:
    return Sealer(parse_keys("k1:" + base64.b64encode(os.urandom(32)).decode()), 1_800_000_000)


def test_seal_one_message(benchmark: Any) -> None:
    s, ops = sealer(), message_ops()
    sealed = benchmark(seal_ops, s, ops)
    assert sum(op.value[0] == 0xC1 for op in sealed) == 2
    assert s.open(sealed[0].value, aad("messages", sealed[0].key)) == MESSAGE


def test_open_one_message(benchmark: Any) -> None:
    s = sealer()
    raw = s.seal(MESSAGE, aad("messages", b"k"))
    assert benchmark(s.open, raw, aad("messages", b"k")) == MESSAGE
