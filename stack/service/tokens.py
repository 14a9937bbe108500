"""JWT verification for the API and the viewer socket (HS256 or RS256, audience, expiry)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import jwt

from stack.service.apierror import ApiError, unauthorized
from stack.service.config import Settings


@dataclass(frozen=True)
class Principal:
    """Who a valid token speaks for."""

    user_id: uuid.UUID
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


# Who a route with its auth deliberately switched off (NOVA_BROKEN_NO_AUTH_ROUTES) serves.
ANONYMOUS = Principal(uuid.UUID(int=0), "user")


class TokenVerifier:
    """Checks signature, algorithm, audience, `exp`, `iat` and `sub` of a bearer token."""

    def __init__(self, settings: Settings) -> None:
        self._algorithm = settings.jwt_algorithm
        self._key = settings.jwt_secret if self._algorithm == "HS256" else settings.jwt_public_key
        self._audience = settings.jwt_audience
        self._leeway_s = settings.jwt_leeway_s

    def verify(self, token: str) -> Principal:
        """Return the token's principal or raise ApiError 401."""
        try:
            # One fixed algorithm: `alg: none` and HS/RS confusion fail here.
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
                audience=self._audience,
                leeway=self._leeway_s,
                options={"require": ["exp", "iat", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise unauthorized("token expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise unauthorized("token audience is not accepted") from exc
        except jwt.PyJWTError as exc:
            raise unauthorized("token is invalid") from exc
        return _principal(claims)


def _principal(claims: dict[str, object]) -> Principal:
    try:
        user_id = uuid.UUID(str(claims["sub"]))
    except ValueError as exc:
        raise unauthorized("token subject is not a user id") from exc
    role = claims.get("role", "user")
    if role not in ("user", "admin"):
        raise unauthorized("token role is not recognised")
    return Principal(user_id=user_id, role=str(role))


def bearer_token(header: str | None) -> str:
    """Extract the token from an Authorization header or raise 401."""
    if not header:
        raise unauthorized("missing bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("authorization header must be 'Bearer <token>'")
    return token.strip()


def require_owner_or_admin(principal: Principal, owner_id: uuid.UUID,
                           skip: bool = False) -> None:
    """403 unless owner or admin (`skip`: a deliberately broken test target)."""
    if skip or principal.is_admin or principal.user_id == owner_id:
        return
    raise ApiError(403, "FORBIDDEN", "only the stream's owner or an admin may do this")
