"""The shared settings kit: the Kafka and Redis addresses read the same way by the gateway,
the engine and the tools (`ServiceAddresses`: the integration fixtures), `load` naming the
variable at fault, and the deprecated names of renamed settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from parlour_engine.settings import EngineSettings
from parlour_gateway.settings import GatewaySettings
from parlour_runtime import (
    KafkaSettings,
    LoggingSettings,
    RedisSettings,
    ServiceAddresses,
    ServiceSettings,
    SettingsError,
    deprecated_in_use,
    load,
)
from parlour_runtime.settings import deprecated_env_names, env_names

_ADDRESS_VARIABLES = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_HOST",
    "KAFKA_PORT",
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_DB",
    "REDIS_PASSWORD",
)
_EVERY_PARSER: tuple[type[BaseSettings], ...] = (GatewaySettings, EngineSettings, ServiceAddresses)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean environment (the test run's own names the local Kafka and Redis); the
    gateway in dev mode, so it needs no key."""
    for name in _ADDRESS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for settings_cls in (GatewaySettings, EngineSettings):
        for variables in deprecated_env_names(settings_cls).values():
            for name in variables:
                monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    monkeypatch.delenv("JWT_PUBLIC_KEY_PATH", raising=False)
    monkeypatch.setenv("AUTH_DEV_MODE", "true")
    return monkeypatch


@pytest.mark.parametrize(
    ("variables", "dsn"),
    [
        ({}, "redis://127.0.0.1:6379/0"),
        ({"REDIS_HOST": "cache.internal"}, "redis://cache.internal:6379/0"),
        ({"REDIS_HOST": "::1", "REDIS_PORT": "6380"}, "redis://[::1]:6380/0"),
        (
            {"REDIS_DB": "3", "REDIS_PASSWORD": "p@ss/w:rd"},
            "redis://:p%40ss%2Fw%3Ard@127.0.0.1:6379/3",
        ),
        ({"REDIS_URL": "redis://r:6380/2", "REDIS_HOST": "ignored"}, "redis://r:6380/2"),
        ({"REDIS_URL": "rediss://:pw@r.example:6380/1"}, "rediss://:pw@r.example:6380/1"),
        ({"REDIS_URL": "unix:///run/redis.sock?db=2"}, "unix:///run/redis.sock?db=2"),
        ({"REDIS_URL": "  ", "REDIS_PORT": "6390"}, "redis://127.0.0.1:6390/0"),
    ],
)
def test_every_process_reads_redis_the_same_way(
    env: pytest.MonkeyPatch, variables: dict[str, str], dsn: str
) -> None:
    for name, value in variables.items():
        env.setenv(name, value)
    for settings_cls in _EVERY_PARSER:
        settings = load(settings_cls)
        assert isinstance(settings, RedisSettings)
        assert settings.redis_dsn == dsn, settings_cls.__name__
        assert settings.redis_address_from_env is bool(variables)


def test_the_redis_address_taken_apart(env: pytest.MonkeyPatch) -> None:
    env.setenv("REDIS_URL", "rediss://u:p%40w@r.example:6380/4")
    tls = load(ServiceAddresses).redis_address
    assert (tls.tls, tls.host, tls.port, tls.db, tls.username, tls.password) == (
        True,
        "r.example",
        6380,
        4,
        "u",
        "p@w",
    )
    env.setenv("REDIS_URL", "unix:///run/redis.sock?db=2")
    unix = load(ServiceAddresses).redis_address
    assert (unix.tls, unix.host, unix.path, unix.db) == (False, None, "/run/redis.sock", 2)


@pytest.mark.parametrize(
    ("variables", "servers"),
    [
        ({}, ["127.0.0.1:9092"]),
        ({"KAFKA_HOST": "k", "KAFKA_PORT": "9094"}, ["k:9094"]),
        (
            {"KAFKA_BOOTSTRAP_SERVERS": "k1:9092, k2:9092", "KAFKA_HOST": "x"},
            ["k1:9092", "k2:9092"],
        ),
        ({"KAFKA_BOOTSTRAP_SERVERS": " ", "KAFKA_PORT": "9095"}, ["127.0.0.1:9095"]),
    ],
)
def test_every_process_reads_kafka_the_same_way(
    env: pytest.MonkeyPatch, variables: dict[str, str], servers: list[str]
) -> None:
    for name, value in variables.items():
        env.setenv(name, value)
    for settings_cls in _EVERY_PARSER:
        settings = load(settings_cls)
        assert isinstance(settings, ServiceAddresses | KafkaSettings)
        assert settings.bootstrap_servers == servers, settings_cls.__name__
        assert settings.kafka_address_from_env is bool(variables)
    assert load(GatewaySettings).kafka_servers == ",".join(servers)


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("REDIS_URL", "http://r:6379", "REDIS_URL: must start with redis://"),
        ("REDIS_URL", "redis://r:port/0", "REDIS_URL: not a Redis URL"),
        ("REDIS_PORT", "0", "REDIS_PORT: "),
        ("REDIS_DB", "-1", "REDIS_DB: "),
        ("KAFKA_BOOTSTRAP_SERVERS", " , ", "KAFKA_BOOTSTRAP_SERVERS names no server"),
        ("KAFKA_PORT", "x", "KAFKA_PORT: "),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL: "),
        ("LOG_FORMAT", "xml", "LOG_FORMAT: "),
    ],
)
def test_every_process_refuses_the_same_values_naming_the_variable(
    env: pytest.MonkeyPatch, name: str, value: str, named: str
) -> None:
    env.setenv(name, value)
    parsers = _EVERY_PARSER if name.startswith(("REDIS", "KAFKA")) else _EVERY_PARSER[:2]
    for settings_cls in parsers:
        with pytest.raises(SettingsError, match=r"^invalid settings") as info:
            load(settings_cls)
        assert named in str(info.value), settings_cls.__name__


