"""Partitions added to the topics while everything runs: no process restarts.

Two engines and two gateways start on topics of 2 partitions; a game is under way. Then both
topics grow to 6 partitions with the admin client. The engines (metadata refresh 1 s) rebalance
onto the new partitions of the commands topic and produce the events of rooms whose keys now
map to a new partition there; the gateways (refresh 5 s, so they notice last) must read the new
partitions of the events topic from their beginning, or the events produced before they
noticed would be lost. New rooms are played until one whose key maps to a new partition has
finished with its commands and events on that partition; every client must see every room's
events once and in seq order, and the game under way during the change finishes too."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions
from aiokafka.partitioner import murmur2

from parlour_protocol.v1 import Topics
from tests.support.engine_harness import EngineProcess
from tests.support.gateway_harness import GatewayProc
from tests.support.stack import (
    Player,
    assert_once_in_order,
    is_room_event,
    play_turns,
    running_stack,
    start_game,
)

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

BEFORE, AFTER = 2, 6
ENGINE_ENV = {"KAFKA_METADATA_MAX_AGE_SECONDS": "1"}
GATEWAY_ENV = {"KAFKA_METADATA_MAX_AGE_SECONDS": "5"}


def partition_of(key: str, partitions: int) -> int:
    """The partition the producers' default partitioner gives `key` (murmur2)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


async def _end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


def _first_log(gw: GatewayProc, event: str) -> dict[str, Any] | None:
    for line in gw.logs().splitlines():
        if f'"{event}"' in line:
            try:
                record: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == event:
                return record
    return None


async def test_partitions_added_at_run_time_reach_players_through_running_processes(
    kafka_bootstrap: str,
    redis_url: str,
    topic_prefix: str,
    create_topics: Any,
    tmp_path: Path,
) -> None:
    topics = Topics(prefix=topic_prefix)
    await create_topics(
        kafka_bootstrap, {topics.commands: BEFORE, topics.events: BEFORE, topics.commands_dlq: 1}
    )

    async def made_already(*_: Any, **__: Any) -> list[str]:
        return []  # running_stack would ask for the usual partition counts

    async with running_stack(
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=topic_prefix,
        create_topics=made_already,
        tmp_path=tmp_path,
        engine_env=ENGINE_ENV,
        gateway_env=GATEWAY_ENV,
    ) as (_engine, (gw1, gw2), keys):
        second = EngineProcess.configure(
            kafka_bootstrap=kafka_bootstrap,
            redis_url=redis_url,
            topic_prefix=topic_prefix,
            log_dir=tmp_path,
            name="engine-2",
            extra=ENGINE_ENV,
        )
        second.start()
        players: list[Player] = []
        try:
            await second.wait_ready()
            tag = uuid.uuid4().hex[:6]

            def pair(n: int) -> tuple[Player, Player]:
                host = Player(f"h{n}{tag}", keys.token(f"h{n}{tag}"))
                guest = Player(f"g{n}{tag}", keys.token(f"g{n}{tag}"))
                players.extend((host, guest))
                return host, guest

            # a game under way while the topics grow
            host0, guest0 = pair(0)
            await host0.connect(gw1.url)
            await guest0.connect(gw2.url)
            room0 = await start_game(host0, guest0, f"Before {tag}")
            both0 = {host0.user_id: host0, guest0.user_id: guest0}
            seen0, over0 = await play_turns(room0, both0, host0, max_turns=2)
            assert not over0

            admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
            await admin.start()
            try:
                await admin.create_partitions(
                    {
                        topics.commands: NewPartitions(total_count=AFTER),
                        topics.events: NewPartitions(total_count=AFTER),
                    }
                )
            finally:
                await admin.close()
            grown_at = time.time()

            # the game under way goes on: its key may map to another partition now
            _, over0 = await play_turns(room0, both0, host0, seen=seen0)
            assert over0

            # new rooms until one keyed to a new partition has played there end to end
            played: list[tuple[str, Player, Player]] = []
            deadline = time.monotonic() + 120
            on_new: str | None = None
            while on_new is None:
                assert time.monotonic() < deadline, f"no room on a new partition: {played}"
                host, guest = pair(len(played) + 1)
                await host.connect(gw1.url)
                await guest.connect(gw2.url)
                room = await start_game(host, guest, f"After {tag} {len(played)}")
                _, over = await play_turns(room, {host.user_id: host, guest.user_id: guest}, host)
                assert over
                await guest.wait(is_room_event(room, "games.event.bigger_dice.game_over"))
                played.append((room, host, guest))
                partition = partition_of(room, AFTER)
                if partition < BEFORE:
                    continue
                commands = await _end_offsets(kafka_bootstrap, topics.commands, AFTER)
                events = await _end_offsets(kafka_bootstrap, topics.events, AFTER)
                # its events went to the new partition (engines refreshed), and so did its
                # later commands once the gateways' producers refreshed (then an engine of
                # the rebalanced group took them)
                if events[partition] > 0 and commands[partition] > 0:
                    on_new = room

            assert_once_in_order(host0, room0, from_one=True)
            assert_once_in_order(guest0, room0, from_one=False)
            for room, host, guest in played:
                assert_once_in_order(host, room, from_one=True)
                assert_once_in_order(guest, room, from_one=False)
                assert guest.room_seqs(room)[-1] == host.room_seqs(room)[-1]
            for gw in (gw1, gw2):
                added = _first_log(gw, "events_partitions_added")
                assert added is not None, f"{gw.gateway_id} never took the new partitions"
                assert added["added"] == list(range(BEFORE, AFTER))
            noticed = _first_log(gw1, "events_partitions_added")
            assert noticed is not None
            print(
                f"\nADD PARTITIONS: {BEFORE} -> {AFTER}; gateway noticed after "
                f"{_age(noticed, grown_at):.1f} s; {len(played)} new room(s) played, "
                f"room {on_new} on partition {partition_of(on_new, AFTER)}"
            )
        finally:
            for player in players:
                await player.close()
            second.kill()


def _age(record: dict[str, Any], since: float) -> float:
    from datetime import datetime

    return datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp() - since
