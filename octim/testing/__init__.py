"""Helpers for tests of OctIM and of programs that embed it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from octim.auth import issue_token
from octim.config import HostPort, Settings
from octim.engine import Engine, Listening

TEST_SECRET = "test-secret-" + "x" * 40
TEST_API_KEY = "test-api-key-0123456789"


def engine_settings(data: Path, **overrides: Any) -> Settings:
    """Settings for an engine on free loopback ports in ``data``."""
    values: dict[str, Any] = {
        "data": data,
        "secret": TEST_SECRET,
        "api_key": TEST_API_KEY,
        "http": HostPort("127.0.0.1", 0),
        "ws": HostPort("127.0.0.1", 0),
        "gc_freeze": False,  # freezing in every test would pin the test run's garbage
        "shutdown_grace": 1.0,
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def open_engine(data: Path, **overrides: Any) -> AsyncIterator[tuple[Engine, Listening]]:
    """A running engine on loopback ports; stopped cleanly on exit."""
    engine = Engine(engine_settings(data, **overrides))
    async with trio.open_nursery() as nursery:
        listening = await nursery.start(engine.run)
        try:
            yield engine, listening
        finally:
            engine.stop()


def token(user: str, role: str = "buyer", *shops: str) -> str:
    """A platform-signed JWT for tests (signed with TEST_SECRET)."""
    return issue_token(TEST_SECRET, user, role, shops=shops)
