"""Serving the API with Hypercorn's trio worker inside the engine's trio run."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

import trio
from fastapi import FastAPI
from hypercorn.config import Config
from hypercorn.trio import serve

from octim.config import HostPort


async def serve_http(app: FastAPI, bind: HostPort, shutdown: Callable[[], Awaitable[None]],
                     *, grace: float = 5.0, certfile: str | None = None,
                     keyfile: str | None = None, read_timeout: float = 30.0,
                     handshake_timeout: float = 10.0,
                     task_status: trio.TaskStatus[HostPort] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``app`` until ``shutdown()`` returns; report the bound address when listening.

    On shutdown the listener closes first and in-flight requests get ``grace``
    seconds to finish. With ``certfile`` and ``keyfile`` it serves HTTPS only.
    """
    config = Config()
    config.bind = [str(bind) if ":" not in bind.host else f"[{bind.host}]:{bind.port}"]
    config.graceful_timeout = grace
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")  # into our structured logs
    # Slow clients (slowloris) must not hold connections open for ever: silence
    # between requests (keep-alive, also half-sent headers) and inside one (a body).
    config.keep_alive_timeout = read_timeout
    config.read_timeout = max(1, math.ceil(read_timeout))  # hypercorn takes whole seconds
    config.ssl_handshake_timeout = handshake_timeout
    if certfile:
        config.certfile, config.keyfile = certfile, keyfile

    async def started(*, task_status: trio.TaskStatus[list[str]]) -> None:
        await serve(app, config, shutdown_trigger=shutdown,  # type: ignore[arg-type]
                    task_status=task_status)

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(started)
        host, _, port = binds[0].removeprefix("http://").removeprefix("https://").rpartition(":")
        task_status.started(HostPort(host.strip("[]"), int(port)))
