"""A whole game on the clustered topology: one engine and two gateways (real processes, with
REDIS_CLUSTER_NODES and the three brokers of `make infra-up TOPOLOGY=cluster`), players on
different gateways, chat, and a player who drops and resumes with `last_seq` on the other
gateway. Redis state (read with a cluster client) must equal the pure rules replayed over the
commands the room recorded as applied (taken from the commands topic, in the room's order)."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from parlour_protocol.v1 import CommandEnvelope, RedisKeys, decode_command_envelope
from parlour_protocol.v1.topics import Topics
from tests.support.engine_harness import PlayedGame, replayed_state
from tests.support.rules_table import rules_config
from tests.support.stack import (
    Player,
    assert_once_in_order,
    is_room_event,
    play_turns,
    room_of,
    running_stack,
    start_game,
)

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

SEED = 1234  # ENGINE_RNG_SEED of the harness
CONFIG = rules_config(turn_timeout_seconds=600)


async def _commands(bootstrap: str, topic: str, within: float = 30) -> list[CommandEnvelope]:
    """Every command on the test's commands topic."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = consumer.assignment()
        deadline = time.monotonic() + within
        while not partitions:
            assert time.monotonic() < deadline, "no partitions assigned"
            await asyncio.sleep(0.1)
            partitions = consumer.assignment()
        ends = await consumer.end_offsets(list(partitions))
        out: list[CommandEnvelope] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            assert time.monotonic() < deadline, "the commands topic was not read in time"
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(decode_command_envelope(r.value) for r in records if r.value)
        return out
    finally:
        await consumer.stop()


async def test_gateway_game_with_chat_and_resume_on_the_cluster(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: Any,
    topic_prefix: str,
    create_topics: Any,
    tmp_path: Path,
) -> None:
    async with running_stack(
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,  # REDIS_CLUSTER_NODES, inherited from this environment, wins
        topic_prefix=topic_prefix,
        create_topics=create_topics,
        tmp_path=tmp_path,
    ) as (_, (gw1, gw2), keys):
        rkeys = RedisKeys(prefix=topic_prefix)
        tag = uuid.uuid4().hex[:6]
        host = Player(f"h{tag}", keys.token(f"h{tag}"))
        guest = Player(f"g{tag}", keys.token(f"g{tag}"))
        await host.connect(gw1.url)
        await guest.connect(gw2.url)
        # presence on the cluster: both online, each socket recorded under its user's tag
        for player in (host, guest):
            [sid] = await redis_client.smembers(rkeys.user_sockets(player.user_id))
            assert await redis_client.exists(rkeys.socket(player.user_id, sid.decode()))
            assert await redis_client.sismember(rkeys.presence_online(), player.user_id)

        room_id = await start_game(host, guest, f"Cluster {tag}")
        # chat among the players (lobby chat closes when the game starts)
        mark = len(guest.frames)
        await host.command(
            {
                "type": "games.command.send_chat",
                "room_id": room_id,
                "channel": "players",
                "content": f"hello {tag}",
            }
        )
        await guest.wait(
            lambda f: f["type"] == "games.event.chat_message" and f["content"] == f"hello {tag}",
            after=mark,
        )
        players = {host.user_id: host, guest.user_id: guest}
        seen, over = await play_turns(room_id, players, host, max_turns=2)
        assert not over
        await guest.wait(lambda f: room_of(f) == room_id and f.get("seq") == seen)

        # the guest drops and resumes on the other gateway with last_seq
        await guest.close()
        last_seq = max(guest.room_seqs(room_id))
        await guest.connect(gw1.url)
        mark = len(guest.frames)
        await guest.command(
            {"type": "games.command.rejoin_room", "room_id": room_id, "last_seq": last_seq}
        )
        await guest.wait(is_room_event(room_id, "games.event.room_state"), after=mark)
        _, over = await play_turns(room_id, players, host, seen=seen)
        assert over
        await guest.wait(is_room_event(room_id, "games.event.bigger_dice.game_over"))
        assert_once_in_order(host, room_id, from_one=True)
        assert_once_in_order(guest, room_id, from_one=False)
        assert len(await redis_client.lrange(rkeys.room_chat(room_id, "players"), 0, -1)) == 1

        # in the order the room applied them (its applied_order list): a command keyed by
        # user (presence) sits on another partition than the room's own commands
        by_id = {
            str(c.msg_id): c
            for c in await _commands(kafka_bootstrap, Topics(prefix=topic_prefix).commands)
        }
        order = await redis_client.lrange(rkeys.room_applied_order(room_id), 0, -1)
        commands = [by_id[m.decode()] for m in order if m.decode() in by_id]
        assert len(commands) > 10
        game_over: Any = None
        stored, replayed = await replayed_state(
            redis_client,
            topic_prefix,
            PlayedGame(room_id, game_over, commands),
            seed=SEED,
            config=CONFIG,
        )
        assert stored is not None
        assert replayed is not None
        assert stored.model_dump() == replayed.model_dump()
        assert stored.seq == host.room_seqs(room_id)[-1]
        await host.close()
        await guest.close()
