"""The real broker and the real Redis do what the services rely on."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.support.paths import REPO_ROOT

# the `create_topics` fixture (see conftest.py)
CreateTopics = Callable[..., Awaitable[list[str]]]

ROOT = REPO_ROOT


async def test_kafka_round_trip_through_a_consumer_group(
    kafka_bootstrap: str, create_topics: CreateTopics, topic_prefix: str
) -> None:
    [topic] = await create_topics(kafka_bootstrap, ["infra.roundtrip"], 3)
    assert topic.startswith(topic_prefix)
    sent = [(f"room-{i % 2}".encode(), f"msg-{i}".encode()) for i in range(6)]

    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for key, value in sent:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{topic_prefix}group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    received: list[tuple[bytes, bytes, int]] = []
    try:
        async with asyncio.timeout(30):
            while len(received) < len(sent):
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    received += [(r.key, r.value, r.partition) for r in records]
        await consumer.commit()
        committed = {tp.partition: await consumer.committed(tp) for tp in consumer.assignment()}
    finally:
        await consumer.stop()

    assert sorted((k, v) for k, v, _ in received) == sorted(sent)
    # one key, one partition, in the order sent: what keeps a room's commands in order
    for key in {k for k, _ in sent}:
        assert len({p for k, _, p in received if k == key}) == 1
        assert [v for k, v, _ in received if k == key] == [v for k, v in sent if k == key]
    # the group stored its position: a restarted consumer would not see these again
    assert sum(offset or 0 for offset in committed.values()) == len(sent)


async def test_redis_write_and_read(redis_client: aioredis.Redis, topic_prefix: str) -> None:
    key = f"{topic_prefix}infra:{uuid.uuid4().hex}"
    assert await redis_client.ping()
    await redis_client.set(key, b"hello", px=60_000)
    await redis_client.hset(f"{key}:h", mapping={"seq": 1, "state": "lobby"})
    try:
        assert await redis_client.get(key) == b"hello"
        assert await redis_client.hincrby(f"{key}:h", "seq", 1) == 2
        assert await redis_client.hgetall(f"{key}:h") == {b"seq": b"2", b"state": b"lobby"}
        assert 0 < await redis_client.pttl(key) <= 60_000
    finally:
        await redis_client.delete(key, f"{key}:h")


def test_infra_status_runs_as_the_makefile_runs_it(kafka_bootstrap: str, redis_url: str) -> None:
    """`python scripts/infra status` (the package run as a directory, as `make infra-status`
    does) finds the Kafka and the Redis the tests use and says they are up."""
    env = {
        "PATH": "/usr/bin:/bin",
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "REDIS_URL": redis_url,
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "infra"), "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = result.stdout.splitlines()
    assert any(line.startswith("redis ") and " up (" in line for line in lines), result
    assert any(line.startswith("kafka ") and " up (" in line for line in lines), result
