"""Room passwords: salted scrypt, parameters stored with the hash, constant-time compare."""

from __future__ import annotations

import hashlib
import hmac

from parlour_engine.rules.types import Rng

_R = 8
_P = 1
_DKLEN = 32


def hash_password(password: str, rng: Rng, n: int) -> str:
    """`scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>` with a 16-byte salt from `rng`."""
    salt = rng.randbytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=_R, p=_P, dklen=_DKLEN)
    return f"scrypt${n}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_hex, digest_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = bytes.fromhex(digest_hex)
        digest = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt_hex),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except ValueError:
        # a malformed stored hash never matches (and never crashes the worker)
        return False
    return hmac.compare_digest(digest, expected)
