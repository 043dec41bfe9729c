"""Token verification (pure): signature, pinned algorithms, exp, iss/aud, size, claims."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest

from parlour_gateway.auth import AuthError, AuthFailure, TokenVerifier, dev_identity
from parlour_gateway.dev_tokens import generate_keypair, make_token


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    private, public = generate_keypair(tmp_path_factory.mktemp("k"))
    return private.read_text(), public.read_text()


@pytest.fixture
def verifier(keypair: tuple[str, str]) -> TokenVerifier:
    return TokenVerifier(public_key=keypair[1], algorithms=["RS256"])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict[str, str], claims: dict[str, object], secret: bytes | None) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    sig = (
        b"" if secret is None else hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    )
    return f"{signing_input}.{_b64(sig)}"


def _reason(verifier: TokenVerifier, token: str | None) -> AuthFailure:
    with pytest.raises(AuthError) as info:
        verifier.verify(token)
    assert "eyJ" not in info.value.message  # the token never ends up in a message
    return info.value.reason


def test_valid_token(verifier: TokenVerifier, keypair: tuple[str, str]) -> None:
    token = make_token(keypair[0], "42", username="Ann", roles=["user", "admin"])
    identity = verifier.verify(token)
    assert identity.user_id == "42"
    assert identity.username == "Ann"
    assert identity.roles == ["user", "admin"]
    assert identity.expires_at is not None
    assert identity.expires_at.timestamp() > time.time()


def test_username_falls_back_to_preferred_username_then_sub(
    verifier: TokenVerifier, keypair: tuple[str, str]
) -> None:
    token = make_token(keypair[0], "7", extra={"preferred_username": "pref"})
    assert verifier.verify(token).username == "pref"
    assert verifier.verify(make_token(keypair[0], "7")).username == "7"


def test_expired(verifier: TokenVerifier, keypair: tuple[str, str]) -> None:
    assert _reason(verifier, make_token(keypair[0], "1", expires_in=-5)) is AuthFailure.EXPIRED


def test_missing_exp(verifier: TokenVerifier, keypair: tuple[str, str]) -> None:
    assert _reason(verifier, make_token(keypair[0], "1", with_exp=False)) is AuthFailure.CLAIMS


def test_wrong_key(verifier: TokenVerifier, tmp_path: Path) -> None:
    other_private, _ = generate_keypair(tmp_path)
    token = make_token(other_private.read_text(), "1")
    assert _reason(verifier, token) is AuthFailure.SIGNATURE


def test_hs256_signed_with_the_public_key_is_refused(
    verifier: TokenVerifier, keypair: tuple[str, str]
) -> None:
    claims = {"sub": "1", "exp": int(time.time()) + 60}
    token = _forge({"alg": "HS256", "typ": "JWT"}, claims, keypair[1].encode())
    assert _reason(verifier, token) is AuthFailure.ALGORITHM


@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
def test_alg_none_is_refused(verifier: TokenVerifier, alg: str) -> None:
    token = _forge({"alg": alg, "typ": "JWT"}, {"sub": "1", "exp": int(time.time()) + 60}, None)
    assert _reason(verifier, token) is AuthFailure.ALGORITHM


def test_rs512_not_in_the_allow_list(verifier: TokenVerifier, keypair: tuple[str, str]) -> None:
    token = make_token(keypair[0], "1", algorithm="RS512")
    assert _reason(verifier, token) is AuthFailure.ALGORITHM
    wider = TokenVerifier(public_key=verifier.public_key, algorithms=["RS256", "RS512"])
    assert wider.verify(token).user_id == "1"


def test_issuer_and_audience(keypair: tuple[str, str]) -> None:
    strict = TokenVerifier(
        public_key=keypair[1], algorithms=["RS256"], issuer="parlour", audience="games"
    )
    good = make_token(keypair[0], "1", issuer="parlour", audience="games")
    assert strict.verify(good).user_id == "1"
    for bad in (
        make_token(keypair[0], "1", issuer="evil", audience="games"),
        make_token(keypair[0], "1", issuer="parlour", audience="other"),
        make_token(keypair[0], "1"),
    ):
        assert _reason(strict, bad) is AuthFailure.CLAIMS


def test_size_cap_garbage_and_missing(verifier: TokenVerifier, keypair: tuple[str, str]) -> None:
    small = TokenVerifier(public_key=keypair[1], algorithms=["RS256"], max_bytes=300)
    assert _reason(small, make_token(keypair[0], "1")) is AuthFailure.TOO_LARGE
    assert _reason(verifier, "not.a.jwt") is AuthFailure.MALFORMED
    assert _reason(verifier, "") is AuthFailure.MISSING
    assert _reason(verifier, None) is AuthFailure.MISSING


@pytest.mark.parametrize("sub", [None, "", "has space", "x" * 65, ["list"]])
def test_bad_subject(verifier: TokenVerifier, keypair: tuple[str, str], sub: object) -> None:
    token = make_token(keypair[0], "placeholder", extra={"sub": sub})
    assert _reason(verifier, token) in (AuthFailure.SUBJECT, AuthFailure.CLAIMS)


def test_numeric_sub_becomes_a_string(verifier: TokenVerifier, keypair: tuple[str, str]) -> None:
    # python-jose insists on a string sub; the original system's ids were numbers
    token = make_token(keypair[0], "123")
    assert verifier.verify(token).user_id == "123"


def test_dev_identity() -> None:
    assert dev_identity("9", None).username == "9"
    assert dev_identity("9", "Nine").roles == ["user"]
    for bad in (None, "", "0"):
        with pytest.raises(AuthError):
            dev_identity(bad, "x")
