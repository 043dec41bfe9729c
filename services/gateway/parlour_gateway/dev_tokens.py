"""Development and test helpers: an RSA key pair and signed JWTs (never used by the server)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwt


def generate_keypair(directory: Path) -> tuple[Path, Path]:
    """Write `jwt_private.pem` and `jwt_public.pem` into `directory`; returns both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = directory / "jwt_private.pem"
    public = directory / "jwt_public.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def make_token(
    private_pem: str,
    sub: str,
    *,
    username: str | None = None,
    roles: list[str] | None = None,
    expires_in: float = 3600,
    issuer: str | None = None,
    audience: str | None = None,
    algorithm: str = "RS256",
    extra: dict[str, Any] | None = None,
    with_exp: bool = True,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "iat": now, "roles": roles or ["user"]}
    if username is not None:
        claims["username"] = username
    if with_exp:
        claims["exp"] = int(now + expires_in)
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    claims.update(extra or {})
    token: str = jwt.encode(claims, private_pem, algorithm=algorithm)
    return token
