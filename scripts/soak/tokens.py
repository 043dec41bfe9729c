"""RS256 tokens for the soak's users, the claims of parlour_gateway.dev_tokens.make_token.

make_token parses the PEM on every call (about 0.1 s on a busy 2-core machine: ten minutes
for 5,000 users); here the key is loaded once and each token is one RSA signature."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_tokens(private_pem: str, users: list[str], lifetime: float) -> list[str]:
    """One token per user: `sub` the user id, `username` "soak <id>", role `user`."""
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("the soak signs with an RSA key")
    header = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}, separators=(",", ":")).encode())
    now = int(time.time())
    tokens = []
    for user in users:
        claims: dict[str, Any] = {
            "sub": user,
            "iat": now,
            "roles": ["user"],
            "username": f"soak {user}",
            "exp": int(now + lifetime),
        }
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{body}".encode()
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        tokens.append(f"{header}.{body}.{_b64(signature)}")
    return tokens
