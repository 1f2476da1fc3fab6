"""The baseline: a bare trio-websocket relay speaking just enough of protocol v1.

No store, no actors, no routing: ``hello`` (JWT checked), ``open`` (the
conversation id is buyer:shop), ``send`` (the first send pairs the conversation
with the shop's next connected agent, round robin; every send is acked at once
and forwarded to the other side), ``resolve``, ``presence``, ``ping``. What the
engine does on top of this — durability, routing, delivery guarantees — is what
the engine/bare ratio prices.

    python -m octim.bench.relay [--port 0]   # prints a JSON "ready" line on stderr
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections import defaultdict
from typing import Any

import jwt
import msgpack
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

PROTOCOLS = ("octim.v1.msgpack", "octim.v1.json")


class Relay:
    def __init__(self, secret: str | None) -> None:
        self.secret = secret
        self.users: dict[str, set[tuple[WebSocketConnection, bool]]] = defaultdict(set)
        self.agents: dict[str, list[str]] = defaultdict(list)  # shop → connected agents
        self.turn: dict[str, itertools.count[int]] = defaultdict(itertools.count)
        self.pairs: dict[str, tuple[str, str]] = {}  # conversation → (buyer, agent)
        self.seqs: dict[str, int] = defaultdict(int)

    async def handle(self, request: WebSocketRequest) -> None:
        offered = [p for p in request.proposed_subprotocols if p in PROTOCOLS]
        proto = offered[0] if offered else "octim.v1.json"
        ws = await request.accept(subprotocol=proto)
        binary = proto.endswith("msgpack")

        def encode(frame: dict[str, Any]) -> bytes | str:
            return msgpack.packb(frame) if binary else json.dumps(frame)

        try:
            hello = self.decode(await ws.get_message())
            claims = jwt.decode(hello["token"], self.secret, algorithms=["HS256"]) \
                if self.secret else jwt.decode(hello["token"], options={"verify_signature": False})
        except Exception:
            await ws.aclose(4001, "bad hello")
            return
        user, role = claims["sub"], claims["role"]
        me = (ws, binary)
        self.users[user].add(me)
        if role == "agent":
            for shop in claims.get("shops", []):
                self.agents[shop].append(user)
        await ws.send_message(encode({"type": "welcome", "user": user, "role": role}))
        try:
            while True:
                frame = self.decode(await ws.get_message())
                await self.dispatch(user, role, frame, ws, encode)
        except ConnectionClosed:
            pass
        finally:
            self.users[user].discard(me)
            if role == "agent":
                for shop in claims.get("shops", []):
                    self.agents[shop].remove(user)

    @staticmethod
    def decode(data: bytes | str) -> dict[str, Any]:
        frame = msgpack.unpackb(data) if isinstance(data, bytes) else json.loads(data)
        assert isinstance(frame, dict)
        return frame

    async def push(self, user: str, frame: dict[str, Any]) -> None:
        for ws, binary in list(self.users.get(user, ())):
            try:
                await ws.send_message(msgpack.packb(frame) if binary else json.dumps(frame))
            except ConnectionClosed:
                pass

    async def dispatch(self, user: str, role: str, frame: dict[str, Any],
                       ws: WebSocketConnection, encode: Any) -> None:
        kind = frame.get("type")
        if kind == "open":
            conversation = f"{user}:{frame['shop']}"
            await ws.send_message(encode({"type": "opened", "ref": frame.get("ref"),
                                          "conversation": conversation, "state": "queued"}))
        elif kind == "send":
            conversation = frame["conversation"]
            buyer, agent = self.pairs.get(conversation, (user, ""))
            if not agent:
                shop = conversation.split(":", 1)[1]
                agents = self.agents.get(shop)
                if agents:
                    agent = agents[next(self.turn[shop]) % len(agents)]
                    self.pairs[conversation] = (buyer, agent)
                    event = {"type": "event", "conversation": conversation,
                             "event": "assigned", "data": {"agent": agent}}
                    await self.push(buyer, event)
                    await self.push(agent, event)
            self.seqs[conversation] += 1
            seq, ts = self.seqs[conversation], int(time.time() * 1000)
            await ws.send_message(encode({"type": "ack", "id": frame["id"],
                                          "conversation": conversation, "seq": seq, "ts": ts}))
            other = agent if user == buyer else buyer
            if other:
                await self.push(other, {"type": "msg", "conversation": conversation, "seq": seq,
                                        "id": frame["id"], "from": user, "role": role,
                                        "kind": frame["kind"], "body": frame["body"],
                                        "ts": ts})
        elif kind == "resolve":
            buyer, agent = self.pairs.pop(frame["conversation"], (user, ""))
            event = {"type": "event", "conversation": frame["conversation"],
                     "event": "resolved", "data": {"by": user}}
            for other in {buyer, agent} - {""}:
                await self.push(other, event)
        elif kind == "presence":
            await ws.send_message(encode({"type": "presence", "user": user,
                                          "status": frame.get("status")}))
        elif kind == "ping":
            await ws.send_message(encode({"type": "pong", "ts": int(time.time() * 1000)}))
        else:
            await ws.send_message(encode({"type": "error", "code": "unknown_type",
                                          "message": f"the relay does not do {kind!r}"}))


async def serve(port: int, secret: str | None) -> None:
    relay = Relay(secret)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, relay.handle, "127.0.0.1", port, None)
        print(json.dumps({"msg": "ready", "ws": f"ws://127.0.0.1:{server.port}/ws"}),
              file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="the bare relay octim-bench compares with")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--secret", default=None, help="check JWT signatures with this key")
    args = parser.parse_args()
    try:
        trio.run(serve, args.port, args.secret)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
