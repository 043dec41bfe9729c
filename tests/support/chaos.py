"""The load and the verdict of the chaos tests (tests/integration/chaos/): real engines and
gateways, at least 20 concurrent Bigger Dice games played by `websockets` protocol clients,
a fault injected mid-game, then every game finished and checked.

    stack = ChaosStack(bootstrap=..., redis_url=..., prefix=..., log_dir=...)
    await stack.start()                       # its topics, 2 engines, 2 gateways
    run = ChaosRun(stack, games=20)
    await run.start()                         # every game running, both engines busy
    run.mark_fault()                          # the clock of the recovery times starts
    stack.engines[0].kill()                   # ... the fault
    result = await run.finish_and_verify("engine SIGKILL")

The clients behave as a browser does: a roll answered `service_unavailable` is sent again with
the same request_id (same connection: same msg_id, so it takes effect at most once); a socket
that dies is reopened on a gateway that lives and the room resumed with `rejoin_room
{last_seq}`; a roll whose answer died with its socket is sent again with a new request_id once
resumed (the rules refuse the second one when the first took effect: `not_your_turn`).

The verdict (`verify`), per game and per command the clients sent:
- every game finished (game_over seen by both players);
- Redis holds the pure rules replayed over the commands its room applied
  (engine_harness.replayed_state over the command topic, read back from Kafka);
- the room's event stream in Redis has seqs 1..N, each once, and no command has two `rolled`
  events (a zombie's stale effect would add one);
- each player saw the room's seqs once each, in order, without a gap, across resumes;
- each state-changing command (create, join, select, ready, roll): acknowledged and not
  refused -> it took effect exactly once (else `lost` or `doubled`); refused -> it did not
  take effect; its answer died with the socket -> "in doubt", it took effect at most once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from parlour_protocol.v1 import CommandEnvelope, RedisKeys, Topics, decode_command_envelope
from tests.support.engine_harness import (
    EngineProcess,
    PlayedGame,
    commands_handled,
    replayed_state,
)
from tests.support.gateway_harness import GatewayProc, Keys
from tests.support.paths import REPO_ROOT
from tests.support.rules_table import rules_config
from tests.support.stack import GW_ENV, Player, room_of, start_game

SEED = 1234  # EngineProcess's ENGINE_RNG_SEED
CONFIG = rules_config(turn_timeout_seconds=600)  # EngineProcess's ENGINE_TURN_TIMEOUT_SECONDS
RESULTS_DIR = REPO_ROOT / ".infra" / "chaos"
"""results.json and results.md of the last session that ran chaos tests."""

STATE_CHANGING = {
    "games.command.create_room",
    "games.command.join_room",
    "games.command.select_player",
    "games.command.ready",
    "games.command.bigger_dice.roll",
}
ROLL = "games.command.bigger_dice.roll"
ROLLED = "games.event.bigger_dice.rolled"
GAME_OVER = "games.event.bigger_dice.game_over"
GAMES = 20
"""Concurrent games of every chaos test (2 players each)."""
IDLE_LIMIT = 120.0
"""A game that shows no progress for this long fails the test."""


# --------------------------------------------------------------------------- the stack


async def create_replicated_topics(
    bootstrap: str, prefix: str, *, replication: int = 1, configs: dict[str, str] | None = None
) -> Topics:
    """The test's topics with `replication` replicas (3 and min.insync.replicas=2 on the
    cluster topology), once every partition has a leader."""
    topics = Topics(prefix=prefix)
    wanted = topics.with_partitions()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, p, replication, topic_configs=configs or {}) for n, p in wanted.items()]
        )
        async with asyncio.timeout(60):
            while True:
                described = await admin.describe_topics(list(wanted))
                if all(
                    t["error_code"] == 0
                    and len(t["partitions"]) == wanted[t["topic"]]
                    and all(p["leader"] >= 0 for p in t["partitions"])
                    for t in described
                ):
                    return topics
                await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, topics: Topics) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        await admin.delete_topics(list(topics.with_partitions()))
    finally:
        await admin.close()


async def partition_leaders(bootstrap: str, topics: Topics) -> dict[tuple[str, int], int]:
    """(topic, partition) -> the broker id leading it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics.with_partitions()))
    finally:
        await admin.close()
    return {(t["topic"], p["partition"]): p["leader"] for t in described for p in t["partitions"]}


