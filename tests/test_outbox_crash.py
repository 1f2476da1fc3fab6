"""Deliveries are durable: the engine is SIGKILLed while channel replies and webhooks are
queued and in flight; after a restart each one arrives, under its own delivery id, and
once it was answered 2xx it is never sent again."""

from __future__ import annotations

import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import trio

from octim.testing import TEST_API_KEY, TEST_SECRET, token
from octim.testing.client import connect
from octim.testing.process import EngineProcess
from octim.webhooks import sign

ENV = {"OCTIM_SECRET": TEST_SECRET, "OCTIM_API_KEY": TEST_API_KEY,
       "OCTIM_WEBHOOK_ALLOW": "127.0.0.1", "OCTIM_WEBHOOK_BACKOFF": "0.2",
       "OCTIM_WEBHOOK_TIMEOUT": "30", "OCTIM_ROUTING_TICK": "0.1",
       "OCTIM_RATE_PER_SECOND": "10000", "OCTIM_RATE_BURST": "10000"}
ARGS = ["--http", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--log-format", "json"]
SECRET = "crash-channel-secret-0123"
REPLIES = 20


class Receiver:
    """While ``hold`` is set, every POST waits (the engine dies with it in flight)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, dict[str, Any]]] = []  # path, delivery, body
        self.answered: list[tuple[str, str]] = []  # what got a 2xx
        self.hold = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                delivery = self.headers["X-Octim-Delivery"]
                receiver.received.append((self.path, delivery, body))
                if receiver.hold.is_set():
                    receiver.release.wait(60)
                    return  # the engine that asked is gone: answer nothing
                receiver.answered.append((self.path, delivery))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def wait(predicate: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_queued_deliveries_survive_sigkill(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    receiver = Receiver()
    receiver.hold.set()
    acked: list[int] = []
    try:
        with EngineProcess(["serve", "--data", data, *ARGS], ENV) as engine:
            ready = engine.wait_ready()
            with httpx.Client(base_url=ready["http"], headers={
                    "Authorization": f"Bearer {TEST_API_KEY}"}) as api:
                api.put("/api/shops/s1", json={"name": "店", "bot": {"mode": "off"}}
                        ).raise_for_status()
                api.put("/api/agents/a1", json={"name": "a1", "shops": ["s1"]}
                        ).raise_for_status()
                api.put("/api/channels/wx", json={
                    "shop": "s1", "type": "api", "name": "wx", "secret": SECRET,
                    "outbound_url": f"{receiver.url}/out"}).raise_for_status()
                api.put("/api/webhooks/hook", json={
                    "url": f"{receiver.url}/hook", "events": ["message.sent"],
                    "secret": "hook-secret-0123456789"}).raise_for_status()
                raw = json.dumps({"user": "o1", "id": "in-1", "kind": "text",
                                  "body": {"text": "在吗"}}).encode()
                stamp = str(int(time.time()))
                conv = httpx.post(f"{ready['http']}/api/channels/wx/messages", content=raw,
                                  headers={"X-Octim-Timestamp": stamp,
                                           "X-Octim-Signature": sign(SECRET, stamp, raw),
                                           "Content-Type": "application/json"}
                                  ).json()["conversation"]
                api.post(f"/api/conversations/{conv}/assign", json={"agent": "a1"}
                         ).raise_for_status()

            async def reply() -> None:
                async with connect(ready["ws"], token("a1", "agent", "s1")) as agent:
                    for n in range(REPLIES):
                        await agent.send({"type": "send", "conversation": conv,
                                          "id": f"r{n}", "kind": "text",
                                          "body": {"text": f"回复 {n}"}})
                    for _ in range(REPLIES):
                        acked.append((await agent.expect("ack"))["seq"])

            trio.run(reply)
            # The first reply and the first webhook are in flight (held), the rest queued.
            wait(lambda: {p for p, _, _ in receiver.received} == {"/out", "/hook"})
            engine.proc.send_signal(signal.SIGKILL)
            assert engine.proc.wait(10) == -signal.SIGKILL
        receiver.hold.clear()
        receiver.release.set()
        assert len(acked) == REPLIES and not receiver.answered

        with EngineProcess(["serve", "--data", data, *ARGS], ENV) as engine:
            engine.wait_ready()
            # Every acked reply reaches the channel (and its webhook), each id once with
            # a 2xx; the one in flight at the kill comes again under the same id.
            expected = {f"{conv}.{seq}" for seq in acked}
            wait(lambda: {d for p, d in receiver.answered if p == "/out"} == expected)
            wait(lambda: len([1 for p, _ in receiver.answered if p == "/hook"]) >= REPLIES + 1)
            out = [d for p, d in receiver.answered if p == "/out"]
            assert sorted(out) == sorted(expected)  # each exactly once with a 2xx
            first_held = next(d for p, d, _ in receiver.received if p == "/out")
            assert [d for p, d, _ in receiver.received if p == "/out"].count(first_held) == 2
            hooks = [d for p, d in receiver.answered if p == "/hook"]
            assert len(hooks) == len(set(hooks))
            texts = sorted({d: b["data"]["body"]["text"] for p, d, b in receiver.received
                            if p == "/hook"}.values())
            assert texts == sorted(["在吗"] + [f"回复 {n}" for n in range(REPLIES)])
            assert engine.stop() == 0
        count = len(receiver.received)
        # A clean restart sends nothing again: what was answered left the outbox.
        with EngineProcess(["serve", "--data", data, *ARGS], ENV) as engine:
            engine.wait_ready()
            time.sleep(1.0)
            assert len(receiver.received) == count
            assert engine.stop() == 0
    finally:
        receiver.release.set()
        receiver.server.shutdown()
