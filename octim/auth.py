"""Who is calling: platform-issued JWTs for people, the API key for the platform.

Tokens are HS256 JWTs signed by the platform with ``OCTIM_SECRET`` and carry
``sub``, ``role``, ``shops`` (for staff) and ``exp``.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Any

import jwt

from octim.errors import ClientError

ROLES = ("buyer", "agent", "shop_admin", "platform_admin")
ALGORITHM = "HS256"
MAX_ID_CHARS = 128
MAX_TOKEN_SHOPS = 1000


class AuthError(ClientError):
    """A token or key was missing, malformed, expired or wrongly signed."""

    code = "unauthorized"
    status = 401


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated person."""

    user: str
    role: str
    shops: tuple[str, ...] = ()
    level: int = 0  # buyer level from the platform (VIP tiers); 0 = regular


def verify_token(token: Any, secret: str, *, leeway: float = 5.0) -> Principal:
    """Check a JWT's signature, expiry and claims; raise :class:`AuthError` if bad."""
    if not isinstance(token, str) or not token:
        raise AuthError("missing token")
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], leeway=leeway,
                            options={"require": ["sub", "role", "exp"]})
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"invalid token: {exc}") from None
    role, sub, shops = claims["role"], claims["sub"], claims.get("shops", [])
    if role not in ROLES:
        raise AuthError(f"invalid token: unknown role {role!r}")
    # Ids become parts of store keys (LMDB keys are at most 511 bytes).
    if not isinstance(sub, str) or not 0 < len(sub) <= MAX_ID_CHARS or not sub.isprintable():
        raise AuthError(f"invalid token: sub must be 1-{MAX_ID_CHARS} printable characters")
    if not isinstance(shops, list) or len(shops) > MAX_TOKEN_SHOPS or not all(
            isinstance(s, str) and 0 < len(s) <= MAX_ID_CHARS for s in shops):
        raise AuthError(f"invalid token: shops must be at most {MAX_TOKEN_SHOPS} ids of "
                        f"1-{MAX_ID_CHARS} characters")
    level = claims.get("level", 0)
    if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 100:
        raise AuthError("invalid token: level must be an integer 0-100")
    # Shops make sense for staff only: a buyer's token naming shops gains nothing.
    return Principal(sub, role, () if role == "buyer" else tuple(shops), level)


def issue_token(secret: str, user: str, role: str, *, shops: tuple[str, ...] = (),
                ttl: float = 3600.0, now: float | None = None, level: int = 0) -> str:
    """Sign a token as the platform would (demo, tests and the Python API)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    issued = time.time() if now is None else now
    claims: dict[str, Any] = {"sub": user, "role": role, "iat": int(issued),
                              "exp": int(issued + ttl)}
    if shops:
        claims["shops"] = list(shops)
    if level:
        claims["level"] = level
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def check_api_key(header: str | None, api_key: str) -> None:
    """Accept ``Authorization: Bearer <key>`` in constant time."""
    if not header or not header.startswith("Bearer "):
        raise AuthError("missing API key (Authorization: Bearer <key>)")
    if not hmac.compare_digest(header[len("Bearer "):].encode(), api_key.encode()):
        raise AuthError("wrong API key")
