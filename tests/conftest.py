"""Shared fixtures: a running engine on loopback ports, HTTP and WebSocket clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

import octim._core
from octim import Engine, Listening
from octim.testing import TEST_API_KEY, engine_settings


def pytest_report_header() -> str:
    # Keep the tests honest about which build they import (a checkout can
    # shadow an installed wheel).
    return f"octim._core from {octim._core.__file__}"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[tuple[Engine, Listening]]:
    """A running engine; stopped cleanly at the end of the test."""
    eng = Engine(engine_settings(tmp_path / "data"))
    async with trio.open_nursery() as nursery:
        listening = await nursery.start(eng.run)
        yield eng, listening
        eng.stop()


@pytest.fixture
async def api(engine: tuple[Engine, Listening]) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the engine's API, authenticated with the API key."""
    _, listening = engine
    async with httpx.AsyncClient(base_url=listening.http_url,
                                 headers={"Authorization": f"Bearer {TEST_API_KEY}"},
                                 timeout=10) as client:
        yield client
