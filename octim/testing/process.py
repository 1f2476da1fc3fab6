"""Run ``octim`` as a child process and wait for it to be ready (tests, benchmarks)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any


class EngineProcess:
    """A child ``python -m octim ...`` whose stdout and stderr lines are collected."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "octim", *args], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
        self.lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self.seen: list[tuple[str, str]] = []
        for name, stream in (("out", self.proc.stdout), ("err", self.proc.stderr)):
            threading.Thread(target=self._pump, args=(name, stream), daemon=True).start()

    def _pump(self, name: str, stream: Any) -> None:
        for line in stream:
            self.lines.put((name, line.rstrip("\n")))

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> str:
        """The first new output line for which ``predicate(stream, line)`` is true."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching line; output so far: {self.seen[-20:]}")
            try:
                stream, line = self.lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    raise RuntimeError(
                        f"exited {self.proc.returncode}: {self.seen[-20:]}") from None
                continue
            self.seen.append((stream, line))
            if predicate(stream, line):
                return line

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        """Wait for the engine's JSON ``ready`` log line and return it."""
        def is_ready(stream: str, line: str) -> bool:
            return stream == "err" and line.startswith("{") and json.loads(line)["msg"] == "ready"

        return dict(json.loads(self.wait_for(is_ready, timeout)))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit code."""
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def output(self) -> list[tuple[str, str]]:
        """Every line seen so far plus what is still queued."""
        while not self.lines.empty():
            self.seen.append(self.lines.get_nowait())
        return self.seen

    def __enter__(self) -> EngineProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
