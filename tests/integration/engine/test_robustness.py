"""Bad input and deadlines on a real engine: malformed commands go to the dead-letter topic
without stopping the engine, a turn that nobody plays is played by the server when its timer
fires, and the health endpoints tell the truth. Then the failure taxonomy on a real Redis
with scripted Kafka answers: a refusal for good is dead-lettered at once, an outage never,
a stall only after its bound; an over-budget event commits nothing; dead letters hide
passwords and always fit."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from parlour_engine.failures import InfraError
from parlour_engine.handler import seeded_rng
from parlour_engine.kafka_consumer import RawCommand
from parlour_engine.kafka_producer import Headers
from parlour_engine.metrics import EngineMetrics
from parlour_engine.store import RoomStore
from parlour_engine.worker import CommandProcessor
from parlour_protocol.v1 import Actor, CommandEnvelope, RedisKeys, Topics, encode
from parlour_protocol.v1.limits import EVENT_MAX_BYTES
from parlour_protocol.v1.records import decode_event_record
from parlour_protocol.v1.rooms import CreateRoom, JoinAsSpectator, JoinRoom
from parlour_protocol.v1.system import Error
from tests.support.engine_harness import Bus, EngineProcess, actor, running_engine, start_game
from tests.support.rules_table import rules_config


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
        extra={"ENGINE_TURN_TIMEOUT_SECONDS": "1", "ENGINE_TIMER_POLL_SECONDS": "0.05"},
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


# --- the failure taxonomy, on a real Redis with a sink whose Kafka answers are scripted ----


class ScriptedSink:
    """An EventSink standing in for the producer: `refuse(topic, value)` picks the exception
    a send's acknowledgement fails with (None = acknowledged); `raise_now` makes `send`
    itself raise, as aiokafka does for a record over max_request_size."""

    def __init__(self) -> None:
        self.acked: list[tuple[str, str, bytes, Headers | None]] = []
        self.refuse: Callable[[str, bytes], BaseException | None] = lambda _t, _v: None
        self.raise_now: Callable[[str, bytes], BaseException | None] = lambda _t, _v: None

    async def send(
        self, topic: str, key: str, value: bytes, headers: Headers | None = None
    ) -> Awaitable[Any]:
        immediate = self.raise_now(topic, value)
        if immediate is not None:
            raise immediate
        ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        failure = self.refuse(topic, value)
        if failure is None:
            self.acked.append((topic, key, value, headers))
            ack.set_result(None)
        else:
            ack.set_exception(failure)
        return ack

    def of(self, topic: str) -> list[tuple[str, str, bytes, Headers | None]]:
        return [s for s in self.acked if s[0] == topic]


@dataclass
class Rig:
    processor: CommandProcessor
    sink: ScriptedSink
    metrics: EngineMetrics
    keys: RedisKeys
    redis: aioredis.Redis
    offsets: int = 0

    def envelope(self, payload: Any, who: Actor, room_id: str | None) -> CommandEnvelope:
        return CommandEnvelope(
            msg_id=uuid.uuid4(),
            type=payload.type,
            key=room_id or who.user_id,
            room_id=room_id,
            actor=who,
            connection_id=f"c-{who.user_id}",
            gateway_id="g-1",
            request_id=f"r-{uuid.uuid4().hex[:6]}",
            payload=payload,
        )

    def raw(self, command: CommandEnvelope) -> RawCommand:
        self.offsets += 1
        return RawCommand(
            key=command.key, value=encode(command), topic="cmd", partition=0, offset=self.offsets
        )

    def dead(self, reason: str) -> list[tuple[str, str, bytes, Headers | None]]:
        return [
            s
            for s in self.sink.of("dlq")
            if (s[3] if isinstance(s[3], dict) else {}).get("x-reason") == reason
        ]

    def errors_to(self, command: CommandEnvelope) -> list[str]:
        events = [
            decode_event_record(value, headers if isinstance(headers, list) else [])
            for _, _, value, headers in self.sink.of("events")
        ]
        return [
            event.payload.code.value
            for event in events
            if event.causation_id == command.msg_id and isinstance(event.payload, Error)
        ]

    def dead_letters(self, reason: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "parlour_engine_dead_letters_total", {"reason": reason}
        )
        return value or 0.0


@pytest.fixture
async def rig(redis_url: str, topic_prefix: str) -> AsyncIterator[Rig]:
    redis = aioredis.from_url(redis_url)
    keys = RedisKeys(prefix=topic_prefix)
    sink = ScriptedSink()
    metrics = EngineMetrics()
    processor = CommandProcessor(
        redis=redis,
        store=RoomStore(redis, keys, applied_ttl_seconds=600, ended_room_ttl_seconds=600),
        sink=sink,
        metrics=metrics,
        config=rules_config(scrypt_n=16),
        events_topic="events",
        dlq_topic="dlq",
        max_tries=3,
        rng_for=seeded_rng(1),
        stall_max_seconds=0.3,
    )
    try:
        yield Rig(processor, sink, metrics, keys, redis)
    finally:
        await redis.aclose()


def _room_state_event(topic: str, value: bytes) -> bool:
    return topic == "events" and b'"type":"games.event.room_state"' in value


async def _room(rig: Rig) -> tuple[str, Actor, str]:
    tag = uuid.uuid4().hex[:6]
    host, room_id, name = actor(0, tag), str(uuid.uuid4()), f"Tax {tag}"
    create = rig.envelope(CreateRoom(game_type="bigger_dice", room_name=name), host, room_id)
    await rig.processor.process_batch([rig.raw(create)])
    assert await rig.redis.exists(rig.keys.room_state(room_id))
    return room_id, host, name


async def test_engine_event_refused_for_good_is_dead_lettered_not_retried(rig: Rig) -> None:
    """Kafka refuses the join's room_state for good (MessageSizeTooLargeError on the
    acknowledgement, after the commit): the record goes to the DLQ with its reason, the joiner
    gets internal_error, and the batch completes (its offset can be committed)."""
    _, _, name = await _room(rig)
    rig.sink.refuse = lambda t, v: MessageSizeTooLargeError() if _room_state_event(t, v) else None
    guest = actor(1, uuid.uuid4().hex[:6])
    join = rig.envelope(JoinAsSpectator(room_name=name), guest, None)
    await asyncio.wait_for(rig.processor.process_batch([rig.raw(join)]), 10)
    [dead] = rig.dead("publish_refused")
    assert dead[2] == encode(join)
    assert isinstance(dead[3], dict)
    assert "MessageSizeTooLargeError" in dead[3]["x-error"]
    assert rig.errors_to(join) == ["internal_error"]
    assert rig.dead_letters("publish_refused") == 1


async def test_engine_send_that_raises_for_good_is_dead_lettered_at_once(rig: Rig) -> None:
    """The producer's own size check raises from `send`, inside the post-commit steps: no
    endless after-commit retry, one dead letter."""
    _, _, name = await _room(rig)
    rig.sink.raise_now = lambda t, v: (
        MessageSizeTooLargeError() if _room_state_event(t, v) else None
    )
    join = rig.envelope(JoinAsSpectator(room_name=name), actor(1, uuid.uuid4().hex[:6]), None)
    await asyncio.wait_for(rig.processor.process_batch([rig.raw(join)]), 10)
    assert len(rig.dead("publish_refused")) == 1
    assert rig.errors_to(join) == ["internal_error"]


async def test_engine_stall_is_bounded_while_kafka_takes_other_sends(rig: Rig) -> None:
    """The join's room_state keeps timing out while Kafka takes everything else: the batch
    fails (and would be consumed again) until the record has failed for the stall bound,
    then it is dead-lettered as stalled and the batch completes."""
    _, _, name = await _room(rig)
    rig.sink.refuse = lambda t, v: KafkaTimeoutError() if _room_state_event(t, v) else None
    join = rig.envelope(JoinAsSpectator(room_name=name), actor(1, uuid.uuid4().hex[:6]), None)
    record = rig.raw(join)
    rounds = 0
    deadline = time.monotonic() + 10
    while True:  # what the committer's rewind does: the same record again
        rounds += 1
        try:
            await rig.processor.process_batch([record])
            break
        except InfraError:
            assert time.monotonic() < deadline, "the stalled record was never dead-lettered"
            # what the stalled-partition alert reads
            assert rig.metrics.registry.get_sample_value("parlour_engine_stalled_records") == 1
            await asyncio.sleep(0.05)
    assert rounds > 1
    assert rig.metrics.registry.get_sample_value("parlour_engine_stalled_records") == 0
    assert len(rig.dead("stalled")) == 1
    assert rig.errors_to(join) == ["internal_error"]


async def test_engine_outage_dead_letters_nothing(rig: Rig) -> None:
    """Kafka takes nothing at all (events and dead letters time out): past the stall bound
    the record is still retried, never dead-lettered; once Kafka is back it goes through."""
    _, _, name = await _room(rig)
    down = True
    rig.sink.refuse = lambda t, v: KafkaTimeoutError() if down else None
    join = rig.envelope(JoinAsSpectator(room_name=name), actor(1, uuid.uuid4().hex[:6]), None)
    record = rig.raw(join)
    started = time.monotonic()
    while time.monotonic() - started < 0.9:  # three stall bounds
        with pytest.raises(InfraError):
            await rig.processor.process_batch([record])
        await asyncio.sleep(0.05)
    down = False
    await rig.processor.process_batch([record])
    assert rig.sink.of("dlq") == []
    assert any(_room_state_event(t, v) for t, _, v, _ in rig.sink.acked)
    assert rig.errors_to(join) == []


async def test_engine_failing_after_commit_step_is_bounded(rig: Rig) -> None:
    """A post-commit index write that keeps failing (the host's index key has the wrong
    type) while Redis answers PING: retried, then dead-lettered as stalled after the bound."""
    _, host, name = await _room(rig)
    await rig.redis.set(rig.keys.user_rooms(host.user_id), "not a hash")
    join = rig.envelope(JoinRoom(room_name=name), actor(1, uuid.uuid4().hex[:6]), None)
    await asyncio.wait_for(rig.processor.process_batch([rig.raw(join)]), 10)
    assert len(rig.dead("stalled")) == 1
    assert "WRONGTYPE" in (rig.dead("stalled")[0][3] or {})["x-error"]
    assert rig.metrics.registry.get_sample_value("parlour_engine_stalled_records") == 0


async def test_engine_event_over_budget_commits_nothing(rig: Rig) -> None:
    """A room whose state grew past the event budget (written straight into Redis, as an old
    unbounded ban list would have): a spectator's join would produce a room_state over
    EVENT_MAX_BYTES, so it takes no effect, the record is dead-lettered as event_too_large
    and the joiner gets internal_error."""
    room_id, _, name = await _room(rig)
    key = rig.keys.room_state(room_id)
    stored = await rig.redis.get(key)
    assert stored is not None
    state = json.loads(stored)
    state["banned"] = [{"user_id": f"x{n:063d}", "username": f"n{n:063d}"} for n in range(2_000)]
    state["version"] += 1  # moves the engine's cached copy out of date
    inflated = json.dumps(state, separators=(",", ":"))
    await rig.redis.set(key, inflated)
    join = rig.envelope(JoinAsSpectator(room_name=name), actor(1, uuid.uuid4().hex[:6]), None)
    await asyncio.wait_for(rig.processor.process_batch([rig.raw(join)]), 10)
    assert len(rig.dead("event_too_large")) == 1
    assert rig.errors_to(join) == ["internal_error"]
    assert await rig.redis.get(key) == inflated.encode()  # nothing committed
    assert not [s for s in rig.sink.of("events") if len(s[2]) > EVENT_MAX_BYTES]


async def test_engine_dead_letter_copy_hides_passwords_and_fits(rig: Rig) -> None:
    """A dead-lettered create_room keeps its origin headers but never its password; a record
    too big for a dead letter is cut (the original size in a header)."""
    host = actor(0, uuid.uuid4().hex[:6])
    create = rig.envelope(
        CreateRoom(game_type="bigger_dice", room_name="Secret", password="hunter2-secret"),
        host,
        str(uuid.uuid4()),
    )
    rig.sink.raise_now = lambda t, v: MessageSizeTooLargeError() if t == "events" else None
    await asyncio.wait_for(rig.processor.process_batch([rig.raw(create)]), 10)
    [dead] = rig.dead("publish_refused")
    assert b"hunter2-secret" not in dead[2]
    assert json.loads(dead[2])["payload"]["password"] == "***"
    assert (dead[3] or {})["x-redacted"] == "password"
    assert (dead[3] or {})["x-origin"] == f"cmd:0:{rig.offsets}"
    huge = b"{" + b"x" * (EVENT_MAX_BYTES * 3)
    await rig.processor.process_batch([RawCommand(key="k", value=huge, offset=99)])
    [cut] = rig.dead("undecodable")
    assert len(cut[2]) == EVENT_MAX_BYTES
    assert (cut[3] or {})["x-truncated"] == str(len(huge))
