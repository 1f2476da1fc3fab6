"""One client process of a load test: a slice of the scenario's connections.

Talks to the ``octim-bench`` parent over stdin/stdout, one JSON object a line:

    parent → {"config": {...}}
    worker → {"ready": {...}}            (connected and set up)
    parent → {"go": <wall time to start>}
    worker → {"progress": {...}}         (every second)
    worker → {"result": {...}}

Client message ids carry the wall time the message was due (``<prefix>.<µs>``),
so whichever process receives it measures send→deliver from when it should have
been sent: open-loop arrivals, latency corrected for coordinated omission.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack
import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    connect_websocket_url,
)

from octim.auth import issue_token
from octim.bench.target import raise_nofile

Frame = dict[str, Any]


def out(kind: str, value: Any) -> None:
    sys.stdout.write(json.dumps({kind: value}) + "\n")
    sys.stdout.flush()


def due_of(client_id: str) -> float:
    return int(client_id.rsplit(".", 1)[1]) / 1e6


class Conn:
    """One WebSocket connection with a reader task that hands frames to ``on_frame``."""

    def __init__(self, ws: WebSocketConnection, binary: bool, user: str) -> None:
        self.ws = ws
        self.binary = binary
        self.user = user

    async def send(self, frame: Frame) -> None:
        await self.ws.send_message(msgpack.packb(frame) if self.binary else json.dumps(frame))

    async def receive(self) -> Frame:
        data = await self.ws.get_message()
        frame = msgpack.unpackb(data) if isinstance(data, bytes) else json.loads(data)
        assert isinstance(frame, dict)
        return frame


class Run:
    """State shared by the connections of one worker."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.binary = config.get("subprotocol", "msgpack") == "msgpack"
        self.secret = config["secret"]
        self.url = config["ws"]
        self.acks: list[tuple[float, float]] = []  # (due, latency)
        self.delivers: list[tuple[float, float]] = []
        self.acked: list[tuple[str, str, int]] = []  # (conversation, client id, seq)
        self.assigned: list[tuple[float, float, float]] = []  # (due, connect, open→assigned)
        self.errors: Counter[str] = Counter()
        self.disconnects: Counter[str] = Counter()
        self.shed = 0  # opens the engine refused (admission control) and we tried again
        self.sent = 0
        self.waiting: dict[str, trio.Event] = {}  # conversation → assigned (or resolved)
        self.started = 0.0
        self.extra: dict[str, Any] = {}  # scenario-specific result fields

    async def open(self, conn: Conn, shop: str, context: dict[str, Any] | None = None
                   ) -> Frame:
        """``open``, as a real client does it: a ``rate_limited`` refusal (the engine is
        past its budget) is counted as shed and tried again after its ``retry_after``;
        another error is returned."""
        while True:
            await conn.send({"type": "open", "shop": shop, "ref": "o",
                             **({"context": context} if context else {})})
            while (frame := await conn.receive())["type"] not in ("opened", "error"):
                pass
            if frame["type"] == "error" and frame.get("code") == "rate_limited" and \
                    "retry_after" in frame:
                self.shed += 1
                await trio.sleep(float(frame["retry_after"]))
                continue
            return frame

    def token(self, user: str, role: str, shops: tuple[str, ...] = ()) -> str:
        return issue_token(self.secret, user, role, shops=shops, ttl=86400)

    async def connect(self, nursery: trio.Nursery, user: str, role: str,
                      shops: tuple[str, ...] = ()) -> Conn:
        ws = await connect_websocket_url(
            nursery, self.url, subprotocols=["octim.v1.msgpack" if self.binary
                                             else "octim.v1.json"],
            message_queue_size=64)
        conn = Conn(ws, self.binary, user)
        await conn.send({"type": "hello", "token": self.token(user, role, shops)})
        welcome = await conn.receive()
        if welcome.get("type") != "welcome":
            raise RuntimeError(f"not welcomed: {welcome}")
        return conn

    async def read(self, conn: Conn, on_frame: Callable[[Conn, Frame], Awaitable[None]]
                   ) -> None:
        try:
            while True:
                await on_frame(conn, await conn.receive())
        except ConnectionClosed as exc:
            code = exc.reason.code if exc.reason else None
            if code != 1000:  # a normal close (ours, at the end of a conversation) is no fault
                self.disconnects[str(code)] += 1

    def on_common(self, frame: Frame) -> None:
        kind = frame.get("type")
        if kind == "ack":
            client_id = frame["id"]
            if "." in client_id:
                self.acks.append((due_of(client_id), time.time() - due_of(client_id)))
                self.acked.append((frame["conversation"], client_id, frame["seq"]))
        elif kind == "error":
            self.errors[frame.get("code", "?")] += 1
        elif kind == "event" and frame["event"] in ("assigned", "resolved"):
            waiter = self.waiting.get(f"{frame['event']}:{frame['conversation']}")
            if waiter is not None:
                waiter.set()

    async def on_buyer(self, conn: Conn, frame: Frame) -> None:
        """A buyer's connection: acks, errors, assigned/resolved events."""
        self.on_common(frame)

    def on_deliver(self, frame: Frame) -> None:
        if frame.get("type") == "msg" and "." in frame.get("id", ""):
            self.delivers.append((due_of(frame["id"]), time.time() - due_of(frame["id"])))

    async def wait_event(self, event: str, conversation: str, timeout: float) -> bool:
        waiter = self.waiting.setdefault(f"{event}:{conversation}", trio.Event())
        with trio.move_on_after(timeout):
            await waiter.wait()
        self.waiting.pop(f"{event}:{conversation}", None)
        return waiter.is_set()

    def progress(self) -> dict[str, Any]:
        now = time.time()
        recent = sorted(lat for due, lat in self.delivers[-5000:] if now - due - lat < 1.0)
        return {"sent": self.sent, "acked": len(self.acks), "delivered": len(self.delivers),
                "errors": sum(self.errors.values()),
                "disconnects": sum(self.disconnects.values()),
                "conversations": len(self.assigned),
                "p99_ms": round(recent[math.ceil(0.99 * len(recent)) - 1] * 1000, 2)
                if recent else None}

    def result(self, **extra: Any) -> dict[str, Any]:
        return {"sent": self.sent, "acks": self.acks, "delivers": self.delivers,
                "acked": self.acked, "assigned": self.assigned,
                "errors": dict(self.errors), "disconnects": dict(self.disconnects),
                "shed": self.shed, **extra}


