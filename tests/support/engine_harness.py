"""Drive real engine processes through real Kafka: start `python -m parlour_engine` with a
test's prefixes, produce CommandEnvelopes, collect EventEnvelopes, and play Bigger Dice.

Everything waits for an expected event with a deadline; nothing sleeps and hopes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from parlour_protocol.v1 import (
    Actor,
    CommandEnvelope,
    EventEnvelope,
    Topics,
    encode,
)
from parlour_protocol.v1.base import ClientCommand
from parlour_protocol.v1.games.bigger_dice import Roll
from parlour_protocol.v1.records import decode_event_record
from parlour_protocol.v1.rooms import CreateRoom, JoinRoom, Ready, SelectPlayer
from parlour_protocol.v1.topics import EVENTS, PARTITIONS

DEFAULT_TIMEOUT = 30.0


def free_port() -> int:
    """A free port BELOW the kernel's ephemeral range (32768-60999 here): outgoing connections
    (Kafka, Redis clients) take their local ports from that range, so a port picked there can
    be taken between this check and the server's bind."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randint(20_000, 32_000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000")


@dataclass
class EngineProcess:
    """One `python -m parlour_engine` subprocess with the test's environment."""

    env: dict[str, str]
    log_path: Path
    health_port: int
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def configure(
        cls,
        *,
        kafka_bootstrap: str,
        redis_url: str,
        topic_prefix: str,
        log_dir: Path,
        name: str = "engine",
        extra: dict[str, str] | None = None,
    ) -> EngineProcess:
        port = free_port()
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "KAFKA_TOPIC_PREFIX": topic_prefix,
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": topic_prefix,
            "ENGINE_GROUP_ID": f"{topic_prefix}parlour-engine",
            "ENGINE_HEALTH_HOST": "127.0.0.1",
            "ENGINE_HEALTH_PORT": str(port),
            "LOG_FORMAT": "json",
            "ENGINE_RNG_SEED": "1234",
            "ENGINE_TURN_TIMEOUT_SECONDS": "600",
            **(extra or {}),
        }
        return cls(env=env, log_path=log_dir / f"{name}.log", health_port=port)

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "parlour_engine"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    async def wait_ready(self, within: float = DEFAULT_TIMEOUT) -> None:
        """Poll `/ready` until Kafka and Redis are connected (and the group joined soon)."""
        deadline = time.monotonic() + within
        async with httpx.AsyncClient() as client:
            while True:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise AssertionError(f"engine exited: {self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(
                        f"http://127.0.0.1:{self.health_port}/ready", timeout=2
                    )
                    if response.status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise AssertionError(f"engine not ready in {within}s: {self.log_tail()}")
                await asyncio.sleep(0.1)

    async def metrics(self) -> str:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{self.health_port}/metrics")
            return response.text

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class Bus:
    """The test's side of Kafka: produces commands, reads every event of the test's topic."""

    bootstrap: str
    topics: Topics
    producer: AIOKafkaProducer | None = None
    consumer: AIOKafkaConsumer | None = None
    events: list[EventEnvelope] = field(default_factory=list)
    sent: list[CommandEnvelope] = field(default_factory=list)
    by_room: dict[str, list[EventEnvelope]] = field(default_factory=lambda: defaultdict(list))
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, enable_idempotence=True, linger_ms=0
        )
        await self.producer.start()
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await self.consumer.start()
        count = PARTITIONS[EVENTS]
        assigned = [TopicPartition(self.topics.events, p) for p in range(count)]
        self.consumer.assign(assigned)
        await self.consumer.seek_to_beginning(*assigned)
        self._reader = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    async def _read(self) -> None:
        assert self.consumer is not None
        while True:
            batches = await self.consumer.getmany(timeout_ms=100)
            if not batches:
                continue
            async with self._changed:
                for records in batches.values():
                    for record in records:
                        envelope = decode_event_record(record.value, record.headers)
                        self.events.append(envelope)
                        if envelope.room_id is not None:
                            self.by_room[envelope.room_id].append(envelope)
                self._changed.notify_all()

    async def send(
        self,
        payload: ClientCommand,
        actor: Actor,
        *,
        room_id: str | None = None,
        msg_id: uuid.UUID | None = None,
        envelope: CommandEnvelope | None = None,
    ) -> CommandEnvelope:
        assert self.producer is not None
        if envelope is None:
            room = room_id or getattr(payload, "room_id", None)
            envelope = CommandEnvelope(
                msg_id=msg_id or uuid.uuid4(),
                type=payload.type,
                key=room or actor.user_id,
                room_id=room,
                actor=actor,
                connection_id=f"c-{actor.user_id}",
                gateway_id="g-test",
                request_id=f"r-{uuid.uuid4().hex[:8]}",
                payload=payload,
            )
        self.sent.append(envelope)
        await self.producer.send_and_wait(
            self.topics.commands, encode(envelope), key=envelope.key.encode()
        )
        return envelope

    async def wait_for(
        self,
        predicate: Callable[[EventEnvelope], bool],
        *,
        within: float = DEFAULT_TIMEOUT,
        what: str = "event",
        room_id: str | None = None,
    ) -> EventEnvelope:
        """The first event (ever seen, in arrival order) matching `predicate`."""
        pool_of: Callable[[], list[EventEnvelope]] = (
            (lambda: self.by_room[room_id]) if room_id is not None else (lambda: self.events)
        )
        checked = 0

        def find() -> EventEnvelope | None:
            nonlocal checked
            pool = pool_of()
            for envelope in pool[checked:]:
                if predicate(envelope):
                    return envelope
            checked = len(pool)
            return None

        async def wait() -> EventEnvelope:
            async with self._changed:
                while (found := find()) is None:
                    await self._changed.wait()
                return found

        try:
            return await asyncio.wait_for(wait(), within)
        except TimeoutError:
            raise AssertionError(f"no {what} within {within}s") from None

    async def wait_caused(
        self, command: CommandEnvelope, type_: str | None = None, within: float = DEFAULT_TIMEOUT
    ) -> EventEnvelope:
        return await self.wait_for(
            lambda e: e.causation_id == command.msg_id and (type_ is None or e.type == type_),
            within=within,
            what=f"{type_ or 'event'} caused by {command.type}",
            room_id=command.room_id,
        )


