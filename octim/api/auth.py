"""The three ways a caller authenticates on HTTP, as FastAPI dependencies.

``Authorization: Bearer <key>`` with the platform's API key, or ``Bearer <JWT>``
with a person's token (the same tokens as the gateway's ``hello``).
"""

# No ``from __future__ import annotations``: FastAPI evaluates these annotations.
from typing import Annotated

from fastapi import Header, Request

from octim.auth import AuthError, Principal, check_api_key, verify_token
from octim.config import Settings
from octim.domain.conversations.model import STAFF_ROLES, Forbidden
from octim.errors import NotFound


def require_staff_of(who: Principal, shop: str) -> None:
    """Staff of ``shop`` (or platform admins); ``forbidden`` for buyers, ``not_found``
    for staff of other shops (so shop ids cannot be probed)."""
    if who.role not in STAFF_ROLES:
        raise Forbidden("staff only")
    if who.role != "platform_admin" and shop not in who.shops:
        raise NotFound("not found")


#: Where the HTTP guard leaves the caller it already verified: ``(None,)`` for the
#: API key, ``(principal,)`` for a person; the dependencies below do not verify twice.
CALLER = "octim.caller"


def identify(authorization: str | None, settings: Settings) -> Principal | None:
    """None for the platform's API key, else the person behind the JWT; ``AuthError``
    if neither verifies."""
    if not authorization or not authorization.startswith("Bearer "):
        raise AuthError("missing API key or token (Authorization: Bearer …)")
    try:
        check_api_key(authorization, settings.api_key)
        return None
    except AuthError:
        return verify_token(authorization[len("Bearer "):], settings.secret)


class Auth:
    """Dependencies bound to one engine's settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def platform(self, request: Request,
                 authorization: Annotated[str | None, Header()] = None) -> None:
        """Require the platform's API key."""
        known = request.scope.get(CALLER)
        if known is None:
            check_api_key(authorization, self.settings.api_key)
        elif known[0] is not None:
            raise AuthError("wrong API key")

    def person(self, request: Request,
               authorization: Annotated[str | None, Header()] = None) -> Principal:
        """Require a person's JWT."""
        known = request.scope.get(CALLER)
        if known is not None:
            if known[0] is None:
                raise AuthError("invalid token: the API key is not a person's token")
            return known[0]  # type: ignore[no-any-return]
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError("missing token (Authorization: Bearer <token>)")
        return verify_token(authorization[len("Bearer "):], self.settings.secret)

    def platform_or_person(self, request: Request,
                           authorization: Annotated[str | None, Header()] = None
                           ) -> Principal | None:
        """None for the platform's API key, else the person behind the JWT."""
        known = request.scope.get(CALLER)
        if known is not None:
            return known[0]  # type: ignore[no-any-return]
        return identify(authorization, self.settings)