async def session_timeout_env(bootstrap: str) -> dict[str, str]:
    """The engines' group session timeout: their default, unless the brokers refuse it (below
    their `group.min.session.timeout.ms`): then that floor, set explicitly."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from parlour_engine.settings import EngineSettings

    default = EngineSettings.model_fields["engine_session_timeout_seconds"].default
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        floors = []
        for broker in cluster["brokers"]:  # the group's coordinator may be any of them
            [response] = await admin.describe_configs(
                [
                    ConfigResource(
                        ConfigResourceType.BROKER,
                        str(broker["node_id"]),
                        {"group.min.session.timeout.ms": None},
                    )
                ]
            )
            floors += [
                int(entry[1]) / 1000
                for resource in response.resources
                for entry in resource[4]
                if entry[0] == "group.min.session.timeout.ms"
            ]
    finally:
        await admin.close()
    floor = max(floors, default=6.0)
    if default >= floor:
        return {}
    return {"ENGINE_SESSION_TIMEOUT_SECONDS": f"{floor:g}"}


class OwnBroker:
    """A single-node KRaft broker of the test's own (`make infra-up`'s template and jars, its
    data under `directory`), for the broker restart: the shared broker is never touched."""

    def __init__(self, directory: Path) -> None:
        import string

        from infra.kafka_broker import ensure_java_and_jars, format_storage, new_cluster_id
        from infra.paths import KAFKA_SRC

        from tests.support.engine_harness import free_port

        ensure_java_and_jars()
        self.directory = directory
        self.port, self.controller_port = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.config = directory / "server.properties"
        self.log = directory / "kafka.log"
        directory.mkdir(parents=True, exist_ok=True)
        template = string.Template((KAFKA_SRC / "server.properties").read_text())
        self.config.write_text(
            template.substitute(
                host="127.0.0.1",
                port=self.port,
                controller_port=self.controller_port,
                data_dir=directory / "data",
            )
        )
        format_storage(self.config, directory / "data", new_cluster_id())
        self.proc: Any = None

    async def start(self, within: float = 120) -> None:
        """Start the JVM and wait until a produce and a consume work."""
        from infra.kafka_broker import spawn_broker
        from infra.kafka_probe import kafka_check

        self.proc = spawn_broker(
            self.config, self.directory, self.log, self.directory / "kafka.pid", "-Xmx384m"
        )
        deadline = time.monotonic() + within
        while True:
            assert self.proc.poll() is None, self.log.read_text(errors="replace")[-2000:]
            why = await asyncio.to_thread(kafka_check, self.bootstrap, 10)
            if why is None:
                return
            assert time.monotonic() < deadline, f"own broker not up: {why}"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


async def busiest_leader(bootstrap: str, topics: Topics) -> tuple[int, dict[int, int]]:
    """The broker leading the partitions that hold the most records of the test's command
    and event topics, and the records led per broker."""
    leaders = await partition_leaders(bootstrap, topics)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        wanted = [TopicPartition(t, p) for t, p in leaders if t in (topics.commands, topics.events)]
        ends = await consumer.end_offsets(wanted)
    finally:
        await consumer.stop()
    load: Counter[int] = Counter()
    for tp, end in ends.items():
        load[leaders[(tp.topic, tp.partition)]] += end
    return load.most_common(1)[0][0], dict(load)


@dataclass
class ChaosStack:
    """2 engines (one consumer group) and 2 gateways on the test's topics and key prefix."""

    bootstrap: str
    redis_url: str
    prefix: str
    log_dir: Path
    replication: int = 1
    topic_configs: dict[str, str] = field(default_factory=dict)
    engine_env: dict[str, str] = field(default_factory=dict)
    gateway_env: dict[str, str] = field(default_factory=dict)
    engines: list[EngineProcess] = field(default_factory=list)
    gateways: list[GatewayProc] = field(default_factory=list)
    dead_gateways: set[str] = field(default_factory=set)
    keys: Keys | None = None
    topics: Topics | None = None

    async def start(self, engines: int = 2, gateways: int = 2) -> None:
        self.engine_env = {**await session_timeout_env(self.bootstrap), **self.engine_env}
        self.topics = await create_replicated_topics(
            self.bootstrap, self.prefix, replication=self.replication, configs=self.topic_configs
        )
        self.keys = Keys(self.log_dir / "jwt")
        for i in range(engines):
            self.engines.append(
                EngineProcess.configure(
                    kafka_bootstrap=self.bootstrap,
                    redis_url=self.redis_url,
                    topic_prefix=self.prefix,
                    log_dir=self.log_dir,
                    name=f"engine-{i + 1}",
                    extra=self.engine_env,
                )
            )
            self.engines[-1].start()
        for _ in range(gateways):
            self.add_gateway()
        for engine in self.engines:
            await engine.wait_ready(60)
        for gw in self.gateways:
            await asyncio.to_thread(gw.wait_ready, 60)

    @property
    def session_timeout(self) -> float:
        """The engines' group session timeout, in seconds."""
        from parlour_engine.settings import EngineSettings

        default = EngineSettings.model_fields["engine_session_timeout_seconds"].default
        return float(self.engine_env.get("ENGINE_SESSION_TIMEOUT_SECONDS", default))

    def add_gateway(self) -> GatewayProc:
        assert self.keys is not None
        gw = GatewayProc(
            bootstrap=self.bootstrap,
            redis_url=self.redis_url,
            topic_prefix=self.prefix,
            key_prefix=self.prefix,
            public_key=self.keys.public_path,
            log_dir=self.log_dir,
            env={**GW_ENV, **self.gateway_env},
            gateway_id=f"gw{len(self.gateways) + 1}-{uuid.uuid4().hex[:4]}",
        )
        self.gateways.append(gw)
        return gw

    def urls(self) -> list[str]:
        """The gateways that live (as far as the test knows: it marks the ones it kills)."""
        return [gw.url for gw in self.gateways if gw.gateway_id not in self.dead_gateways]

    def kill_gateway(self, gw: GatewayProc) -> None:
        self.dead_gateways.add(gw.gateway_id)
        gw.kill()

    async def stop(self) -> None:
        for gw in self.gateways:
            gw.kill()
        for engine in self.engines:
            engine.kill()
        if self.topics is not None:
            with contextlib.suppress(Exception):  # cleanup only: a broker may still be away
                await asyncio.wait_for(delete_topics(self.bootstrap, self.topics), 15)

    async def engines_busy(self, within: float = 60) -> None:
        """Both engines have handled commands: the fault hits rooms that live."""
        deadline = time.monotonic() + within
        while True:
            counts = []
            for engine in self.engines:
                with contextlib.suppress(httpx.HTTPError):
                    counts.append(commands_handled(await engine.metrics()))
            if len(counts) == len(self.engines) and min(counts) > 0:
                return
            assert time.monotonic() < deadline, f"an engine stays idle: {counts}"
            await asyncio.sleep(0.1)


