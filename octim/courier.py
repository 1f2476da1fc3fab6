"""The courier: durable HTTP deliveries (webhooks, replies to ``api`` channels).

Whoever produces a delivery writes it to the store's ``outbox`` **in the same commit**
as the change it tells of (a message, a status change), and hands it to the courier
once that commit is durable (:meth:`Courier.added`). At start the courier reads what
the last run left in the outbox, so a crash or a restart loses nothing that was queued.

* **Order and isolation.** A channel gets one attempt at a time, in queue order (a
  buyer's replies arrive in order); a webhook endpoint up to ``outbox_webhook_parallel``
  at once, started in queue order (webhooks carry their own times). A slow or dead
  receiver holds at most that many of the ``outbox_posters`` threads, never the trio loop.
  Targets with work take turns.
* **Retries.** A failed attempt is retried ``webhook_backoff`` seconds after it
  started, doubling each time, up to ``webhook_attempts`` attempts; then the delivery
  moves to the dead letters (``webhook_dead`` or ``channel_dead``), from which it can be
  re-sent. Retries are due on the engine's clock and checked at every tick.
* **At least once, never twice by mistake.** A delivery leaves the outbox in a commit
  after its 2xx answer (commits of many results are batched). If the process dies
  between the answer and that commit, the next start sends it again **with the same
  delivery id** (``X-Octim-Delivery``): receivers dedupe on it (docs/channels.md).
* **Bounded.** Webhook events past ``outbox_max_pending`` queued for one endpoint are
  dropped and counted (a receiver down for hours must not fill the disk); replies to a
  channel are never dropped.

Outbox entries are ``(queued ms, delivery id)`` keys with the values
``{"id", "target", "event", "body", "attempts", "next_at", "error", ...}``; ``target``
is ``webhook:<endpoint>`` or ``channel:<channel>``.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pykka
import trio

from octim.config import Settings
from octim.store import Delete, Op, Put, Store, pack
from octim.webhooks import Attempt, Poster, TargetPolicy

log = logging.getLogger("octim.courier")

DEAD = {"webhook": "webhook_dead", "channel": "channel_dead"}
NAMED = {"webhook": "endpoint", "channel": "channel"}  # the dead record's field for the name
TARGET_DB = {"webhook": "webhooks", "channel": "channels"}


def outbox_key(at_ms: int, delivery: str) -> bytes:
    """Queue order: when it was queued (8 bytes, big-endian), then its delivery id."""
    return at_ms.to_bytes(8, "big") + delivery.encode()


def entry(delivery: str, target: str, event: str, body: bytes, now: float,
          **extra: Any) -> dict[str, Any]:
    """A new outbox entry, due now."""
    return {"id": delivery, "target": target, "event": event, "body": body, "attempts": 0,
            "next_at": now, "error": "", **extra}


class Hook(Protocol):
    """What a kind of target does when one of its deliveries is sent or given up."""

    def ops(self, item: dict[str, Any], status: str, error: str, now_ms: int) -> list[Op]:
        """Store operations for the commit that records the result."""
        ...

    def after(self, item: dict[str, Any], status: str, error: str) -> None:
        """Once that commit is durable (on the trio thread)."""
        ...


@dataclass
class _Result:
    key: bytes
    target: str
    started: float
    error: str | None


@dataclass
class _State:
    waiting: list[tuple[float, int, bytes, str]] = field(default_factory=list)  # not due yet
    ready: dict[str, deque[bytes]] = field(default_factory=dict)  # target → due keys
    turns: deque[str] = field(default_factory=deque)  # targets with due keys, in turn
    busy: dict[str, set[bytes]] = field(default_factory=dict)  # target → keys in flight
    known: set[bytes] = field(default_factory=set)  # keys in the outbox we track
    counter: int = 0


class Courier:
    """See the module docstring."""

    def __init__(self, settings: Settings, store: Store, clock: Callable[[], float]) -> None:
        self._settings, self._store, self._clock = settings, store, clock
        self._state = _State()
        self.pending: Counter[str] = Counter()  # target → deliveries queued
        self.hooks: dict[str, Hook] = {}  # target kind ("channel") → its hook
        self.sent = 0
        self._results_in, self._results = trio.open_memory_channel[_Result](math.inf)
        self._idle: list[pykka.ActorRef[Poster]] = []
        self._posters: list[pykka.ActorRef[Poster]] = []
        self._flying = 0  # attempts whose answer has not been recorded yet
        self._closing = False

    # -- life -------------------------------------------------------------------------

    def open(self) -> None:
        """Start the posters and take up what the outbox holds (call on the trio thread)."""
        s = self._settings
        token = trio.lowlevel.current_trio_token()
        policy = TargetPolicy.from_setting(s.webhook_allow)
        self._posters = [Poster.start(timeout=s.webhook_timeout, token=token, allow=policy)
                         for _ in range(max(1, s.outbox_posters))]
        self._idle = list(self._posters)
        self.added(self._store.scan("outbox"))

    async def drain(self, limit: float) -> None:
        """At a clean stop: start nothing new, and give the attempts in flight up to
        ``limit`` seconds to answer and be recorded (so what a receiver acknowledged is
        not sent again at the next start)."""
        self._closing = True
        with trio.move_on_after(limit):
            while self._flying:
                await trio.sleep(0.01)

    def close(self) -> None:
        for poster in self._posters:
            try:
                poster.stop(block=False)
            except pykka.ActorDeadError:
                pass
        self._posters, self._idle = [], []

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Record results as they come (one commit for all that are waiting)."""
        task_status.started()
        async for first in self._results:
            batch = [first]
            while True:
                try:
                    batch.append(self._results.receive_nowait())
                except trio.WouldBlock:
                    break
            try:
                await self._record(batch)
            except Exception as exc:  # they stay in the outbox: the next start sends them
                log.error("could not record delivery results", exc_info=exc)

    # -- work in ----------------------------------------------------------------------

    def added(self, items: Any) -> None:
        """``(key, entry)`` pairs written to the outbox (durable now): track and send."""
        now = self._clock()
        for key, item in items:
            key = bytes(key)
            if key in self._state.known:
                continue
            self._state.known.add(key)
            self.pending[item["target"]] += 1
            self._schedule(key, item["target"], item["next_at"], now)
        self._pump()

    def tick(self, now: float) -> None:
        """Move what is due by the engine's clock to its target's turn."""
        waiting = self._state.waiting
        while waiting and waiting[0][0] <= now:
            _, _, key, target = heapq.heappop(waiting)
            self._ready(key, target)
        self._pump()

    def _schedule(self, key: bytes, target: str, at: float, now: float) -> None:
        if at <= now:
            self._ready(key, target)
        else:
            self._state.counter += 1
            heapq.heappush(self._state.waiting, (at, self._state.counter, key, target))

    def _ready(self, key: bytes, target: str) -> None:
        state = self._state
        state.ready.setdefault(target, deque()).append(key)
        self._turn(target)

    # -- attempts ---------------------------------------------------------------------

    def _pump(self) -> None:
        state = self._state
        while self._idle and state.turns and not self._closing:
            target = state.turns.popleft()
            queue = state.ready.get(target)
            if not queue or len(state.busy.get(target, ())) >= self.limit(target):
                continue
            key = queue.popleft()
            if not queue:
                del state.ready[target]
            else:
                self._turn(target)  # more to send: its next turn comes after the others'
            item = self._store.get("outbox", key)
            if item is None:  # removed meanwhile (a resend of the same id, a rebuild)
                self._forget(key, target)
                self._turn(target)
                continue
            where = self.resolve(target)
            started = self._clock()
            if where is None:  # the endpoint or channel was deleted: nothing to try
                self._flying += 1
                self._results_in.send_nowait(_Result(key, target, started, "target deleted"))
                continue
            url, secret = where
            poster = self._idle.pop()
            state.busy.setdefault(target, set()).add(key)
            self._flying += 1
            if len(state.busy[target]) >= self.limit(target) and target in state.turns:
                state.turns.remove(target)

            def done(key: bytes, error: str | None, poster: Any = poster,
                     target: str = target, started: float = started) -> None:
                # The poster and the target are free at once; the result is committed
                # with others (a failed delivery is retried later, not before the rest).
                self._idle.append(poster)
                flying = state.busy.get(target, set())
                flying.discard(key)
                if not flying:
                    state.busy.pop(target, None)
                self._turn(target)
                self._results_in.send_nowait(_Result(key, target, started, error))
                self._pump()

            poster.tell(Attempt(key, url, secret, item["event"], item["id"],
                                bytes(item["body"]), str(int(started)), done))

    def resolve(self, target: str) -> tuple[str, str] | None:
        """The URL and secret a target's deliveries go to, read at each attempt (so a
        changed URL or a rotated secret applies to what is still queued)."""
        kind, _, name = target.partition(":")
        record = self._store.get(TARGET_DB.get(kind, ""), name.encode()) \
            if kind in TARGET_DB else None
        if record is None:
            return None
        url = record.get("url") or record.get("outbound_url")
        return (str(url), str(record["secret"])) if url else None

    def _turn(self, target: str) -> None:
        state = self._state
        if state.ready.get(target) and target not in state.turns and \
                len(state.busy.get(target, ())) < self.limit(target):
            state.turns.append(target)

    def limit(self, target: str) -> int:
        """Attempts in flight at once for a target: one for a channel (a buyer's replies
        arrive in order), up to ``outbox_webhook_parallel`` for a webhook endpoint."""
        if target.startswith("channel:"):
            return 1
        return max(1, self._settings.outbox_webhook_parallel)

    def _forget(self, key: bytes, target: str) -> None:
        if key in self._state.known:
            self._state.known.discard(key)
            self.pending[target] -= 1
            if self.pending[target] <= 0:
                del self.pending[target]

    async def _record(self, batch: list[_Result]) -> None:
        s = self._settings
        now = self._clock()
        ops: list[Op] = []
        later: list[tuple[dict[str, Any], str, str]] = []
        retry: list[tuple[bytes, str, float]] = []
        forget: list[tuple[bytes, str]] = []
        for result in batch:
            item = self._store.get("outbox", result.key)
            if item is None:
                forget.append((result.key, result.target))
                continue
            kind = item["target"].partition(":")[0]
            hook = self.hooks.get(kind)
            if result.error is None:
                ops.append(Delete("outbox", result.key))
                status, error = "sent", ""
                forget.append((result.key, result.target))
                self.sent += 1
            else:
                attempts = item["attempts"] + 1
                error = result.error
                if attempts >= s.webhook_attempts or error == "target deleted":
                    ops += [Delete("outbox", result.key),
                            Put(DEAD.get(kind, "webhook_dead"), item["id"].encode(),
                                pack(dead_record(item, attempts, error)))]
                    status = "failed"
                    forget.append((result.key, result.target))
                    log.warning("delivery failed for good", extra={
                        "delivery": item["id"], "target": item["target"], "error": error})
                else:
                    next_at = result.started + s.webhook_backoff * 2 ** (attempts - 1)
                    ops.append(Put("outbox", result.key, pack(
                        {**item, "attempts": attempts, "error": error, "next_at": next_at})))
                    retry.append((result.key, result.target, next_at))
                    status = "retrying"
            if hook is not None:
                ops += hook.ops(item, status, error, int(now * 1000))
                later.append((item, status, error))
        try:
            if ops:
                await self._store.write(ops)
        finally:
            self._flying -= len(batch)
            for key, target in forget:
                self._forget(key, target)
            for key, target, at in retry:
                self._schedule(key, target, at, self._clock())
            self._pump()
        for item, status, error in later:
            self.hooks[item["target"].partition(":")[0]].after(item, status, error)

    # -- dead letters -----------------------------------------------------------------

    async def resend(self, kind: str, delivery: str, *, check: Callable[[dict[str, Any]], bool]
                     ) -> dict[str, Any] | None:
        """Queue a dead delivery again with fresh attempts (the same delivery id); None if
        there is no such dead letter or ``check`` refuses it."""
        db = DEAD[kind]
        record = self._store.get(db, delivery.encode())
        if record is None or not check(record):
            return None
        now = self._clock()
        # Letters from before the outbox (0.1) have no target or raw body of their own.
        target = record.get("target") or f"{kind}:{record.get(NAMED[kind], '')}"
        body = bytes(record["body"]) if "body" in record else json.dumps(
            record["payload"], ensure_ascii=False).encode()
        item = entry(record["id"], target, record["event"], body, now,
                     **record.get("extra", {}))
        key = outbox_key(int(now * 1000), record["id"])
        await self._store.write((Delete(db, delivery.encode()), Put("outbox", key, pack(item))))
        self.added([(key, item)])
        return dict(record)


def dead_record(item: dict[str, Any], attempts: int, error: str) -> dict[str, Any]:
    """What the dead letters keep of a delivery (``payload``: its JSON, for reading)."""
    kind, _, name = item["target"].partition(":")
    extra = {k: v for k, v in item.items()
             if k not in ("id", "target", "event", "body", "attempts", "next_at", "error")}
    return {"id": item["id"], "target": item["target"], NAMED.get(kind, "target"): name,
            "event": item["event"], "payload": json.loads(bytes(item["body"])),
            "body": bytes(item["body"]), "attempts": attempts, "last_error": error,
            "extra": extra, **extra}
