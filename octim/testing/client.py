"""A protocol-v1 WebSocket client for tests, benchmarks and embedding programs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgpack
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from octim.gateway.codec import JSON, MSGPACK


class Client:
    """One connection; frames that are not awaited yet stay in ``self.inbox``."""

    def __init__(self, ws: WebSocketConnection, subprotocol: str) -> None:
        self.ws = ws
        self.binary = subprotocol == MSGPACK
        self.inbox: list[dict[str, Any]] = []
        self.user: str | None = None

    async def send(self, frame: dict[str, Any]) -> None:
        """Send one frame."""
        data = msgpack.packb(frame) if self.binary else json.dumps(frame)
        await self.ws.send_message(data)

    async def _receive(self) -> dict[str, Any]:
        data = await self.ws.get_message()
        frame = msgpack.unpackb(data) if self.binary else json.loads(data)
        assert isinstance(frame, dict), f"not a frame: {frame!r}"
        return frame

    async def expect(self, type_: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        """The first frame of ``type_`` whose fields equal ``match`` (others are kept)."""
        def fits(frame: dict[str, Any]) -> bool:
            return frame.get("type") == type_ and all(frame.get(k) == v
                                                      for k, v in match.items())

        for index, frame in enumerate(self.inbox):
            if fits(frame):
                return self.inbox.pop(index)
        with trio.fail_after(timeout):
            while True:
                frame = await self._receive()
                if fits(frame):
                    return frame
                self.inbox.append(frame)

    async def request(self, frame: dict[str, Any], reply: str, **match: Any) -> dict[str, Any]:
        """Send ``frame`` and wait for the matching ``reply`` frame."""
        await self.send(frame)
        return await self.expect(reply, **match)

    async def open(self, shop: str, ref: str = "r1", **context: Any) -> dict[str, Any]:
        """Open (or return to) a conversation with a shop."""
        return await self.request({"type": "open", "shop": shop, "ref": ref,
                                   "context": context}, "opened", ref=ref)

    async def say(self, conversation: str, client_id: str, text: str) -> dict[str, Any]:
        """Send a text message and wait for its ack."""
        return await self.request({"type": "send", "conversation": conversation,
                                   "id": client_id, "kind": "text", "body": {"text": text}},
                                  "ack", id=client_id)

    async def sync(self, conversation: str, after: int = 0) -> list[dict[str, Any]]:
        """All messages after ``after``, following ``more`` pages."""
        messages: list[dict[str, Any]] = []
        while True:
            await self.send({"type": "sync", "conversation": conversation, "after": after})
            synced = await self.expect("synced", conversation=conversation)
            got = [f for f in self.inbox if f.get("type") == "msg" and
                   f.get("conversation") == conversation and after < f["seq"] <= synced["last"]]
            for frame in got:
                self.inbox.remove(frame)
            by_seq = {m["seq"]: m for m in got}  # a live copy and the synced one are equal
            messages.extend(by_seq[seq] for seq in sorted(by_seq))
            after = synced["last"]
            if not synced["more"]:
                return messages


@asynccontextmanager
async def connect(ws_url: str, token: str, *, subprotocol: str = JSON
                  ) -> AsyncIterator[Client]:
    """Connect, say hello, and yield the welcomed client."""
    async with open_websocket_url(ws_url, subprotocols=[subprotocol]) as ws:
        client = Client(ws, subprotocol)
        welcome = await client.request({"type": "hello", "token": token}, "welcome")
        client.user = welcome["user"]
        yield client
