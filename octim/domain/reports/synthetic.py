"""Synthetic history for the reports: event-log records of made-up conversations.

The records have exactly the shapes the engine logs (``opened``, ``message``, ``assigned``,
``handoff``, ``resolved``, ``rated``, ``closed``, ``order_paid``, and the tickets'
``ticket_created``, ``ticket_sla``, ``ticket_sla_breached``, ``ticket_updated``;
docs/architecture.md),
with times spread over past days, so the reports fold them as they fold real ones. Used
by the demo (a month of history, so the reports page has something to show) and by the
reports benchmark (a million conversations). The conversation ids (``syn-…``) name no stored
conversation: nothing else reads them as such.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from octim.store import Append, pack

DAY_MS = 86_400_000


def conversations(shops: Sequence[str], agents: Mapping[str, Sequence[str]], start_ms: int,
                  days: int, per_day: int, seed: int = 7,
                  kb: Mapping[str, Sequence[str]] | None = None) -> Iterator[dict[str, Any]]:
    """Log records of ``per_day`` conversations a day per shop for ``days`` days from
    ``start_ms``, busier in the afternoon and evening, in the order they happen per
    conversation (the fold needs no global order across conversations)."""
    rng = random.Random(seed)
    n = 0
    for day in range(days):
        for shop in shops:
            staff = agents.get(shop) or ["agent"]
            for _ in range(per_day):
                n += 1
                hour = rng.choices(range(24), weights=[1, 1, 1, 1, 1, 1, 2, 3, 5, 8, 9, 9,
                                                       8, 8, 9, 10, 10, 9, 8, 9, 10, 8, 5, 2])[0]
                ts = start_ms + day * DAY_MS + hour * 3_600_000 + rng.randrange(3_600_000)
                yield from _one(rng, f"syn-{shop}-{n}", shop, rng.choice(staff), ts,
                                (kb or {}).get(shop) or ())
                if rng.random() < 0.05:  # one conversation in twenty needs a ticket
                    yield from _ticket(rng, f"syn-t-{shop}-{n}", shop, ts + 600_000)


def live(shops: Sequence[str], agents: Mapping[str, Sequence[str]], start_ms: int,
         seconds: int, per_second: float, seed: int = 13) -> list[dict[str, Any]]:
    """Traffic as it comes: conversations starting at ``per_second`` across the shops
    during ``seconds`` from ``start_ms``, their records in time order, those of the window
    only (what a live engine logs in that time; conversations still going at its end are
    cut there)."""
    rng = random.Random(seed)
    end = start_ms + seconds * 1000
    out: list[dict[str, Any]] = []
    for n in range(int(seconds * per_second)):
        shop = rng.choice(shops)
        ts = start_ms + rng.randrange(seconds * 1000)
        out += (r for r in _one(rng, f"syn-live-{n}", shop,
                                rng.choice(agents.get(shop) or ["agent"]), ts)
                if r["ts"] < end)
    out.sort(key=lambda r: r["ts"])
    return out


def past_orders(shops: Sequence[str], end_ms: int, per_shop: int, seed: int = 11
                ) -> Iterator[dict[str, Any]]:
    """Payments of the year before ``end_ms`` (a shop's older buyers: the lifecycle's
    active, at-risk and lost), some buyers paying more than once."""
    rng = random.Random(seed)
    for shop in shops:
        for n in range(per_shop):
            buyer = f"syn-buyer-{rng.randrange(50_000)}"
            for k in range(rng.choice([1, 1, 1, 2, 3])):
                order = f"syn-past-{shop}-{n}-{k}"
                yield {"event": "order_paid", "conversation": order, "shop": shop,
                       "data": {"customer": buyer, "order": order,
                                "amount": float(rng.choice([59, 99, 199, 299, 399]))},
                       "ts": end_ms - rng.randrange(30 * DAY_MS, 365 * DAY_MS)}


def _ticket(rng: random.Random, ticket: str, shop: str, ts: int
            ) -> Iterator[dict[str, Any]]:
    """A ticket's life: created, its first reply on time or not, solved or still open."""
    def record(event: str, data: dict[str, Any], at: int) -> dict[str, Any]:
        return {"event": event, "conversation": ticket, "shop": shop,
                "data": {"ticket": ticket, **data}, "ts": at}

    source = rng.choice(["chat", "chat", "bot", "email", "phone"])
    created = ts
    yield record("ticket_created", {"by": "agent", "source": source, "priority": "normal"}, ts)
    if rng.random() < 0.15:  # nobody answered within the hour
        yield record("ticket_sla_breached", {"metric": "first_reply"}, ts + 3_600_000)
        late, met = ["first_reply"], []
    else:
        late, met = [], ["first_reply"]
    ts += rng.randrange(60_000, 3_600_000 if met else 7_200_000)
    yield record("ticket_sla", {"met": met, "late": late}, ts)
    if rng.random() < 0.8:
        ts += rng.randrange(3_600_000, 3 * DAY_MS)
        yield record("ticket_updated", {"by": "agent", "changes": {"status": "solved"},
                                        "status_from": "open", "status_to": "solved",
                                        "opened_at": created}, ts)


