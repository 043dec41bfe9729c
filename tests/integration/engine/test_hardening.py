"""Issue 8 (hardening) against real engine processes on real Kafka and Redis: a record that can
never be published does not wedge the engine, nor the engine that re-reads it after a restart;
a redelivery older than the kept msg_id records changes nothing; read-only commands and
refusals leave no idempotency record; a 200 x 1,000-character history answers within the
event budget, paged. After each hostile sequence an ordinary 2-player game finishes on the
same engine and the stored state equals the rules replayed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from parlour_protocol.v1 import RedisKeys, Topics
from parlour_protocol.v1.chat import ChatChannel, GetChatHistory, SendChat
from parlour_protocol.v1.limits import EVENT_MAX_BYTES
from parlour_protocol.v1.rooms import CreateRoom, JoinAsSpectator, JoinRoom, RejoinRoom
from parlour_protocol.v1.topics import COMMANDS, PARTITIONS
from tests.support.engine_harness import (
    Bus,
    EngineProcess,
    actor,
    play_game,
    replayed_state,
    running_engine,
)
from tests.support.rules_table import rules_config

SEED = 1234
CONFIG = rules_config(turn_timeout_seconds=600)
EVENTS_TOPIC_MAX_BYTES = 64 * 1024
"""The poisoned-record test's events topic takes at most this much per record: an event
between it and EVENT_MAX_BYTES passes the engine's budget and is refused by Kafka."""


async def _game_still_finishes(bus: Bus, redis: aioredis.Redis, prefix: str, tag: str) -> None:
    """An ordinary 2-player game on the same engine, and the stored state is the replay."""
    game = await play_game(bus, [actor(0, f"g{tag}"), actor(1, f"g{tag}")], room_name=f"G {tag}")
    stored, replayed = await replayed_state(redis, prefix, game, seed=SEED, config=CONFIG)
    assert stored is not None
    assert replayed is not None
    assert stored.model_dump() == replayed.model_dump()


async def _dead_letters(
    bootstrap: str, topics: Topics, at_least: int, within_ms: int = 30_000
) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        part = TopicPartition(topics.commands_dlq, 0)
        consumer.assign([part])
        await consumer.seek_to_beginning(part)
        dead: list[ConsumerRecord[bytes, bytes]] = []
        while len(dead) < at_least:
            batch = await consumer.getmany(part, timeout_ms=within_ms)
            assert batch, f"only {len(dead)} dead letters arrived, wanted {at_least}"
            dead.extend(batch[part])
        return dead
    finally:
        await consumer.stop()


