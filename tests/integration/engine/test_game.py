"""A real engine process on real Kafka and Redis, driven only by Kafka commands."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from parlour_engine.games.bigger_dice import DiceConfig
from parlour_engine.rules import RoomState
from parlour_protocol.v1 import RedisKeys
from parlour_protocol.v1.games.bigger_dice import Roll
from parlour_protocol.v1.rooms import CreateRoom, ListRooms
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


@pytest.fixture
async def engine_env(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, create_topics, tmp_path: Path
) -> AsyncIterator[tuple[EngineProcess, Bus]]:
    async with running_engine(
        kafka_bootstrap, redis_url, topic_prefix, create_topics, tmp_path
    ) as env:
        yield env


async def _consumer_lag(engine: EngineProcess, within: float = 30.0) -> dict[str, float]:
    """The engine's own lag gauge once it shows every commands partition caught up, or as it
    is when `within` runs out (the gauges are sampled every 10 s)."""
    deadline = time.monotonic() + within
    while True:
        lag = {
            sample.labels["partition"]: sample.value
            for family in text_string_to_metric_families(await engine.metrics())
            if family.name == "parlour_engine_consumer_lag"
            for sample in family.samples
        }
        if (len(lag) == PARTITIONS[COMMANDS] and not any(lag.values())) or (
            time.monotonic() > deadline
        ):
            return lag
        await asyncio.sleep(0.5)


@pytest.mark.parametrize("players", [2, 4])
async def test_engine_full_game(
    engine_env: tuple[EngineProcess, Bus],
    redis_client: aioredis.Redis,
    topic_prefix: str,
    players: int,
) -> None:
    engine, bus = engine_env
    tag = uuid.uuid4().hex[:6]
    game = await play_game(bus, [actor(i, tag) for i in range(players)], room_name=f"room {tag}")

    over = game.game_over.payload
    assert len(over.final_scores) == players  # type: ignore[attr-defined]
    assert max(s.score for s in over.final_scores) == DiceConfig().winning_score  # type: ignore[attr-defined]
    # every room event of the room, in order, without a gap
    seqs = [e.seq for e in bus.by_room[game.room_id] if e.seq is not None]
    assert seqs == list(range(1, len(seqs) + 1))
    # the replay stream holds the same events
    keys = RedisKeys(prefix=topic_prefix)
    stream = await redis_client.xrange(keys.room_events(game.room_id))
    assert [int(fields[b"seq"]) for _, fields in stream] == seqs[-len(stream) :]
    # the stored state is what the pure rules compute from the applied commands
    stored, replayed = await replayed_state(
        redis_client, topic_prefix, game, seed=SEED, config=CONFIG
    )
    assert stored is not None
    assert replayed is not None
    assert stored.model_dump() == replayed.model_dump()
    assert stored.seq == seqs[-1]
    metrics = await engine.metrics()
    assert (
        'parlour_engine_commands_total{outcome="applied",type="games.command.bigger_dice.roll"}'
        in metrics
    )
    # the only engine owns every partition, and has taken every command on them
    assert await _consumer_lag(engine) == {str(p): 0 for p in range(PARTITIONS[COMMANDS])}


async def test_engine_same_command_twice_has_one_effect(
    engine_env: tuple[EngineProcess, Bus], redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    _, bus = engine_env
    tag = uuid.uuid4().hex[:6]
    host, guest = actor(0, tag), actor(1, tag)
    game = await play_game(bus, [host, guest], room_name=f"dup {tag}")
    keys = RedisKeys(prefix=topic_prefix)

    # a fresh room: the same create envelope delivered twice
    room_id = str(uuid.uuid4())
    first = await bus.send(
        CreateRoom(game_type="bigger_dice", room_name=f"again {tag}"), host, room_id=room_id
    )
    await bus.wait_caused(first, "games.event.room_state")
    state_after_first = await redis_client.get(keys.room_state(room_id))
    await bus.send(first.payload, host, envelope=first)
    # the second delivery's events arrive again: wait for the second room_created copy
    await bus.wait_for(
        lambda e: (
            e.causation_id == first.msg_id
            and e.type == "games.event.room_created"
            and sum(
                1
                for x in bus.events
                if x.causation_id == first.msg_id and x.type == "games.event.room_created"
            )
            >= 2
        ),
        what="re-published room_created",
    )
    copies = [e for e in bus.events if e.causation_id == first.msg_id]
    originals = {e.event_id: e for e in copies[: len(copies) // 2]}
    assert len(copies) % 2 == 0
    for again in copies[len(copies) // 2 :]:
        assert again.event_id in originals
        assert again.seq == originals[again.event_id].seq
    assert await redis_client.get(keys.room_state(room_id)) == state_after_first
    assert RoomState.load(state_after_first, CONFIG.games).version == 1

    # a roll re-sent after the game is over: rejected once, and the re-send repeats that
    stale = await bus.send(Roll(room_id=game.room_id), host)
    error = await bus.wait_caused(stale, "system.error")
    before = await redis_client.get(keys.room_state(game.room_id))
    await bus.send(stale.payload, host, envelope=stale)
    await bus.wait_for(
        lambda e: (
            e.causation_id == stale.msg_id and e.event_id == error.event_id and e is not error
        ),
        what="the same error again",
    )
    assert await redis_client.get(keys.room_state(game.room_id)) == before

    # a list_rooms answer lists the waiting room, not the finished one
    listing = await bus.send(ListRooms(), guest)
    answer = await bus.wait_caused(listing, "games.event.room_list")
    listed = {r.room_id for r in answer.payload.rooms}  # type: ignore[attr-defined]
    assert room_id in listed
    assert game.room_id not in listed