# --------------------------------------------------------------------------- the clients


class ChaosPlayer(Player):
    """A Player whose frames are timestamped, whose sends are logged, and who wakes the
    game's loop on every frame and when the socket closes."""

    def __init__(self, user_id: str, token: str | None) -> None:
        super().__init__(user_id, token)
        self.times: list[float] = []
        self.sent: list[tuple[str, str, float]] = []  # (request_id, type, when)
        self.listeners: list[asyncio.Event] = []
        self.resumes = 0

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                self.frames.append(json.loads(raw))
                self.times.append(time.monotonic())
                self._changed.set()
                for listener in self.listeners:
                    listener.set()
        self._changed.set()
        for listener in self.listeners:
            listener.set()

    @property
    def connected(self) -> bool:
        return self._reader is not None and not self._reader.done()

    async def send(self, message: dict[str, Any]) -> None:
        rid = message.get("request_id")
        if rid is not None and not any(r == rid for r, _, _ in self.sent):
            self.sent.append((rid, message["type"], time.monotonic()))
        await super().send(message)

    async def answer(self, rid: str, after: int, within: float) -> dict[str, Any] | None:
        """The gateway's answer (ack or error) to `rid`; None when the socket closed first."""
        deadline = time.monotonic() + within
        index = after
        while True:
            while index < len(self.frames):
                frame = self.frames[index]
                index += 1
                if frame.get("request_id") == rid:
                    return frame
            if not self.connected:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.user_id}: no answer to {rid}: {self.frames[-3:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)


@dataclass
class ChaosGame:
    """One 2-player room and the loop that plays it to game_over through any fault."""

    host: ChaosPlayer
    guest: ChaosPlayer
    urls: Callable[[], list[str]]
    room_id: str = ""
    over: bool = False
    turn_seq: int = 0
    current_turn: str | None = None
    max_seq: int = 0
    rolls: int = 0
    last_rid: str | None = None
    progress: list[float] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _cursor: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for player in self.players:
            player.listeners.append(self.changed)

    @property
    def players(self) -> list[ChaosPlayer]:
        return [self.host, self.guest]

    def scan(self) -> None:
        """Take in the frames that arrived since the last scan: the newest turn, game over,
        and the times the room's seq went up (its progress)."""
        for player in self.players:
            start = self._cursor.get(player.user_id, 0)
            frames = player.frames
            for i in range(start, len(frames)):
                frame = frames[i]
                if room_of(frame) != self.room_id:
                    continue
                seq = frame.get("seq")
                if seq is not None and seq > self.max_seq:
                    self.max_seq = seq
                    self.progress.append(player.times[i])
                    if frame["type"] == ROLLED:
                        self.rolls += 1
                kind = frame["type"]
                if kind == GAME_OVER:
                    self.over = True
                elif kind == "games.event.turn_changed" and seq is not None:
                    if seq > self.turn_seq:
                        self.turn_seq, self.current_turn = seq, frame["current_turn"]
                elif kind == "games.event.room_state":
                    room = frame["room"]
                    if room.get("last_seq", 0) >= self.turn_seq and room.get("current_turn"):
                        self.turn_seq, self.current_turn = room["last_seq"], room["current_turn"]
                    if room.get("status") == "finished":
                        self.over = True
            self._cursor[player.user_id] = len(frames)

    async def resume(self, player: ChaosPlayer) -> None:
        """Reopen the socket on a live gateway and rejoin the room from the newest seq the
        player has."""
        deadline = time.monotonic() + 60
        while True:
            urls = self.urls()
            url = urls[(player.resumes + hash(player.user_id)) % len(urls)]
            failure: BaseException | None = None
            try:
                await player.connect(url)
            except (OSError, TimeoutError, ConnectionClosed) as exc:
                failure = exc
            if failure is None:
                break
            assert time.monotonic() < deadline, f"{player.user_id} cannot reconnect: {failure}"
            await asyncio.sleep(0.5)  # back-off between attempts, as a browser does
        player.resumes += 1
        seqs = player.room_seqs(self.room_id)
        rid = uuid.uuid4().hex[:12]
        mark = len(player.frames)
        await player.send(
            {
                "type": "games.command.rejoin_room",
                "room_id": self.room_id,
                "last_seq": max(seqs, default=0),
                "request_id": rid,
            }
        )
        answer = await player.answer(rid, mark, 30)
        if answer is None:
            return  # its new socket died too: the loop resumes it again
        assert answer["type"] == "system.ack", answer

    async def roll(self, player: ChaosPlayer) -> bool:
        """One roll, re-sent with the same request_id on `service_unavailable`; True when it
        got an answer (ack or a refusal), False when the socket died before one."""
        rid = uuid.uuid4().hex[:12]
        self.last_rid = rid
        deadline = time.monotonic() + 60
        while True:
            mark = len(player.frames)
            try:
                await player.send({"type": ROLL, "room_id": self.room_id, "request_id": rid})
            except ConnectionClosed:
                return False
            answer = await player.answer(rid, mark, 60)
            if answer is None:
                return False
            if answer["type"] == "system.ack" or answer.get("code") != "service_unavailable":
                return True
            assert time.monotonic() < deadline, f"roll never accepted: {answer}"
            await asyncio.sleep(0.3)  # back-off before the retry the error asks for

    async def play(self) -> None:
        by_id = {p.user_id: p for p in self.players}
        acted_for = -1
        acted_at = 0.0
        last_progress = time.monotonic()
        while True:
            self.scan()
            if self.over:
                for player in self.players:
                    if not player.connected:
                        await self.resume(player)
                return
            for player in self.players:
                if not player.connected:
                    await self.resume(player)
                    self.scan()
            if self.progress and self.progress[-1] > last_progress:
                last_progress = self.progress[-1]
            if self.current_turn is not None and self.turn_seq > acted_for:
                player = by_id[self.current_turn]
                seq = self.turn_seq
                if await self.roll(player):
                    acted_for, acted_at = seq, time.monotonic()
                continue
            now = time.monotonic()
            if acted_for >= 0 and now - max(acted_at, last_progress) > 5:
                # refused by the engine after the gateway's ack (not_your_turn on a stale view,
                # or a duplicate): look again, roll again if it is still our turn
                refused = any(
                    f["type"] == "system.error" and f.get("request_id") == self.last_rid
                    for p in self.players
                    for f in p.frames
                )
                if refused:
                    acted_for = -1
            assert now - last_progress < IDLE_LIMIT, (
                f"room {self.room_id} idle for {IDLE_LIMIT}s at seq {self.max_seq}, turn "
                f"{self.current_turn}; {self.host.frames[-3:]} {self.guest.frames[-3:]}"
            )
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 1.0)


