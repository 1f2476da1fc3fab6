"""Structured logging: one JSON object per line on stderr (or plain text).

Extra fields passed with ``extra={...}`` become keys of the JSON object. So do the
fields :func:`bind` attached to the running task: an HTTP request's ``request_id`` (and
the ``shop`` of its path), a WebSocket connection's ``connection`` and ``user`` and the
``conversation`` of the frame in hand, an actor's own id (``conversation``, ``shop``,
``agent``, ``customer``… by its kind). trio gives every task a copy of its parent's
context, so what a task binds is on every line it logs and no other task's.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_NONE: dict[str, Any] = {}  # never mutated: every bind makes a new dict
_BOUND: ContextVar[dict[str, Any] | None] = ContextVar("octim_log_fields", default=None)


def bind(**fields: Any) -> None:
    """Add ``fields`` to every line the current task logs from now on (None removes)."""
    bound = {**(_BOUND.get() or _NONE), **fields}
    _BOUND.set({k: v for k, v in bound.items() if v is not None})


def bind_only(**fields: Any) -> None:
    """Replace the current task's fields (a task that must not keep its parent's)."""
    _BOUND.set({k: v for k, v in fields.items() if v is not None})


def bound() -> dict[str, Any]:
    """The current task's fields."""
    return dict(_BOUND.get() or _NONE)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    own = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
    return {**(_BOUND.get() or _NONE), **own}


class TextFormatter(logging.Formatter):
    """Human-readable line with the extra fields as ``key=value``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        return f"{line} {extras}" if extras else line


class JsonFormatter(logging.Formatter):
    """Formats a record as a single JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_extras(record))
        if record.exc_info and record.exc_info[1] is not None:
            out["error"] = repr(record.exc_info[1])
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Send every ``octim`` (and server library) log line to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Hypercorn's access log is per request noise at INFO.
    logging.getLogger("hypercorn.access").setLevel(logging.WARNING)
