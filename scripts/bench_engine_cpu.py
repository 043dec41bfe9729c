"""The engine's own CPU per command, without Kafka: the command processor (decode, rules,
Redis commit, event building) driven in-process against real Redis, events handed to a sink
that acknowledges at once. CPU time of this process, so other load on the machine barely
moves it (bench_engine.py measures the whole engine process, Kafka client included).

    .venv/bin/python scripts/bench_engine_cpu.py [--rooms 200] [--rounds 12]

Sets up `--rooms` two-player Bigger Dice games, then runs rounds of one roll per room, each
round one batch (as one poll of the commands topic would be), and prints the CPU per roll.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Awaitable
from typing import Any

from bench_support import redis_url

from parlour_engine.games import discover
from parlour_engine.handler import production_rng
from parlour_engine.kafka_consumer import RawCommand
from parlour_engine.metrics import EngineMetrics
from parlour_engine.redis_pool import engine_redis
from parlour_engine.rules import RulesConfig
from parlour_engine.store import RoomStore
from parlour_engine.worker import CommandProcessor
from parlour_protocol.v1 import Actor, CommandEnvelope, RedisKeys, encode
from parlour_protocol.v1.base import ClientCommand
from parlour_protocol.v1.games.bigger_dice import Roll
from parlour_protocol.v1.rooms import CreateRoom, JoinRoom, Ready, SelectPlayer
from parlour_runtime import RedisSettings, configure_logging


class Sink:
    """Acknowledges every record at once; remembers whose turn it is from the events."""

    def __init__(self) -> None:
        self.turn: dict[str, str] = {}
        self.over: set[str] = set()
        self.events = 0

    async def send(self, topic: str, key: str, value: bytes, headers: Any = None) -> Awaitable[Any]:
        self.events += 1
        if b"turn_changed" in value[:120] or b"game_over" in value[:160]:
            data = json.loads(value)
            payload = data.get("payload", data)  # the envelope form, or the record form
            if payload["type"] == "games.event.turn_changed":
                self.turn[payload["room_id"]] = payload["current_turn"]
            else:
                self.over.add(payload["room_id"])
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def command(payload: ClientCommand, actor: Actor, room_id: str | None, offset: int) -> RawCommand:
    envelope = CommandEnvelope(
        type=payload.type,
        key=room_id or actor.user_id,
        room_id=room_id,
        actor=actor,
        connection_id=f"c-{actor.user_id}",
        gateway_id="bench",
        request_id=f"r{offset}",
        payload=payload,
    )
    return RawCommand(
        key=envelope.key, value=encode(envelope), topic="cmd", partition=0, offset=offset
    )


async def run(args: argparse.Namespace) -> None:
    prefix = f"benchcpu{uuid.uuid4().hex[:6]}."
    redis = engine_redis(RedisSettings(redis_url=args.redis), 64)
    keys = RedisKeys(prefix)
    sink = Sink()
    processor = CommandProcessor(
        redis=redis,
        store=RoomStore(redis, keys, applied_ttl_seconds=600, ended_room_ttl_seconds=600),
        sink=sink,
        metrics=EngineMetrics(),
        config=RulesConfig(games=discover()),
        events_topic="events",
        dlq_topic="dlq",
        max_tries=3,
        rng_for=production_rng(),
    )
    offset = 0

    def raw(payload: ClientCommand, actor: Actor, room_id: str | None) -> RawCommand:
        nonlocal offset
        offset += 1
        return command(payload, actor, room_id, offset)

    try:
        rooms = [str(uuid.uuid4()) for _ in range(args.rooms)]
        players = {
            r: [Actor(user_id=f"u{i}-{r[:8]}", username=f"p{i}") for i in (1, 2)] for r in rooms
        }
        names = {r: f"cpu {r[:12]}" for r in rooms}
        await processor.process_batch(
            [
                raw(
                    CreateRoom(game_type="bigger_dice", room_name=names[r], max_players=2),
                    players[r][0],
                    r,
                )
                for r in rooms
            ]
        )
        await processor.process_batch(
            [raw(JoinRoom(room_name=names[r]), players[r][1], None) for r in rooms]
        )
        for i in (0, 1):
            await processor.process_batch(
                [
                    raw(
                        SelectPlayer(room_id=r, target_user_id=players[r][i].user_id),
                        players[r][0],
                        r,
                    )
                    for r in rooms
                ]
            )
        for i in (0, 1):
            await processor.process_batch([raw(Ready(room_id=r), players[r][i], r) for r in rooms])
        by_id = {p.user_id: p for r in rooms for p in players[r]}
        rolls = 0
        events_before = sink.events
        cpu = time.process_time()
        wall = time.perf_counter()
        for _ in range(args.rounds):
            live = [r for r in rooms if r not in sink.over and r in sink.turn]
            if len(live) < len(rooms) // 2:
                break
            await processor.process_batch(
                [raw(Roll(room_id=r), by_id[sink.turn[r]], r) for r in live]
            )
            rolls += len(live)
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - wall
        events = sink.events - events_before
        print(
            f"{rolls} rolls in batches of <= {args.rooms}: {cpu / rolls * 1e3:.3f} ms CPU per roll "
            f"({events / rolls:.1f} events each), wall {wall / rolls * 1e3:.3f} ms per roll"
        )
    finally:
        batch: list[bytes] = []
        async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
        for start in range(0, len(batch), 1000):
            await redis.unlink(*batch[start : start + 1000])
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis", default=redis_url())
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--log-level", default="WARNING", help="as LOG_LEVEL (JSON lines)")
    args = parser.parse_args()
    configure_logging(args.log_level, "json")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