# --------------------------------------------------------------------------- a run


@dataclass
class FaultResult:
    fault: str
    games: int
    commands: int
    lost: int
    doubled: int
    in_doubt: int
    in_doubt_applied: int
    refused: int
    resent: int
    resumes: int
    first_recovery_s: float | None
    all_recovery_s: float | None
    outage_s: float | None
    session_s: float
    seconds: float
    problems: list[str] = field(default_factory=list)

    def row(self) -> str:
        def sec(v: float | None) -> str:
            return "-" if v is None else f"{v:.1f}"

        return (
            f"| {self.fault} | {self.games} | {self.commands} | {self.lost} | {self.doubled} "
            f"| {self.in_doubt_applied}/{self.in_doubt} | {self.resent} | {self.resumes} "
            f"| {sec(self.first_recovery_s)} | {sec(self.all_recovery_s)} "
            f"| {sec(self.outage_s)} | {self.session_s:g} |"
        )


HEADER = (
    "| fault | games | commands | lost | doubled | answer lost: took effect/all "
    "| re-sent (service_unavailable) | resumes "
    "| recovery: first game (s) | recovery: all games (s) | fault lasted (s) "
    "| engine session (s) |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)
RESULTS: list[FaultResult] = []
"""Every verdict of this session, printed and written by the chaos conftest at the end."""


def assert_clean(result: FaultResult) -> None:
    """Nothing lost, nothing doubled, no other problem (gaps, state differing from the
    replay, an unfinished game)."""
    print(result.row())
    assert result.problems == [], result.problems
    assert result.lost == 0
    assert result.doubled == 0


def write_results(results: list[FaultResult], directory: Path = RESULTS_DIR) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "results.json").write_text(
        json.dumps([asdict(r) for r in results], indent=2) + "\n"
    )
    table = "\n".join([HEADER, *(r.row() for r in results)]) + "\n"
    (directory / "results.md").write_text(table)
    return table


