"""Token verification: pure (no I/O); the key and the clock are passed in."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from jose import jwt
from jose.exceptions import ExpiredSignatureError, JWTClaimsError, JWTError

from parlour_protocol.v1.limits import ID_MAX_LENGTH, USERNAME_MAX_LENGTH

_ID_RE = re.compile(r"^[A-Za-z0-9_.:@-]+$")


class AuthFailure(StrEnum):
    """Why a token was refused (a metric label and the `system.error` message)."""

    MISSING = "missing"
    TOO_LARGE = "too_large"
    MALFORMED = "malformed"
    ALGORITHM = "algorithm"
    SIGNATURE = "signature"
    EXPIRED = "expired"
    CLAIMS = "claims"
    SUBJECT = "subject"
    DEV_DISABLED = "dev_disabled"
    USER_CHANGED = "user_changed"


class AuthError(Exception):
    def __init__(self, reason: AuthFailure, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Identity:
    user_id: str
    username: str
    roles: list[str] = field(default_factory=list)
    expires_at: datetime | None = None
    """None only for dev-mode logins."""


@dataclass(frozen=True)
class TokenVerifier:
    public_key: str
    algorithms: list[str]
    issuer: str | None = None
    audience: str | None = None
    max_bytes: int = 8192

    def verify(self, token: str | None) -> Identity:
        """Check signature, algorithm, `exp` (required), `iss`/`aud` when configured.

        Raises AuthError; the message never contains the token.
        """
        if not token:
            raise AuthError(AuthFailure.MISSING, "a token is required")
        if len(token.encode("utf-8", "replace")) > self.max_bytes:
            raise AuthError(AuthFailure.TOO_LARGE, f"the token is over {self.max_bytes} bytes")
        try:
            header = jwt.get_unverified_header(token)
        except JWTError:
            raise AuthError(AuthFailure.MALFORMED, "the token is not a JWT") from None
        # pinned before verification: `none` and HMAC with the public key as secret never pass
        if header.get("alg") not in self.algorithms:
            raise AuthError(AuthFailure.ALGORITHM, "the token's algorithm is not accepted")
        options: dict[str, Any] = {
            "require_exp": True,
            "verify_aud": self.audience is not None,
            "verify_iss": self.issuer is not None,
        }
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.public_key,
                algorithms=self.algorithms,
                options=options,
                audience=self.audience,
                issuer=self.issuer,
            )
        except ExpiredSignatureError:
            raise AuthError(AuthFailure.EXPIRED, "the token has expired") from None
        except JWTClaimsError as exc:
            message = f"the token's claims are not valid: {exc}"
            raise AuthError(AuthFailure.CLAIMS, message) from None
        except JWTError as exc:
            text = str(exc).lower()
            if "exp" in text and "missing" in text:
                raise AuthError(AuthFailure.CLAIMS, "the token has no exp claim") from None
            raise AuthError(AuthFailure.SIGNATURE, "the token signature is not valid") from None
        return identity_from_claims(claims)


def identity_from_claims(claims: dict[str, Any]) -> Identity:
    sub = claims.get("sub")
    if isinstance(sub, int) and not isinstance(sub, bool):
        sub = str(sub)
    if not isinstance(sub, str) or not _ID_RE.match(sub) or len(sub) > ID_MAX_LENGTH:
        raise AuthError(AuthFailure.SUBJECT, "the token's sub is not a valid user id")
    username = claims.get("username") or claims.get("preferred_username") or sub
    if not isinstance(username, str):
        username = sub
    username = username[:USERNAME_MAX_LENGTH]
    raw_roles = claims.get("roles") or []
    roles = [r for r in raw_roles if isinstance(r, str)] if isinstance(raw_roles, list) else []
    exp = claims.get("exp")
    expires_at = datetime.fromtimestamp(float(exp), UTC) if isinstance(exp, int | float) else None
    if expires_at is None:
        raise AuthError(AuthFailure.CLAIMS, "the token has no exp claim")
    return Identity(user_id=sub, username=username, roles=roles, expires_at=expires_at)


def dev_identity(user_id: str | None, username: str | None) -> Identity:
    """The original's token-less development login (AUTH_DEV_MODE only)."""
    if not user_id or user_id == "0":
        raise AuthError(AuthFailure.SUBJECT, "dev login needs a user_id")
    return Identity(user_id=user_id, username=username or user_id, roles=["user"])
