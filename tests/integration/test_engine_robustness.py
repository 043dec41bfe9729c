"""Bad input and deadlines on a real engine: malformed commands go to the dead-letter topic
without stopping the engine, a turn that nobody plays is played by the server when its timer
fires, and the health endpoints tell the truth."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from engine_harness import Bus, EngineProcess, actor, running_engine, start_game

from parlour_protocol.v1 import Topics
from parlour_protocol.v1.rooms import CreateRoom


@pytest.fixture
async def fast_timer_engine(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, create_topics, tmp_path: Path
) -> AsyncIterator[tuple[EngineProcess, Bus]]:
    async with running_engine(
        kafka_bootstrap,
        redis_url,
        topic_prefix,
        create_topics,
        tmp_path,
        extra={"ENGINE_TURN_TIMEOUT_SECONDS": "1", "ENGINE_TIMER_POLL_MS": "50"},
    ) as env:
        yield env


async def test_engine_malformed_commands_go_to_the_dlq_and_work_goes_on(
    fast_timer_engine: tuple[EngineProcess, Bus], kafka_bootstrap: str, topic_prefix: str
) -> None:
    engine, bus = fast_timer_engine
    topics = Topics(prefix=topic_prefix)
    assert bus.producer is not None
    garbage = [
        b"not json at all",
        b'{"msg_id": "5c3e6a52-1f7e-4c55-9d7d-2d1e0f3c4b5a", "type": "games.command.nope"}',
        b'{"type": "games.command.create_room", "payload": {"type": "games.command.create_room"}}',
    ]
    for value in garbage:
        await bus.producer.send_and_wait(topics.commands, value, key=b"someone")

    # the engine is still working: a valid command after the garbage takes effect
    host = actor(0, uuid.uuid4().hex[:6])
    create = await bus.send(
        CreateRoom(game_type="bigger_dice", room_name=f"after {uuid.uuid4().hex[:6]}"),
        host,
        room_id=str(uuid.uuid4()),
    )
    await bus.wait_caused(create, "games.event.room_state")

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        part = TopicPartition(topics.commands_dlq, 0)
        consumer.assign([part])
        await consumer.seek_to_beginning(part)
        dead: list = []
        while len(dead) < len(garbage):
            batch = await consumer.getmany(part, timeout_ms=10_000)
            assert batch, f"only {len(dead)} dead letters arrived"
            dead.extend(batch[part])
    finally:
        await consumer.stop()
    assert [r.value for r in dead] == garbage
    for record in dead:
        headers = dict(record.headers)
        assert headers["x-error"].startswith(b"undecodable:")
        assert record.key == b"someone"

    metrics = await engine.metrics()
    assert "parlour_engine_dlq_total 3.0" in metrics


async def test_engine_turn_timer_plays_for_an_idle_player(
    fast_timer_engine: tuple[EngineProcess, Bus],
) -> None:
    _, bus = fast_timer_engine
    tag = uuid.uuid4().hex[:6]
    room_id, _ = await start_game(bus, [actor(0, tag), actor(1, tag)], room_name=f"idle {tag}")
    # nobody rolls: the 1 s turn timer fires and the server rolls for the player
    rolled = await bus.wait_for(
        lambda e: e.type == "games.event.bigger_dice.rolled" and e.payload.auto,  # type: ignore[attr-defined]
        room_id=room_id,
        within=15,
        what="a server roll after the turn timeout",
    )
    assert rolled.seq is not None
    # the timer command went through the commands topic like any other: the event's cause
    # is a msg_id nobody in this test sent
    assert rolled.causation_id not in {c.msg_id for c in bus.sent}


async def test_engine_health_ready_metrics(
    fast_timer_engine: tuple[EngineProcess, Bus],
) -> None:
    engine, _ = fast_timer_engine
    base = f"http://127.0.0.1:{engine.health_port}"
    async with httpx.AsyncClient() as client:
        health = await client.get(f"{base}/health")
        ready = await client.get(f"{base}/ready")
        metrics = await client.get(f"{base}/metrics")
        missing = await client.get(f"{base}/nope")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"redis": True, "kafka": True}
    assert metrics.status_code == 200
    assert "parlour_engine_command_seconds_bucket" in metrics.text
    assert "parlour_engine_active_rooms" in metrics.text
    assert missing.status_code == 404
