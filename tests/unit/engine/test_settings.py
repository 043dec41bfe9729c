"""EngineSettings: defaults, environment names (the deprecated ones too), and errors that name
the setting."""

from __future__ import annotations

import functools
import ssl

import certifi
import pytest
from aiokafka import AIOKafkaProducer

from parlour_engine.app import create_engine, rules_config
from parlour_engine.games import discover
from parlour_engine.settings import EngineSettings
from parlour_protocol.v1.limits import DEFAULT_MAX_ROOMS_PER_HOST, DEFAULT_MAX_ROOMS_PER_USER
from parlour_runtime import SettingsError, deprecated_in_use, load


def test_engine_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "KAFKA_TOPIC_PREFIX", "REDIS_KEY_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    settings = EngineSettings()
    assert settings.bootstrap_servers == ["127.0.0.1:9092"]
    assert settings.redis_dsn == "redis://127.0.0.1:6379/0"
    assert settings.engine_group_id == "parlour-engine"
    assert settings.engine_health_port == 9996
    assert settings.engine_max_tries == 3
    assert settings.engine_rng_seed is None
    assert settings.topics.commands == "games.command.v1"


def test_engine_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092, k2:9092")
    monkeypatch.setenv("REDIS_URL", "redis://r:6380/2")
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", "t1.")
    monkeypatch.setenv("REDIS_KEY_PREFIX", "t1.")
    monkeypatch.setenv("ENGINE_TURN_TIMEOUT_SECONDS", "7")
    settings = load(EngineSettings)
    assert settings.bootstrap_servers == ["k1:9092", "k2:9092"]
    assert settings.redis_dsn == "redis://r:6380/2"
    assert settings.topics.events == "t1.games.event.v1"
    assert settings.keys.timers() == "t1.timers"
    config = rules_config(settings, discover())
    assert config.turn_timeout_seconds == 7
    # set explicitly, it caps every game's own timer (tic-tac-toe's 60 s)
    assert config.turn_timeout_cap_seconds == 7
    assert config.turn_timeout_for("tic_tac_toe") == 7


def test_unset_turn_timeout_leaves_each_games_own_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENGINE_TURN_TIMEOUT_SECONDS", raising=False)
    config = rules_config(load(EngineSettings), discover())
    assert config.turn_timeout_cap_seconds is None
    assert config.turn_timeout_for("bigger_dice") == 30
    assert config.turn_timeout_for("tic_tac_toe") == 60
    assert config.absence_forfeit_for("tic_tac_toe") == 600
    assert config.absence_forfeit_for("bigger_dice") is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ENGINE_HEALTH_PORT", "70000"),
        ("ENGINE_MAX_TRIES", "0"),
        ("REDIS_URL", "http://nope"),
        ("LOG_LEVEL", "LOUD"),
        ("ENGINE_SESSION_TIMEOUT_SECONDS", "0.5"),
        ("KAFKA_BOOTSTRAP_SERVERS", " , "),
    ],
)
def test_engine_settings_error_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load(EngineSettings)
    if name in ("REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        assert name in str(info.value)
    else:
        assert f"{name}:" in str(info.value)


def test_engine_settings_time_suffix_is_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = EngineSettings()
    assert settings.engine_session_timeout_seconds == 4.0
    assert settings.engine_fetch_max_wait_seconds == 0.01
    assert settings.engine_batch_timeout_seconds == 0.005
    assert settings.engine_timer_poll_seconds == 0.2
    monkeypatch.setenv("ENGINE_SESSION_TIMEOUT_SECONDS", "6.5")
    monkeypatch.setenv("ENGINE_TIMER_POLL_SECONDS", "0.05")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = load(EngineSettings)
    assert settings.engine_session_timeout_seconds == 6.5
    assert settings.engine_timer_poll_seconds == 0.05
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("old", "value", "field", "seconds"),
    [
        ("ENGINE_SESSION_TIMEOUT_MS", "6000", "engine_session_timeout_seconds", 6.0),
        ("ENGINE_FETCH_MAX_WAIT_MS", "20", "engine_fetch_max_wait_seconds", 0.02),
        ("ENGINE_BATCH_TIMEOUT_MS", "0", "engine_batch_timeout_seconds", 0.0),
        ("ENGINE_TIMER_POLL_MS", "50", "engine_timer_poll_seconds", 0.05),
    ],
)
def test_engine_settings_deprecated_millisecond_names_still_work(
    monkeypatch: pytest.MonkeyPatch, old: str, value: str, field: str, seconds: float
) -> None:
    monkeypatch.setenv(old, value)
    assert getattr(load(EngineSettings), field) == pytest.approx(seconds)
    assert deprecated_in_use(EngineSettings) == [(old, field.upper())]
    # the new name wins when both are set
    monkeypatch.setenv(field.upper(), "0.5" if seconds < 1 else "2.5")
    assert getattr(load(EngineSettings), field) == (0.5 if seconds < 1 else 2.5)


def test_engine_settings_deprecated_names_in_errors_and_logs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENGINE_LOG_LEVEL", "warning")
    monkeypatch.setenv("ENGINE_LOG_FORMAT", "json")
    settings = load(EngineSettings)
    assert (settings.log_level, settings.log_format) == ("WARNING", "json")
    monkeypatch.setenv("ENGINE_SESSION_TIMEOUT_MS", "500")  # below the 1 s minimum
    with pytest.raises(SettingsError) as info:
        load(EngineSettings)
    assert "ENGINE_SESSION_TIMEOUT_SECONDS (set as the deprecated ENGINE_SESSION_TIMEOUT_MS)" in (
        str(info.value)
    )
    monkeypatch.setenv("ENGINE_SESSION_TIMEOUT_MS", "soon")
    with pytest.raises(SettingsError, match="ENGINE_SESSION_TIMEOUT_MS: "):
        load(EngineSettings)
    monkeypatch.setenv("ENGINE_LOG_LEVEL", "LOUD")
    with pytest.raises(SettingsError, match=r"LOG_LEVEL \(set as the deprecated ENGINE_LOG"):
        load(EngineSettings)


