"""EngineSettings: defaults, environment names, and errors that name the setting."""

from __future__ import annotations

import pytest

from parlour_engine.app import rules_config
from parlour_engine.settings import EngineSettings, SettingsError, load_settings


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
    settings = load_settings()
    assert settings.bootstrap_servers == ["k1:9092", "k2:9092"]
    assert settings.redis_dsn == "redis://r:6380/2"
    assert settings.topics.events == "t1.games.event.v1"
    assert settings.keys.timers() == "t1.timers"
    assert rules_config(settings).turn_timeout_secs == 7


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ENGINE_HEALTH_PORT", "70000"),
        ("ENGINE_MAX_TRIES", "0"),
        ("REDIS_URL", "http://nope"),
        ("ENGINE_LOG_LEVEL", "LOUD"),
        ("KAFKA_BOOTSTRAP_SERVERS", " , "),
    ],
)
def test_engine_settings_error_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    if name in ("REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        assert name in str(info.value)
    else:
        assert f"{name}:" in str(info.value)
