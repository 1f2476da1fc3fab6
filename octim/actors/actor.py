"""trio-native actors: a bounded mailbox, tell/ask, lifecycle hooks, supervision.

An actor is one trio task that owns its state and handles one message at a
time from a bounded mailbox. Nothing else touches that state, so it needs no
locks. Callers hold an :class:`ActorRef`, an address resolved through the
:class:`~octim.actors.directory.Directory` on every send, so a reference never
goes stale when its actor is passivated and later activated again.

Failure policy (the supervision rules, enforced by ``_ActorCell``):

* ``receive`` raises an :class:`~octim.errors.OctimError` (not found, invalid
  input, ...) → that is a **rejection**, not a failure: an ``ask`` gets the
  error as is and the actor goes on with its state intact.
* ``receive`` raises → ``on_failure(exc)`` runs, an ``ask`` that carried the
  message gets :class:`~octim.errors.ActorCrashed`, and the actor is
  **restarted**: a fresh instance from its factory, whose ``on_start`` reloads
  its state from the store. In-memory state of the failed instance is dropped;
  messages still in the mailbox are kept and handled by the new instance.
* ``on_start`` raises an :class:`~octim.errors.OctimError` (typically
  ``NotFound``) → queued asks get that error and the actor stops; the next
  message tries to activate it again.
* ``on_start`` raising anything else (the actor cannot load its state, so it
  could serve nobody) **escalates** to the Directory, which stops that one
  actor (pending asks get :class:`~octim.errors.ActorStopped`) and refuses to
  activate its address again for ``quarantine`` seconds. Nothing propagates
  further: one broken conversation never takes the engine down.
* Crashes in ``receive`` never escalate, however often they repeat. A crash is
  charged to the message that caused it, and messages come from clients: a
  shop, a dispatcher or a conversation serves many of them, so one client that
  keeps sending a message that crashes it must cost only that client its
  answers, never quarantine an actor the others depend on. Repeated crashes
  are logged (``crash_loop``) for the operator instead.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

import trio

from octim import logs
from octim.actors.bridge import Reply
from octim.actors.messages import Message
from octim.errors import ActorCrashed, ActorStopped, MailboxFull, OctimError

if TYPE_CHECKING:
    from octim.actors.directory import Directory

log = logging.getLogger("octim.actors")

FAIR_BATCH = 32  # messages an actor handles from a full mailbox between yields

Ctx = TypeVar("Ctx")


class Address(NamedTuple):
    """Where an actor lives: its kind (a registered factory) and its id."""

    kind: str
    id: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.id}"


@dataclass(frozen=True, slots=True)
class SupervisionPolicy:
    """How an actor kind reacts to failures; see the module docstring."""

    quarantine: float = 30.0  # seconds an address stays stopped after on_start failed
    crash_window: float = 60.0  # crashes counted within this many seconds for the log


@dataclass(frozen=True, slots=True)
class ActorKind(Generic[Ctx]):
    """A registered kind of actor: how to build one and how it lives."""

    name: str
    factory: Callable[[Address, Ctx], Actor[Ctx]]
    mailbox_size: int = 256
    idle_timeout: float = math.inf  # seconds without a message before passivation
    policy: SupervisionPolicy = SupervisionPolicy()


class Actor(Generic[Ctx]):
    """Base class of actors. Override :meth:`receive` and the lifecycle hooks."""

    def __init__(self, address: Address, context: Ctx) -> None:
        self.address = address
        self.context = context

    async def on_start(self) -> None:
        """Called before the first message: load state (from the store) here."""

    async def on_stop(self) -> None:
        """Called on passivation and shutdown: persist what must survive here."""

    async def on_failure(self, error: BaseException) -> None:
        """Called after :meth:`receive` raised, before the restart or escalation."""

    def may_passivate(self) -> bool:
        """Whether the actor may stop after ``idle_timeout`` without messages (an
        actor holding state that lives nowhere else says no)."""
        return True

    async def receive(self, message: Message) -> Any:
        """Handle one message; the return value answers an ``ask``."""
        raise NotImplementedError


class Envelope(NamedTuple):
    message: Message
    reply: Reply[Any] | None


class ActorRef:
    """A location-transparent handle on an actor (see the module docstring)."""

    __slots__ = ("_directory", "address")

    def __init__(self, directory: Directory[Any], address: Address) -> None:
        self._directory = directory
        self.address = address

    def __repr__(self) -> str:
        return f"ActorRef({self.address})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorRef) and other.address == self.address

    def __hash__(self) -> int:
        return hash(self.address)

    async def tell(self, message: Message) -> None:
        """Enqueue ``message``; waits while the mailbox is full (backpressure)."""
        await self._directory._cell(self.address).put(Envelope(message, None))

    def tell_nowait(self, message: Message) -> None:
        """Enqueue ``message`` or raise :class:`MailboxFull` at once."""
        self._directory._cell(self.address).put_nowait(Envelope(message, None))

    async def ask(self, message: Message) -> Any:
        """Send ``message`` and wait for the actor's answer.

        Raises :class:`ActorCrashed` if handling it raised, :class:`ActorStopped`
        if the actor stopped first. Wrap in ``trio.fail_after`` for a deadline.
        """
        reply: Reply[Any] = Reply()
        await self._directory._cell(self.address).put(Envelope(message, reply))
        return await reply.wait()


class _ActorCell:
    """The runtime side of one live actor: mailbox, task, restarts."""

    def __init__(self, directory: Directory[Any], kind: ActorKind[Any], address: Address,
                 predecessor: _ActorCell | None) -> None:
        self.directory = directory
        self.kind = kind
        self.address = address
        self.predecessor = predecessor
        self.send, self.receive = trio.open_memory_channel[Envelope](kind.mailbox_size)
        self.stopped = trio.Event()
        self.failures: deque[float] = deque()
        self.handled = 0

    async def put(self, envelope: Envelope) -> None:
        try:
            await self.send.send(envelope)
        except trio.ClosedResourceError:
            raise ActorStopped(f"actor {self.address} is stopping") from None

    def put_nowait(self, envelope: Envelope) -> None:
        try:
            self.send.send_nowait(envelope)
        except trio.WouldBlock:
            raise MailboxFull(f"mailbox of {self.address} is full") from None
        except trio.ClosedResourceError:
            raise ActorStopped(f"actor {self.address} is stopping") from None

    def close(self) -> None:
        """Stop accepting messages; the task drains what is queued, then stops."""
        self.send.close()

    def _idle(self) -> bool:
        stats = self.receive.statistics()
        return stats.current_buffer_used == 0 and stats.tasks_waiting_send == 0

    async def run(self) -> None:
        # Its lines name the actor, not whoever happened to activate it.
        logs.bind_only(**{self.address.kind: self.address.id})
        try:
            if self.predecessor is not None:
                # A passivating predecessor may still be saving state: wait for it.
                await self.predecessor.stopped.wait()
                self.predecessor = None
            actor = await self._start()
            if actor is not None:
                await self._loop(actor)
        finally:
            self._fail_queued(ActorStopped(f"actor {self.address} stopped"))
            self.directory._finished(self)
            self.stopped.set()

    async def _start(self) -> Actor[Any] | None:
        actor = self.kind.factory(self.address, self.directory.context)
        try:
            await actor.on_start()
        except OctimError as rejection:
            # E.g. NotFound: nothing to activate. Answer what is queued with
            # the rejection and stop, without counting it as a failure.
            self.directory._detach(self)
            self._fail_queued(rejection)
            return None
        except Exception as exc:
            log.error("actor failed to start; escalating", exc_info=exc,
                      extra={"actor": str(self.address)})
            self.directory._escalate(self, exc)
            return None
        return actor

    async def _loop(self, actor: Actor[Any]) -> None:
        while True:
            envelope: Envelope | None = None
            try:
                # A busy mailbox is drained without a timeout scope or a yield per
                # message; a yield every FAIR_BATCH keeps other tasks running.
                if self.handled % FAIR_BATCH == 0:
                    await trio.lowlevel.checkpoint()
                envelope = self.receive.receive_nowait()
            except trio.WouldBlock:
                with trio.move_on_after(self.kind.idle_timeout):
                    try:
                        envelope = await self.receive.receive()
                    except trio.EndOfChannel:
                        await self._stop(actor)
                        return
            except trio.EndOfChannel:
                await self._stop(actor)
                return
            if envelope is None:
                # No await between this check and leaving the directory, so no
                # message can slip into a mailbox nobody will read.
                if self._idle() and actor.may_passivate():
                    self.directory._detach(self)
                    await self._stop(actor)
                    return
                continue
            self.handled += 1
            try:
                result = await actor.receive(envelope.message)
            except OctimError as rejection:
                # A domain error (not found, invalid input...) is an answer, not
                # a crash: the asker gets it as is and the actor keeps its state.
                if envelope.reply is not None:
                    envelope.reply.fill(error=rejection)
                else:
                    log.warning("told message rejected", extra={
                        "actor": str(self.address), "error": repr(rejection)})
            except Exception as exc:
                if envelope.reply is not None:
                    crashed = ActorCrashed(f"actor {self.address} failed handling "
                                           f"{type(envelope.message).__name__}")
                    crashed.__cause__ = exc
                    envelope.reply.fill(error=crashed)
                restarted = await self._restart(actor, exc)
                if restarted is None:
                    return
                actor = restarted
            else:
                if envelope.reply is not None:
                    envelope.reply.fill(result)

    async def _restart(self, actor: Actor[Any], exc: Exception) -> Actor[Any] | None:
        log.error("actor failed", exc_info=exc, extra={"actor": str(self.address)})
        try:
            await actor.on_failure(exc)
        except Exception as hook_exc:
            log.error("on_failure raised", exc_info=hook_exc, extra={"actor": str(self.address)})
        now = trio.current_time()
        self.failures.append(now)
        while self.failures and self.failures[0] < now - self.kind.policy.crash_window:
            self.failures.popleft()
        if len(self.failures) > 1:
            log.warning("crash_loop", extra={"actor": str(self.address),
                                              "crashes": len(self.failures)})
        log.info("actor restarting", extra={"actor": str(self.address)})
        return await self._start()

    async def _stop(self, actor: Actor[Any]) -> None:
        try:
            await actor.on_stop()
        except Exception as exc:
            log.error("on_stop raised", exc_info=exc, extra={"actor": str(self.address)})

    def _fail_queued(self, error: OctimError) -> None:
        self.send.close()
        while True:
            try:
                envelope = self.receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return
            if envelope.reply is not None:
                envelope.reply.fill(error=error)
