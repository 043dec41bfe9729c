"""A batch that fails deterministically outside any command's own retries does not wedge its
partition: after a few tries it is taken record by record, the record that still fails is
dead-lettered (its sender gets internal_error, unless it took effect: then its events are
sent again instead), and the next command of the same room is
handled while the cause is still there.

The cause here: the engine's timers key holds a string, so arming the turn timer when the
game starts fails with WRONGTYPE on every try (a Redis reply error, not an outage)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from parlour_protocol.v1 import RedisKeys, Topics
from parlour_protocol.v1.chat import ChatChannel, SendChat
from tests.support.engine_harness import Bus, EngineProcess, actor, running_engine, start_game

if TYPE_CHECKING:  # the fixture's type only
    from tests.integration.conftest import CreateTopics


@pytest.fixture
async def engine_and_bus(
    kafka_bootstrap: str,
    redis_url: str,
    topic_prefix: str,
    create_topics: CreateTopics,
    tmp_path: Path,
) -> AsyncIterator[tuple[EngineProcess, Bus]]:
    async with running_engine(
        kafka_bootstrap, redis_url, topic_prefix, create_topics, tmp_path
    ) as env:
        yield env


async def test_engine_failing_batch_is_isolated_and_the_partition_moves_on(
    engine_and_bus: tuple[EngineProcess, Bus],
    redis_client: aioredis.Redis,
    kafka_bootstrap: str,
    topic_prefix: str,
) -> None:
    engine, bus = engine_and_bus
    keys = RedisKeys(prefix=topic_prefix)
    await redis_client.set(keys.timers(), "not a sorted set")
    try:
        tag = uuid.uuid4().hex[:6]
        players = [actor(0, tag), actor(1, tag)]
        room_id, _ = await start_game(bus, players, room_name=f"iso {tag}")
        starter = [c for c in bus.sent if c.type == "games.command.ready"][-1]
        # the same room (so the same partition), with the timers key still broken: it is
        # handled once the ready before it was given up on
        chat = await bus.send(
            SendChat(room_id=room_id, channel=ChatChannel.PLAYERS, content="still here"),
            players[0],
        )
        await bus.wait_caused(chat, "games.event.chat_message", within=60)

        dead = await _dead_letters(kafka_bootstrap, Topics(prefix=topic_prefix), within=30)
        assert any(
            str(starter.msg_id).encode() in value and headers.get("x-reason") == b"after_commit"
            for value, headers in dead
        ), dead
        # the ready took effect (the game started), so its sender was never told it failed;
        # the chat's answer came after anything the ready produced (one partition, in order)
        assert not [
            e for e in bus.events if e.type == "system.error" and e.causation_id == starter.msg_id
        ]
        assert "batch_failed" in engine.log_path.read_text(errors="replace")
    finally:
        await redis_client.delete(keys.timers())


async def _dead_letters(
    bootstrap: str, topics: Topics, within: float
) -> list[tuple[bytes, dict[str, bytes]]]:
    consumer = AIOKafkaConsumer(
        topics.commands_dlq,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=int(within * 1000),
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=int(within * 1000), max_records=100)
        return [
            (record.value or b"", dict(record.headers))
            for records in batches.values()
            for record in records
        ]
    finally:
        await consumer.stop()
