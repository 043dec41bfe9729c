"""Token buckets, per-address tables, Origin allow-list, settings validation (pure), and the
background-loop supervisor."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from parlour_gateway.dev_tokens import generate_keypair
from parlour_gateway.metrics import Metrics
from parlour_gateway.origin import origin_allowed
from parlour_gateway.ratelimit import KeyedBuckets, Tally, TokenBucket, client_key
from parlour_gateway.settings import GatewaySettings
from parlour_gateway.tasks import Beat, Supervisor
from parlour_runtime import SettingsError, load


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
        load(GatewaySettings)
    monkeypatch.delenv("JWT_PUBLIC_KEY_PATH")
    with pytest.raises(SettingsError, match="JWT_PUBLIC_KEY_PATH"):
        load(GatewaySettings)


def test_dev_mode_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JWT_PUBLIC_KEY_PATH", raising=False)
    monkeypatch.setenv("AUTH_DEV_MODE", "true")
    assert load(GatewaySettings).auth_dev_mode is True


@pytest.mark.parametrize("algs", ["HS256", "none", "RS256,HS512", ""])
def test_symmetric_algorithms_are_refused(
    algs: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, public = generate_keypair(tmp_path)
    monkeypatch.setenv("JWT_PUBLIC_KEY_PATH", str(public))
    monkeypatch.setenv("JWT_ALGORITHMS", algs)
    with pytest.raises(SettingsError, match="JWT_ALGORITHMS"):
        load(GatewaySettings)


# ------------------------------------------------------------------ per-address tables


def test_keyed_buckets_limit_each_key_and_never_outgrow_their_cap() -> None:
    table = KeyedBuckets(rate=1, burst=3, max_keys=100)
    assert [table.take("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert table.take("b", 0.0)  # another key has its own bucket
    assert table.take("a", 1.0)  # refilled at the rate
    for n in range(10_000):  # an attacker with many addresses
        table.take(f"10.{n}", 2.0)
    assert len(table) == 100


def test_keyed_buckets_forget_the_least_recently_used_key() -> None:
    table = KeyedBuckets(rate=0.001, burst=1, max_keys=2)
    assert table.take("old", 0.0)
    assert table.take("busy", 0.0)
    assert not table.take("busy", 0.0)  # "busy" is now the most recent
    assert table.take("new", 0.0)  # evicts "old", keeps "busy" (still empty)
    assert not table.take("busy", 0.0)
    assert len(table) == 2


def test_tally_drops_keys_at_zero() -> None:
    tally = Tally()
    tally.add("a")
    tally.add("a")
    tally.remove("a")
    assert tally.get("a") == 1
    tally.remove("a")
    tally.remove("a")  # an extra remove never goes negative
    assert tally.get("a") == 0
    assert len(tally) == 0


_PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))


@pytest.mark.parametrize(
    ("peer", "xff", "trusted", "key"),
    [
        ("203.0.113.7", None, (), "203.0.113.7"),
        # without trusted proxies the header is the client's own claim: ignored
        ("203.0.113.7", "198.51.100.1", (), "203.0.113.7"),
        # a peer that is not a trusted proxy: ignored too
        ("203.0.113.7", "198.51.100.1", _PROXIES, "203.0.113.7"),
        ("10.1.2.3", "198.51.100.1", _PROXIES, "198.51.100.1"),
        # the client forges entries on the left; the right-most untrusted hop counts
        ("10.1.2.3", "1.1.1.1, 198.51.100.1, 10.9.9.9", _PROXIES, "198.51.100.1"),
        ("10.1.2.3", "garbage, 10.9.9.9", _PROXIES, "10.9.9.9"),
        ("10.1.2.3", "", _PROXIES, "10.1.2.3"),
        # IPv6 by /64; IPv4-mapped as IPv4
        ("2001:db8:1:2:3:4:5:6", None, (), "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", None, (), "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", None, (), "203.0.113.9"),
        ("::1", "2001:db8::1", _PROXIES, "2001:db8::/64"),
        (None, "198.51.100.1", _PROXIES, "-"),
    ],
)
def test_client_key(
    peer: str | None,
    xff: str | None,
    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
    key: str,
) -> None:
    assert client_key(peer, xff, trusted) == key


# ------------------------------------------------------------------ settings


def test_dev_mode_listens_on_loopback_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JWT_PUBLIC_KEY_PATH", raising=False)
    monkeypatch.setenv("AUTH_DEV_MODE", "true")
    settings = load(GatewaySettings)
    assert (settings.bind_host, settings.health_bind_host) == ("127.0.0.1", "127.0.0.1")
    monkeypatch.setenv("WS_HOST", "0.0.0.0")
    monkeypatch.setenv("WS_HEALTH_HOST", "::")
    settings = load(GatewaySettings)
    assert (settings.bind_host, settings.health_bind_host) == ("0.0.0.0", "::")


def test_production_listens_on_every_interface(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, public = generate_keypair(tmp_path)
    monkeypatch.setenv("JWT_PUBLIC_KEY_PATH", str(public))
    settings = load(GatewaySettings)
    assert (settings.bind_host, settings.health_bind_host) == ("0.0.0.0", "0.0.0.0")


def test_dev_mode_beside_a_jwt_key_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, public = generate_keypair(tmp_path)
    monkeypatch.setenv("JWT_PUBLIC_KEY_PATH", str(public))
    monkeypatch.setenv("AUTH_DEV_MODE", "true")
    with pytest.raises(SettingsError, match="AUTH_DEV_MODE") as info:
        load(GatewaySettings)
    assert "JWT_PUBLIC_KEY_PATH" in str(info.value)


def test_trusted_proxies_must_be_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_DEV_MODE", "true")
    monkeypatch.setenv("WS_TRUSTED_PROXIES", "10.0.0.0/8, ::1")
    assert len(load(GatewaySettings).trusted_proxies) == 2
    monkeypatch.setenv("WS_TRUSTED_PROXIES", "10.0.0.0/8, proxy.local")
    with pytest.raises(SettingsError, match="WS_TRUSTED_PROXIES"):
        load(GatewaySettings)


# ------------------------------------------------------------------ Kafka security


def _kafka(monkeypatch: pytest.MonkeyPatch, **env: str) -> GatewaySettings:
    monkeypatch.setenv("AUTH_DEV_MODE", "true")
    for name, value in env.items():
        monkeypatch.setenv(name.upper(), value)
    return load(GatewaySettings)


def _ca(tmp_path: Path) -> Path:
    """A self-signed CA certificate (PEM) that `ssl` can load."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "parlour-test-ca")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_kafka_plaintext_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _kafka(monkeypatch).kafka_client_kwargs() == {
        "security_protocol": "PLAINTEXT",
        "metadata_max_age_ms": 30_000,
    }


