"""Where durable domain events go: webhooks out, and in-process subscribers.

An actor **stages** the events of a change (:meth:`EventBus.stage`): one outbox entry per
webhook endpoint that wants each event, as store operations it adds to the commit of the
change itself, so a webhook is queued exactly when the change is durable, and survives a
crash. Once that commit is durable it **publishes** them (:meth:`EventBus.publish`): the
courier (:mod:`octim.courier`) takes the entries, and each embedding program's
subscription gets the events (a bounded channel: a subscriber that does not keep up
loses the oldest unread events, counted, and never slows the engine).
:meth:`EventBus.emit` does both for a change already committed, in a commit of its own.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from octim.config import Settings
from octim.courier import Courier, entry, outbox_key
from octim.store import Delete, Op, Put, Store, pack
from octim.webhooks import EVENTS

log = logging.getLogger("octim.events")


@dataclass(slots=True)
class Staged:
    """Events of one change, and what queues their deliveries (see the module docstring)."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    entries: list[tuple[bytes, dict[str, Any]]] = field(default_factory=list)

    def add(self, key: bytes, item: dict[str, Any]) -> None:
        """Queue one more delivery (a channel reply) with this change."""
        self.ops.append(Put("outbox", key, pack(item)))
        self.entries.append((key, item))


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

    def __init__(self, settings: Settings, store: Store, clock: Callable[[], float],
                 courier: Courier) -> None:
        """``clock``: the engine's (wall seconds), for event times."""
        self._store, self._clock, self._settings = store, clock, settings
        self.courier = courier
        self._subscriptions: set[Subscription] = set()
        self._endpoints: dict[str, dict[str, Any]] = {
            key.decode(): value for key, value in store.scan("webhooks")}
        self.dropped = 0

    # -- emitting ----------------------------------------------------------------

    def stage(self, events: list[tuple[str, dict[str, Any]]]) -> Staged:
        """The outbox entries of ``events`` for the commit that makes them true."""
        staged = Staged(events)
        if not self._endpoints or not events:
            return staged
        now = self._clock()
        at = int(now * 1000)
        limit = self._settings.outbox_max_pending
        for event, data in events:
            body = b""
            for endpoint_id, endpoint in self._endpoints.items():
                if event not in endpoint["events"] and "*" not in endpoint["events"]:
                    continue
                target = "webhook:" + endpoint_id
                if self.courier.pending[target] >= limit:
                    self.dropped += 1
                    if self.dropped % 1000 == 1:
                        log.warning("webhook backlog full; events dropped",
                                    extra={"dropped": self.dropped, "endpoint": endpoint_id})
                    continue
                body = body or json.dumps({"event": event, "data": data, "ts": at},
                                          ensure_ascii=False).encode()
                delivery = "d" + secrets.token_hex(8)
                staged.add(outbox_key(at, delivery), entry(delivery, target, event, body, now))
        return staged

    def publish(self, staged: Staged) -> None:
        """The change of ``staged`` is durable: send, and tell subscribers (trio thread)."""
        if staged.entries:
            self.courier.added(staged.entries)
        for event, data in staged.events:
            for subscription in self._subscriptions:
                subscription.offer(event, data)

    def emit(self, event: str, data: dict[str, Any]) -> None:
        """Publish one event of a change already committed (call on the trio thread); its
        webhooks are queued in a commit of their own."""
        staged = self.stage([(event, data)])
        if not staged.ops:
            self.publish(staged)
            return
        for subscription in self._subscriptions:
            subscription.offer(event, data)
        queued = Staged([], staged.ops, staged.entries)

        def durable(error: str | None) -> None:
            if error is None:
                self.publish(queued)
            else:
                log.error("webhook deliveries not queued", extra={"error": error})

        async def write() -> None:
            try:
                await self._store.submit(queued.ops, durable)
            except Exception as exc:  # a system task must never raise
                log.error("webhook deliveries not queued", exc_info=exc)

        trio.lowlevel.spawn_system_task(write)

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
        return {**record, "secret": "…"}

    async def delete_endpoint(self, endpoint_id: str) -> None:
        """Stop delivering to an endpoint; what is still queued for it goes to its dead
        letters (with the error "target deleted") when its turn comes."""
        await self._store.write((Delete("webhooks", endpoint_id.encode()),))
        self._endpoints.pop(endpoint_id, None)

    def dead(self, endpoint_id: str) -> list[dict[str, Any]]:
        return [_letter(v) for _, v in self._store.scan("webhook_dead")
                if v["endpoint"] == endpoint_id]

    async def resend(self, endpoint_id: str, delivery_id: str) -> None:
        from octim.errors import NotFound

        if endpoint_id not in self._endpoints or await self.courier.resend(
                "webhook", delivery_id,
                check=lambda record: record.get("endpoint") == endpoint_id) is None:
            raise NotFound(f"no dead delivery {delivery_id!r} for {endpoint_id!r}")


def _letter(record: dict[str, Any]) -> dict[str, Any]:
    """A dead letter as the API shows it (without the raw body)."""
    return {k: v for k, v in record.items() if k not in ("body", "extra")}
