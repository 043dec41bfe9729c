"""Token bucket, Origin allow-list and settings validation (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from parlour_gateway.dev_tokens import generate_keypair
from parlour_gateway.origin import origin_allowed
from parlour_gateway.ratelimit import TokenBucket
from parlour_gateway.settings import GatewaySettings, SettingsError, load_settings


def test_bucket_allows_the_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=50, burst=100, updated=0.0)
    assert all(bucket.take(0.0) for _ in range(100))
    assert not bucket.take(0.0)
    assert bucket.take(0.02)  # one token per 20 ms
    assert not bucket.take(0.02)
    assert sum(bucket.take(1.02) for _ in range(200)) == 50


def test_bucket_never_exceeds_its_burst() -> None:
    bucket = TokenBucket(rate=10, burst=5, updated=0.0)
    assert sum(bucket.take(1000.0) for _ in range(20)) == 5


def test_bucket_ignores_a_clock_going_back() -> None:
    bucket = TokenBucket(rate=10, burst=1, updated=10.0)
    assert bucket.take(10.0)
    assert not bucket.take(5.0)


@pytest.mark.parametrize(
    ("origin", "allowed", "ok"),
    [
        (None, frozenset({"https://a.example"}), True),
        ("https://a.example", frozenset({"https://a.example"}), True),
        ("HTTPS://A.example/", frozenset({"https://a.example"}), True),
        ("https://a.example.evil.com", frozenset({"https://a.example"}), False),
        ("http://a.example", frozenset({"https://a.example"}), False),
        ("https://a.example:8443", frozenset({"https://a.example"}), False),
        ("null", frozenset({"https://a.example"}), False),
        ("https://anything", frozenset(), True),
    ],
)
def test_origin_allow_list(origin: str | None, allowed: frozenset[str], ok: bool) -> None:
    assert origin_allowed(origin, allowed) is ok


def test_settings_origins_are_normalised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, public = generate_keypair(tmp_path)
    monkeypatch.setenv("JWT_PUBLIC_KEY_PATH", str(public))
    monkeypatch.setenv("ALLOWED_ORIGINS", " https://A.example/ ,http://b.example")
    settings = GatewaySettings()
    assert settings.origins == frozenset({"https://a.example", "http://b.example"})
    assert settings.algorithms == ["RS256"]
    assert settings.server_max_frame > settings.ws_max_message_size


def test_missing_key_fails_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT_PUBLIC_KEY_PATH", str(tmp_path / "missing.pem"))
    with pytest.raises(SettingsError, match="JWT_PUBLIC_KEY_PATH"):
        load_settings()
    monkeypatch.delenv("JWT_PUBLIC_KEY_PATH")
    with pytest.raises(SettingsError, match="JWT_PUBLIC_KEY_PATH"):
        load_settings()


def test_dev_mode_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JWT_PUBLIC_KEY_PATH", raising=False)
    monkeypatch.setenv("AUTH_DEV_MODE", "true")
    assert load_settings().auth_dev_mode is True


@pytest.mark.parametrize("algs", ["HS256", "none", "RS256,HS512", ""])
def test_symmetric_algorithms_are_refused(
    algs: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, public = generate_keypair(tmp_path)
    monkeypatch.setenv("JWT_PUBLIC_KEY_PATH", str(public))
    monkeypatch.setenv("JWT_ALGORITHMS", algs)
    with pytest.raises(SettingsError, match="JWT_ALGORITHMS"):
        load_settings()