@contextlib.asynccontextmanager
async def running_engine(
    kafka_bootstrap: str,
    redis_url: str,
    topic_prefix: str,
    create_topics: Callable[..., Awaitable[Any]],
    log_dir: Path,
    extra: dict[str, str] | None = None,
) -> AsyncIterator[tuple[EngineProcess, Bus]]:
    """The test's own topics, one real engine process on them, and a Bus to drive it; the
    engine must stop cleanly (exit 0) when the test is done."""
    topics = Topics(prefix=topic_prefix)
    await create_topics(kafka_bootstrap, topics.with_partitions())
    engine = EngineProcess.configure(
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=topic_prefix,
        log_dir=log_dir,
        extra=extra,
    )
    engine.start()
    bus = Bus(kafka_bootstrap, topics)
    try:
        await bus.start()
        await engine.wait_ready()
        yield engine, bus
    finally:
        await bus.stop()
        code = engine.stop()
        assert code == 0, f"engine did not stop cleanly ({code}): {engine.log_tail()}"


def actor(n: int, tag: str = "") -> Actor:
    return Actor(user_id=f"u{tag}{n}", username=f"Player {tag}{n}", roles=["user"])


@dataclass
class PlayedGame:
    room_id: str
    game_over: EventEnvelope
    commands: list[CommandEnvelope]
    """Every command sent for this room, in the order the room applied them."""


async def start_game(
    bus: Bus, players: list[Actor], *, room_name: str, within: float = DEFAULT_TIMEOUT
) -> tuple[str, set[uuid.UUID]]:
    """create_room, joins, selects and readies: the game is running when this returns.
    Returns the room id and the msg_ids of the joins (sent without a room id)."""
    host = players[0]
    room_id = str(uuid.uuid4())
    create = await bus.send(
        CreateRoom(game_type="bigger_dice", room_name=room_name, max_players=len(players)),
        host,
        room_id=room_id,
    )
    await bus.wait_caused(create, "games.event.room_state", within)
    joins: set[uuid.UUID] = {create.msg_id}
    for player in players[1:]:
        join = await bus.send(JoinRoom(room_name=room_name), player)
        joins.add(join.msg_id)
        await bus.wait_for(
            lambda e, p=player: (
                e.type == "games.event.lobby_joined" and e.payload.player.user_id == p.user_id
            ),  # type: ignore[attr-defined]
            room_id=room_id,
            within=within,
            what=f"lobby_joined of {player.user_id} ({join.msg_id})",
        )
    for player in players:
        select = await bus.send(SelectPlayer(room_id=room_id, target_user_id=player.user_id), host)
        await bus.wait_caused(select, "games.event.player_selected", within)
    for player in players:
        ready = await bus.send(Ready(room_id=room_id), player)
        await bus.wait_caused(ready, within=within)
    await bus.wait_for(
        lambda e: e.type == "games.event.game_started", room_id=room_id, within=within
    )
    return room_id, joins


