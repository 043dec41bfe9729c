"""Faults of the clustered stores (`make infra-up TOPOLOGY=cluster`: 3 KRaft brokers with
replication 3 and min.insync.replicas=2, a Redis Cluster of 3 masters with a replica each)
under 20 concurrent games on 2 engines and 2 gateways: the Kafka broker leading the busiest
partitions SIGKILLed, then started again; a Redis master SIGKILLed (its replica takes over),
then started again (it comes back as a replica). Run by `make chaos` only (PARLOUR_CHAOS=1);
the cluster is started here through scripts/infra when it is not running."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from parlour_protocol.v1 import RedisKeys
from tests.support.chaos import GAMES, ChaosRun, ChaosStack, assert_clean, busiest_leader

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


@pytest.fixture(scope="module")
def cluster() -> dict[str, str]:
    """The cluster topology, started through scripts/infra when a node is missing (never
    writing .infra/run/env: the single-node address stays what other tests read)."""
    from infra.kafka_cluster import REPLICATION, TOPIC_CONFIGS, cluster_bootstrap, kafka_cluster_up
    from infra.redis_cluster import cluster_nodes_setting, redis_cluster_up

    redis_cluster_up()
    kafka_cluster_up()
    return {
        "bootstrap": cluster_bootstrap(),
        "redis_nodes": cluster_nodes_setting(),
        "replication": str(REPLICATION),
        **{f"topic.{k}": v for k, v in TOPIC_CONFIGS.items()},
    }


def _stack(
    cluster: dict[str, str], redis_url: str, prefix: str, tmp: Path, **kw: Any
) -> ChaosStack:
    configs = {k.removeprefix("topic."): v for k, v in cluster.items() if k.startswith("topic.")}
    return ChaosStack(
        bootstrap=cluster["bootstrap"],
        redis_url=redis_url,
        prefix=prefix,
        log_dir=tmp,
        replication=int(cluster["replication"]),
        topic_configs=configs,
        **kw,
    )


async def test_kafka_broker_leading_the_busiest_partitions_killed_and_back(
    cluster: dict[str, str], redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    """The stores: the Kafka cluster, and the single-node Redis (this fault is Kafka's)."""
    from infra.nodes import kill_node, start_node

    stack = _stack(cluster, redis_url, topic_prefix, tmp_path)
    client = aioredis.from_url(redis_url)
    run = ChaosRun(stack, games=GAMES)
    killed: str | None = None
    try:
        await stack.start()
        await run.start()
        assert stack.topics is not None
        broker, load = await busiest_leader(stack.bootstrap, stack.topics)
        killed = f"kafka-{broker}"
        at = run.mark_fault()
        await asyncio.to_thread(kill_node, killed)
        await run.all_progressed(at)  # the other two brokers lead now; every game goes on
        await asyncio.to_thread(start_node, killed)
        run.mark_repaired()
        killed = None
        result = await run.finish_and_verify(
            f"Kafka broker {broker} killed (led {load.get(broker, 0)} of "
            f"{sum(load.values())} records), back",
            client,
        )
    finally:
        if killed is not None:
            await asyncio.to_thread(start_node, killed)
        await run.close()
        await client.aclose()
        await stack.stop()
    assert_clean(result)


def _services_speak_redis_cluster() -> bool:
    from parlour_runtime.redis_settings import RedisSettings

    return "redis_cluster_nodes" in RedisSettings.model_fields


@pytest.fixture
async def redis_cluster_client(cluster: dict[str, str]) -> AsyncIterator[RedisCluster]:
    host, port = cluster["redis_nodes"].split(",")[0].split(":")
    client = RedisCluster(host=host, port=int(port))
    try:
        yield client
    finally:
        await client.aclose()


async def _master_of_most_rooms(client: RedisCluster, prefix: str, rooms: list[str]) -> str:
    """The infra name (redis-<port>) of the master serving the most of these rooms."""
    keys = RedisKeys(prefix=prefix)
    await client.initialize()
    count: Counter[str] = Counter()
    for room in rooms:
        node = client.get_node_from_key(keys.room_state(room))
        assert node is not None
        count[f"redis-{node.port}"] += 1
    return count.most_common(1)[0][0]


@pytest.mark.skipif(
    not _services_speak_redis_cluster(),
    reason="the services do not read REDIS_CLUSTER_NODES yet (issue 12: Redis Cluster support)",
)
async def test_redis_master_killed_replica_takes_over_and_back(
    cluster: dict[str, str],
    redis_cluster_client: RedisCluster,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    from infra.nodes import kill_node, start_node

    nodes = {"REDIS_CLUSTER_NODES": cluster["redis_nodes"]}
    first = cluster["redis_nodes"].split(",")[0]
    stack = _stack(
        cluster,
        f"redis://{first}/0",
        topic_prefix,
        tmp_path,
        engine_env=dict(nodes),
        gateway_env=dict(nodes),
    )
    run = ChaosRun(stack, games=GAMES)
    killed: str | None = None
    try:
        await stack.start()
        await run.start()
        victim = await _master_of_most_rooms(
            redis_cluster_client, topic_prefix, [g.room_id for g in run.played]
        )
        killed = victim
        at = run.mark_fault()
        await asyncio.to_thread(kill_node, killed)
        await run.all_progressed(at, within=120)  # its replica is promoted; games go on
        await asyncio.to_thread(start_node, killed)
        run.mark_repaired()
        killed = None
        result = await run.finish_and_verify(
            f"Redis master {victim} killed, replica took over, back", redis_cluster_client
        )
    finally:
        if killed is not None:
            await asyncio.to_thread(start_node, killed)
        await run.close()
        await stack.stop()
    assert_clean(result)
