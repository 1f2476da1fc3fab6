"""Child process of the durability test: append forever, print every acknowledgement.

Usage: python tests/durability_child.py DATA_DIR. Each line on stdout,
``conversation seq``, is printed only after the store said the write is durable.
"""

from __future__ import annotations

import hashlib
import sys

import trio

from octim.store import Put, open_store, pack
from octim.store.keys import encode_key


def body(conv: str, seq: int) -> dict[str, object]:
    text = f"{conv}:{seq}:" + "消息" * 200
    return {"seq": seq, "text": text, "sha": hashlib.sha256(text.encode()).hexdigest()}


async def main(path: str) -> None:
    async with open_store(path, map_size=1 << 20) as store:  # small: growth happens too
        async def conversation(conv: str) -> None:
            seq = store.last_seq("messages", conv)
            while True:
                seq += 1
                await store.write([
                    Put("messages", encode_key(conv, seq), pack(body(conv, seq))),
                    Put("conversations", conv.encode(), pack({"last_seq": seq})),
                ])
                sys.stdout.write(f"{conv} {seq}\n")
                sys.stdout.flush()

        async with trio.open_nursery() as nursery:
            for i in range(32):
                nursery.start_soon(conversation, f"conv-{i}")


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
