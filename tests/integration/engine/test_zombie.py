"""A zombie engine: SIGSTOPped while it holds records, past its group session, while the other
engine takes its partitions over and the games play on; then SIGCONT. Whatever the zombie had
fetched, loaded or was about to commit is stale by then.

What fences it: the room commit script answers a msg_id already applied with its recorded
outcome (the zombie re-sends those very events: same event_id, seq and timestamp, which a
gateway drops as already given), a Kafka position at or below the room's watermark with OLD,
and a stale version with CONFLICT (the rules re-run on the current state). Its offset commits
fail (its generation is gone) and it rejoins the group. So: every game finishes, Redis holds
exactly the pure rules replayed over the commands each room applied, the events topic never
carries two different events under one (room, seq), no seq is missing, and a client fed the
whole topic through the gateway's own seq tracking sees every seq once, in order."""

from __future__ import annotations

import asyncio
import re
import signal
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiokafka import TopicPartition

from parlour_gateway.connection import SeqTracker
from parlour_protocol.v1 import EventEnvelope, Topics
from parlour_protocol.v1.topics import EVENTS, PARTITIONS
from tests.support.engine_harness import Bus, engines_named, replayed_state, start_games
from tests.support.rules_table import rules_config

SEED = 1234
CONFIG = rules_config(turn_timeout_seconds=600)
GAMES = 12

pytestmark = pytest.mark.slow


def _counts(metrics: str) -> dict[str, int]:
    """parlour_engine_commands_total summed by outcome, plus version conflicts."""
    out: dict[str, int] = defaultdict(int)
    for outcome, value in re.findall(
        r'^parlour_engine_commands_total\{[^}]*outcome="([^"]+)"[^}]*\} (\S+)$', metrics, re.M
    ):
        out[outcome] += int(float(value))
    for value in re.findall(
        r"^parlour_engine_version_conflicts_total(?:\{[^}]*\})? (\S+)$", metrics, re.M
    ):
        out["version_conflict"] += int(float(value))
    return out


def _client_view(events: list[EventEnvelope]) -> list[int]:
    """The seqs a socket is given of one room's events in topic order, through the gateway's
    SeqTracker (what `Connection.deliver` drops: a seq already given, unless rewound)."""
    tracker = SeqTracker()
    given: list[int] = []
    for event in events:
        assert event.seq is not None
        ts = event.timestamp.timestamp()
        if tracker.seen(event.seq) and not tracker.rewound(event.seq, ts):
            continue
        tracker.mark(event.seq, ts)
        given.append(event.seq)
    return given


async def _read_to_end(bus: Bus, within: float = 30) -> None:
    """Wait until the Bus has read every event the topic holds now."""
    assert bus.consumer is not None
    tps = [TopicPartition(bus.topics.events, p) for p in range(PARTITIONS[EVENTS])]
    ends = await bus.consumer.end_offsets(tps)
    deadline = time.monotonic() + within
    while True:
        behind = [tp for tp, end in ends.items() if await bus.consumer.position(tp) < end]
        if not behind:
            return
        assert time.monotonic() < deadline, "the Bus did not catch up with the events topic"
        await asyncio.sleep(0.05)


@pytest.mark.timeout(240)
async def test_zombie_engine_applies_no_stale_effect(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: aioredis.Redis,
    topic_prefix: str,
    create_topics,
    tmp_path: Path,
) -> None:
    topics = Topics(prefix=topic_prefix)
    await create_topics(kafka_bootstrap, topics.with_partitions())
    zombie, survivor = engines_named(
        ("zombie", "survivor"),
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=topic_prefix,
        log_dir=tmp_path,
    )
    for engine in (zombie, survivor):
        engine.start()
    bus = Bus(kafka_bootstrap, topics)
    stopped = False
    try:
        await bus.start()
        for engine in (zombie, survivor):
            await engine.wait_ready()
        games = start_games(bus, GAMES, "zombie", within=90)
        deadline = time.monotonic() + 60
        while True:  # both engines busy, every game under way
            counts = [sum(_counts(await e.metrics()).values()) for e in (zombie, survivor)]
            rooms = {e.room_id for e in bus.events if e.type == "games.event.game_started"}
            if min(counts) > 0 and len(rooms) == GAMES:
                break
            assert time.monotonic() < deadline, f"games did not get going: {counts}"
            for task in games:
                if task.done() and (error := task.exception()) is not None:
                    raise error
            await asyncio.sleep(0.05)

        before = _counts(await zombie.metrics())
        assert zombie.proc is not None
        stopped_at = time.time()
        zombie.proc.send_signal(signal.SIGSTOP)  # mid-batch: it holds fetched records
        stopped = True

        # the survivor takes the zombie's partitions once its session expired: every room
        # still playing moves on by a few events
        def moved_on(room: str) -> bool:
            events = bus.by_room[room]
            over = any(e.type == "games.event.bigger_dice.game_over" for e in events)
            later = [e for e in events if e.timestamp.timestamp() > stopped_at]
            return over or len(later) >= 4

        deadline = time.monotonic() + 60
        while not all(moved_on(room) for room in rooms):
            assert time.monotonic() < deadline, "the survivor did not take over"
            await asyncio.sleep(0.05)
        taken_over = time.time() - stopped_at

        zombie.proc.send_signal(signal.SIGCONT)
        stopped = False
        played = await asyncio.gather(*games)
        await zombie.wait_ready()  # back, alive and well
        after = _counts(await zombie.metrics())
        assert await asyncio.to_thread(zombie.stop) == 0, zombie.log_tail()
        assert await asyncio.to_thread(survivor.stop) == 0, survivor.log_tail()
        await _read_to_end(bus)
    finally:
        if stopped and zombie.proc is not None:
            zombie.proc.send_signal(signal.SIGCONT)
        await bus.stop()
        zombie.kill()
        survivor.kill()

    delta = {k: after.get(k, 0) - before.get(k, 0) for k in sorted(set(after) | set(before))}
    log = zombie.log_path.read_text(errors="replace")
    commit_failures = log.count('"commit_failed"')
    print(
        f"\nZOMBIE: stopped {taken_over:.1f} s until every room moved on; after SIGCONT it "
        f"handled {delta} (by outcome), {commit_failures} offset commit(s) failed"
    )
    assert '"batch_failed"' not in log, zombie.log_tail()

    for game in played:
        by_seq: dict[int, set[uuid.UUID]] = defaultdict(set)
        room_events = [e for e in bus.by_room[game.room_id] if e.seq is not None]
        for event in room_events:
            by_seq[event.seq].add(event.event_id)  # type: ignore[index]
        doubled = {seq: ids for seq, ids in by_seq.items() if len(ids) > 1}
        assert not doubled, f"two different events under one seq in {game.room_id}: {doubled}"
        last = max(by_seq)
        assert sorted(by_seq) == list(range(1, last + 1)), f"seq gap in {game.room_id}"
        assert _client_view(room_events) == list(range(1, last + 1)), game.room_id
        stored, replayed = await replayed_state(
            redis_client, topic_prefix, game, seed=SEED, config=CONFIG
        )
        assert stored is not None
        assert replayed is not None
        assert stored.model_dump() == replayed.model_dump(), game.room_id
        assert stored.seq == last
        assert stored.status.value == "finished"