async def open_loop(start: float, duration: float, rate_at: Callable[[float], float],
                    action: Callable[[int, float], Awaitable[None]]) -> None:
    """Call ``action(n, due)`` at the scheduled times, whatever the server's speed."""
    n, t = 0, 0.0
    while t < duration:
        due = start + t
        delay = due - time.time()
        if delay > 0:
            await trio.sleep(delay)
        await action(n, due)
        n += 1
        t += 1.0 / rate_at(t)


# -- scenarios ------------------------------------------------------------------------


async def steady(run: Run, nursery: trio.Nursery, go: Callable[[dict[str, Any]],
                                                                 Awaitable[float]]) -> None:
    c = run.config

    async def agent_frame(conn: Conn, frame: Frame) -> None:
        run.on_deliver(frame)
        run.on_common(frame)

    for agent, shops in c["agents"]:
        conn = await run.connect(nursery, agent, "agent", tuple(shops))
        nursery.start_soon(run.read, conn, agent_frame)
        await conn.send({"type": "presence", "status": "online"})
    buyers: list[tuple[Conn, str]] = []
    limit = trio.CapacityLimiter(64)

    async def arrive(buyer: str, shop: str) -> None:
        async with limit:
            t0 = time.time()
            conn = await run.connect(nursery, buyer, "buyer")
            t1 = time.time()
            opened = await run.open(conn, shop)
            if opened["type"] == "error":
                run.errors[opened.get("code", "?")] += 1
                return
            conversation = opened["conversation"]
            waiter = run.waiting.setdefault(f"assigned:{conversation}", trio.Event())
            nursery.start_soon(run.read, conn, run.on_buyer)
            await conn.send({"type": "send", "conversation": conversation,
                             "id": f"{buyer}-hello", "kind": "text", "body": {"text": "你好"}})
            with trio.move_on_after(60):
                await waiter.wait()
            run.assigned.append((t0, t1 - t0, time.time() - t1))
            buyers.append((conn, conversation))

    async with trio.open_nursery() as arrivals:
        for buyer, shop in c["buyers"]:
            arrivals.start_soon(arrive, buyer, shop)
    start = await go({"connections": len(c["agents"]) + len(buyers)})
    prefix = c["prefix"]

    async def send(n: int, due: float) -> None:
        conn, conversation = buyers[n % len(buyers)]
        run.sent += 1
        await conn.send({"type": "send", "conversation": conversation,
                         "id": f"{prefix}{n}.{int(due * 1e6)}", "kind": "text",
                         "body": {"text": f"第{n}条消息：这件衣服有没有L码？"}})

    await open_loop(start, c["duration"], lambda t: c["rate"], send)