def _one(rng: random.Random, conversation: str, shop: str, agent: str, ts: int,
         entries: Sequence[str] = ()) -> Iterator[dict[str, Any]]:
    def record(event: str, data: dict[str, Any], at: int) -> dict[str, Any]:
        return {"event": event, "conversation": conversation, "shop": shop, "data": data,
                "ts": at}

    bot = rng.random() < 0.4
    buyer = f"syn-buyer-{rng.randrange(50_000)}"
    opened = {"buyer": buyer, "state": "bot" if bot else "queued",
              "channel": rng.choices(["web", "app", "miniprogram", "h5"], [30, 45, 20, 5])[0]}
    entry = rng.choices(["product", "order", "shop"], [55, 30, 15])[0]
    if entry != "shop":
        opened[entry] = f"{entry}-{rng.randrange(500)}"
    yield record("opened", opened, ts)
    seq = 0

    def message(role: str, sender: str, at: int) -> dict[str, Any]:
        nonlocal seq
        seq += 1
        return record("message", {"seq": seq, "role": role, "from": sender, "kind": "text"},
                      at)

    yield message("buyer", buyer, ts)
    if bot:
        ts += rng.randrange(500, 2_000)
        said = message("bot", "bot", ts)
        if entries:  # the knowledge-base entry it answered with, the popular ones more often
            said["data"]["kb"] = entries[min(int(rng.expovariate(0.5)), len(entries) - 1)]
        yield said
        if rng.random() < 0.6:  # the bot settled it
            yield record("closed", {"reason": "inactive"}, ts + 1_800_000)
            return
        ts += rng.randrange(5_000, 60_000)
        yield message("buyer", buyer, ts)
        yield record("handoff", {"reason": rng.choice(["requested", "unanswered"])}, ts)
    yield record("assigned", {"agent": agent, "rule": "ranked",
                              "group": "after" if entry == "order" else "pre"},
                 ts + rng.randrange(100, 2_000))
    for _ in range(rng.randrange(1, 4)):
        ts += int(rng.lognormvariate(2.7, 0.8) * 1000)  # a reply after ~15 s, long-tailed
        yield message("agent", agent, ts)
        ts += rng.randrange(10_000, 120_000)
        yield message("buyer", buyer, ts)
    ts += int(rng.lognormvariate(2.5, 0.7) * 1000)
    yield message("agent", agent, ts)
    ts += rng.randrange(30_000, 300_000)
    yield record("resolved", {"by": agent}, ts)
    if rng.random() < 0.45:
        yield record("rated", {"score": rng.choices([5, 4, 3, 2, 1], [60, 22, 9, 5, 4])[0]},
                     ts + rng.randrange(5_000, 60_000))
    yield record("closed", {"reason": "inactive"}, ts + 1_800_000)
    if rng.random() < 0.3:  # the buyer pays an order within hours (询单转化)
        order = f"{conversation}-order"
        yield {"event": "order_paid", "conversation": order, "shop": shop,
               "data": {"customer": buyer, "order": order,
                        "amount": float(rng.choice([59, 99, 199, 299, 399, 599]))},
               "ts": ts + rng.randrange(60_000, 6 * 3_600_000)}


async def load(store: Any, records: Iterator[dict[str, Any]], batch: int = 5000) -> int:
    """Append the records to the event log in commits of ``batch``; returns how many."""
    ops: list[Any] = []
    count = 0
    for item in records:
        ops.append(Append("log", pack(item)))
        count += 1
        if len(ops) >= batch:
            await store.write(ops)
            ops = []
    if ops:
        await store.write(ops)
    return count
