"""The clustered topology of `scripts/infra up --topology cluster`: three Kafka brokers that
keep Parlour's topics on three replicas, and a Redis Cluster of three masters with a replica
each.

Opt-in (PARLOUR_CLUSTER_TESTS=1): the module starts nine more processes (three broker JVMs,
six redis-servers) on 19092-19094, 19192-19194 and 17000-17005, which takes 15-20 s and more
memory than `make test` should spend on every run. A cluster already running when the module
starts (`make infra-up TOPOLOGY=cluster`) is used and left running; one the module started is
stopped after it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio.cluster import ClusterNode, RedisCluster

from parlour_protocol.v1.topics import Topics
from tests.support.paths import REPO_ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("PARLOUR_CLUSTER_TESTS") != "1",
        reason="starts a Kafka and a Redis cluster; set PARLOUR_CLUSTER_TESTS=1 to run",
    ),
]

BROKERS = ["127.0.0.1:19092", "127.0.0.1:19093", "127.0.0.1:19094"]
BOOTSTRAP = ",".join(BROKERS)
REDIS_PORTS = range(17000, 17006)


def _infra(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    # the cluster's ports are its own: the single node's settings must not leak in
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "REDIS_"))}
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "infra"), *args, "--topology", "cluster"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    was_up = _infra("status", timeout=60).returncode == 0
    up = _infra("up", timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    yield
    if not was_up:
        down = _infra("down", timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr


@pytest.mark.usefixtures("cluster")
async def test_three_brokers_keep_each_topic_on_three_replicas() -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=10_000)
    await admin.start()
    try:
        described: Any = await admin.describe_cluster()
        assert sorted(b["node_id"] for b in described["brokers"]) == [1, 2, 3]
        wanted = Topics().with_partitions()
        topics = await admin.describe_topics(list(wanted))
        for topic in topics:
            assert topic["error_code"] == 0, topic
            assert len(topic["partitions"]) == wanted[topic["topic"]]
            for partition in topic["partitions"]:
                assert sorted(partition["replicas"]) == [1, 2, 3], partition
                assert sorted(partition["isr"]) == [1, 2, 3], partition
        configs = await _min_insync(admin, list(wanted))
        assert configs == dict.fromkeys(wanted, "2")
    finally:
        await admin.close()


async def _min_insync(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, str]:
    """min.insync.replicas of each topic, by DescribeConfigs (aiokafka's own resource type)."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    response: Any = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in topics]
    )
    found: dict[str, str] = {}
    for reply in response:
        for resource in reply.resources:
            name, entries = resource[3], resource[4]
            for entry in entries:
                if entry[0] == "min.insync.replicas":
                    found[name] = entry[1]
    return found


@pytest.mark.usefixtures("cluster")
async def test_a_produce_with_acks_all_succeeds() -> None:
    topic = Topics().events
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        key = f"cluster-test-{uuid.uuid4().hex}".encode()
        sent = await asyncio.wait_for(producer.send_and_wait(topic, b"{}", key=key), 30)
    finally:
        await producer.stop()
    assert sent.topic == topic
    assert sent.offset >= 0


@pytest.mark.usefixtures("cluster")
async def test_redis_cluster_has_three_masters_with_a_replica_each() -> None:
    client = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", p) for p in REDIS_PORTS])
    try:
        await client.initialize()
        masters = client.get_primaries()
        replicas = client.get_replicas()
        assert len(masters) == 3
        assert len(replicas) == 3
        info: Any = await client.cluster_info(target_nodes=RedisCluster.ALL_NODES)
        states = {node: reply["cluster_state"] for node, reply in info.items()}
        assert set(states.values()) == {"ok"}, states
        assert len(states) == 6
        # every master has exactly one replica
        shards: Any = await client.execute_command("CLUSTER SHARDS")
        assert len(shards) == 3
        for shard in shards:
            shard = {k.decode() if isinstance(k, bytes) else k: v for k, v in _pairs(shard)}
            assert len(shard["nodes"]) == 2
    finally:
        await client.aclose()


def _pairs(flat: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(flat, dict):
        yield from flat.items()
        return
    it = iter(flat)
    yield from zip(it, it, strict=True)


@pytest.mark.usefixtures("cluster")
async def test_a_key_written_through_one_node_is_read_from_the_cluster() -> None:
    from redis.asyncio import Redis

    key = f"cluster-test:{uuid.uuid4().hex}"
    client = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", p) for p in REDIS_PORTS])
    try:
        await client.initialize()
        # write on the master that owns the key's slot, with a plain connection to that node
        owner = client.get_node_from_key(key)
        assert owner is not None
        assert owner.port is not None
        node = Redis(host="127.0.0.1", port=int(owner.port))
        try:
            assert await node.set(key, b"hello", px=60_000)
        finally:
            await node.aclose()
        # and read it through the cluster client, which routes by slot
        assert await client.get(key) == b"hello"
        await client.delete(key)
    finally:
        await client.aclose()