async def peak(run: Run, nursery: trio.Nursery,
               go: Callable[[dict[str, Any]], Awaitable[float]]) -> None:
    """New conversations arriving on a ramp (and a burst at its top). A buyer asks a
    question; whoever answers first (the bot in peak mode, else an agent once assigned)
    is the first response. A buyer whose question the bot answered (``faq`` buyers, 3 in
    5) leaves content: bot-resolved; the others ask for a person (转人工) and talk to an
    agent, who resolves. A buyer offered leave-a-message past the queue cap leaves one (a
    ticket, ``POST /api/tickets``) and goes. Each conversation's outcome and first
    response time are in the result's ``outcomes``."""
    import httpx

    c = run.config
    outcomes: list[tuple[float, float, str]] = []  # (due, first response s or inf, outcome)
    run.extra["outcomes"] = outcomes
    firsts: dict[str, trio.Event] = {}  # conversation → a bot or agent message came
    offered: dict[str, trio.Event] = {}  # conversation → leave-a-message offered (cap)
    answered_by: dict[str, str] = {}

    async def agent_frame(conn: Conn, frame: Frame) -> None:
        run.on_deliver(frame)
        run.on_common(frame)
        if frame.get("type") == "event" and frame.get("event") == "assigned" and \
                frame.get("data", {}).get("agent") == conn.user:
            nursery.start_soon(reply, conn, frame["conversation"], "您好，请问有什么可以帮您？",
                               False)
        elif frame.get("type") == "msg" and frame.get("role") == "buyer" and \
                frame["body"].get("text", "").endswith("谢谢"):
            nursery.start_soon(reply, conn, frame["conversation"], "不客气，祝您购物愉快", True)

    async def reply(conn: Conn, conversation: str, text: str, resolve: bool) -> None:
        run.sent += 1
        await conn.send({"type": "send", "conversation": conversation,
                         "id": f"{conn.user}-{int(time.time() * 1e6)}.{int(time.time() * 1e6)}",
                         "kind": "text", "body": {"text": text}})
        if resolve:
            await conn.send({"type": "resolve", "conversation": conversation})

    async def buyer_frame(conn: Conn, frame: Frame) -> None:
        run.on_common(frame)
        conversation = frame.get("conversation", "")
        if frame.get("type") == "msg" and frame.get("role") in ("bot", "agent") and \
                frame.get("kind") == "text":
            answered_by.setdefault(conversation, frame["role"])
            if conversation in firsts:
                firsts[conversation].set()
        elif frame.get("type") == "event" and frame.get("event") == "queued" and \
                frame["data"].get("reason") == "queue_cap" and conversation in offered:
            offered[conversation].set()

    for agent, shops in c["agents"]:
        conn = await run.connect(nursery, agent, "agent", tuple(shops))
        nursery.start_soon(run.read, conn, agent_frame)
        await conn.send({"type": "presence", "status": "online"})
    start = await go({"connections": len(c["agents"])})
    shops, prefix = c["shops"], c["prefix"]
    http = httpx.AsyncClient(base_url=c["url"], timeout=30)

    async def step(event: trio.Event, other: trio.Event | None = None) -> bool:
        """Until ``event`` (True) or ``other`` (False) is set, at most assign_timeout."""
        with trio.move_on_after(c["assign_timeout"]):
            async with trio.open_nursery() as race:
                async def wait(e: trio.Event) -> None:
                    await e.wait()
                    race.cancel_scope.cancel()
                race.start_soon(wait, event)
                if other is not None:
                    race.start_soon(wait, other)
        return event.is_set()

    async def say(conn: Conn, conv: str, buyer: str, i: int, text: str) -> None:
        run.sent += 1
        await conn.send({"type": "send", "conversation": conv,
                         "id": f"{buyer}-{i}.{int(time.time() * 1e6)}", "kind": "text",
                         "body": {"text": text}})

    async def conversation(n: int, due: float) -> None:
        buyer, shop = f"{prefix}b{n}", shops[n % len(shops)]
        outcome, first, done = "timeout", math.inf, False
        try:
            async with trio.open_nursery() as own:
                conn = await run.connect(own, buyer, "buyer")
                try:
                    _, outcome, first = await talk(own, conn, n, buyer, shop, due)
                    done = True
                finally:  # leave: close (1000) and stop this buyer's reader
                    with trio.move_on_after(1):
                        try:
                            await conn.ws.aclose()
                        except Exception:
                            pass
                    own.cancel_scope.cancel()
        except Exception as exc:
            if not done:  # the conversation's outcome stands if it came before the close
                leaf: BaseException = exc
                while isinstance(leaf, BaseExceptionGroup):
                    leaf = leaf.exceptions[0]
                outcome = f"error:{type(leaf).__name__}"
        finally:
            outcomes.append((due, first, outcome))

    async def talk(own: trio.Nursery, conn: Conn, n: int, buyer: str, shop: str,
                   due: float) -> tuple[str, str, float]:
        """One buyer's conversation: (conversation, outcome, first response seconds)."""
        connected = time.time()
        opened = await run.open(conn, shop, {"product": f"sku-{n % 97}", "title": "羽绒服"})
        if opened["type"] == "error":
            return "", f"error:{opened['code']}", math.inf
        conv = opened["conversation"]
        assigned = run.waiting.setdefault(f"assigned:{conv}", trio.Event())
        resolved = run.waiting.setdefault(f"resolved:{conv}", trio.Event())
        got_first = firsts.setdefault(conv, trio.Event())
        cap = offered.setdefault(conv, trio.Event())
        try:
            own.start_soon(run.read, conn, buyer_frame)
            faq = n % 5 >= 2
            asked = time.time()
            await say(conn, conv, buyer, 0, c["faq"][n % len(c["faq"])] if faq
                      else c["question"])
            first = time.time() - asked if await step(got_first, cap) else math.inf
            if cap.is_set() and not got_first.is_set():
                return conv, await leave_message(buyer, shop, conv), first
            if not got_first.is_set():
                return conv, "no_response", first
            if answered_by.get(conv) == "bot":
                if faq:
                    return conv, "bot", first
                await say(conn, conv, buyer, 1, "转人工")
            if not await step(assigned, cap):
                if cap.is_set():
                    return conv, await leave_message(buyer, shop, conv), first
                return conv, "not_assigned", first
            run.assigned.append((due, connected - due, time.time() - asked))
            await trio.sleep(c["interval"])
            await say(conn, conv, buyer, 2, "好的谢谢")
            return conv, "agent" if await step(resolved) else "not_resolved", first
        finally:
            for key in (f"assigned:{conv}", f"resolved:{conv}"):
                run.waiting.pop(key, None)
            firsts.pop(conv, None)
            offered.pop(conv, None)
            answered_by.pop(conv, None)

    async def leave_message(buyer: str, shop: str, conv: str) -> str:
        """留言: past the queue cap, the buyer leaves a message (a ticket) and goes."""
        answer = await http.post("/api/tickets", json={
            "shop": shop, "subject": "高峰期留言", "description": c["question"],
            "source": {"kind": "bot", "conversation": conv}},
            headers={"Authorization": f"Bearer {run.token(buyer, 'buyer')}"})
        return "left_message" if answer.status_code in (200, 201) else \
            f"error:ticket_{answer.status_code}"

    ramp, factor, base = c["ramp"], c["factor"], c["base_rate"]

    def rate_at(t: float) -> float:
        return float(base * (1 + (factor - 1) * min(1.0, t / ramp)))

    arrived = [0]

    async def arrive(n: int, due: float) -> None:
        arrived[0] += 1
        nursery.start_soon(conversation, n, due)

    async def burst() -> None:
        # The burst at the top of the ramp: many buyers at the same instant.
        await trio.sleep(max(0.0, start + ramp - time.time()))
        now = time.time()
        for k in range(c["burst"]):
            arrived[0] += 1
            nursery.start_soon(conversation, 10_000_000 + k, now)

    nursery.start_soon(burst)
    await open_loop(start, c["duration"], rate_at, arrive)
    # The last arrivals finish their conversations (each bounded by the assign timeout).
    deadline = time.time() + 2 * c["assign_timeout"] + 10
    while time.time() < deadline and len(outcomes) < arrived[0]:
        await trio.sleep(0.1)
    await http.aclose()