async def play_game(
    bus: Bus, players: list[Actor], *, room_name: str, within: float = DEFAULT_TIMEOUT
) -> PlayedGame:
    """From create_room to game_over, driven only by commands. Each command is sent after
    the previous one took effect, so the send order is the room's order."""
    sent_before = len(bus.sent)
    room_id, joins = await start_game(bus, players, room_name=room_name, within=within)
    by_id = {p.user_id: p for p in players}
    seen = 0
    while True:
        # the newest room event tells whose turn it is, or that the game is over
        def turn_or_end(e: EventEnvelope) -> bool:
            return e.room_id == room_id and e.type in (
                "games.event.turn_changed",
                "games.event.bigger_dice.game_over",
            )

        event = await bus.wait_for(
            lambda e, after=seen: turn_or_end(e) and (e.seq or 0) > after,
            room_id=room_id,
            within=within,
            what=f"turn_changed/game_over after seq {seen} in {room_id}",
        )
        seen = event.seq or seen
        if event.type == "games.event.bigger_dice.game_over":
            mine = [c for c in bus.sent[sent_before:] if c.room_id == room_id or c.msg_id in joins]
            return PlayedGame(room_id, event, mine)
        turn: Any = event.payload
        roll = await bus.send(Roll(room_id=room_id), by_id[turn.current_turn])
        await bus.wait_caused(roll, within=within)


def start_games(
    bus: Bus, count: int, label: str, *, within: float
) -> list[asyncio.Task[PlayedGame]]:
    """`count` two-player games played at once (`play_game` each, players of their own), in
    rooms named `<label> <tag> <n>`."""
    tag = uuid.uuid4().hex[:6]
    return [
        asyncio.create_task(
            play_game(
                bus,
                [actor(2 * g, tag), actor(2 * g + 1, tag)],
                room_name=f"{label} {tag} {g}",
                within=within,
            )
        )
        for g in range(count)
    ]


def engines_named(
    names: tuple[str, ...],
    *,
    kafka_bootstrap: str,
    redis_url: str,
    topic_prefix: str,
    log_dir: Path,
    extra: dict[str, str] | None = None,
) -> list[EngineProcess]:
    """Engine processes of one consumer group, configured alike (not started)."""
    return [
        EngineProcess.configure(
            kafka_bootstrap=kafka_bootstrap,
            redis_url=redis_url,
            topic_prefix=topic_prefix,
            log_dir=log_dir,
            name=name,
            extra=extra,
        )
        for name in names
    ]


def commands_handled(metrics: str) -> int:
    """Commands an engine handled, from the text of its /metrics."""
    pattern = r"^parlour_engine_commands_total\{[^}]*\} (\S+)$"
    return sum(int(float(m)) for m in re.findall(pattern, metrics, re.M))


async def replayed_state(
    redis: Any, prefix: str, game: PlayedGame, *, seed: int, config: Any
) -> tuple[Any, Any]:
    """(state stored in Redis, `rules.replay` of the commands the room recorded as applied),
    each command replayed with the engine's `now` (kept in its record) and its seeded dice."""
    import random
    from datetime import datetime

    from parlour_engine.rules import RoomState, replay
    from parlour_engine.store import Record
    from parlour_protocol.v1 import RedisKeys

    keys = RedisKeys(prefix=prefix)
    raw = await redis.get(keys.room_state(game.room_id))
    stored = None if raw is None else RoomState.load(raw, config.games)
    state = None
    seen: set[uuid.UUID] = set()
    for command in game.commands:
        if command.msg_id in seen:
            continue  # a re-sent msg_id takes effect once
        seen.add(command.msg_id)
        record = await redis.hget(keys.room_applied(game.room_id), str(command.msg_id))
        if record is None:
            continue
        now = datetime.fromisoformat(Record.loads(record).projection["now"])
        state = replay([(command, now)], random.Random(f"{seed}:{command.msg_id}"), config, state)
    return stored, state
