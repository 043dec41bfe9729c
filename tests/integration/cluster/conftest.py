"""The Redis Cluster tests need the clustered topology: `make test-cluster` starts it
(`make infra-up TOPOLOGY=cluster`) and runs them with its env file, which sets
REDIS_CLUSTER_NODES and the three brokers. Without REDIS_CLUSTER_NODES they skip."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from redis.asyncio.cluster import RedisCluster

from parlour_runtime import ServiceAddresses, load
from parlour_runtime.redis_client import redis_client


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("REDIS_CLUSTER_NODES"):
        return
    skip = pytest.mark.skip(reason="needs REDIS_CLUSTER_NODES: run `make test-cluster`")
    for item in items:
        if "tests/integration/cluster/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


@pytest.fixture
async def cluster() -> AsyncIterator[RedisCluster]:
    """A cluster client as the services build it (with the engine's hiredis packing)."""
    from parlour_engine.redis_pool import engine_redis

    client = engine_redis(load(ServiceAddresses), 16)
    assert isinstance(client, RedisCluster)
    await client.initialize()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def plain_cluster() -> AsyncIterator[RedisCluster]:
    client = redis_client(load(ServiceAddresses), max_connections=16)
    assert isinstance(client, RedisCluster)
    await client.initialize()
    try:
        yield client
    finally:
        await client.aclose()
