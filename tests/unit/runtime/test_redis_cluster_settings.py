"""REDIS_CLUSTER_NODES: parsed the same way by every process, refused at start-up with the
variable's name, and turned into a `RedisCluster` (or a `Redis` without it) by the one client
factory, with the credentials and TLS of the Redis URL or parts."""

from __future__ import annotations

import pytest
from pydantic_settings import BaseSettings
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from parlour_engine.redis_pool import HiredisPackConnection, engine_redis
from parlour_engine.settings import EngineSettings
from parlour_gateway.settings import GatewaySettings
from parlour_runtime import ServiceAddresses, SettingsError, load
from parlour_runtime.redis_client import redis_client
from parlour_runtime.redis_settings import parse_cluster_nodes

_PARSERS: tuple[type[BaseSettings], ...] = (GatewaySettings, EngineSettings, ServiceAddresses)
_REDIS_VARIABLES = (
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_DB",
    "REDIS_PASSWORD",
    "REDIS_CLUSTER_NODES",
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _REDIS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("JWT_PUBLIC_KEY_PATH", raising=False)
    monkeypatch.setenv("AUTH_DEV_MODE", "true")
    return monkeypatch


def test_seeds_parse() -> None:
    assert parse_cluster_nodes("a:7000, b:7001,,[::1]:7002") == [
        ("a", 7000),
        ("b", 7001),
        ("::1", 7002),
    ]
    for bad in ("a", "a:", ":7000", "a:x", "a:70000", " , "):
        with pytest.raises(ValueError, match="host:port"):
            parse_cluster_nodes(bad)


@pytest.mark.parametrize("settings_cls", _PARSERS)
def test_every_process_reads_the_cluster_nodes(
    env: pytest.MonkeyPatch, settings_cls: type[BaseSettings]
) -> None:
    env.setenv("REDIS_CLUSTER_NODES", "10.0.0.1:7000,10.0.0.2:7000")
    settings = load(settings_cls)
    assert settings.redis_is_cluster  # type: ignore[attr-defined]
    assert settings.redis_cluster_seeds == [("10.0.0.1", 7000), ("10.0.0.2", 7000)]  # type: ignore[attr-defined]
    env.setenv("REDIS_CLUSTER_NODES", "  ")
    assert not load(settings_cls).redis_is_cluster  # type: ignore[attr-defined]


@pytest.mark.parametrize("settings_cls", _PARSERS)
def test_bad_cluster_nodes_fail_at_start_naming_the_variable(
    env: pytest.MonkeyPatch, settings_cls: type[BaseSettings]
) -> None:
    env.setenv("REDIS_CLUSTER_NODES", "10.0.0.1:7000,nope")
    with pytest.raises(SettingsError, match="REDIS_CLUSTER_NODES"):
        load(settings_cls)


def test_the_cluster_client_takes_the_urls_credentials_and_tls(env: pytest.MonkeyPatch) -> None:
    env.setenv("REDIS_CLUSTER_NODES", "10.0.0.1:7000,10.0.0.2:7001")
    env.setenv("REDIS_URL", "rediss://ann:s3cret@ignored:6379/0")
    client = redis_client(load(ServiceAddresses), max_connections=7)
    assert isinstance(client, RedisCluster)
    assert client.connection_kwargs["username"] == "ann"
    assert client.connection_kwargs["password"] == "s3cret"
    assert client.connection_kwargs["max_connections"] == 7
    assert {n.name for n in client.startup_nodes} == {"10.0.0.1:7000", "10.0.0.2:7001"}
    assert "ssl_cert_reqs" in client.connection_kwargs  # TLS, from rediss://


def test_the_engine_packs_with_hiredis_on_both_clients(env: pytest.MonkeyPatch) -> None:
    single = engine_redis(load(ServiceAddresses), 4)
    assert isinstance(single, Redis)
    assert single.connection_pool.connection_class is HiredisPackConnection
    env.setenv("REDIS_CLUSTER_NODES", "10.0.0.1:7000")
    env.setenv("REDIS_PASSWORD", "pw")
    cluster = engine_redis(load(ServiceAddresses), 4)
    assert isinstance(cluster, RedisCluster)
    assert cluster.connection_kwargs["connection_class"] is HiredisPackConnection
    assert all(n.connection_class is HiredisPackConnection for n in cluster.startup_nodes)
    assert cluster.connection_kwargs["password"] == "pw"
    assert cluster.connection_kwargs["max_connections"] == 4 + 8


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [("REDIS_DB", "2", "database 0 only"), ("REDIS_URL", "unix:///tmp/r.sock", "unix sockets")],
)
def test_what_a_cluster_cannot_be_is_refused(
    env: pytest.MonkeyPatch, variable: str, value: str, problem: str
) -> None:
    env.setenv("REDIS_CLUSTER_NODES", "10.0.0.1:7000")
    env.setenv(variable, value)
    with pytest.raises(ValueError, match=problem):
        redis_client(load(ServiceAddresses), max_connections=1)