async def test_kafka_sasl_ssl_kwargs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = _ca(tmp_path)
    settings = _kafka(
        monkeypatch,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="gw",
        kafka_sasl_password="pa55-secret",
        kafka_ssl_cafile=str(ca),
    )
    kwargs = settings.kafka_client_kwargs()
    context = kwargs.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert kwargs == {
        "security_protocol": "SASL_SSL",
        "metadata_max_age_ms": 30_000,
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "gw",
        "sasl_plain_password": "pa55-secret",
    }
    # the password never shows in the settings' text (what a log line of them would hold)
    assert "pa55-secret" not in repr(settings)
    assert "pa55-secret" not in str(settings)
    # aiokafka takes them as they are
    AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", **settings.kafka_client_kwargs())


def test_kafka_ssl_and_sasl_plaintext_kwargs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = _kafka(monkeypatch, kafka_security_protocol="SSL").kafka_client_kwargs()
    assert tls["security_protocol"] == "SSL"
    assert isinstance(tls["ssl_context"], ssl.SSLContext)
    assert "sasl_mechanism" not in tls
    sasl = _kafka(
        monkeypatch,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="u",
        kafka_sasl_password="p",
    ).kafka_client_kwargs()
    assert sasl == {
        "security_protocol": "SASL_PLAINTEXT",
        "metadata_max_age_ms": 30_000,
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "u",
        "sasl_plain_password": "p",
    }


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"kafka_security_protocol": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_password": "p"}, "USERNAME"),
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "u"}, "PASSWORD"),
        ({"kafka_sasl_mechanism": "GSSAPI"}, "KAFKA_SASL_MECHANISM"),
        ({"kafka_ssl_cafile": "{ca}"}, "KAFKA_SSL_CAFILE is set but"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/nope.pem"}, "no such file"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": "{ca}"}, "without KAFKA_SSL_CERT"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "{junk}"}, "unusable"),
    ],
)
def test_kafka_security_is_checked_at_startup(
    env: dict[str, str], named: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = _ca(tmp_path)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    values = {k: v.format(ca=ca, junk=junk) for k, v in env.items()}
    with pytest.raises(SettingsError, match=named):
        _kafka(monkeypatch, **values)


# ------------------------------------------------------------------ background loops


async def test_supervisor_restarts_a_failing_loop_and_names_it() -> None:
    rounds: list[int] = []
    fail = asyncio.Event()
    fail.set()

    async def body(beat: Beat) -> None:
        while True:
            await asyncio.sleep(0.01)
            if fail.is_set():
                raise ValueError("boom")
            rounds.append(1)
            beat()

    supervisor = Supervisor(Metrics())
    supervisor.spawn("sweeper", body, stall_after=60)
    async with asyncio.timeout(5):
        while "sweeper" not in supervisor.problems():  # noqa: ASYNC110 - polls a plain dict
            await asyncio.sleep(0.01)
    assert supervisor.problems() == {"sweeper": "failing: ValueError"}
    fail.clear()
    async with asyncio.timeout(5):  # backs off, starts again, and is healthy once it beats
        while supervisor.problems():  # noqa: ASYNC110 - polls a plain dict
            await asyncio.sleep(0.01)
    assert rounds
    await supervisor.stop()


async def test_supervisor_names_a_stalled_loop() -> None:
    now = [0.0]
    supervisor = Supervisor(Metrics(), clock=lambda: now[0])
    stuck = asyncio.Event()

    async def body(beat: Beat) -> None:
        beat()
        await stuck.wait()  # never set: a loop hung on a call

    supervisor.spawn("events", body, stall_after=30)
    await asyncio.sleep(0)
    assert supervisor.problems() == {}
    now[0] = 31.0
    assert supervisor.problems() == {"events": "stalled for 31s"}
    await supervisor.stop()
