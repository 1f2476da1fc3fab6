"""The exception hierarchy of OctIM, rooted at :class:`OctimError`.

Every error that crosses a boundary (the Rust extension, the store, the actor
runtime, the HTTP API, the gateway) is one of these classes. Each carries a
stable ``code`` that the HTTP API and the gateway send to clients, so clients
can branch on the code and never on message text.
"""

from __future__ import annotations


class OctimError(Exception):
    """Base class of every OctIM error."""

    code = "internal"


class ConfigError(OctimError):
    """A configuration setting is missing or invalid; ``setting`` names it."""

    code = "config"

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


class InvalidKey(OctimError, ValueError):
    """A store key, or a part of one, is malformed (raised by ``octim._core``)."""

    code = "invalid_key"


class InvalidArgument(OctimError, ValueError):
    """An argument is out of its allowed range (raised by ``octim._core``)."""

    code = "invalid_argument"


class StoreError(OctimError):
    """The durable store cannot do what was asked."""

    code = "store"


class SchemaMismatch(StoreError):
    """The data directory was written by an incompatible schema version."""

    code = "schema_mismatch"


class StoreClosed(StoreError):
    """The store is closed or closing; the write was not accepted."""

    code = "store_closed"


class ActorError(OctimError):
    """Base class of actor runtime errors."""

    code = "actor"


class MailboxFull(ActorError):
    """``tell_nowait`` found the actor's bounded mailbox full."""

    code = "rate_limited"


class ActorStopped(ActorError):
    """The actor stopped (escalated failure or shutdown) before handling the message."""

    code = "unavailable"


class ActorCrashed(ActorError):
    """The actor raised while handling an ``ask``; the original is the ``__cause__``."""

    code = "internal"


class UnknownActorKind(ActorError):
    """No factory is registered for the requested actor kind."""

    code = "not_found"


class NotFound(OctimError):
    """The requested entity does not exist (or the caller may not know it does)."""

    code = "not_found"


class InvalidInput(OctimError, ValueError):
    """Input from outside failed validation."""

    code = "invalid_body"