# --- Kafka TLS and SASL ---------------------------------------------------------------------

_KAFKA_SECURITY_VARS = (
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CAFILE",
    "KAFKA_SSL_CERTFILE",
    "KAFKA_SSL_KEYFILE",
)


@pytest.fixture
def kafka_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _KAFKA_SECURITY_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_engine_settings_kafka_plaintext_by_default(kafka_env: pytest.MonkeyPatch) -> None:
    settings = load(EngineSettings)
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert settings.kafka_security() is None
    assert settings.kafka_client_kwargs() == {}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_engine_settings_kafka_sasl_reaches_broker_and_producer(
    kafka_env: pytest.MonkeyPatch, mechanism: str
) -> None:
    kafka_env.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    kafka_env.setenv("KAFKA_SASL_MECHANISM", mechanism)
    kafka_env.setenv("KAFKA_SASL_USERNAME", "engine")
    kafka_env.setenv("KAFKA_SASL_PASSWORD", "s3cret-pw")
    kafka_env.setenv("ENGINE_HEALTH_PORT", "0")
    settings = load(EngineSettings)
    assert "s3cret-pw" not in repr(settings)
    assert "s3cret-pw" not in str(settings.model_dump())
    wanted = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "engine",
        "sasl_plain_password": "s3cret-pw",
        "ssl_context": None,
    }
    assert settings.kafka_client_kwargs() == wanted
    engine = create_engine(settings)
    try:
        # the FastStream broker: its producer connection and its consumers' builder
        builder = engine.broker.config.broker_config.builder
        assert isinstance(builder, functools.partial)
        for name, value in wanted.items():
            assert engine.broker._connection_kwargs[name] == value
            assert builder.keywords[name] == value
        # the event producer opens its own client: aiokafka must accept the same arguments
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", **wanted)
        assert producer.client._security_protocol == "SASL_PLAINTEXT"
        assert producer.client._sasl_mechanism == mechanism
        await producer.stop()
    finally:
        await engine.redis.aclose()


async def test_engine_settings_kafka_ssl_context(kafka_env: pytest.MonkeyPatch) -> None:
    kafka_env.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    kafka_env.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    kafka_env.setenv("KAFKA_SASL_USERNAME", "engine")
    kafka_env.setenv("KAFKA_SASL_PASSWORD", "pw")
    kafka_env.setenv("KAFKA_SSL_CAFILE", certifi.where())
    kwargs = load(EngineSettings).kafka_client_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL"
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    kafka_env.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
    kwargs = load(EngineSettings).kafka_client_kwargs()
    assert kwargs["security_protocol"] == "SSL"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert "sasl_mechanism" not in kwargs


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_PASSWORD": "pw"},
            "KAFKA_SASL_USERNAME",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_USERNAME": "u"},
            "KAFKA_SASL_PASSWORD",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"},
            "KAFKA_SSL_CAFILE",
        ),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_KEYFILE": "__file__"}, "KAFKA_SSL_KEYFILE"),
        ({"KAFKA_SSL_CAFILE": "__file__"}, "KAFKA_SSL_CAFILE"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "__file__"}, "KAFKA_SSL_CAFILE"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
        ({"KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM"),
    ],
)
def test_engine_settings_kafka_security_errors_name_the_setting(
    kafka_env: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    # "__file__" stands for a file that exists but is no certificate (this test module)
    for name, value in env.items():
        kafka_env.setenv(name, __file__ if value == "__file__" else value)
    kafka_env.setenv("KAFKA_SASL_PASSWORD", env.get("KAFKA_SASL_PASSWORD", "do-not-echo"))
    if "KAFKA_SASL_PASSWORD" not in env and "KAFKA_SASL_USERNAME" in env:
        kafka_env.delenv("KAFKA_SASL_PASSWORD")
    with pytest.raises(SettingsError) as info:
        load(EngineSettings)
    assert named in str(info.value)
    assert "do-not-echo" not in str(info.value)


# --- room lifetimes and caps ------------------------------------------------------------------


def test_engine_settings_room_lifetimes_and_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = EngineSettings()
    assert settings.engine_idle_room_seconds == 600
    assert settings.engine_finished_room_seconds == 300
    assert settings.engine_max_rooms_per_host == DEFAULT_MAX_ROOMS_PER_HOST
    assert settings.engine_max_rooms_per_user == DEFAULT_MAX_ROOMS_PER_USER == 20
    monkeypatch.setenv("ENGINE_IDLE_ROOM_SECONDS", "42")
    monkeypatch.setenv("ENGINE_FINISHED_ROOM_SECONDS", "17")
    config = rules_config(load(EngineSettings), discover())
    assert (config.idle_room_seconds, config.finished_room_seconds) == (42, 17)
    monkeypatch.setenv("ENGINE_MAX_ROOMS_PER_HOST", "2")
    monkeypatch.setenv("ENGINE_MAX_ROOMS_PER_USER", "3")
    monkeypatch.setenv("ENGINE_HEALTH_PORT", "0")
    processor = create_engine(load(EngineSettings)).processor
    handler = processor._handler  # the caps live with the command handler (handler.py)
    assert (handler._max_rooms_per_host, handler._max_rooms_per_user) == (2, 3)
    monkeypatch.setenv("ENGINE_MAX_ROOMS_PER_HOST", "0")
    with pytest.raises(SettingsError, match="ENGINE_MAX_ROOMS_PER_HOST:"):
        load(EngineSettings)
