"""Timer entries become timer_fired commands with a msg_id derived from the entry, and the
timer loop outlives any error of a round."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis
from aiokafka.errors import KafkaError

from parlour_engine.metrics import EngineMetrics
from parlour_engine.supervisor import Supervisor, TaskState
from parlour_engine.timers import TimerLoop, parse_member, timer_command, timer_member
from parlour_protocol.v1 import CommandEnvelope, RedisKeys, decode_command_envelope, encode
from parlour_protocol.v1.internal import TimerFired, TimerKind


def test_engine_timer_member_round_trip() -> None:
    member = timer_member("room-1", TimerKind.TURN, "12|odd")
    assert member == "room-1|turn|12|odd"
    assert parse_member(member) == ("room-1", TimerKind.TURN, "12|odd")


def test_engine_timer_command_is_deterministic() -> None:
    member = timer_member("room-1", TimerKind.DISCONNECT_GRACE, "u1:3")
    first, second = timer_command(member), timer_command(member)
    # two engines racing on one entry publish the same msg_id: the store applies it once
    assert first.msg_id == second.msg_id
    assert first.key == "room-1"
    assert isinstance(first.payload, TimerFired)
    assert first.payload.kind is TimerKind.DISCONNECT_GRACE
    assert first.actor.user_id == "system"
    decoded = decode_command_envelope(encode(first))
    assert isinstance(decoded, CommandEnvelope)
    assert decoded.msg_id == first.msg_id
    assert timer_command(timer_member("room-1", TimerKind.TURN, "u1:3")).msg_id != first.msg_id


@pytest.mark.parametrize("member", ["no-separators", "room|badkind|1"])
def test_engine_timer_bad_member(member: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        timer_command(member)


# --- the timer loop under its supervisor (real Redis, fake Kafka) -----------------------------


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    try:
        yield client
    finally:
        await client.aclose()


async def _until(condition: Callable[[], bool], what: str, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.mark.integration
async def test_engine_timers_survive_kafka_errors(redis_client: aioredis.Redis) -> None:
    """A publish that raises KafkaError (then works again) costs one round, not the loop:
    every due timer is still published, and later ones too."""
    keys = RedisKeys(prefix=f"t{uuid.uuid4().hex[:8]}.")
    metrics = EngineMetrics()
    published: list[CommandEnvelope] = []
    failures = {"left": 3}

    async def publish(envelope: CommandEnvelope) -> None:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise KafkaError("broker said no")
        published.append(envelope)

    first = timer_member("room-a", TimerKind.TURN, "1")
    await redis_client.zadd(keys.timers(), {first: 0})
    timers = TimerLoop(redis_client, keys, publish, metrics, poll_seconds=0.05)
    supervisor = Supervisor(metrics)
    supervisor.start("timers", timers.tick, interval=timers.poll_seconds, stale_after=5)
    try:
        await _until(lambda: len(published) == 1, "the first timer after three Kafka errors")
        assert published[0].msg_id == timer_command(first).msg_id
        assert failures["left"] == 0
        assert metrics.task_failures.labels(task="timers")._value.get() == 3
        # the loop still runs: a timer armed afterwards fires too
        second = timer_member("room-b", TimerKind.DISCONNECT_GRACE, "u1:1")
        await redis_client.zadd(keys.timers(), {second: 0})
        await _until(lambda: len(published) == 2, "a timer armed after the errors")
        assert published[1].msg_id == timer_command(second).msg_id
        assert await redis_client.zcard(keys.timers()) == 0
        assert supervisor.states() == {"timers": TaskState.OK}
    finally:
        await supervisor.stop()
        await redis_client.delete(keys.timers())


@pytest.mark.integration
async def test_engine_timers_keep_entries_while_publishing_fails(
    redis_client: aioredis.Redis,
) -> None:
    """While Kafka refuses, entries stay in Redis (nothing is lost), the task reports stuck
    once no round has succeeded for `stale_after`, and ok again after a good round."""
    keys = RedisKeys(prefix=f"t{uuid.uuid4().hex[:8]}.")
    metrics = EngineMetrics()
    broken = {"on": True}
    published: list[CommandEnvelope] = []

    async def publish(envelope: CommandEnvelope) -> None:
        if broken["on"]:
            raise KafkaError("not authorised")
        published.append(envelope)

    member = timer_member("room-c", TimerKind.TURN, "7")
    await redis_client.zadd(keys.timers(), {member: 0})
    timers = TimerLoop(redis_client, keys, publish, metrics, poll_seconds=0.05)
    supervisor = Supervisor(metrics)
    supervisor.start("timers", timers.tick, interval=timers.poll_seconds, stale_after=0.5)
    try:
        await _until(lambda: supervisor.states()["timers"] is TaskState.STUCK, "stuck")
        assert await redis_client.zrange(keys.timers(), 0, -1) == [member.encode()]
        broken["on"] = False
        await _until(lambda: len(published) == 1, "the timer once Kafka accepts again")
        await _until(lambda: supervisor.states()["timers"] is TaskState.OK, "ok again")
    finally:
        await supervisor.stop()
        await redis_client.delete(keys.timers())