@dataclass
class ChaosRun:
    stack: ChaosStack
    games: int = 20
    played: list[ChaosGame] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    fault_at: float | None = None
    repaired_at: float | None = None
    began: float = 0.0

    async def start(self, turns_before_fault: int = 3) -> None:
        """Connect the players (hosts and guests spread over the gateways), start every game,
        play them, and return once every game has had `turns_before_fault` turns and both
        engines work."""
        assert self.stack.keys is not None
        self.began = time.monotonic()
        tag = uuid.uuid4().hex[:6]
        urls = self.stack.urls()
        for g in range(self.games):
            host, guest = (
                ChaosPlayer(f"{r}{g}x{tag}", self.stack.keys.token(f"{r}{g}x{tag}")) for r in "hg"
            )
            self.played.append(ChaosGame(host, guest, self.stack.urls))
        await asyncio.gather(
            *(
                p.connect(urls[(g + i) % len(urls)])
                for g, game in enumerate(self.played)
                for i, p in enumerate(game.players)
            )
        )

        async def begin(g: int, game: ChaosGame) -> None:
            game.room_id = await start_game(game.host, game.guest, f"Chaos {tag} {g}")
            await game.play()

        self.tasks = [asyncio.create_task(begin(g, game)) for g, game in enumerate(self.played)]
        deadline = time.monotonic() + 120
        while not all(game.room_id and game.turn_seq > 0 for game in self.played) or any(
            game.rolls < turns_before_fault for game in self.played
        ):
            self._raise_failed()
            assert time.monotonic() < deadline, "the games did not get going"
            await asyncio.sleep(0.1)
        await self.stack.engines_busy()

    def _raise_failed(self) -> None:
        for task in self.tasks:
            if task.done() and (error := task.exception()) is not None:
                raise error

    def mark_fault(self) -> float:
        self.fault_at = time.monotonic()
        return self.fault_at

    def mark_repaired(self) -> None:
        """The killed or stopped node is back (for the `fault lasted` column)."""
        self.repaired_at = time.monotonic()

    def running_at_fault(self) -> list[ChaosGame]:
        assert self.fault_at is not None
        return [g for g in self.played if not (g.over and g.progress[-1] <= self.fault_at)]

    async def all_progressed(self, since: float, within: float = 90) -> float:
        """Wait until every game running at the fault has progressed after `since`;
        returns when the last of them did."""
        deadline = time.monotonic() + within
        while True:
            self._raise_failed()
            firsts = [next((t for t in g.progress if t > since), None) for g in self.played]
            running = [
                f for g, f in zip(self.played, firsts, strict=True) if not g.over or f is not None
            ]
            if all(f is not None for f in running):
                return max((f for f in running if f is not None), default=since)
            assert time.monotonic() < deadline, "not every game progressed after the fault"
            await asyncio.sleep(0.05)

    def recovery(self) -> tuple[float | None, float | None]:
        """(fault -> the first game progressing again, fault -> every game progressing)."""
        if self.fault_at is None:
            return None, None
        at = self.fault_at
        firsts = [next((t for t in g.progress if t > at), None) for g in self.running_at_fault()]
        delays = [t - at for t in firsts if t is not None]
        if not delays:
            return None, None
        return min(delays), max(delays)

    async def finish(self, within: float = 300) -> None:
        await asyncio.wait_for(asyncio.gather(*self.tasks), within)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for game in self.played:
            for player in game.players:
                await player.close()

    async def finish_and_verify(
        self, fault: str, redis: Any, *, within: float = 300
    ) -> FaultResult:
        await self.finish(within)
        result = await verify(self, fault, redis)
        RESULTS.append(result)
        return result


