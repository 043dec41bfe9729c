"""Two engines in one consumer group; one is SIGKILLed while 50 games run. Every game must
finish, every room's stored state must equal the pure rules' replay of the commands it
applied, and no room may show a gap in its event seqs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from parlour_protocol.v1 import RedisKeys, Topics
from tests.support.engine_harness import (
    Bus,
    commands_handled,
    engines_named,
    replayed_state,
    start_games,
)
from tests.support.rules_table import rules_config

SEED = 1234
CONFIG = rules_config(turn_timeout_seconds=600)
GAMES = 50

pytestmark = pytest.mark.slow


@pytest.mark.timeout(240)
async def test_engine_failover_sigkill_mid_games(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: aioredis.Redis,
    topic_prefix: str,
    create_topics,
    tmp_path: Path,
) -> None:
    topics = Topics(prefix=topic_prefix)
    await create_topics(kafka_bootstrap, topics.with_partitions())
    engines = engines_named(
        ("engine-a", "engine-b"),
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=topic_prefix,
        log_dir=tmp_path,
        extra={"ENGINE_SESSION_TIMEOUT_SECONDS": "6"},
    )
    for engine in engines:
        engine.start()
    bus = Bus(kafka_bootstrap, topics)
    victim, survivor = engines
    try:
        await bus.start()
        for engine in engines:
            await engine.wait_ready()
        games = start_games(bus, GAMES, "fo", within=60)
        # kill when both engines are working and the games are well under way
        deadline = time.monotonic() + 60
        while True:
            counts = [commands_handled(await e.metrics()) for e in engines]
            rolls = sum(1 for e in bus.events if e.type == "games.event.bigger_dice.rolled")
            if min(counts) > 0 and rolls >= GAMES * 5:
                break
            assert time.monotonic() < deadline, f"games did not get going: {counts}, {rolls}"
            for task in games:
                if task.done() and (error := task.exception()) is not None:
                    raise error
            await asyncio.sleep(0.05)
        victim.kill()
        killed_at_events = len(bus.events)

        played = await asyncio.gather(*games)
        assert len(bus.events) > killed_at_events

        keys = RedisKeys(prefix=topic_prefix)
        for game in played:
            seqs = {e.seq for e in bus.by_room[game.room_id] if e.seq is not None}
            assert seqs == set(range(1, max(seqs) + 1)), f"seq gap in {game.room_id}"
            stream = await redis_client.xrange(keys.room_events(game.room_id))
            stream_seqs = [int(fields[b"seq"]) for _, fields in stream]
            assert stream_seqs == sorted(set(stream_seqs)), "the replay stream repeats a seq"
            assert stream_seqs == list(range(stream_seqs[0], stream_seqs[-1] + 1))
            stored, replayed = await replayed_state(
                redis_client, topic_prefix, game, seed=SEED, config=CONFIG
            )
            assert stored is not None
            assert replayed is not None
            assert stored.model_dump() == replayed.model_dump(), game.room_id
            assert stored.seq == max(seqs)
            assert stored.status.value == "finished"
    finally:
        await bus.stop()
        victim.kill()
        survivor.stop()
    assert survivor.proc is not None
    assert survivor.proc.returncode == 0, survivor.log_tail()


@pytest.mark.timeout(180)
async def test_engine_sigterm_mid_games_loses_and_repeats_nothing(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: aioredis.Redis,
    topic_prefix: str,
    create_topics,
    tmp_path: Path,
) -> None:
    """A graceful stop finishes its batch and commits it: the next engine starts exactly
    where it ended (no command handled twice), and every game still finishes."""
    topics = Topics(prefix=topic_prefix)
    await create_topics(kafka_bootstrap, topics.with_partitions())

    first, second = engines_named(
        ("first", "second"),
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=topic_prefix,
        log_dir=tmp_path,
        extra={"ENGINE_SESSION_TIMEOUT_SECONDS": "6"},
    )
    first.start()
    bus = Bus(kafka_bootstrap, topics)
    try:
        await bus.start()
        await first.wait_ready()
        games = start_games(bus, 10, "term", within=60)
        deadline = time.monotonic() + 60
        while sum(1 for e in bus.events if e.type == "games.event.bigger_dice.rolled") < 50:
            assert time.monotonic() < deadline, "games did not get going"
            await asyncio.sleep(0.05)
        assert await asyncio.to_thread(first.stop) == 0, first.log_tail()
        second.start()
        await second.wait_ready()
        played = await asyncio.gather(*games)
        keys = RedisKeys(prefix=topic_prefix)
        for game in played:
            stored, replayed = await replayed_state(
                redis_client, topic_prefix, game, seed=SEED, config=CONFIG
            )
            assert stored is not None
            assert replayed is not None
            assert stored.model_dump() == replayed.model_dump()
            assert await redis_client.xlen(keys.room_events(game.room_id)) == stored.seq
    finally:
        await bus.stop()
        second.stop()
    assert '"outcome": "duplicate"' not in second.log_path.read_text()
