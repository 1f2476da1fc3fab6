"""The exception hierarchy of OctIM, rooted at :class:`OctimError`.

Every error that crosses a boundary (the Rust extension, the store, the actor
runtime, the HTTP API, the gateway) is one of these classes. Each class is one
row of the error table: a stable ``code`` that the HTTP API and the gateway
send to clients (clients branch on the code, never on message text), the HTTP
``status``, and whether the client is at fault. :func:`public_error` is the one
rule both edges apply: client faults and service states (429, 503) are told as
they are; anything else is a server fault, logged, and told only as
``internal``.
"""

from __future__ import annotations


class OctimError(Exception):
    """Base class of every OctIM error."""

    code = "internal"
    status = 500
    client_fault = False


def public_error(exc: BaseException) -> tuple[int, str, str] | None:
    """``(status, code, message)`` to tell the client, or None for a server fault
    (answer ``internal`` and log it)."""
    if isinstance(exc, OctimError) and (exc.client_fault or exc.status in (429, 503)):
        return exc.status, exc.code, str(exc)
    return None


class ClientError(OctimError):
    """Base of the errors whose cause is the client's request."""

    status = 400
    client_fault = True


class ConfigError(OctimError):
    """A configuration setting is missing or invalid; ``setting`` names it."""

    code = "config"

    def __init__(self, setting: str, problem: str,
                 problems: tuple[ConfigError, ...] = ()) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem
        self.problems: tuple[ConfigError, ...] = problems or (self,)  # each told on its own


class InvalidKey(ClientError, ValueError):
    """A store key, or a part of one, is malformed (raised by ``octim._core``)."""

    code = "invalid_key"
    status = 422


class InvalidArgument(ClientError, ValueError):
    """An argument is out of its allowed range (raised by ``octim._core``)."""

    code = "invalid_argument"
    status = 422


class StoreError(OctimError):
    """The durable store cannot do what was asked."""

    code = "store"


class SchemaMismatch(StoreError):
    """The data directory was written by an incompatible schema version."""

    code = "schema_mismatch"


class StoreClosed(StoreError):
    """The store is closed or closing; the write was not accepted."""

    code = "store_closed"
    status = 503


class ActorError(OctimError):
    """Base class of actor runtime errors."""

    code = "actor"


class MailboxFull(ActorError):
    """``tell_nowait`` found the actor's bounded mailbox full."""

    code = "rate_limited"
    status = 429


class ActorStopped(ActorError):
    """The actor stopped (escalated failure or shutdown) before handling the message."""

    code = "unavailable"
    status = 503


class ActorCrashed(ActorError):
    """The actor raised while handling an ``ask``; the original is the ``__cause__``."""

    code = "internal"


class UnknownActorKind(ActorError):
    """No factory is registered for the requested actor kind."""

    code = "not_found"


class NotFound(ClientError):
    """The requested entity does not exist (or the caller may not know it does)."""

    code = "not_found"
    status = 404


class InvalidInput(ClientError, ValueError):
    """Input from outside failed validation."""

    code = "invalid_body"
    status = 422


class VersionConflict(ClientError):
    """A settings record changed since the caller read it (``If-Match``/``version``):
    the save is refused rather than overwriting someone else's change."""

    code = "version_conflict"
    status = 412


class PreconditionRequired(ClientError):
    """A person's change to a settings record must say which version it edits."""

    code = "precondition_required"
    status = 428
