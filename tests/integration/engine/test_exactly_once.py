"""Exactly-once edges on real Kafka and Redis: a redelivered direct message sends nothing
new; a rules fault is logged and counted and its sender told; a command whose post-commit
step fails is retried until it goes through and is not reported as failed (within the stall
bound, RECORD_STALL_MAX_SECONDS: past it, engine/test_robustness.py shows the dead letter)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import structlog

from parlour_engine.handler import seeded_rng
from parlour_engine.kafka_consumer import RawCommand
from parlour_engine.kafka_producer import KafkaSink
from parlour_engine.metrics import EngineMetrics
from parlour_engine.rules import dispatch
from parlour_engine.store import PublishedEvent, Record, RoomStore
from parlour_engine.worker import CommandProcessor
from parlour_protocol.v1 import (
    Audience,
    AudienceKind,
    CommandEnvelope,
    EventEnvelope,
    RedisKeys,
    Topics,
    encode,
    utc_now,
)
from parlour_protocol.v1.chat import DirectMessageReceived, SendDirectMessage
from parlour_protocol.v1.rooms import CreateRoom, JoinRoom, LeaveRoom
from tests.support.engine_harness import Bus, EngineProcess, actor, running_engine
from tests.support.rules_table import rules_config


@pytest.fixture
async def engine_env(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, create_topics, tmp_path: Path
) -> AsyncIterator[tuple[EngineProcess, Bus]]:
    async with running_engine(
        kafka_bootstrap, redis_url, topic_prefix, create_topics, tmp_path
    ) as env:
        yield env


def _caused(bus: Bus, command: CommandEnvelope) -> list[EventEnvelope]:
    return [e for e in bus.events if e.causation_id == command.msg_id]


async def test_engine_redelivered_direct_message_is_sent_once(
    engine_env: tuple[EngineProcess, Bus], redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    _, bus = engine_env
    keys = RedisKeys(prefix=topic_prefix)
    tag = uuid.uuid4().hex[:6]
    sender, recipient = actor(0, tag), actor(1, tag)
    dm = await bus.send(SendDirectMessage(recipient_id=recipient.user_id, content="hi"), sender)
    await bus.wait_for(lambda e: e.causation_id == dm.msg_id, what="the direct message")
    again = await bus.send(SendDirectMessage(recipient_id=recipient.user_id, content="x"), sender)
    await bus.send(SendDirectMessage(recipient_id="ignored", content="x"), sender, envelope=dm)
    await bus.send(SendDirectMessage(recipient_id="ignored", content="x"), sender, envelope=dm)
    # same key, same partition, handled in order: once this one is out, the redeliveries
    # before it have been handled
    sentinel = await bus.send(
        SendDirectMessage(recipient_id=recipient.user_id, content="z"), sender
    )
    await bus.wait_for(lambda e: e.causation_id == sentinel.msg_id, what="the sentinel")
    assert len(_caused(bus, dm)) == 1
    assert len(_caused(bus, again)) == 1
    record = await redis_client.get(keys.user_direct_applied(sender.user_id, str(dm.msg_id)))
    assert record == b"s"
    assert await redis_client.ttl(keys.user_direct_applied(sender.user_id, str(dm.msg_id))) > 0


async def test_engine_direct_message_recorded_but_unsent_sends_the_record(
    engine_env: tuple[EngineProcess, Bus], redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    """An engine died after recording a direct message and before Kafka acknowledged its
    event: the redelivery sends the recorded event (same id), not a new one."""
    _, bus = engine_env
    keys = RedisKeys(prefix=topic_prefix)
    tag = uuid.uuid4().hex[:6]
    sender, recipient = actor(0, tag), actor(1, tag)
    msg_id = uuid.uuid4()
    now = utc_now()
    recorded = EventEnvelope(
        event_id=uuid.uuid4(),
        type="chat.event.message_received",
        audience=Audience(kind=AudienceKind.USERS, user_ids=[recipient.user_id, sender.user_id]),
        causation_id=msg_id,
        timestamp=now,
        payload=DirectMessageReceived(
            message_id="m-recorded",
            sender_id=sender.user_id,
            sender_name=sender.username,
            recipient_id=recipient.user_id,
            content="recorded",
            sent_at=now,
        ),
    )
    pending = Record(
        events=[PublishedEvent(recipient.user_id, None, recorded.model_dump_json())]
    ).dumps()
    key = keys.user_direct_applied(sender.user_id, str(msg_id))
    await redis_client.set(key, "p:" + pending, ex=600)
    dm = await bus.send(
        SendDirectMessage(recipient_id=recipient.user_id, content="hi"), sender, msg_id=msg_id
    )
    sentinel = await bus.send(
        SendDirectMessage(recipient_id=recipient.user_id, content="z"), sender
    )
    await bus.wait_for(lambda e: e.causation_id == sentinel.msg_id, what="the sentinel")
    caused = _caused(bus, dm)
    assert [e.event_id for e in caused] == [recorded.event_id]
    assert caused[0].payload.content == "recorded"  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while await redis_client.get(key) != b"s":  # marked once Kafka acknowledged it
        assert time.monotonic() < deadline, "the record was never marked sent"
        await asyncio.sleep(0.05)


async def test_engine_failing_index_write_is_retried_not_reported(
    engine_env: tuple[EngineProcess, Bus], redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    """The join commits, then its user-rooms index write fails (the host's index key has
    the wrong type; nothing reads it before the commit): the engine retries the post-commit
    work instead of dead-lettering the command and telling the joiner internal_error; once
    the key is fixed (well within the stall bound), the join goes out."""
    engine, bus = engine_env
    keys = RedisKeys(prefix=topic_prefix)
    tag = uuid.uuid4().hex[:6]
    host, guest = actor(0, tag), actor(1, tag)
    room_id = str(uuid.uuid4())
    name = f"Idx {tag}"
    create = await bus.send(
        CreateRoom(game_type="bigger_dice", room_name=name), host, room_id=room_id
    )
    await bus.wait_caused(create, "games.event.room_state")
    await redis_client.set(keys.user_rooms(host.user_id), "not a hash")
    join = await bus.send(JoinRoom(game_type="bigger_dice", room_name=name), guest, room_id=room_id)
    deadline = time.monotonic() + 30
    while "command_after_commit_retry" not in engine.log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"no retry logged: {engine.log_tail()}"
        await asyncio.sleep(0.05)
    await redis_client.delete(keys.user_rooms(host.user_id))
    await bus.wait_caused(join, "games.event.lobby_joined")
    # the events go out after the index writes: the index is there now
    assert await redis_client.hget(keys.user_rooms(guest.user_id), room_id) == b"lobby"
    sentinel = await bus.send(LeaveRoom(room_id=room_id), host)
    await bus.wait_caused(sentinel)
    assert not [e for e in _caused(bus, join) if e.type == "system.error"]
    metrics = await engine.metrics()
    assert "parlour_engine_dlq_total 0.0" in metrics


async def test_engine_rules_fault_is_logged_and_counted(
    kafka_bootstrap: str,
    redis_url: str,
    topic_prefix: str,
    create_topics: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topics = Topics(prefix=topic_prefix)
    await create_topics(kafka_bootstrap, topics.with_partitions())

    def broken(_ctx: Any, _payload: Any) -> None:
        raise ZeroDivisionError("leave_room is broken")

    monkeypatch.setitem(dispatch.HANDLERS, LeaveRoom, broken)
    redis = aioredis.from_url(redis_url)
    sink = KafkaSink([kafka_bootstrap], "test-fault")
    await sink.start()
    bus = Bus(kafka_bootstrap, topics)
    await bus.start()
    metrics = EngineMetrics()
    keys = RedisKeys(prefix=topic_prefix)
    processor = CommandProcessor(
        redis=redis,
        store=RoomStore(redis, keys, applied_ttl_seconds=600, ended_room_ttl_seconds=600),
        sink=sink,
        metrics=metrics,
        config=rules_config(),
        events_topic=topics.events,
        dlq_topic=topics.commands_dlq,
        max_tries=3,
        rng_for=seeded_rng(1),
    )
    try:
        host = actor(0, uuid.uuid4().hex[:6])
        room_id = str(uuid.uuid4())

        def envelope(payload: Any) -> CommandEnvelope:
            return CommandEnvelope(
                msg_id=uuid.uuid4(),
                type=payload.type,
                key=room_id,
                room_id=room_id,
                actor=host,
                connection_id="c-1",
                gateway_id="g-1",
                request_id="r-1",
                payload=payload,
            )

        create = envelope(CreateRoom(game_type="bigger_dice", room_name=f"F {room_id[:6]}"))
        leave = envelope(LeaveRoom(room_id=room_id))
        with structlog.testing.capture_logs(
            processors=[structlog.contextvars.merge_contextvars]
        ) as logs:
            await processor.process_batch(
                [
                    RawCommand(key=room_id, value=encode(c), offset=i)
                    for i, c in enumerate((create, leave))
                ]
            )
        error = await bus.wait_caused(leave, "system.error")
        assert error.payload.code == "internal_error"  # type: ignore[attr-defined]
        faults = [entry for entry in logs if entry["event"] == "rules_fault"]
        assert len(faults) == 1
        assert faults[0]["log_level"] == "error"
        assert faults[0]["msg_id"] == str(leave.msg_id)
        assert faults[0]["room_id"] == room_id
        assert "ZeroDivisionError" in faults[0]["notes"][0]
        sample = metrics.registry.get_sample_value(
            "parlour_engine_commands_total",
            {"type": "games.command.leave_room", "outcome": "fault"},
        )
        assert sample == 1
        assert metrics.registry.get_sample_value("parlour_engine_dlq_total") == 0
        stored = await redis.get(keys.room_state(room_id))
        assert stored is not None
        assert host.user_id.encode() in stored  # nothing took effect
    finally:
        await bus.stop()
        await sink.stop()
        await redis.aclose()
