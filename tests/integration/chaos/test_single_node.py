"""The single-node topology's stores restarted under 20 concurrent games (2 engines, 2
gateways): Redis stopped and started again mid-game (its append-only file brings the data
back), and the Kafka broker SIGKILLed and started again. Each uses a server of the test's own
(the shared ones are never restarted); the engines and gateways recover by themselves."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.support.chaos import GAMES, ChaosRun, ChaosStack, OwnBroker, assert_clean
from tests.support.own_redis import OwnRedis

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[OwnRedis]:
    redis = OwnRedis(tmp_path / "redis")
    await redis.start()
    try:
        yield redis
    finally:
        redis.stop(signal.SIGTERM)


@pytest.mark.chaos_short
async def test_redis_restart(
    own_redis: OwnRedis, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    stack = ChaosStack(
        bootstrap=kafka_bootstrap, redis_url=own_redis.url, prefix=topic_prefix, log_dir=tmp_path
    )
    client = aioredis.from_url(own_redis.url)
    run = ChaosRun(stack, games=GAMES)
    try:
        await stack.start()
        await run.start()
        at = run.mark_fault()
        # SIGTERM: Redis fsyncs its append-only file and exits; started again, it loads it
        own_redis.stop(signal.SIGTERM)
        await own_redis.start()
        run.mark_repaired()
        await run.all_progressed(at)
        result = await run.finish_and_verify("Redis restart (single node, AOF)", client)
    finally:
        await run.close()
        await client.aclose()
        await stack.stop()
    assert_clean(result)


async def test_broker_restart(redis_url: str, topic_prefix: str, tmp_path: Path) -> None:
    broker = OwnBroker(tmp_path / "kafka")
    await broker.start()
    stack = ChaosStack(
        bootstrap=broker.bootstrap, redis_url=redis_url, prefix=topic_prefix, log_dir=tmp_path
    )
    client = aioredis.from_url(redis_url)
    run = ChaosRun(stack, games=GAMES)
    try:
        await stack.start()
        await run.start()
        at = run.mark_fault()
        broker.kill()
        await broker.start()
        run.mark_repaired()
        await run.all_progressed(at)
        result = await run.finish_and_verify("Kafka broker restart (single node)", client)
    finally:
        await run.close()
        await client.aclose()
        await stack.stop()
        broker.kill()
    assert_clean(result)