async def connections(run: Run, nursery: trio.Nursery,
                      go: Callable[[dict[str, Any]], Awaitable[float]]) -> None:
    c = run.config
    conns: list[Conn] = []
    limit = trio.CapacityLimiter(c.get("parallel", 50))
    failed: Counter[str] = Counter()

    async def one(n: int) -> None:
        async with limit:
            try:
                # A server out of file descriptors never accepts: give up after a while.
                with trio.fail_after(c.get("connect_timeout", 15)):
                    conns.append(await run.connect(nursery, f"{c['prefix']}{n}", "buyer"))
            except Exception as exc:  # counted and reported: the point is how many hold
                failed[type(exc).__name__] += 1

    t0 = time.time()
    async with trio.open_nursery() as opening:
        for n in range(c["count"]):
            opening.start_soon(one, n)
    setup = time.time() - t0
    start = await go({"connections": len(conns), "failed": dict(failed),
                      "connect_seconds": round(setup, 2)})
    await trio.sleep(max(0.0, start + c["duration"] - time.time()))
    closed = Counter(str(conn.ws.closed.code) for conn in conns if conn.ws.closed)
    run.disconnects.update(closed)
    run.extra = {"held": sum(1 for conn in conns if not conn.ws.closed),
                 "opened": len(conns), "failed": dict(failed),
                 "connect_seconds": round(setup, 2)}


