"""Where durable domain events go: webhooks out, and in-process subscribers.

Actors call :meth:`EventBus.emit` after a change is committed. The bus hands
the event to the webhook sender's thread (a pykka tell: cheap, never blocks)
and to each embedding program's subscription (a bounded channel: a
subscriber that does not keep up loses the oldest unread events, counted,
and never slows the engine).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pykka
import trio

from octim.config import Settings
from octim.store import Delete, Put, Store, pack
from octim.webhooks import (
    EVENTS,
    Publish,
    Resend,
    SetEndpoints,
    TargetPolicy,
    Tick,
    WebhookSender,
)

log = logging.getLogger("octim.events")
WEBHOOK_BACKLOG = 10_000  # events waiting for the webhook sender before new ones are dropped


class Subscription:
    """A bounded stream of events for one embedding program."""

    def __init__(self, events: frozenset[str] | None, buffer: int) -> None:
        self.events = events
        self.send, self.receive = trio.open_memory_channel[dict[str, Any]](buffer)
        self.dropped = 0

    def offer(self, event: str, data: dict[str, Any]) -> None:
        if self.events is not None and event not in self.events:
            return
        item = {"event": event, "data": data}
        try:
            self.send.send_nowait(item)
        except trio.WouldBlock:
            self.dropped += 1
            try:  # drop the oldest unread event to make room
                self.receive.receive_nowait()
                self.send.send_nowait(item)
            except (trio.WouldBlock, trio.EndOfChannel):
                pass


class EventBus:
    """See the module docstring."""

    def __init__(self, settings: Settings, store: Store, clock: Callable[[], float]) -> None:
        """``clock``: the engine's (wall seconds), for delivery timestamps and retries."""
        self._store = store
        self._subscriptions: set[Subscription] = set()
        self._endpoints: dict[str, dict[str, Any]] = {
            key.decode(): value for key, value in store.scan("webhooks")}
        self._sender = WebhookSender.start(
            timeout=settings.webhook_timeout, attempts=settings.webhook_attempts,
            backoff=settings.webhook_backoff, dead=self._dead,
            token=trio.lowlevel.current_trio_token(),
            allow=TargetPolicy.from_setting(settings.webhook_allow), clock=clock)
        self._sender.tell(SetEndpoints(dict(self._endpoints)))
        self._backlog = threading.BoundedSemaphore(WEBHOOK_BACKLOG)
        self.dropped = 0

    # -- emitting ----------------------------------------------------------------

    def emit(self, event: str, data: dict[str, Any]) -> None:
        """Publish one durable event (call on the trio thread)."""
        if self._endpoints:
            # Bounded: the sender posts one delivery at a time, so a slow receiver
            # must not grow its inbox without limit. Past the bound new webhook
            # events are dropped, counted and logged (subscriptions still get them).
            if self._backlog.acquire(blocking=False):
                self._sender.tell(Publish(event, data, self._backlog.release))
            else:
                self.dropped += 1
                if self.dropped % 1000 == 1:
                    log.warning("webhook backlog full; events dropped",
                                extra={"dropped": self.dropped})
        for subscription in self._subscriptions:
            subscription.offer(event, data)

    @contextmanager
    def subscribe(self, events: frozenset[str] | None = None, buffer: int = 1000
                  ) -> Iterator[trio.MemoryReceiveChannel[dict[str, Any]]]:
        """Events as ``{"event", "data"}`` maps until the block ends."""
        subscription = Subscription(events, buffer)
        self._subscriptions.add(subscription)
        try:
            yield subscription.receive
        finally:
            self._subscriptions.discard(subscription)

    def tick(self, now: float) -> None:
        """Let the sender retry what is due (``now``: the engine's clock, seconds)."""
        self._sender.tell(Tick(now))

    def close(self) -> None:
        try:
            self._sender.stop(block=False)
        except pykka.ActorDeadError:
            pass

    # -- endpoints and dead letters ------------------------------------------------

    def endpoints(self) -> dict[str, dict[str, Any]]:
        return {k: {**v, "secret": "…"} for k, v in self._endpoints.items()}

    async def put_endpoint(self, endpoint_id: str, url: str, events: list[str],
                           secret: str) -> dict[str, Any]:
        unknown = set(events) - {*EVENTS, "*"}
        if unknown:
            from octim.errors import InvalidInput

            raise InvalidInput(f"unknown event(s) {sorted(unknown)}; known: {EVENTS}")
        record = {"id": endpoint_id, "url": url, "events": events, "secret": secret}
        await self._store.write((Put("webhooks", endpoint_id.encode(), pack(record)),))
        self._endpoints[endpoint_id] = record
        self._sender.tell(SetEndpoints(dict(self._endpoints)))
        return {**record, "secret": "…"}

    async def delete_endpoint(self, endpoint_id: str) -> None:
        await self._store.write((Delete("webhooks", endpoint_id.encode()),))
        self._endpoints.pop(endpoint_id, None)
        self._sender.tell(SetEndpoints(dict(self._endpoints)))

    def dead(self, endpoint_id: str) -> list[dict[str, Any]]:
        return [v for _, v in self._store.scan("webhook_dead") if v["endpoint"] == endpoint_id]

    async def resend(self, endpoint_id: str, delivery_id: str) -> None:
        from octim.errors import NotFound

        record = self._store.get("webhook_dead", delivery_id.encode())
        endpoint = self._endpoints.get(endpoint_id)
        if record is None or endpoint is None or record["endpoint"] != endpoint_id:
            raise NotFound(f"no dead delivery {delivery_id!r} for {endpoint_id!r}")
        await self._store.write((Delete("webhook_dead", delivery_id.encode()),))
        self._sender.tell(Resend({**record, "url": endpoint["url"]}, endpoint["secret"]))

    def _dead(self, record: dict[str, Any]) -> None:
        """On the trio thread: a delivery failed every attempt; keep it."""
        def stored(error: str | None) -> None:
            if error is not None:
                log.error("could not keep a dead webhook delivery", extra={"error": error})

        self._store_nowait(Put("webhook_dead", record["id"].encode(), pack(record)), stored)

    def _store_nowait(self, op: Put, done: Any) -> None:
        async def write() -> None:
            try:
                await self._store.submit((op,), done)
            except Exception as exc:  # a system task must never raise
                log.error("could not keep a dead webhook delivery", exc_info=exc)

        trio.lowlevel.spawn_system_task(write)
