"""A first end-to-end measurement: buyers chatting with agents through a real engine.

Not the full octim-bench (issue #8): one scenario, one client process. It starts
``octim serve`` on a temporary data dir, creates a shop and agents over HTTP,
connects B buyers and A agents over WebSocket, lets routing assign every
conversation, then has the buyers send at a fixed total rate (open loop) and
reports send→ack and send→deliver latency percentiles and the server's CPU
time per message.

    python -m bench.e2e --buyers 200 --agents 20 --rate 1000 --duration 10
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from contextlib import AsyncExitStack
from typing import Any

import httpx
import trio

from bench.conftest import summary_ms
from octim.testing import TEST_API_KEY, TEST_SECRET, token
from octim.testing.client import Client, connect
from octim.testing.process import EngineProcess


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def run(args: argparse.Namespace, ready: dict[str, Any], pid: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=ready["http"], headers={
            "Authorization": f"Bearer {TEST_API_KEY}"}) as http:
        (await http.put("/api/shops/s1", json={"name": "压测店", "bot": {"mode": "off"}})
         ).raise_for_status()
        for a in range(args.agents):
            (await http.put(f"/api/agents/a{a}", json={
                "name": f"a{a}", "shops": ["s1"], "max_concurrent": 100})).raise_for_status()
    sent_at: dict[str, float] = {}
    acks: list[float] = []
    delivers: list[float] = []
    errors: dict[str, int] = {}
    async with AsyncExitStack() as stack:
        agents: list[Client] = []
        buyers: list[tuple[Client, str]] = []
        for a in range(args.agents):
            agents.append(await stack.enter_async_context(
                connect(ready["ws"], token(f"a{a}", "agent", "s1"))))
        for b in range(args.buyers):
            client = await stack.enter_async_context(connect(ready["ws"], token(f"b{b}")))
            conv = (await client.open("s1", ref=f"o{b}"))["conversation"]
            await client.say(conv, f"b{b}-hello", "你好")
            buyers.append((client, conv))
        async with trio.open_nursery() as nursery:
            async def agent_reader(agent: Client) -> None:
                while True:
                    frame = await agent._receive()
                    if frame.get("type") == "msg" and frame["id"] in sent_at:
                        delivers.append(time.perf_counter() - sent_at[frame["id"]])

            async def buyer_reader(buyer: Client) -> None:
                while True:
                    frame = await buyer._receive()
                    if frame.get("type") == "ack" and frame["id"] in sent_at:
                        acks.append(time.perf_counter() - sent_at[frame["id"]])
                    elif frame.get("type") == "error":
                        errors[frame["code"]] = errors.get(frame["code"], 0) + 1

            for agent in agents:
                nursery.start_soon(agent_reader, agent)
            for buyer, _ in buyers:
                nursery.start_soon(buyer_reader, buyer)
            await trio.sleep(1)
            cpu0 = cpu_seconds(pid)
            start = time.perf_counter()
            total = int(args.rate * args.duration)
            for n in range(total):
                due = start + n / args.rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await trio.sleep(delay)
                buyer, conv = buyers[n % len(buyers)]
                client_id = f"m{n}"
                sent_at[client_id] = due  # latency from when it was due: no coordinated omission
                await buyer.send({"type": "send", "conversation": conv, "id": client_id,
                                  "kind": "text", "body": {"text": f"第{n}条消息"}})
            await trio.sleep(2)
            elapsed = time.perf_counter() - start
            cpu = cpu_seconds(pid) - cpu0
            nursery.cancel_scope.cancel()
    return {"offered_per_s": args.rate, "sent": total, "acked": len(acks),
            "delivered": len(delivers), "achieved_per_s": round(len(acks) / (elapsed - 2), 1),
            "ack_ms": summary_ms(acks), "deliver_ms": summary_ms(delivers), "errors": errors,
            "server_cpu_us_per_msg": round(cpu / max(1, len(acks)) * 1e6, 1),
            "server_rss_kib": rss_kib(pid), "connections": args.buyers + args.agents}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--buyers", type=int, default=200)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    env = {"OCTIM_SECRET": TEST_SECRET, "OCTIM_API_KEY": TEST_API_KEY,
           "OCTIM_RATE_PER_SECOND": "1000", "OCTIM_RATE_BURST": "2000",
           "OCTIM_LOG_LEVEL": "WARNING"}
    with tempfile.TemporaryDirectory() as data, EngineProcess(
            ["serve", "--data", data, "--http", "127.0.0.1:0", "--ws", "127.0.0.1:0",
             "--log-format", "json"], {**env, "OCTIM_LOG_LEVEL": "INFO"}) as engine:
        ready = engine.wait_ready()
        report = trio.run(run, args, ready, engine.proc.pid)
        engine.stop()
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
