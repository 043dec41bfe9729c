"""CommandProcessor paths that need neither Redis nor Kafka: undecodable records are
dead-lettered (with the reason) and never raise; the store record survives a round trip;
which failures are outages; dead-letter copies lose their passwords."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
import structlog
from aiokafka.errors import (
    CorruptRecordException,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotEnoughReplicasError,
    NotLeaderForPartitionError,
    OutOfOrderSequenceNumber,
    TopicAuthorizationFailedError,
)
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from parlour_engine.failures import EventTooLarge, InfraError, is_outage, redacted
from parlour_engine.handler import CommandHandler, envelopes, seeded_rng
from parlour_engine.kafka_consumer import RawCommand
from parlour_engine.kafka_producer import Headers
from parlour_engine.metrics import EngineMetrics
from parlour_engine.rules import ChatRead, Emit
from parlour_engine.rules.context import reply_audience
from parlour_engine.store import PublishedEvent, Record, RoomStore
from parlour_engine.worker import CommandProcessor
from parlour_protocol.v1 import (
    Actor,
    Audience,
    AudienceKind,
    CommandEnvelope,
    RedisKeys,
    encode,
)
from parlour_protocol.v1.chat import ChatChannel, ChatHistory, ChatMessageItem, GetChatHistory
from parlour_protocol.v1.limits import EVENT_MAX_BYTES
from tests.support.rules_table import rules_config


class RecordingSink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes, Headers | None]] = []

    async def send(
        self, topic: str, key: str, value: bytes, headers: Headers | None = None
    ) -> Awaitable[Any]:
        self.sent.append((topic, key, value, headers))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _processor(sink: RecordingSink) -> tuple[CommandProcessor, EngineMetrics]:
    # an unconnected client: these paths must not touch Redis at all
    redis = aioredis.Redis(host="127.0.0.1", port=1)
    metrics = EngineMetrics()
    store = RoomStore(redis, RedisKeys("x."), applied_ttl_seconds=60, ended_room_ttl_seconds=60)
    processor = CommandProcessor(
        redis=redis,
        store=store,
        sink=sink,
        metrics=metrics,
        config=rules_config(),
        events_topic="events",
        dlq_topic="dlq",
        max_tries=3,
        rng_for=seeded_rng(1),
    )
    return processor, metrics


async def test_engine_undecodable_records_are_dead_lettered() -> None:
    sink = RecordingSink()
    processor, metrics = _processor(sink)
    records = [
        RawCommand(key="u1", value=b"\xff\xfe not json", topic="cmd", partition=2, offset=7),
        RawCommand(key="u2", value=b'{"type": "games.command.nope"}', offset=8),
        RawCommand(key="u3", value=b"[]", offset=9),
    ]
    await processor.process_batch(records)
    assert [(topic, key, value) for topic, key, value, _ in sink.sent] == [
        ("dlq", r.key, r.value) for r in records
    ]
    first_headers = sink.sent[0][3]
    assert isinstance(first_headers, dict)
    assert first_headers["x-origin"] == "cmd:2:7"
    assert first_headers["x-tries"] == "0"
    assert first_headers["x-error"].startswith("undecodable: invalid_json")
    assert first_headers["x-reason"] == "undecodable"
    assert metrics.registry.get_sample_value("parlour_engine_dlq_total") == 3
    labels = {"reason": "undecodable"}
    assert metrics.registry.get_sample_value("parlour_engine_dead_letters_total", labels) == 3


def test_engine_record_round_trip() -> None:
    record = Record(
        events=[
            PublishedEvent(key="room", seq=3, envelope='{"a":"b\\n"}'),
            PublishedEvent(key="u1", seq=None, envelope="{}"),
        ],
        projection={"now": "2026-01-01T00:00:00+00:00", "gone": ["u2"], "timers": []},
    )
    assert Record.loads(record.dumps()) == record


@pytest.mark.parametrize(
    ("failure", "outage"),
    [
        (RedisConnectionError("refused"), True),
        (RedisTimeoutError("slow"), True),
        (ConnectionResetError(), True),
        (KafkaConnectionError(), True),
        (NotEnoughReplicasError(), True),
        (NotLeaderForPartitionError(), True),
        (KafkaTimeoutError(), True),  # the producer's delivery timeout: aiokafka says no
        (OutOfOrderSequenceNumber(), True),  # the producer's state, not the record's fault
        (MessageSizeTooLargeError(), False),
        (CorruptRecordException(), False),
        (TopicAuthorizationFailedError(), False),
        (ResponseError("WRONGTYPE"), False),
        (ValueError("a bug"), False),
    ],
)
def test_engine_failure_taxonomy(failure: BaseException, outage: bool) -> None:
    assert is_outage(failure) is outage


def test_engine_redaction_replaces_every_password_and_keeps_the_rest() -> None:
    raw = json.dumps(
        {
            "type": "games.command.join_room",
            "payload": {"password": "hunter2", "room_name": "Den", "nested": [{"password": "x"}]},
            "actor": {"user_id": "u1"},
        }
    ).encode()
    out, changed = redacted(raw)
    assert changed
    assert b"hunter2" not in out
    data = json.loads(out)
    assert data["payload"] == {
        "password": "***",
        "room_name": "Den",
        "nested": [{"password": "***"}],
    }
    assert data["actor"] == {"user_id": "u1"}
    no_password = b'{"payload":{"password":null}}'
    assert redacted(no_password) == (no_password, False)
    assert redacted(b"\xff not json") == (b"\xff not json", False)


class ChatListStore(RoomStore):
    """A room store whose chat list is in memory (newest first, as in Redis)."""

    def __init__(self, items: list[str]) -> None:
        super().__init__(
            aioredis.Redis(host="127.0.0.1", port=1),
            RedisKeys("x."),
            applied_ttl_seconds=60,
            ended_room_ttl_seconds=60,
        )
        self.newest_first = items

    async def chat_history(self, room_id: str, channel: str, limit: int) -> list[str]:
        return list(reversed(self.newest_first[:limit]))


def _chat_items(count: int, chars: int) -> list[str]:
    """`count` messages, newest first, each of `chars` four-byte characters."""
    return [
        ChatMessageItem(
            message_id=f"m{n:03d}",
            user_id="u2" if n % 10 == 0 else "u1",
            username="someone",
            content=f"{n:03d}" + "\U0001d11e" * (chars - 3),
            timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        ).model_dump_json()
        for n in reversed(range(count))
    ]


async def _history(store: RoomStore, limit: int, before: str | None, hidden: set[str]) -> Any:
    handler = CommandHandler(
        redis=aioredis.Redis(host="127.0.0.1", port=1),
        store=store,
        sink=RecordingSink(),
        metrics=EngineMetrics(),
        config=rules_config(),
        events_topic="events",
        rng_for=seeded_rng(1),
    )
    read = ChatRead(
        room_id="r1",
        channel=ChatChannel.LOBBY,
        limit=limit,
        hidden_user_ids=frozenset(hidden),
        audience=Audience(kind=AudienceKind.USER, user_ids=["u1"]),
    )
    payload = GetChatHistory(room_id="r1", channel=ChatChannel.LOBBY, limit=limit, before=before)
    emit = await handler._chat_history(read, payload)
    return emit.message


async def test_engine_chat_history_fills_newest_first_within_the_budget() -> None:
    store = ChatListStore(_chat_items(200, 1000))
    first = await _history(store, 200, None, set())
    assert first.has_more
    assert 0 < len(first.messages) < 200
    assert first.messages[-1].content.startswith("199")  # the newest, oldest first
    assert len(first.model_dump_json().encode()) < EVENT_MAX_BYTES
    older = await _history(store, 200, first.messages[0].message_id, set())
    assert older.messages[-1].message_id == f"m{int(first.messages[0].message_id[1:]) - 1:03d}"
    # a small history: no has_more; muted users' messages are left out
    small = await _history(ChatListStore(_chat_items(12, 5)), 50, None, {"u2"})
    assert not small.has_more
    assert [m.message_id for m in small.messages] == [f"m{n:03d}" for n in range(12) if n % 10 != 0]
    # exactly `limit` asked of more: has_more; a cursor no longer kept: nothing
    capped = await _history(ChatListStore(_chat_items(12, 5)), 5, None, set())
    assert capped.has_more
    assert [m.message_id for m in capped.messages] == [f"m{n:03d}" for n in range(7, 12)]
    gone = await _history(ChatListStore(_chat_items(12, 5)), 5, "m-trimmed", set())
    assert (gone.messages, gone.has_more) == ([], False)


def test_engine_event_over_the_budget_is_refused_when_built() -> None:
    command = CommandEnvelope(
        msg_id=uuid.uuid4(),
        type="games.command.get_chat_history",
        key="r1",
        room_id="r1",
        actor=Actor(user_id="u1", username="one", roles=["user"]),
        payload=GetChatHistory(room_id="r1", channel=ChatChannel.LOBBY),
    )
    items = [ChatMessageItem.model_validate_json(i) for i in _chat_items(80, 1000)]
    emit = Emit(
        reply_audience(command),
        ChatHistory(room_id="r1", channel=ChatChannel.LOBBY, messages=items),
    )
    with pytest.raises(EventTooLarge):
        envelopes(
            (emit,),
            command,
            "r1",
            datetime(2026, 1, 1, tzinfo=UTC),
            "r1",
        )


async def test_engine_redis_outage_dead_letters_nothing() -> None:
    """Redis does not answer at all (an unconnectable port): past the stall bound the PING
    probe fails too, so the command is retried, never dead-lettered, until the engine stops
    (then the batch is left uncommitted for the next owner)."""
    sink = RecordingSink()
    # no client-side retries: each call fails at once, as the engine sees an outage
    redis = aioredis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    processor = CommandProcessor(
        redis=redis,
        store=RoomStore(redis, RedisKeys("x."), applied_ttl_seconds=60, ended_room_ttl_seconds=60),
        sink=sink,
        metrics=EngineMetrics(),
        config=rules_config(),
        events_topic="events",
        dlq_topic="dlq",
        max_tries=3,
        rng_for=seeded_rng(1),
        stall_max_seconds=0.05,
    )
    command = CommandEnvelope(
        msg_id=uuid.uuid4(),
        type="games.command.get_chat_history",
        key="r1",
        room_id="r1",
        actor=Actor(user_id="u1", username="one", roles=["user"]),
        payload=GetChatHistory(room_id="r1", channel=ChatChannel.LOBBY),
    )
    record = RawCommand(key="r1", value=encode(command), topic="cmd", partition=0, offset=5)
    with structlog.testing.capture_logs() as logs:
        batch = asyncio.create_task(processor.process_batch([record]))

        async def retried(times: int) -> None:
            while sum(1 for e in logs if e["event"] == "command_infra_retry") < times:  # noqa: ASYNC110 - polls a log list
                await asyncio.sleep(0.02)

        # backoff 0.1 + 0.2 + 0.5 s: well past the 0.05 s bound, the probe consulted twice
        await asyncio.wait_for(retried(4), 10)
        processor.stopping = True
        with pytest.raises(InfraError):
            await asyncio.wait_for(batch, 10)
    assert sink.sent == []
    await redis.aclose()
