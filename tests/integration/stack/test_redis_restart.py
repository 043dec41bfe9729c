"""Redis restarts mid-game, run as `make infra-up` runs it (append-only file, fsync every
second): every game goes on from where it was and finishes, and the stored state is the rules
replayed over the accepted commands.

The test starts its OWN redis-server (the shared one must never be restarted), one real engine
and one real gateway pointed at it, and `websockets` clients. A 2-player game is half played
while a second room waits in its lobby with some chat. Then Redis is stopped cleanly (SIGTERM:
it fsyncs the AOF and exits) and started again; later it is SIGKILLed, after the two seconds
that `appendfsync everysec` may take to reach the disk, with a roll sent while it is down. The
engine and the gateway must recover by themselves: nobody restarts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from parlour_protocol.v1 import RedisKeys, Topics
from tests.support.chaos import accepted_commands
from tests.support.engine_harness import EngineProcess, PlayedGame, replayed_state
from tests.support.gateway_harness import GatewayProc, Keys
from tests.support.own_redis import OwnRedis
from tests.support.rules_table import rules_config
from tests.support.stack import GW_ENV, Player, is_room_event, play_turns, send_chat, start_game

pytestmark = [pytest.mark.timeout(280), pytest.mark.slow]

SEED = 1234  # EngineProcess's ENGINE_RNG_SEED
CONFIG = rules_config(turn_timeout_seconds=600)  # EngineProcess's ENGINE_TURN_TIMEOUT_SECONDS
EVERYSEC_BOUND = 2.5
"""`appendfsync everysec` fsyncs once a second, and Redis lets a slow fsync delay the next
write by up to 2 s: after this long, an acknowledged write is on disk."""


@dataclass
class Stack:
    redis: OwnRedis
    engine: EngineProcess
    gateway: GatewayProc
    keys: Keys
    topics: Topics


@pytest.fixture
async def stack(
    kafka_bootstrap: str, topic_prefix: str, create_topics: Any, tmp_path: Path
) -> AsyncIterator[Stack]:
    topics = Topics(prefix=topic_prefix)
    await create_topics(kafka_bootstrap, topics.with_partitions())
    redis = OwnRedis(tmp_path / "redis")
    await redis.start()
    keys = Keys(tmp_path / "jwt")
    engine = EngineProcess.configure(
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis.url,
        topic_prefix=topic_prefix,
        log_dir=tmp_path,
    )
    engine.start()
    gateway = GatewayProc(
        bootstrap=kafka_bootstrap,
        redis_url=redis.url,
        topic_prefix=topic_prefix,
        key_prefix=topic_prefix,
        public_key=keys.public_path,
        log_dir=tmp_path,
        env=GW_ENV,
    )
    try:
        await engine.wait_ready()
        await asyncio.to_thread(gateway.wait_ready)
        yield Stack(redis, engine, gateway, keys, topics)
    finally:
        gateway.terminate()
        code = engine.stop()
        redis.stop(signal.SIGTERM)
        assert code == 0, f"engine did not stop cleanly ({code}): {engine.log_tail()}"


async def _both_ready(stack: Stack, within: float = 30) -> None:
    """The engine's and the gateway's /ready turn 200 again without anyone touching them."""
    await stack.engine.wait_ready(within)
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                url = f"http://127.0.0.1:{stack.gateway.health_port}/ready"
                if (await client.get(url, timeout=2)).status_code == 200:
                    return
            assert time.monotonic() < deadline, stack.gateway.logs()[-3000:]
            await asyncio.sleep(0.1)


async def _roll_until_acked(player: Player, room_id: str, within: float = 30) -> None:
    """A roll sent as a browser would: on `service_unavailable` the same request_id is sent
    again (documented as safe: it takes effect at most once)."""
    rid = uuid.uuid4().hex[:12]
    deadline = time.monotonic() + within
    while True:
        mark = len(player.frames)
        await player.send(
            {"type": "games.command.bigger_dice.roll", "room_id": room_id, "request_id": rid}
        )
        frame = await player.wait(lambda f: f.get("request_id") == rid, after=mark)
        if frame["type"] == "system.ack":
            return
        assert frame.get("code") == "service_unavailable", frame
        assert time.monotonic() < deadline, f"roll never acknowledged: {frame}"
        await asyncio.sleep(0.5)


async def _assert_replayed(stack: Stack, bootstrap: str, prefix: str, rooms: list[str]) -> None:
    """Redis holds exactly the rules replayed over the commands each room recorded as
    applied (a command whose effect Redis lost is not among them)."""
    commands = await accepted_commands(bootstrap, stack.topics)
    rkeys = RedisKeys(prefix=prefix)
    client = aioredis.from_url(stack.redis.url)
    try:
        for room_id in rooms:
            mine = [c for c in commands if c.room_id == room_id]
            played = PlayedGame(room_id, game_over=None, commands=mine)  # type: ignore[arg-type]
            stored, replayed = await replayed_state(
                client, prefix, played, seed=SEED, config=CONFIG
            )
            assert stored is not None
            assert replayed is not None
            assert stored.model_dump() == replayed.model_dump(), room_id
            assert stored.seq == await client.xlen(rkeys.room_events(room_id))
    finally:
        await client.aclose()


def _assert_contiguous(player: Player, room_id: str) -> None:
    """Each room event seen once, in order, none missing: seq went on across the restarts."""
    seqs = player.room_seqs(room_id)
    assert seqs == list(range(seqs[0], seqs[-1] + 1)), f"{player.user_id}: {seqs}"


async def test_redis_restart_mid_game_every_game_goes_on(
    stack: Stack, kafka_bootstrap: str, topic_prefix: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    url = stack.gateway.url
    host, guest = (Player(f"{r}{tag}", stack.keys.token(f"{r}{tag}")) for r in ("h", "g"))
    lobby_host, lobby_guest = (Player(f"{r}{tag}", stack.keys.token(f"{r}{tag}")) for r in "lm")
    for player in (host, guest, lobby_host, lobby_guest):
        await player.connect(url)
    game = {host.user_id: host, guest.user_id: guest}

    # a game half played, and a second room waiting in its lobby with some chat
    room = await start_game(host, guest, f"Restart {tag}")
    seen, over = await play_turns(room, game, host, max_turns=2)
    assert not over
    mark = len(lobby_host.frames)
    await lobby_host.command(
        {
            "type": "games.command.create_room",
            "game_type": "bigger_dice",
            "room_name": f"Waiting {tag}",
            "max_players": 2,
        }
    )
    state = await lobby_host.wait(lambda f: f["type"] == "games.event.room_state", after=mark)
    lobby = str(state["room"]["room_id"])
    await lobby_guest.command({"type": "games.command.join_room", "room_name": f"Waiting {tag}"})
    await send_chat(lobby_host, lobby, "before the restarts")
    seq_before = max(host.room_seqs(room))

    # 1. a clean restart: SIGTERM makes Redis fsync its AOF and exit
    stack.redis.stop(signal.SIGTERM)
    await stack.redis.start()
    await _both_ready(stack)
    await send_chat(lobby_guest, lobby, "after a clean restart")
    seen, over = await play_turns(room, game, host, max_turns=2, seen=seen)
    assert not over
    assert min(s for s in host.room_seqs(room) if s > seq_before) == seq_before + 1

    # 2. a crash, once everything acknowledged has had time to reach the disk; a roll is
    # sent while Redis is down and must take effect once it is back
    turn = await host.wait(
        lambda f: (
            f.get("room_id") == room and f["type"] == "games.event.turn_changed" and f["seq"] > seen
        )
    )
    await asyncio.sleep(EVERYSEC_BOUND)  # the durability bound under test, not a race
    stack.redis.stop(signal.SIGKILL)
    mark = len(host.frames)
    roll = asyncio.create_task(_roll_until_acked(game[turn["current_turn"]], room))
    await asyncio.sleep(1)  # Redis stays down a while; the roll waits in Kafka or is retried
    await stack.redis.start()
    await roll
    await host.wait(lambda f: f.get("room_id") == room and f["seq"] > turn["seq"], after=mark)
    await _both_ready(stack)

    # every game goes on and finishes
    _, over = await play_turns(room, game, host, seen=turn["seq"])
    assert over
    await guest.wait(is_room_event(room, "games.event.bigger_dice.game_over"))
    mark = len(lobby_host.frames)
    await lobby_host.command(
        {"type": "games.command.get_chat_history", "room_id": lobby, "channel": "lobby"}
    )
    history = await lobby_host.wait(lambda f: f["type"] == "games.event.chat_history", after=mark)
    said = [m["content"] for m in history["messages"] if not m["is_system"]]
    assert said[:2] == ["before the restarts", "after a clean restart"], said
    second = {lobby_host.user_id: lobby_host, lobby_guest.user_id: lobby_guest}
    for target in second:
        await lobby_host.command(
            {"type": "games.command.select_player", "room_id": lobby, "target_user_id": target}
        )
    for player in second.values():
        await player.command({"type": "games.command.ready", "room_id": lobby})
    await lobby_host.wait(is_room_event(lobby, "games.event.game_started"))
    _, over = await play_turns(lobby, second, lobby_host)
    assert over

    for player, room_id in [(host, room), (guest, room), (lobby_host, lobby), (lobby_guest, lobby)]:
        _assert_contiguous(player, room_id)
    # the restarts did not make anyone look gone: presence survived (or was re-created)
    dropped = [f for f in host.frames if f["type"] == "games.event.player_disconnected"]
    assert dropped == [], dropped

    await _assert_replayed(stack, kafka_bootstrap, topic_prefix, [room, lobby])
    for player in (host, guest, lobby_host, lobby_guest):
        await player.close()


async def test_redis_losing_its_newest_writes_mid_game_the_game_goes_on(
    stack: Stack, kafka_bootstrap: str, topic_prefix: str
) -> None:
    """What a failover to a lagging replica or an fsync that never happened does: Redis comes
    back with an older copy of its data (here: the AOF of a clean stop two turns earlier). The
    room's seq restarts lower, so the next event reuses seqs the players already have; the
    gateway resyncs them (a fresh room_state) instead of dropping the new events, and the game
    goes on from the older state and finishes."""
    tag = uuid.uuid4().hex[:6]
    host, guest = (Player(f"{r}{tag}", stack.keys.token(f"{r}{tag}")) for r in ("h", "g"))
    for player in (host, guest):
        await player.connect(stack.gateway.url)
    game = {host.user_id: host, guest.user_id: guest}
    room = await start_game(host, guest, f"Lossy {tag}")
    seen, over = await play_turns(room, game, host, max_turns=2)
    assert not over

    aof = stack.redis.directory / "appendonlydir"
    older = stack.redis.directory.parent / "older-aof"
    stack.redis.stop(signal.SIGTERM)
    shutil.copytree(aof, older)
    await stack.redis.start()
    await _both_ready(stack)
    kept = max(host.room_seqs(room))
    seen, over = await play_turns(room, game, host, max_turns=3, seen=seen)
    assert not over
    lost = max(host.room_seqs(room))
    assert lost > kept
    await guest.wait(lambda f: f.get("room_id") == room and f.get("seq") == lost)

    stack.redis.stop(signal.SIGTERM)
    shutil.rmtree(aof)
    shutil.copytree(older, aof)  # the newest writes are gone
    await stack.redis.start()
    await _both_ready(stack)
    # the gateway tells a redelivery (same stamp) from a reused seq by the event's time: 2 s
    await asyncio.sleep(2.5)
    marks = {player: len(player.frames) for player in game.values()}
    await host.command(
        {
            "type": "games.command.send_chat",
            "room_id": room,
            "channel": "players",
            "content": "after the loss",
        }
    )
    # each player's gateway resyncs the room: a fresh room_state at the older seq (plus the
    # player_rejoined events the resync's rejoin_room adds), not the lost turns
    states = {
        player: await player.wait(is_room_event(room, "games.event.room_state"), after=mark)
        for player, mark in marks.items()
    }
    for state in states.values():
        assert kept < state["room"]["last_seq"] < lost, (kept, state["room"]["last_seq"], lost)
    turn = states[host]["room"]["current_turn"]
    # play on from the older state: each roll's turn event, until game_over
    after = max(state["room"]["last_seq"] for state in states.values())
    while True:
        mark = len(host.frames)
        await game[turn].command({"type": "games.command.bigger_dice.roll", "room_id": room})
        event = await host.wait(
            lambda f, after=after: (
                f.get("room_id") == room
                and f["type"] in ("games.event.turn_changed", "games.event.bigger_dice.game_over")
                and f["seq"] > after
            ),
            after=mark,
        )
        after = event["seq"]
        if event["type"] == "games.event.bigger_dice.game_over":
            break
        turn = event["current_turn"]
    await guest.wait(is_room_event(room, "games.event.bigger_dice.game_over"), after=marks[guest])
    for player, state in states.items():
        opened = player.frames.index(state)
        resumed = [
            f["seq"]
            for f in player.frames[opened + 1 :]
            if f.get("seq") is not None and f.get("room_id") == room
        ]
        first = state["room"]["last_seq"] + 1
        assert resumed == list(range(first, after + 1)), (player.user_id, first, resumed)
    await _assert_replayed(stack, kafka_bootstrap, topic_prefix, [room])
    for player in game.values():
        await player.close()
