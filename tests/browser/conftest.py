"""Browser fixtures: Debian's Chromium driven by Playwright, and an engine process.

Never downloads a browser: it launches ``/usr/bin/chromium`` (``apt-get install
chromium``). Where Chromium or Playwright is missing the browser tests are
skipped, except when ``OCTIM_REQUIRE_BROWSER=1`` (``.ci/run`` sets it): then they
fail, so CI cannot pass without having run them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from octim.testing import TEST_API_KEY, TEST_SECRET
from octim.testing.process import EngineProcess

CHROMIUM = Path(os.environ.get("OCTIM_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("OCTIM_ARTIFACTS", Path(__file__).resolve().parents[2]
                                / "test-artifacts" / "browser"))


def _unavailable(reason: str) -> None:
    if os.environ.get("OCTIM_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests are required here but cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """A headless Chromium (Debian's) for the whole session."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import expect

    # Waits, not timings: generous so a loaded CI machine does not fail a correct page.
    expect.set_options(timeout=15_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """Where this test keeps its screenshots (kept after the run)."""
    path = ARTIFACTS / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    return path


class Running:
    """An ``octim serve`` process on free loopback ports, and the platform's API client."""

    def __init__(self, data: Path, **settings: str) -> None:
        env = {"OCTIM_SECRET": TEST_SECRET, "OCTIM_API_KEY": TEST_API_KEY,
               "OCTIM_LOG_FORMAT": "json", "OCTIM_MONITOR_INTERVAL": "0.3",
               # a channel adapter on loopback (the WeChat test) may receive replies
               "OCTIM_WEBHOOK_ALLOW": "127.0.0.1", **settings}
        self.process = EngineProcess(["serve", "--data", str(data), "--http", "127.0.0.1:0",
                                      "--ws", "127.0.0.1:0"], env)
        ready = self.process.wait_ready()
        self.http = ready["http"]
        self.ws = ready["ws"]
        self.api = httpx.Client(base_url=self.http, timeout=10,
                                headers={"Authorization": f"Bearer {TEST_API_KEY}"})


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    engine = Running(tmp_path / "data")
    with engine.process:
        yield engine
        engine.api.close()
        assert engine.process.stop() == 0