async def fanout(run: Run, nursery: trio.Nursery,
                 go: Callable[[dict[str, Any]], Awaitable[float]]) -> None:
    c = run.config

    async def subscriber(conn: Conn, frame: Frame) -> None:
        run.on_deliver(frame)

    for n in range(c["subscribers"]):
        conn = await run.connect(nursery, c["agent"], "agent", (c["shop"],))
        nursery.start_soon(run.read, conn, subscriber)
        if n == 0:
            await conn.send({"type": "presence", "status": "online"})
    buyer: Conn | None = None
    conversation = ""
    if c["sender"]:
        buyer = await run.connect(nursery, "fanout-buyer", "buyer")
        await buyer.send({"type": "open", "shop": c["shop"], "ref": "o"})
        while (opened := await buyer.receive())["type"] != "opened":
            pass
        conversation = opened["conversation"]
        waiter = run.waiting.setdefault(f"assigned:{conversation}", trio.Event())
        nursery.start_soon(run.read, buyer, run.on_buyer)
        await buyer.send({"type": "send", "conversation": conversation, "id": "fanout-hello",
                          "kind": "text", "body": {"text": "你好"}})
        with trio.move_on_after(30):
            await waiter.wait()
    start = await go({"connections": c["subscribers"] + (1 if buyer else 0)})
    if buyer is None:
        await trio.sleep(max(0.0, start + c["duration"] - time.time()))
        return
    sender = buyer

    async def send(n: int, due: float) -> None:
        run.sent += 1
        await sender.send({"type": "send", "conversation": conversation,
                           "id": f"f{n}.{int(due * 1e6)}", "kind": "text",
                           "body": {"text": f"公告{n}"}})

    await open_loop(start, c["duration"], lambda t: c["rate"], send)


SCENARIOS = {"steady": steady, "peak": peak, "connections": connections, "fanout": fanout}


async def main_async() -> None:
    config = json.loads(sys.stdin.readline())["config"]
    run = Run(config)
    stdin = trio.lowlevel.FdStream(0)
    buffer = b""

    async def go(info: dict[str, Any]) -> float:
        nonlocal buffer
        out("ready", info)
        while b"\n" not in buffer:
            chunk = await stdin.receive_some(4096)
            if not chunk:
                raise SystemExit("the parent went away")
            buffer += chunk
        start = float(json.loads(buffer.split(b"\n", 1)[0])["go"])
        run.started = start
        return start

    async with trio.open_nursery() as nursery:
        async def report() -> None:
            while True:
                await trio.sleep(1)
                if run.started:
                    out("progress", run.progress())

        nursery.start_soon(report)
        await SCENARIOS[config["scenario"]](run, nursery, go)
        if config["scenario"] == "fanout" and not config["sender"]:
            await trio.sleep(config.get("drain", 5.0))  # deliveries of the last sends
        # Drain: wait for acks and deliveries still in flight.
        deadline = time.time() + config.get("drain", 5.0)
        expected = config.get("expect_deliveries", 1)
        while time.time() < deadline and (len(run.acks) < run.sent or
                                          len(run.delivers) < run.sent * expected):
            await trio.sleep(0.05)
        out("result", run.result(**run.extra))
        # Done: leave without closing thousands of sockets one by one (the kernel
        # closes them; trio-websocket can fail answering a ping while closing).
        os._exit(0)


def main() -> None:
    raise_nofile()
    trio.run(main_async)


if __name__ == "__main__":
    main()
