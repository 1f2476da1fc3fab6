"""The three ways a caller authenticates on HTTP, as FastAPI dependencies.

``Authorization: Bearer <key>`` with the platform's API key, or ``Bearer <JWT>``
with a person's token (the same tokens as the gateway's ``hello``).
"""

# No ``from __future__ import annotations``: FastAPI evaluates these annotations.
from typing import Annotated

from fastapi import Header

from octim.auth import AuthError, Principal, check_api_key, verify_token
from octim.config import Settings
from octim.domain.conversation_model import STAFF_ROLES, Forbidden
from octim.errors import NotFound


def require_staff_of(who: Principal, shop: str) -> None:
    """Staff of ``shop`` (or platform admins); ``forbidden`` for buyers, ``not_found``
    for staff of other shops (so shop ids cannot be probed)."""
    if who.role not in STAFF_ROLES:
        raise Forbidden("staff only")
    if who.role != "platform_admin" and shop not in who.shops:
        raise NotFound("not found")


class Auth:
    """Dependencies bound to one engine's settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def platform(self, authorization: Annotated[str | None, Header()] = None) -> None:
        """Require the platform's API key."""
        check_api_key(authorization, self.settings.api_key)

    def person(self, authorization: Annotated[str | None, Header()] = None) -> Principal:
        """Require a person's JWT."""
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError("missing token (Authorization: Bearer <token>)")
        return verify_token(authorization[len("Bearer "):], self.settings.secret)

    def platform_or_person(self, authorization: Annotated[str | None, Header()] = None
                           ) -> Principal | None:
        """None for the platform's API key, else the person behind the JWT."""
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError("missing API key or token (Authorization: Bearer …)")
        try:
            check_api_key(authorization, self.settings.api_key)
            return None
        except AuthError:
            return verify_token(authorization[len("Bearer "):], self.settings.secret)
