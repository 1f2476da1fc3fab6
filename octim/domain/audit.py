"""Audit rows: every staff read of buyer data (who, what, when, from where)."""

from __future__ import annotations

import time
from typing import Any

from octim.store import Put, pack


def audit_op(user: str, role: str, what: str, source: str | None, **about: Any) -> Put:
    """The store write of one audit row, keyed by time so the log reads in order."""
    now = time.time_ns()
    row = {"who": user, "role": role, "what": what, "at": now // 1_000_000, "from": source,
           **about}
    return Put("audit", now.to_bytes(8, "big") + user.encode()[:64], pack(row))
