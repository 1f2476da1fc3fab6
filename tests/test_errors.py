"""The one error table: every error class knows its code, HTTP status and whose fault
it is, and the HTTP API and the gateway tell clients the same thing."""

from __future__ import annotations

import importlib
import pkgutil

import octim
from octim.errors import (
    ActorCrashed,
    InvalidArgument,
    InvalidKey,
    MailboxFull,
    OctimError,
    StoreError,
    UnknownActorKind,
    public_error,
)
from octim.gateway.session import Session


def all_error_classes() -> set[type[OctimError]]:
    for module in pkgutil.walk_packages(octim.__path__, "octim."):
        if not module.name.startswith("octim.bench") and not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found: set[type[OctimError]] = set()
    todo = [OctimError]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_error_class_is_a_consistent_row() -> None:
    classes = all_error_classes()
    assert len(classes) >= 25
    for cls in classes:
        assert cls.code and cls.code == cls.code.lower(), cls
        if cls.client_fault:
            assert 400 <= cls.status < 500 and cls.status != 429, cls
        else:
            assert cls.status >= 500 or cls.status == 429, cls


def test_client_faults_are_told_and_server_faults_hidden_on_both_edges() -> None:
    # The examples that used to disagree: invalid_key was 422 over HTTP but
    # internal over WebSocket; InvalidArgument became a 500.
    for exc, told in ((InvalidKey("scope too long"), (422, "invalid_key")),
                      (InvalidArgument("count out of range"), (422, "invalid_argument")),
                      (MailboxFull("busy"), (429, "rate_limited"))):
        answer = public_error(exc)
        assert answer is not None and answer[:2] == told
        assert Session._error_frame(exc, "r")["code"] == told[1]
    for exc in (StoreError("disk"), ActorCrashed("bug"), UnknownActorKind("x"),
                RuntimeError("bug")):
        assert public_error(exc) is None
        frame = Session._error_frame(exc, None)
        assert frame["code"] == "internal" and frame["message"] == "internal error"
