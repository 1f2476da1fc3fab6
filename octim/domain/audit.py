"""Audit rows: every staff read of buyer data (who, what, when, from where).

A read that cannot be audited is not served: :func:`record` waits for the row to be
durable and raises if it is not (the gateway and the API both go through it)."""

from __future__ import annotations

from typing import Any

from octim.store import Put, pack


def audit_op(user: str, role: str, what: str, source: str | None, *, now: float,
             **about: Any) -> Put:
    """The store write of one audit row at ``now`` (the engine's clock, seconds), keyed
    by time so the log reads in order."""
    now = int(now * 1_000_000_000)
    row = {"who": user, "role": role, "what": what, "at": now // 1_000_000, "from": source,
           **about}
    return Put("audit", now.to_bytes(8, "big") + user.encode()[:64], pack(row))


async def record(store: Any, user: str, role: str, what: str, source: str | None, *,
                 now: float, **about: Any) -> None:
    """Write one audit row and wait until it is durable (StoreError if it is not)."""
    await store.write((audit_op(user, role, what, source, now=now, **about),))