def test_an_error_never_echoes_a_password(env: pytest.MonkeyPatch) -> None:
    env.setenv("REDIS_URL", "redis://:hunter2@r:notaport/0")
    with pytest.raises(SettingsError) as info:
        load(ServiceAddresses)
    assert "hunter2" not in str(info.value)


def test_load_names_every_variable_at_fault(env: pytest.MonkeyPatch) -> None:
    env.setenv("WS_PORT", "70000")
    env.setenv("WS_HEARTBEAT_INTERVAL_SECONDS", "0")
    with pytest.raises(SettingsError) as info:
        load(GatewaySettings)
    assert "WS_PORT: " in str(info.value)
    assert "WS_HEARTBEAT_INTERVAL_SECONDS: " in str(info.value)


# --- one time suffix, and the old names --------------------------------------------------


def _time_fields(settings_cls: type[BaseSettings]) -> list[str]:
    return [
        name
        for name in settings_cls.model_fields
        if any(name.endswith(suffix) for suffix in ("_secs", "_ms", "_seconds", "_timeout"))
    ]


@pytest.mark.parametrize("settings_cls", [GatewaySettings, EngineSettings])
def test_every_duration_is_in_seconds(settings_cls: type[BaseSettings]) -> None:
    deprecated = {name for name in settings_cls.model_fields if name.endswith("_ms")}
    for name in set(_time_fields(settings_cls)) - deprecated:
        assert name.endswith("_seconds"), name
        assert env_names(name, settings_cls.model_fields[name])[0] == name.upper()


@pytest.mark.parametrize(
    ("old", "value", "field", "expected"),
    [
        ("AUTH_TIMEOUT", "2", "auth_timeout_seconds", 2.0),
        ("AUTH_REAUTH_GRACE_SECS", "3", "auth_reauth_grace_seconds", 3.0),
        ("WS_HEARTBEAT_INTERVAL_SECS", "2", "ws_heartbeat_interval_seconds", 2),
        ("WS_HEARTBEAT_TIMEOUT_SECS", "6", "ws_heartbeat_timeout_seconds", 6.0),
        ("WS_PING_INTERVAL_SECS", "7", "ws_ping_interval_seconds", 7.0),
        ("WS_PING_TIMEOUT_SECS", "8", "ws_ping_timeout_seconds", 8.0),
        ("WS_TASK_STALL_SECS", "9", "ws_task_stall_seconds", 9.0),
        ("WS_CLOSE_TIMEOUT_SECS", "1.5", "ws_close_timeout_seconds", 1.5),
        ("WS_RESUME_HOLD_SECS", "0", "ws_resume_hold_seconds", 0.0),
        ("KAFKA_PUBLISH_TIMEOUT_SECS", "1", "kafka_publish_timeout_seconds", 1.0),
        ("PRESENCE_SWEEP_SECS", "0.3", "presence_sweep_seconds", 0.3),
        ("SHUTDOWN_TIMEOUT_SECS", "12", "shutdown_timeout_seconds", 12.0),
        ("GATEWAY_LOG_LEVEL", "warning", "log_level", "WARNING"),
        ("GATEWAY_LOG_FORMAT", "json", "log_format", "json"),
    ],
)
def test_the_gateway_still_reads_its_old_names(
    env: pytest.MonkeyPatch, old: str, value: str, field: str, expected: object
) -> None:
    env.setenv(old, value)
    assert getattr(load(GatewaySettings), field) == expected
    new = env_names(field, GatewaySettings.model_fields[field])[0]
    assert deprecated_in_use(GatewaySettings) == [(old, new)]


def test_a_new_name_wins_over_its_old_one(env: pytest.MonkeyPatch) -> None:
    env.setenv("WS_HEARTBEAT_INTERVAL_SECS", "2")
    env.setenv("WS_HEARTBEAT_INTERVAL_SECONDS", "3")
    env.setenv("GATEWAY_LOG_LEVEL", "ERROR")
    env.setenv("LOG_LEVEL", "DEBUG")
    settings = load(GatewaySettings)
    assert (settings.ws_heartbeat_interval_seconds, settings.log_level) == (3, "DEBUG")
    assert settings.socket_ttl_seconds == 9


def test_an_error_in_an_old_name_says_so(env: pytest.MonkeyPatch) -> None:
    env.setenv("WS_HEARTBEAT_TIMEOUT_SECS", "never")
    with pytest.raises(SettingsError) as info:
        load(GatewaySettings)
    assert "WS_HEARTBEAT_TIMEOUT_SECONDS (set as the deprecated WS_HEARTBEAT_TIMEOUT_SECS): " in (
        str(info.value)
    )


def test_fields_can_be_given_by_name(tmp_path: Path) -> None:
    settings = GatewaySettings(auth_dev_mode=True, auth_timeout_seconds=0.5, log_level="ERROR")
    assert (settings.auth_timeout_seconds, settings.log_level) == (0.5, "ERROR")


def test_a_settings_class_of_the_mixins(env: pytest.MonkeyPatch) -> None:
    class ToolSettings(KafkaSettings, RedisSettings, LoggingSettings, ServiceSettings):
        pass

    env.setenv("REDIS_HOST", "r")
    env.setenv("LOG_FORMAT", "console")
    settings = load(ToolSettings)
    assert (settings.redis_dsn, settings.log_format) == ("redis://r:6379/0", "console")
    assert settings.kafka_security_protocol == "PLAINTEXT"