async def _rewind_group(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    """Set the (stopped, so empty) engine group's committed offsets: the next engine of the
    group reads those records again, as after a crash before the commit."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def _restart(engine: EngineProcess) -> None:
    assert engine.stop() == 0, engine.log_tail()
    engine.start()
    await engine.wait_ready()


async def _inflate(redis: aioredis.Redis, keys: RedisKeys, room_id: str, banned: int) -> None:
    """Give the room a ban list of `banned` made-up 64-character ids straight in Redis (what an
    unbounded ban list grew to), with the version bumped so no cached copy is used."""
    raw = await redis.get(keys.room_state(room_id))
    assert raw is not None
    state = json.loads(raw)
    state["banned"] = [{"user_id": f"x{n:063d}", "username": f"n{n:063d}"} for n in range(banned)]
    state["version"] += 1
    await redis.set(keys.room_state(room_id), json.dumps(state, separators=(",", ":")))


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


@pytest.fixture
def small_events_topic(
    kafka_bootstrap: str, topic_prefix: str, create_topics: Any
) -> Callable[[], Any]:
    async def make() -> None:
        topics = Topics(prefix=topic_prefix)
        await create_topics(kafka_bootstrap, topics.with_partitions())
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.alter_configs(
                [
                    ConfigResource(
                        ConfigResourceType.TOPIC,
                        topics.events,
                        configs={"max.message.bytes": str(EVENTS_TOPIC_MAX_BYTES)},
                    )
                ]
            )
        finally:
            await admin.close()

    return make


async def test_hardening_poisoned_record_wedges_no_engine(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: aioredis.Redis,
    topic_prefix: str,
    create_topics: Any,
    small_events_topic: Callable[[], Any],
    tmp_path: Path,
) -> None:
    """The incident: a spectator's join commits, then Kafka refuses its room_state for good.
    The engine dead-letters the record (reason publish_refused), tells the joiner
    internal_error and goes on; a restarted engine of the same group that reads the record
    again does the same instead of wedging on it."""
    await small_events_topic()
    topics = Topics(prefix=topic_prefix)
    keys = RedisKeys(prefix=topic_prefix)
    tag = uuid.uuid4().hex[:6]
    async with running_engine(
        kafka_bootstrap, redis_url, topic_prefix, create_topics, tmp_path
    ) as (engine, bus):
        host, room_id, name = actor(0, tag), str(uuid.uuid4()), f"Poison {tag}"
        create = await bus.send(
            CreateRoom(game_type="bigger_dice", room_name=name), host, room_id=room_id
        )
        await bus.wait_caused(create, "games.event.room_state")
        await _inflate(redis_client, keys, room_id, banned=500)  # a ~80 KB room_state

        join = await bus.send(JoinAsSpectator(room_name=name), actor(1, tag))
        error = await bus.wait_caused(join, "system.error")
        assert error.payload.code == "internal_error"  # type: ignore[attr-defined]
        [dead] = await _dead_letters(kafka_bootstrap, topics, 1)
        headers = {k: v.decode() for k, v in dead.headers}
        assert headers["x-reason"] == "publish_refused"
        assert "MessageSizeTooLarge" in headers["x-error"]
        assert json.loads(dead.value or b"")["msg_id"] == str(join.msg_id)
        # other rooms keep working on the same engine
        await _game_still_finishes(bus, redis_client, topic_prefix, f"a{tag}")
        metrics = await engine.metrics()
        assert _metric(metrics, 'parlour_engine_dead_letters_total{reason="publish_refused"}') == 1

        # a successor reads the poisoned record again (the group's offset is set back to it)
        topic, partition, offset = headers["x-origin"].rsplit(":", 2)
        assert engine.stop() == 0, engine.log_tail()
        await _rewind_group(
            kafka_bootstrap,
            f"{topic_prefix}parlour-engine",
            {TopicPartition(topic, int(partition)): int(offset)},
        )
        engine.start()
        await engine.wait_ready()
        # the successor re-reads the records after the poisoned one too: those already took
        # effect, so at most they are re-sent (reason after_commit, when the refused record
        # made their batch fail); the poisoned one must be refused again, not wedge the engine
        seen: list[tuple[str, str]] = []
        while [o for o, _ in seen].count(headers["x-origin"]) < 2:
            again = await _dead_letters(kafka_bootstrap, topics, len(seen) + 1)
            seen = [
                (dict(r.headers)["x-origin"].decode(), dict(r.headers)["x-reason"].decode())
                for r in again
            ]
        poisoned = [reason for origin, reason in seen if origin == headers["x-origin"]]
        assert poisoned == ["publish_refused"] * 2, seen
        others = {reason for origin, reason in seen if origin != headers["x-origin"]}
        assert others <= {"after_commit"}, seen
        await _game_still_finishes(bus, redis_client, topic_prefix, f"b{tag}")


async def test_hardening_late_redelivery_changes_nothing(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: aioredis.Redis,
    topic_prefix: str,
    create_topics: Any,
    tmp_path: Path,
) -> None:
    """A room keeps only its newest 10 msg_id records (ENGINE_APPLIED_KEEP=10); its 15
    commands are read again from offset 0 by a restarted engine: the create and the four
    oldest chats are caught by the offset watermark, the rest by their records. The state and
    the chat are as they were, and no event with a new id is published."""
    keys = RedisKeys(prefix=topic_prefix)
    topics = Topics(prefix=topic_prefix)
    tag = uuid.uuid4().hex[:6]
    async with running_engine(
        kafka_bootstrap,
        redis_url,
        topic_prefix,
        create_topics,
        tmp_path,
        extra={"ENGINE_APPLIED_KEEP": "10"},
    ) as (engine, bus):
        host, room_id = actor(0, tag), str(uuid.uuid4())
        create = await bus.send(
            CreateRoom(game_type="bigger_dice", room_name=f"Late {tag}"), host, room_id=room_id
        )
        await bus.wait_caused(create, "games.event.room_state")
        for n in range(14):
            chat = await bus.send(
                SendChat(room_id=room_id, channel=ChatChannel.LOBBY, content=f"line {n}"), host
            )
            await bus.wait_caused(chat, "games.event.chat_message")
        state_before = await redis_client.get(keys.room_state(room_id))
        chat_before = await redis_client.lrange(keys.room_chat(room_id, "lobby"), 0, -1)
        assert len(chat_before) == 14
        assert await redis_client.hget(keys.room_applied(room_id), str(create.msg_id)) is None
        ids_before = {e.event_id for e in bus.events}

        assert engine.stop() == 0, engine.log_tail()
        await _rewind_group(
            kafka_bootstrap,
            f"{topic_prefix}parlour-engine",
            {TopicPartition(topics.commands, p): 0 for p in range(PARTITIONS[COMMANDS])},
        )
        engine.start()
        await engine.wait_ready()
        # the room's commands share one partition: once this read is answered, every earlier
        # record of the room was handled again
        probe = await bus.send(GetChatHistory(room_id=room_id, channel=ChatChannel.LOBBY), host)
        await bus.wait_caused(probe, "games.event.chat_history")

        assert await redis_client.get(keys.room_state(room_id)) == state_before
        assert await redis_client.lrange(keys.room_chat(room_id, "lobby"), 0, -1) == chat_before
        new = [e for e in bus.events if e.event_id not in ids_before]
        assert {e.causation_id for e in new} <= {probe.msg_id}
        # the replay oracle needs the record of every command of a game: the usual keep
        engine.env["ENGINE_APPLIED_KEEP"] = "1000"
        await _restart(engine)
        await _game_still_finishes(bus, redis_client, topic_prefix, tag)


async def test_hardening_reads_and_refusals_store_no_record(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: aioredis.Redis,
    topic_prefix: str,
    create_topics: Any,
    tmp_path: Path,
) -> None:
    """Chat history, a waiting room's rejoin answer and a non-member's refused commands write
    no idempotency record; a wrong password (which counts an attempt) does."""
    keys = RedisKeys(prefix=topic_prefix)
    tag = uuid.uuid4().hex[:6]
    async with running_engine(
        kafka_bootstrap, redis_url, topic_prefix, create_topics, tmp_path
    ) as (_, bus):
        host, stranger, room_id = actor(0, tag), actor(9, tag), str(uuid.uuid4())
        name = f"Quiet {tag}"
        create = await bus.send(
            CreateRoom(game_type="bigger_dice", room_name=name, password="open sesame"),
            host,
            room_id=room_id,
        )
        await bus.wait_caused(create, "games.event.room_state")
        applied = keys.room_applied(room_id)
        records_before = await redis_client.hlen(applied)

        history = await bus.send(GetChatHistory(room_id=room_id, channel=ChatChannel.LOBBY), host)
        await bus.wait_caused(history, "games.event.chat_history")
        rejoin = await bus.send(RejoinRoom(room_id=room_id), host, room_id=room_id)
        await bus.wait_caused(rejoin, "games.event.room_state")
        refused = [
            await bus.send(
                SendChat(room_id=room_id, channel=ChatChannel.LOBBY, content="hi"), stranger
            ),
            await bus.send(GetChatHistory(room_id=room_id, channel=ChatChannel.LOBBY), stranger),
        ]
        for command in refused:
            await bus.wait_caused(command, "system.error")
        for command in (history, rejoin, *refused):
            assert await redis_client.hget(applied, str(command.msg_id)) is None
        assert await redis_client.hlen(applied) == records_before

        wrong = await bus.send(JoinRoom(room_name=name, password="guess"), stranger)
        error = await bus.wait_for(
            lambda e: e.causation_id == wrong.msg_id and e.type == "system.error",
            what="wrong_password",
        )
        assert error.payload.code == "wrong_password"  # type: ignore[attr-defined]
        assert await redis_client.hget(applied, str(wrong.msg_id)) is not None
        await _game_still_finishes(bus, redis_client, topic_prefix, tag)


async def test_hardening_long_chat_history_is_paged_within_the_budget(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: aioredis.Redis,
    topic_prefix: str,
    create_topics: Any,
    tmp_path: Path,
) -> None:
    """200 messages of 1,000 four-byte characters (~0.8 MB): get_chat_history(limit=200)
    answers newest first within EVENT_MAX_BYTES with has_more, and `before` pages back
    through all of them in order."""
    tag = uuid.uuid4().hex[:6]
    async with running_engine(
        kafka_bootstrap, redis_url, topic_prefix, create_topics, tmp_path
    ) as (_, bus):
        host, room_id = actor(0, tag), str(uuid.uuid4())
        create = await bus.send(
            CreateRoom(game_type="bigger_dice", room_name=f"Talk {tag}"), host, room_id=room_id
        )
        await bus.wait_caused(create, "games.event.room_state")
        last = create
        for n in range(200):
            content = f"{n:03d}" + "\U0001d11e" * 997
            last = await bus.send(
                SendChat(room_id=room_id, channel=ChatChannel.LOBBY, content=content), host
            )
        await bus.wait_caused(last, "games.event.chat_message", within=60)

        pages: list[list[str]] = []
        before: str | None = None
        while True:
            ask = await bus.send(
                GetChatHistory(
                    room_id=room_id, channel=ChatChannel.LOBBY, limit=200, before=before
                ),
                host,
            )
            answer = await bus.wait_caused(ask, "games.event.chat_history")
            assert len(answer.model_dump_json().encode()) <= EVENT_MAX_BYTES
            history: Any = answer.payload
            assert history.messages, "an empty page"
            pages.append([m.content[:3] for m in history.messages])
            if not history.has_more:
                break
            assert len(pages) < 10, "has_more never ended"
            before = history.messages[0].message_id
        assert len(pages) > 1  # the first answer could not hold them all
        assert pages[0][-1] == "199"  # newest first
        every = [n for page in reversed(pages) for n in page]
        assert every == [f"{n:03d}" for n in range(200)]
        await _game_still_finishes(bus, redis_client, topic_prefix, tag)