# --------------------------------------------------------------------------- the verdict


async def accepted_commands(bootstrap: str, topics: Topics) -> list[CommandEnvelope]:
    """Every command on the command topic, each partition in offset order (a room's
    commands are keyed by its id: one partition, in the order the room applied them)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = range(topics.with_partitions()[topics.commands])
        assigned = [TopicPartition(topics.commands, p) for p in partitions]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        per_partition: dict[int, list[CommandEnvelope]] = {p: [] for p in partitions}
        async with asyncio.timeout(60):
            while [tp for tp in assigned if await consumer.position(tp) < ends[tp]]:
                for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                    per_partition[tp.partition] += [
                        decode_command_envelope(r.value) for r in records
                    ]
    finally:
        await consumer.stop()
    return [c for p in sorted(per_partition) for c in per_partition[p]]


async def verify(run: ChaosRun, fault: str, redis: Any) -> FaultResult:
    """The verdict (see the module's docstring); `redis` is a redis.asyncio Redis or
    RedisCluster client of the stack's Redis."""
    stack = run.stack
    assert stack.topics is not None
    keys = RedisKeys(prefix=stack.prefix)
    commands = await accepted_commands(stack.bootstrap, stack.topics)
    problems: list[str] = []
    lost = doubled = in_doubt = in_doubt_applied = refused = resent = counted = 0
    for game in run.played:
        users = {p.user_id for p in game.players}
        mine = [
            c
            for c in commands
            if c.room_id == game.room_id or (c.room_id is None and c.actor.user_id in users)
        ]
        played = PlayedGame(game.room_id, game_over=None, commands=mine)  # type: ignore[arg-type]
        stored, replayed = await replayed_state(
            redis, stack.prefix, played, seed=SEED, config=CONFIG
        )
        if stored is None or replayed is None or stored.model_dump() != replayed.model_dump():
            problems.append(f"{game.room_id}: Redis state differs from the rules' replay")
        elif stored.status.value != "finished":
            problems.append(f"{game.room_id}: not finished ({stored.status.value})")
        stream = await redis.xrange(keys.room_events(game.room_id))
        seqs = [int(fields[b"seq"]) for _, fields in stream]
        if seqs != list(range(1, len(seqs) + 1)):
            problems.append(f"{game.room_id}: the event stream's seqs are {seqs}")
        causes: Counter[str] = Counter()
        for _, fields in stream:
            env = json.loads(fields[b"env"])
            if env.get("type") == ROLLED:
                causes[str(env.get("causation_id"))] += 1
        twice = [c for c, n in causes.items() if n > 1]
        if twice:
            doubled += len(twice)
            problems.append(f"{game.room_id}: rolls applied twice: {twice}")
        applied = {k.decode() for k in await redis.hkeys(keys.room_applied(game.room_id))}
        by_request: dict[tuple[str, str], set[str]] = {}
        for c in mine:
            if c.request_id is not None:
                by_request.setdefault((c.actor.user_id, c.request_id), set()).add(str(c.msg_id))
        for player in game.players:
            room_seqs = player.room_seqs(game.room_id)
            if len(room_seqs) != len(set(room_seqs)) or room_seqs != list(
                range(room_seqs[0], room_seqs[-1] + 1)
            ):
                problems.append(f"{player.user_id} saw a gap or a duplicate: {room_seqs}")
            if not any(
                f["type"] == GAME_OVER and room_of(f) == game.room_id for f in player.frames
            ):
                problems.append(f"{player.user_id} never saw game_over")
            for rid, kind, _ in player.sent:
                if kind not in STATE_CHANGING:
                    continue
                counted += 1
                answers = [f for f in player.frames if f.get("request_id") == rid]
                acked = [a for a in answers if a["type"] == "system.ack"]
                resent += any(a.get("code") == "service_unavailable" for a in answers)
                # service_unavailable is no refusal: "not confirmed, re-send it" (at most once)
                errors = [
                    a
                    for a in answers
                    if a["type"] == "system.error" and a.get("code") != "service_unavailable"
                ]
                msg_ids = by_request.get((player.user_id, rid), set())
                msg_ids |= {str(a["msg_id"]) for a in acked if a.get("msg_id")}
                effects = len(msg_ids & applied) + sum(max(causes[m] - 1, 0) for m in msg_ids)
                if errors:
                    refused += 1
                    if effects:
                        problems.append(f"{kind} {rid} refused ({errors[0]}) yet took effect")
                        doubled += 1
                elif acked:
                    if effects == 0:
                        lost += 1
                        problems.append(f"{kind} {rid} acknowledged, no error, no effect")
                    elif effects > 1:
                        doubled += 1
                        problems.append(f"{kind} {rid} took effect {effects} times")
                else:
                    in_doubt += 1
                    in_doubt_applied += effects == 1
                    if effects > 1:
                        doubled += 1
                        problems.append(f"{kind} {rid} (answer lost) took effect {effects} times")
    first, every = run.recovery()
    return FaultResult(
        fault=fault,
        games=len(run.played),
        commands=counted,
        lost=lost,
        doubled=doubled,
        in_doubt=in_doubt,
        in_doubt_applied=in_doubt_applied,
        refused=refused,
        resent=resent,
        resumes=sum(p.resumes for g in run.played for p in g.players),
        first_recovery_s=first,
        all_recovery_s=every,
        outage_s=None
        if run.repaired_at is None or run.fault_at is None
        else run.repaired_at - run.fault_at,
        session_s=stack.session_timeout,
        seconds=time.monotonic() - run.began,
        problems=problems,
    )
