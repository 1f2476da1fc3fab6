"""What a load test runs against: an engine it starts, one already running, or the
bare trio-websocket relay (the baseline), and how the server's CPU and memory are read.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

LOG_LINES = 200  # server log lines kept (for the error when it fails to start)
NOFILE = 1 << 17  # file descriptors for a server holding tens of thousands of connections


def raise_nofile(limit: int = NOFILE) -> None:
    """Raise this process's open-file limit (the hard one too when allowed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, limit), max(hard, limit)))
    except (ValueError, OSError):  # not privileged: as far as the hard limit allows
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a local process (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_set(cpus: str) -> set[int]:
    """The CPUs of "0", "0,1" or "2-3"."""
    chosen: set[int] = set()
    for part in cpus.split(","):
        low, _, high = part.partition("-")
        chosen.update(range(int(low), int(high or low) + 1))
    return chosen


def pin(pid: int, cpus: str | None) -> None:
    """Pin a process, every thread of it, to CPUs given as "0", "0,1" or "2-3"
    (no-op for None). Threads started later inherit the affinity."""
    if not cpus:
        return
    chosen = cpu_set(cpus)
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(task), chosen)
        except ProcessLookupError:
            pass  # the thread ended meanwhile


@dataclass
class Target:
    """A server to load: where it listens and, when local, its process id."""

    kind: str  # "engine" or "baseline"
    http: str | None
    ws: str
    secret: str
    api_key: str | None
    pid: int | None = None
    process: subprocess.Popen[str] | None = None
    data: Path | None = None
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))

    def cpu(self) -> float | None:
        return cpu_seconds(self.pid) if self.pid else None

    def rss(self) -> int | None:
        return rss_kib(self.pid) if self.pid else None

    def fd_limit(self) -> int | None:
        """The server's open-file limit (each connection needs one descriptor)."""
        if not self.pid:
            return None
        with open(f"/proc/{self.pid}/limits") as fh:
            for line in fh:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
        return None

    def api(self) -> httpx.Client:
        assert self.http and self.api_key
        return httpx.Client(base_url=self.http, timeout=30,
                            headers={"Authorization": f"Bearer {self.api_key}"})

    def stop(self) -> int | None:
        if self.process is None:
            return None
        self.process.terminate()
        try:
            code = self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        if self.data is not None:
            shutil.rmtree(self.data, ignore_errors=True)
        return code


def _spawn(args: list[str], env: dict[str, str], ready_key: str) -> tuple[
        subprocess.Popen[str], dict[str, Any], deque[str]]:
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, **env},
                               preexec_fn=raise_nofile)
    assert process.stderr is not None
    seen: deque[str] = deque(maxlen=LOG_LINES)  # the server's latest log lines
    for line in process.stderr:
        seen.append(line.rstrip())
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("msg") == ready_key:
                # Keep draining stderr so the server never blocks on a full pipe.
                def drain() -> None:
                    for rest in process.stderr or ():
                        seen.append(rest.rstrip())

                threading.Thread(target=drain, daemon=True).start()
                return process, record, seen
    raise RuntimeError("the server exited before it was ready:\n" + "\n".join(list(seen)[-20:]))


def start_engine(settings: dict[str, str], cpus: str | None) -> Target:
    """``octim serve`` on a temporary data dir with generated credentials."""
    data = Path(tempfile.mkdtemp(prefix="octim-bench-"))
    secret, api_key = secrets.token_urlsafe(48), "bench-" + secrets.token_urlsafe(24)
    env = {"OCTIM_SECRET": secret, "OCTIM_API_KEY": api_key, "OCTIM_LOG_FORMAT": "json",
           **settings}
    process, ready, log = _spawn(
        [sys.executable, "-m", "octim", "serve", "--data", str(data),
         "--http", "127.0.0.1:0", "--ws", "127.0.0.1:0"], env, "ready")
    pin(process.pid, cpus)
    return Target("engine", ready["http"], ready["ws"], secret, api_key, process.pid,
                  process, data, log)


def start_relay(cpus: str | None) -> Target:
    """The bare trio-websocket relay (octim.bench.relay) on a free port."""
    secret = secrets.token_urlsafe(48)
    process, ready, log = _spawn([sys.executable, "-m", "octim.bench.relay",
                                  "--secret", secret], {}, "ready")
    pin(process.pid, cpus)
    return Target("baseline", None, ready["ws"], secret, None, process.pid, process,
                  None, log)


def existing(url: str, ws: str, secret: str, api_key: str, pid: int | None) -> Target:
    """An engine someone else runs (``--url``); CPU and memory only with ``--pid``."""
    return Target("engine", url.rstrip("/"), ws, secret, api_key, pid)
