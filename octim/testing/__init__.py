"""Helpers for tests of OctIM and of programs that embed it."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from octim.config import HostPort, Settings

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


def random_id(prefix: str = "t") -> str:
    """A fresh id for tests."""
    return f"{prefix}-{secrets.token_hex(4)}"
