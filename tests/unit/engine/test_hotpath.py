"""Hot-path shortcuts must not change a byte: envelopes built without re-validation equal the
validated ones, the record's line format round-trips, hiredis packing equals redis-py's, and
the cached partitioner picks the default partitioner's partition."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

from aiokafka.partitioner import DefaultPartitioner
from redis.asyncio.connection import Connection

from parlour_engine.handler import envelopes
from parlour_engine.kafka_producer import CachedPartitioner
from parlour_engine.redis_pool import HiredisPackConnection
from parlour_engine.rules import Emit, apply
from parlour_engine.store import PublishedEvent, Record
from parlour_protocol.v1 import (
    Actor,
    Audience,
    AudienceKind,
    CommandEnvelope,
    ErrorCode,
    EventEnvelope,
    decode_event_envelope,
)
from parlour_protocol.v1.base import ClientCommand
from parlour_protocol.v1.games.bigger_dice import Roll
from parlour_protocol.v1.records import event_headers
from parlour_protocol.v1.rooms import CreateRoom, JoinRoom
from parlour_protocol.v1.system import Error
from tests.support.rules_table import rules_config

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _command(n: int, user: str, payload: ClientCommand, room_id: str = "room-1") -> CommandEnvelope:
    return CommandEnvelope(
        msg_id=UUID(int=n),
        type=payload.type,
        key=room_id,
        room_id=room_id,
        actor=Actor(user_id=user, username=f"name-{user}", roles=["user"]),
        connection_id=f"c-{user}",
        gateway_id="gw-1",
        request_id=f"r{n}",
        timestamp=NOW,
        payload=payload,
    )


def test_engine_constructed_envelopes_equal_validated_ones() -> None:
    config = rules_config(scrypt_n=16)
    rng = random.Random(1)
    create = _command(1, "u1", CreateRoom(game_type="bigger_dice", room_name="Den", max_players=4))
    first = apply(None, create, rng, NOW, config)
    assert first.state is not None
    join = _command(2, "u2", JoinRoom(game_type="bigger_dice", room_name="Den"))
    second = apply(first.state, join, rng, NOW, config)
    bad = _command(3, "u2", JoinRoom(game_type="bigger_dice", room_name="Den"))
    again = apply(second.state, bad, rng, NOW, config)  # already a member: system.error
    assert again.rejected is not None
    emits = [*first.emits, *second.emits, *again.emits]
    assert emits
    for command, outcome in ((create, first), (join, second), (bad, again)):
        built = envelopes(
            outcome.emits,
            command,
            "room-1",
            NOW,
            "room-1",
        )
        for index, (emit, event) in enumerate(zip(outcome.emits, built, strict=True)):
            validated = EventEnvelope(
                event_id=uuid.uuid5(command.msg_id, str(index)),
                type=emit.message.type,
                room_id="room-1",
                seq=emit.message.seq,
                audience=emit.audience,
                causation_id=command.msg_id,
                timestamp=NOW,
                payload=emit.message,
            )
            assert event.envelope == validated.model_dump_json()
            assert EventEnvelope.model_validate_json(event.envelope) == validated


def test_engine_record_line_format_round_trips() -> None:
    record = Record(
        events=[
            PublishedEvent("room-1", 4, '{"a":"line\\nbreak \\"quoted\\""}'),
            PublishedEvent("u1", None, "{}"),
        ],
        projection={"now": NOW.isoformat(), "gone": ["u2"], "timers": [["m", 5]]},
    )
    assert Record.loads(record.dumps()) == record
    assert Record.loads(record.dumps().encode()) == record
    assert Record.loads(record._dumps_json()) == record  # records stored before the change
    assert Record.loads(Record(events=[]).dumps()) == Record(events=[])
    odd = Record(events=[PublishedEvent("a\nb", 1, "{}")])
    assert odd.dumps().startswith("{")  # falls back to JSON
    assert Record.loads(odd.dumps()) == odd


def test_engine_hiredis_packing_equals_redis_py() -> None:
    ours, theirs = HiredisPackConnection(), Connection()
    commands: list[tuple[object, ...]] = [
        ("EVALSHA", "a" * 40, 2, "k:{room:1}", b"k2", "é" * 3, 1.5, 0, "x" * 10_000),
        ("CLIENT SETNAME", "engine"),
        ("GET", "k"),
    ]
    for command in commands:
        assert b"".join(ours.pack_command(*command)) == b"".join(theirs.pack_command(*command))
    assert b"".join(ours.pack_commands(commands)) == b"".join(theirs.pack_commands(commands))


def test_engine_cached_partitioner_matches_default() -> None:
    cached = CachedPartitioner(size=8)
    for partitions in ([0, 1, 2, 3, 4, 5], [0, 1, 2]):
        for n in range(50):
            key = f"room-{n}".encode()
            expected = DefaultPartitioner()(key, partitions, partitions)
            assert cached(key, partitions, partitions) == expected
            assert cached(key, partitions, partitions) == expected


def test_event_envelopes_are_spliced_exactly_and_carry_their_record() -> None:
    """`envelopes` dumps the payload once: the envelope JSON is byte for byte pydantic's, the
    frame is the payload JSON and the headers are parlour_protocol's."""
    command = CommandEnvelope(
        type="games.command.bigger_dice.roll",
        key="room-1",
        room_id="room-1",
        actor=Actor(user_id="u1", username="u1"),
        payload=Roll(room_id="room-1"),
    )
    audience = Audience(kind=AudienceKind.ROOM, user_ids=["u1", "u2"])
    emits = [Emit(audience, Error(code=ErrorCode.NOT_YOUR_TURN, message="wait \u00e9\n"))]
    emits.append(Emit(Audience(kind=AudienceKind.USER, user_ids=["u2"]), emits[0].message))
    moments = [
        datetime(2026, 3, 14, 18, 2, 11, 262_000, tzinfo=UTC),
        datetime(2026, 3, 14, 18, 2, 11, tzinfo=UTC),  # no fraction: pydantic writes none
        datetime(2026, 3, 14, 19, 2, 11, 5, tzinfo=timezone(timedelta(hours=1))),
    ]
    for now in moments:
        for room_id in ("room-1", None):
            events = envelopes(emits, command, room_id, now, "room-1")
            for index, event in enumerate(events):
                envelope = decode_event_envelope(event.envelope)
                assert isinstance(envelope, EventEnvelope)
                assert event.envelope == envelope.model_dump_json()
                assert event.frame == envelope.payload.model_dump_json().encode()
                assert event.headers == event_headers(envelope)
                assert envelope.event_id == uuid.uuid5(command.msg_id, str(index))
                assert envelope.timestamp == now
                assert envelope.room_id == room_id
