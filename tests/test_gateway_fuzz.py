"""Random frames thrown at a live gateway never take it down."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trio_websocket import ConnectionClosed, open_websocket_url

from octim.testing import TEST_API_KEY, TEST_SECRET, token
from octim.testing.process import EngineProcess

TYPES = ["open", "send", "sync", "inbox", "typing", "read", "recall", "resolve", "rate",
         "presence", "ping", "transfer", "hello", "welcome", "msg", "", "x" * 300]
scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) |
           st.floats(allow_nan=True) | st.text(max_size=40))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) |
                      st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=10)
field_names = st.sampled_from(["conversation", "id", "kind", "body", "after", "upto", "seq",
                               "score", "comment", "status", "shop", "ref", "context",
                               "from", "limit", "token", "to_agent", "to_group",
                               "to_shop", "note"])
frames = st.builds(lambda t, extra: {"type": t, **extra}, st.sampled_from(TYPES) | values,
                   st.dictionaries(field_names, values, max_size=6))
raw = frames.map(lambda f: json.dumps(f, default=str)) | st.text(max_size=200) | \
    st.binary(max_size=200) | frames.map(lambda f: msgpack.packb(f, default=str))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One engine process for the whole module: the fuzzer's target."""
    data: Path = tmp_path_factory.mktemp("fuzz")
    env = {"OCTIM_SECRET": TEST_SECRET, "OCTIM_API_KEY": TEST_API_KEY,
           "OCTIM_RATE_PER_SECOND": "100000", "OCTIM_RATE_BURST": "100000"}
    with EngineProcess(["serve", "--data", str(data), "--http", "127.0.0.1:0",
                        "--ws", "127.0.0.1:0", "--log-format", "json"], env) as engine:
        yield str(engine.wait_ready()["ws"])
        assert engine.stop() == 0
        crashes = [line for stream, line in engine.output()
                   if stream == "err" and '"level": "error"' in line]
        assert not crashes, crashes[:3]


async def throw(url: str, batch: list[Any], subprotocol: str, role: str) -> None:
    with trio.fail_after(20):
        async with open_websocket_url(url, subprotocols=[subprotocol]) as ws:
            hello = {"type": "hello", "token": token(f"fuzzer-{role}", role, "s1")}
            await ws.send_message(json.dumps(hello) if subprotocol.endswith("json")
                                  else msgpack.packb(hello))
            await ws.get_message()
            try:
                for data in batch:
                    await ws.send_message(data)
                ping = {"type": "ping"}
                await ws.send_message(json.dumps(ping) if subprotocol.endswith("json")
                                      else msgpack.packb(ping))
                while True:  # every frame gets an answer or is skipped; pong comes last
                    reply = await ws.get_message()
                    frame = json.loads(reply) if isinstance(reply, str) else msgpack.unpackb(
                        reply, strict_map_key=False)
                    if frame.get("type") == "pong":
                        break
            except ConnectionClosed as closed:
                # Only documented closes: frame too big (1009) or unsupported data (1003).
                assert closed.reason.code in (1009, 1003, 1007), closed.reason


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.data_too_large])
@given(batch=st.lists(raw, min_size=1, max_size=12),
       subprotocol=st.sampled_from(["octim.v1.json", "octim.v1.msgpack"]),
       role=st.sampled_from(["buyer", "agent", "shop_admin"]))
def test_random_frames_never_break_the_gateway(live: str, batch: list[Any],
                                               subprotocol: str, role: str) -> None:
    trio.run(throw, live, batch, subprotocol, role)


def test_a_normal_client_works_after_the_fuzzing(live: str) -> None:
    async def normal() -> None:
        with trio.fail_after(10):
            async with open_websocket_url(live, subprotocols=["octim.v1.json"]) as ws:
                await ws.send_message(json.dumps({"type": "hello", "token": token("normal")}))
                assert json.loads(await ws.get_message())["type"] == "welcome"
                await ws.send_message(json.dumps({"type": "inbox"}))
                assert json.loads(await ws.get_message())["type"] == "inbox"

    trio.run(normal)
