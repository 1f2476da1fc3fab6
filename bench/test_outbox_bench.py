"""What durable deliveries cost and carry: one engine, one local receiver, in one run.

- ``acks``: a buyer sends 3,000 pipelined texts; messages acked per second with no webhook
  endpoint, then with an endpoint for every event (each message's ``message.sent``
  delivery is written in the message's own commit, and removed by the courier's commit of
  the result).
- ``deliveries``: how fast the courier drains what those sends queued, and how late each
  delivery reaches the receiver after its message was acked (p50/p99).
- ``channel``: 1,000 staff replies in a conversation of an api channel, to its
  outbound URL (one target: one delivery in flight at a time).

Every delivery is checked to arrive exactly once. Run: ``pytest bench/test_outbox_bench.py
-s`` (numbers in bench/README.md).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from bench.conftest import summary_ms
from octim.testing import TEST_API_KEY, open_engine, token
from octim.testing.client import connect
from octim.webhooks import sign

SENDS = 3000
REPLIES = 1000
SECRET = "bench-channel-secret-0123"


class Receiver:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}  # delivery id → when it arrived
        self.bodies: dict[str, dict[str, Any]] = {}
        self.repeats = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver would

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                delivery = self.headers["X-Octim-Delivery"]
                with receiver.lock:
                    if delivery in receiver.arrived:
                        receiver.repeats += 1
                    receiver.arrived[delivery] = time.time()
                    receiver.bodies[delivery] = json.loads(body)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def sent(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        """The ``message.sent`` deliveries of the messages whose ids start so."""
        with self.lock:
            return [(d, b) for d, b in self.bodies.items() if b.get("event") == "message.sent"
                    and b["data"]["id"].startswith(prefix)]

    def count(self, prefix: str) -> int:
        with self.lock:
            return sum(1 for d in self.arrived if d.startswith(prefix))


async def burst(ws: str, conv: str, prefix: str, client: Any) -> tuple[float, dict[str, int]]:
    """Send SENDS texts pipelined; seconds until the last ack, and each id's ack ts."""
    acked: dict[str, int] = {}
    started = time.perf_counter()

    async def send_all() -> None:
        for n in range(SENDS):
            await client.send({"type": "send", "conversation": conv, "id": f"{prefix}{n}",
                               "kind": "text", "body": {"text": f"消息 {n}"}})

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_all)
        while len(acked) < SENDS:
            ack = await client.expect("ack", timeout=30)
            acked[ack["id"]] = ack["ts"]
    return time.perf_counter() - started, acked


async def until(predicate: Any, timeout: float = 120) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


@pytest.mark.benchmark(group="outbox")
def test_outbox_acks_deliveries_and_channel_replies(tmp_path: Path) -> None:
    receiver = Receiver()
    results: dict[str, Any] = {}

    async def main() -> None:
        async with open_engine(tmp_path / "d", webhook_allow="127.0.0.1",
                               rate_per_second=100_000, rate_burst=100_000) as (
                engine, listening):
            async with httpx.AsyncClient(base_url=listening.http_url, timeout=30, headers={
                    "Authorization": f"Bearer {TEST_API_KEY}"}) as http:
                (await http.put("/api/shops/s1", json={"name": "s1", "bot": {"mode": "off"}})
                 ).raise_for_status()
                (await http.put("/api/agents/a1", json={"name": "a1", "shops": ["s1"],
                                                        "max_concurrent": 100})
                 ).raise_for_status()
                async with connect(listening.ws_url, token("b1")) as buyer:
                    conv = (await buyer.open("s1"))["conversation"]
                    bare, _ = await burst(listening.ws_url, conv, "a", buyer)
                    (await http.put("/api/webhooks/all", json={
                        "url": f"{receiver.url}/hook", "events": ["*"],
                        "secret": "bench-hook-secret-0123"})).raise_for_status()
                    queued_at = time.perf_counter()
                    hooked, acks = await burst(listening.ws_url, conv, "b", buyer)
                    await until(lambda: len(receiver.sent("b")) == SENDS)
                    drained = time.perf_counter() - queued_at
                    lateness = [receiver.arrived[d] - acks[b["data"]["id"]] / 1000
                                for d, b in receiver.sent("b")]
                    (await http.delete("/api/webhooks/all")).raise_for_status()
                results["acks_per_s_no_endpoint"] = round(SENDS / bare)
                results["acks_per_s_one_endpoint"] = round(SENDS / hooked)
                results["deliveries_per_s"] = round(SENDS / drained)
                results["ack_to_delivery"] = summary_ms(lateness)
                # A channel: replies to its outbound URL.
                (await http.put("/api/channels/wx", json={
                    "shop": "s1", "type": "api", "name": "wx", "secret": SECRET,
                    "outbound_url": f"{receiver.url}/out"})).raise_for_status()
                raw = json.dumps({"user": "o1", "id": "i1", "kind": "text",
                                  "body": {"text": "在吗"}}).encode()
                stamp = str(int(time.time()))
                async with httpx.AsyncClient(base_url=listening.http_url) as anonymous:
                    made = (await anonymous.post("/api/channels/wx/messages", content=raw,
                                                 headers={"X-Octim-Timestamp": stamp,
                                                          "X-Octim-Signature": sign(
                                                              SECRET, stamp, raw)})).json()
                await engine.assign(made["conversation"], "a1")
                async with connect(listening.ws_url, token("a1", "agent", "s1")) as agent:
                    started = time.perf_counter()
                    for n in range(REPLIES):
                        await agent.send({"type": "send", "conversation": made["conversation"],
                                          "id": f"r{n}", "kind": "text",
                                          "body": {"text": f"回复 {n}"}})
                    await until(lambda: receiver.count(made["conversation"]) == REPLIES)
                    results["channel_replies_per_s"] = round(
                        REPLIES / (time.perf_counter() - started))
                await until(lambda: not engine.store.scan("outbox"))
        results["repeats"] = receiver.repeats

    trio.run(main)
    receiver.server.shutdown()
    print(json.dumps(results, indent=2))
    assert results["repeats"] == 0
