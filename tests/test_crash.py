"""The engine is SIGKILLed in the middle of a burst of sends; after a restart
every acknowledged message is there exactly once, in order."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import trio
from trio_websocket import ConnectionClosed

from octim.testing import TEST_API_KEY, TEST_SECRET, token
from octim.testing.client import connect
from octim.testing.process import EngineProcess

ENV = {"OCTIM_SECRET": TEST_SECRET, "OCTIM_API_KEY": TEST_API_KEY,
       "OCTIM_RATE_PER_SECOND": "100000", "OCTIM_RATE_BURST": "100000"}
ARGS = ["--http", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--log-format", "json"]


def test_acked_messages_survive_sigkill_exactly_once_in_order(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    acked: dict[str, int] = {}
    with EngineProcess(["serve", "--data", data, *ARGS], ENV) as engine:
        ready = engine.wait_ready()
        with httpx.Client(base_url=ready["http"], headers={
                "Authorization": f"Bearer {TEST_API_KEY}"}) as api:
            api.put("/api/shops/s1", json={"name": "店", "bot": {"mode": "off"}}).raise_for_status()

        async def burst() -> str:
            async with connect(ready["ws"], token("buyer-k")) as buyer:
                conv = str((await buyer.open("s1"))["conversation"])

                async def send_all() -> None:
                    try:
                        for n in range(5000):  # pipelined: no waiting for acks
                            await buyer.send({"type": "send", "conversation": conv,
                                              "id": f"m{n}", "kind": "text",
                                              "body": {"text": f"消息 {n}"}})
                    except ConnectionClosed:
                        pass  # the server died under us: that is the test

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(send_all)
                    try:
                        while True:
                            ack = await buyer.expect("ack", timeout=10)
                            acked[ack["id"]] = ack["seq"]
                            if len(acked) == 1500:
                                engine.proc.send_signal(signal.SIGKILL)
                    except ConnectionClosed:
                        nursery.cancel_scope.cancel()  # the connection died with the server
            return conv

        conversation = trio.run(burst)
        assert engine.proc.wait(10) == -signal.SIGKILL
    assert len(acked) >= 1500

    with EngineProcess(["serve", "--data", data, *ARGS], ENV) as engine:
        ready = engine.wait_ready()

        async def check() -> None:
            async with connect(ready["ws"], token("buyer-k")) as buyer:
                stored = await buyer.sync(conversation)
                seqs = [m["seq"] for m in stored]
                ids = [m["id"] for m in stored]
                assert seqs == list(range(1, len(stored) + 1))  # in order, no holes
                assert len(set(ids)) == len(ids)  # exactly once
                by_id = {m["id"]: m["seq"] for m in stored}
                for client_id, seq in acked.items():
                    assert by_id.get(client_id) == seq, client_id
                # Resending an acked id after the restart stores nothing new.
                again = await buyer.say(conversation, "m0", "消息 0")
                assert again["seq"] == acked["m0"]

        trio.run(check)
        assert engine.stop() == 0
