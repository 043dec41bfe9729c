"""The room store's one Lua script on a real Redis: idempotency record first, then the
version check, then every write; records are trimmed to the newest `applied_keep`."""

from __future__ import annotations

import json

import redis.asyncio as aioredis

from parlour_engine.store import (
    ChatAppendJson,
    CommitStatus,
    Position,
    PublishedEvent,
    Record,
    RoomStore,
    StateWrite,
)
from parlour_protocol.v1 import RedisKeys


def _record(*seqs: int | None) -> Record:
    return Record(
        events=[PublishedEvent(key="r1", seq=s, envelope=json.dumps({"seq": s})) for s in seqs]
    )


async def test_engine_store_commit_duplicate_conflict_and_trim(
    redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    keys = RedisKeys(prefix=topic_prefix)
    store = RoomStore(
        redis_client, keys, applied_ttl_seconds=300, ended_room_ttl_seconds=60, applied_keep=3
    )
    first = await store.commit(
        "r1",
        msg_id="m1",
        expected_version=0,
        write=StateWrite.WRITE,
        state_json='{"version": 1, "seq": 1}',
        record=_record(1, None),
        chat=[ChatAppendJson("lobby", '{"n": 1}'), ChatAppendJson("lobby", '{"n": 2}')],
    )
    assert first.status is CommitStatus.APPLIED
    assert await store.load("r1") == '{"version": 1, "seq": 1}'
    assert [f[b"seq"] for _, f in await redis_client.xrange(keys.room_events("r1"))] == [b"1"]
    assert await store.chat_history("r1", "lobby", 10) == ['{"n": 1}', '{"n": 2}']

    # the same msg_id again: the recorded events come back and nothing is written
    again = await store.commit(
        "r1",
        msg_id="m1",
        expected_version=1,
        write=StateWrite.WRITE,
        state_json='{"version": 2, "seq": 2}',
        record=_record(2),
    )
    assert again.status is CommitStatus.DUPLICATE
    assert again.record == _record(1, None)
    assert await store.load("r1") == '{"version": 1, "seq": 1}'

    # a stale version: CONFLICT with the current state, nothing written
    stale = await store.commit(
        "r1",
        msg_id="m2",
        expected_version=0,
        write=StateWrite.WRITE,
        state_json='{"version": 1, "seq": 2}',
        record=_record(2),
    )
    assert stale.status is CommitStatus.CONFLICT
    assert stale.current_state == '{"version": 1, "seq": 1}'
    assert await store.recorded("r1", "m2") is None

    # a rejected command is recorded without a state write
    rejected = await store.commit(
        "r1", msg_id="m3", expected_version=1, write=StateWrite.NONE, record=_record(None)
    )
    assert rejected.status is CommitStatus.APPLIED
    assert await store.load("r1") == '{"version": 1, "seq": 1}'
    assert await store.recorded("r1", "m3") == _record(None)

    for n in (4, 5):
        await store.commit(
            "r1", msg_id=f"m{n}", expected_version=1, write=StateWrite.NONE, record=_record()
        )
    # only the newest three records are kept
    assert await store.recorded("r1", "m1") is None
    assert set(await redis_client.hkeys(keys.room_applied("r1"))) == {b"m3", b"m4", b"m5"}

    removed = await store.commit(
        "r1",
        msg_id="m6",
        expected_version=1,
        write=StateWrite.DELETE,
        record=_record(2),
    )
    assert removed.status is CommitStatus.APPLIED
    assert await store.load("r1") is None
    assert 0 < await redis_client.ttl(keys.room_events("r1")) <= 60
    assert await redis_client.xlen(keys.room_events("r1")) == 2
    # its chat goes with it: the lobby list now expires with the stream, not in 7 days
    assert 0 < await redis_client.ttl(keys.room_chat("r1", "lobby")) <= 60
    # channels that never had a message leave no key behind
    assert not await redis_client.exists(keys.room_chat("r1", "spectators"))


async def test_engine_store_offset_watermark(
    redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    """A record at or below the room's watermark for its partition is OLD even when its msg_id
    record was trimmed; another partition has its own watermark; no position, no check; a
    recreated topic (offsets from 0 again, newer timestamps) is not mistaken for old."""
    keys = RedisKeys(prefix=topic_prefix)
    store = RoomStore(
        redis_client, keys, applied_ttl_seconds=300, ended_room_ttl_seconds=60, applied_keep=10
    )
    at = Position("cmd", 3, 0, 1000)
    for n in range(1, 16):  # 15 commits at offsets 1..15; records of the first 5 are trimmed
        result = await store.commit(
            "r2",
            msg_id=f"m{n}",
            expected_version=0 if n == 1 else 1,
            write=StateWrite.WRITE if n == 1 else StateWrite.NONE,
            state_json='{"version": 1, "seq": 1}' if n == 1 else "",
            record=_record(),
            position=Position("cmd", 3, n, 1000 + n),
        )
        assert result.status is CommitStatus.APPLIED
    assert await store.recorded("r2", "m1") is None
    # the first command read again at its offset: trimmed record, but below the watermark
    late = await store.commit(
        "r2",
        msg_id="m1",
        expected_version=0,
        write=StateWrite.WRITE,
        state_json='{"version": 1, "seq": 9}',
        record=_record(9),
        position=Position("cmd", 3, 1, 1001),
    )
    assert late.status is CommitStatus.OLD
    assert await store.load("r2") == '{"version": 1, "seq": 1}'
    assert (await store.seen("r2", "m1", Position("cmd", 3, 1, 1001))).old
    seen = await store.seen("r2", "m1", Position("cmd", 3, 16, 1016))
    assert (seen.old, seen.record, seen.version) == (False, None, 1)
    assert (await store.seen("r2", "m15", at)).record == _record()
    # another partition (e.g. after a partition-count change) starts its own watermark
    other = await store.commit(
        "r2",
        msg_id="m-other",
        expected_version=1,
        write=StateWrite.NONE,
        record=_record(),
        position=Position("cmd", 4, 2, 1020),
    )
    assert other.status is CommitStatus.APPLIED
    # a record with no position (not keyed by the room) is not compared
    unkeyed = await store.commit(
        "r2", msg_id="m-unkeyed", expected_version=1, write=StateWrite.NONE, record=_record()
    )
    assert unkeyed.status is CommitStatus.APPLIED
    # the topic was deleted and made again (offsets restart): a new record below the old
    # offset but with a newer command timestamp is new, and moves the watermark there
    renewed = await store.commit(
        "r2",
        msg_id="m-renewed",
        expected_version=1,
        write=StateWrite.NONE,
        record=_record(),
        position=Position("cmd", 3, 0, 5000),
    )
    assert renewed.status is CommitStatus.APPLIED
    assert not (await store.seen("r2", "m-next", Position("cmd", 3, 1, 5001))).old
    assert (await store.seen("r2", "m-renewed", Position("cmd", 3, 0, 5000))).record is not None
    assert (await store.seen("r2", "m-x", Position("cmd", 3, 0, 4000))).old
    assert (await store.seen("r3-missing", "m1", at)).version == 0


async def test_engine_store_removed_room_keeps_only_its_newest_records_and_watermark(
    redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    """A removed room's msg_id records shrink to the newest 16 (its watermark stays), so a
    game that is over costs a few KB for the applied TTL, not its whole command history; a
    Kafka redelivery of any earlier command is still OLD."""
    keys = RedisKeys(prefix=topic_prefix)
    store = RoomStore(
        redis_client, keys, applied_ttl_seconds=300, ended_room_ttl_seconds=60, applied_keep=1000
    )
    for n in range(1, 41):
        result = await store.commit(
            "r3",
            msg_id=f"m{n}",
            expected_version=0 if n == 1 else 1,
            write=StateWrite.WRITE if n == 1 else StateWrite.NONE,
            state_json='{"version": 1, "seq": 1}' if n == 1 else "",
            record=_record(),
            position=Position("cmd", 0, n, 1000 + n),
        )
        assert result.status is CommitStatus.APPLIED
    assert await redis_client.llen(keys.room_applied_order("r3")) == 40
    removed = await store.commit(
        "r3",
        msg_id="m-remove",
        expected_version=1,
        write=StateWrite.DELETE,
        record=_record(2),
        position=Position("cmd", 0, 41, 1041),
    )
    assert removed.status is CommitStatus.APPLIED
    assert await redis_client.llen(keys.room_applied_order("r3")) == 16
    assert await store.recorded("r3", "m-remove") == _record(2)
    assert await store.recorded("r3", "m10") is None
    # the first command read again from Kafka: its record is gone, the watermark answers
    late = await store.commit(
        "r3",
        msg_id="m1",
        expected_version=0,
        write=StateWrite.WRITE,
        state_json='{"version": 1, "seq": 9}',
        record=_record(9),
        position=Position("cmd", 0, 1, 1001),
    )
    assert late.status is CommitStatus.OLD
    assert await store.load("r3") is None
