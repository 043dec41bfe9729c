"""Hostile sequences against the rules on a real engine (real Kafka, real Redis): a ban list
and mute lists pushed past their caps, a ban mid-game, a disconnect ended by a roll, and a
waiting room left by everyone. After each, an ordinary 2-player game on the same engine
finishes, and Redis holds exactly what the pure rules compute from the applied commands."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from parlour_engine.timers import timer_member
from parlour_protocol.v1 import Actor, CommandEnvelope, EventEnvelope, RedisKeys, encode
from parlour_protocol.v1.chat import MuteUser
from parlour_protocol.v1.games.bigger_dice import AutoRoll, Roll
from parlour_protocol.v1.internal import PlayerDisconnectedCommand, TimerKind
from parlour_protocol.v1.limits import EVENT_MAX_BYTES, MAX_BANNED_PER_ROOM, MAX_MUTED_PER_USER
from parlour_protocol.v1.rooms import (
    BanPlayer,
    CreateRoom,
    JoinAsSpectator,
    JoinRoom,
    Ready,
    RejoinRoom,
    VoteKickDisconnected,
)
from tests.support.engine_harness import (
    DEFAULT_TIMEOUT,
    Bus,
    EngineProcess,
    PlayedGame,
    actor,
    play_game,
    replayed_state,
    running_engine,
    start_game,
)
from tests.support.gateway_harness import GatewayProc, Keys, authed
from tests.support.rules_table import rules_config

SEED = 1234
GRACE_SECS = 1
IDLE_SECS = 1
CONFIG = rules_config(
    turn_timeout_seconds=600,
    disconnect_grace_seconds=GRACE_SECS,
    idle_room_seconds=IDLE_SECS,
    finished_room_seconds=600,
)
ENGINE_ENV = {
    "ENGINE_DISCONNECT_GRACE_SECONDS": str(GRACE_SECS),
    "ENGINE_IDLE_ROOM_SECONDS": str(IDLE_SECS),
    "ENGINE_FINISHED_ROOM_SECONDS": "600",
}


@pytest.fixture
async def engine_env(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, create_topics, tmp_path: Path
) -> AsyncIterator[tuple[EngineProcess, Bus]]:
    async with running_engine(
        kafka_bootstrap, redis_url, topic_prefix, create_topics, tmp_path, extra=ENGINE_ENV
    ) as env:
        yield env


def made_up(tag: str, n: int) -> str:
    """A 64-character user id nobody has."""
    return f"{tag}{n:0{64 - len(tag)}d}"


def error_code(event: EventEnvelope) -> str:
    assert event.type == "system.error", event
    return str(event.payload.code)  # type: ignore[attr-defined]


def room_commands(bus: Bus, room_id: str, by_name: set[uuid.UUID]) -> list[CommandEnvelope]:
    """The commands this room applied, in the order they were sent (each after the previous
    one's answer, or all on the room's one partition)."""
    return [c for c in bus.sent if c.room_id == room_id or c.msg_id in by_name]


async def assert_store_equals_replay(redis: aioredis.Redis, prefix: str, game: PlayedGame) -> None:
    stored, replayed = await replayed_state(redis, prefix, game, seed=SEED, config=CONFIG)
    assert stored is not None
    assert replayed is not None
    assert stored.model_dump() == replayed.model_dump()


async def ordinary_game_still_finishes(
    bus: Bus, redis: aioredis.Redis, prefix: str, tag: str
) -> None:
    game = await play_game(bus, [actor(0, f"o{tag}"), actor(1, f"o{tag}")], room_name=f"o {tag}")
    assert game.game_over.type == "games.event.bigger_dice.game_over"
    await assert_store_equals_replay(redis, prefix, game)


async def test_ban_and_mute_floods_stop_at_their_caps_and_a_spectator_still_joins(
    engine_env: tuple[EngineProcess, Bus], redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    _, bus = engine_env
    tag = uuid.uuid4().hex[:6]
    host, guest, watcher = actor(0, tag), actor(1, tag), actor(2, tag)
    name = f"hostile {tag}"
    room_id = str(uuid.uuid4())
    create = await bus.send(
        CreateRoom(game_type="bigger_dice", room_name=name), host, room_id=room_id
    )
    await bus.wait_caused(create, "games.event.room_state")
    join = await bus.send(JoinRoom(room_name=name), guest)
    await bus.wait_for(
        lambda e: e.causation_id == join.msg_id and e.type == "games.event.lobby_joined",
        room_id=room_id,
    )

    # the host bans 150 made-up 64-character ids; the room's one partition keeps the order
    bans = [
        await bus.send(BanPlayer(room_id=room_id, target_user_id=made_up("ghost", n)), host)
        for n in range(150)
    ]
    await bus.wait_caused(bans[-1], "system.error")
    for ban in bans[:MAX_BANNED_PER_ROOM]:
        await bus.wait_caused(ban, "games.event.player_banned")
    refused = await bus.wait_caused(bans[MAX_BANNED_PER_ROOM])
    assert error_code(refused) == "limit_reached"
    assert "MAX_BANNED_PER_ROOM" in refused.payload.message  # type: ignore[attr-defined]
    for ban in bans[MAX_BANNED_PER_ROOM:]:
        assert error_code(await bus.wait_caused(ban)) == "limit_reached"

    # the guest mutes past their cap
    mutes = [
        await bus.send(MuteUser(room_id=room_id, target_user_id=made_up("mute", n)), guest)
        for n in range(MAX_MUTED_PER_USER + 5)
    ]
    await bus.wait_caused(mutes[-1], "system.error")
    for mute in mutes[:MAX_MUTED_PER_USER]:
        assert (await bus.wait_caused(mute)).type == "games.event.user_muted"
    muted_too_many = await bus.wait_caused(mutes[MAX_MUTED_PER_USER])
    assert error_code(muted_too_many) == "limit_reached"
    assert "MAX_MUTED_PER_USER" in muted_too_many.payload.message  # type: ignore[attr-defined]

    # a spectator joins and gets an ordinary room_state
    spectate = await bus.send(JoinAsSpectator(room_name=name), watcher)
    snapshot = await bus.wait_for(
        lambda e: e.causation_id == spectate.msg_id and e.type == "games.event.room_state",
        room_id=room_id,
        what="the spectator's room_state",
    )
    room = snapshot.payload.room  # type: ignore[attr-defined]
    assert len(room.banned_users) == MAX_BANNED_PER_ROOM
    assert watcher.user_id in room.spectators
    assert len(encode(snapshot)) < EVENT_MAX_BYTES

    joined_by_name = {join.msg_id, spectate.msg_id}
    hostile = PlayedGame(room_id, snapshot, room_commands(bus, room_id, joined_by_name))
    await assert_store_equals_replay(redis_client, topic_prefix, hostile)
    await ordinary_game_still_finishes(bus, redis_client, topic_prefix, tag)


async def test_a_banned_player_loses_their_seat_and_nobody_plays_for_them(
    engine_env: tuple[EngineProcess, Bus], redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    _, bus = engine_env
    tag = uuid.uuid4().hex[:6]
    host, banned, third = actor(0, tag), actor(1, tag), actor(2, tag)
    room_id, joins = await start_game(bus, [host, banned, third], room_name=f"ban {tag}")
    roll = await bus.send(Roll(room_id=room_id), host)
    turn = await bus.wait_caused(roll, "games.event.turn_changed")
    assert turn.payload.current_turn == banned.user_id  # type: ignore[attr-defined]

    ban = await bus.send(BanPlayer(room_id=room_id, target_user_id=banned.user_id), host)
    await bus.wait_caused(ban, "games.event.player_banned")
    passed = await bus.wait_caused(ban, "games.event.turn_changed")
    assert passed.payload.current_turn == third.user_id  # type: ignore[attr-defined]

    # nobody acts for or as the banned player any more
    auto = await bus.send(AutoRoll(room_id=room_id, target_user_id=banned.user_id), third)
    assert error_code(await bus.wait_caused(auto)) == "invalid_player"
    own = await bus.send(Roll(room_id=room_id), banned)
    assert error_code(await bus.wait_caused(own)) == "not_a_player"
    vote = await bus.send(
        VoteKickDisconnected(room_id=room_id, target_user_id=banned.user_id), host
    )
    assert error_code(await bus.wait_caused(vote)) == "invalid_player"

    # the game goes on without them; banning the last opponent ends it for the host
    roll = await bus.send(Roll(room_id=room_id), third)
    await bus.wait_caused(roll, "games.event.bigger_dice.rolled")
    last = await bus.send(BanPlayer(room_id=room_id, target_user_id=third.user_id), host)
    over = await bus.wait_caused(last, "games.event.bigger_dice.game_over")
    assert over.payload.winner == host.user_id  # type: ignore[attr-defined]
    rolled_for = {
        e.payload.player_id  # type: ignore[attr-defined]
        for e in bus.by_room[room_id]
        if e.type == "games.event.bigger_dice.rolled" and (e.seq or 0) > (passed.seq or 0)
    }
    assert banned.user_id not in rolled_for

    game = PlayedGame(room_id, over, room_commands(bus, room_id, joins))
    await assert_store_equals_replay(redis_client, topic_prefix, game)
    await ordinary_game_still_finishes(bus, redis_client, topic_prefix, tag)


async def test_a_roll_ends_the_players_pending_disconnect(
    engine_env: tuple[EngineProcess, Bus], redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    _, bus = engine_env
    tag = uuid.uuid4().hex[:6]
    first, dropped, third = actor(0, tag), actor(1, tag), actor(2, tag)
    room_id, joins = await start_game(bus, [first, dropped, third], room_name=f"back {tag}")
    # another gateway believes `dropped` is gone
    gone = await bus.send(PlayerDisconnectedCommand(room_id=room_id), dropped)
    notice = await bus.wait_caused(gone, "games.event.player_disconnected")
    timeout_at: datetime = notice.payload.timeout_at  # type: ignore[attr-defined]

    roll = await bus.send(Roll(room_id=room_id), first)
    await bus.wait_caused(roll, "games.event.turn_changed")
    theirs = await bus.send(Roll(room_id=room_id), dropped)
    back = await bus.wait_caused(theirs, "games.event.player_rejoined")
    assert back.payload.user_id == dropped.user_id  # type: ignore[attr-defined]
    await bus.wait_caused(theirs, "games.event.bigger_dice.rolled")

    # past the grace the vote would be open: it is refused, nobody is disconnected
    await asyncio.sleep(max(0.0, (timeout_at - datetime.now(UTC)).total_seconds()) + 0.1)
    vote = await bus.send(
        VoteKickDisconnected(room_id=room_id, target_user_id=dropped.user_id), first
    )
    assert error_code(await bus.wait_caused(vote)) == "player_not_disconnected"

    game = PlayedGame(room_id, back, room_commands(bus, room_id, joins))
    await assert_store_equals_replay(redis_client, topic_prefix, game)
    await ordinary_game_still_finishes(bus, redis_client, topic_prefix, tag)


async def wait_until_gone_from_timers(
    redis: aioredis.Redis, keys: RedisKeys, member: str, within: float = DEFAULT_TIMEOUT
) -> None:
    """The timer loop publishes a due timer's command, then drops it from the timer set."""
    deadline = time.monotonic() + within
    while await redis.zscore(keys.timers(), member) is not None:
        assert time.monotonic() < deadline, f"timer {member} not fired within {within}s"
        await asyncio.sleep(0.05)


async def test_a_waiting_room_everyone_left_is_removed_after_its_idle_time(
    engine_env: tuple[EngineProcess, Bus], redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    _, bus = engine_env
    keys = RedisKeys(prefix=topic_prefix)
    tag = uuid.uuid4().hex[:6]

    async def waiting_room(label: str) -> tuple[str, str, list[Actor]]:
        host, guest = actor(0, f"{label}{tag}"), actor(1, f"{label}{tag}")
        name = f"{label} {tag}"
        room_id = str(uuid.uuid4())
        create = await bus.send(
            CreateRoom(game_type="bigger_dice", room_name=name), host, room_id=room_id
        )
        await bus.wait_caused(create, "games.event.room_state")
        join = await bus.send(JoinRoom(room_name=name), guest)
        await bus.wait_for(
            lambda e: e.causation_id == join.msg_id and e.type == "games.event.lobby_joined",
            room_id=room_id,
        )
        return room_id, name, [host, guest]

    # kept: everyone went, then the host came back before the idle time was over
    kept_id, kept_name, (kept_host, kept_guest) = await waiting_room("kept")
    await bus.send(PlayerDisconnectedCommand(room_id=kept_id), kept_guest)
    await bus.send(PlayerDisconnectedCommand(room_id=kept_id), kept_host)
    rejoin = await bus.send(RejoinRoom(room_id=kept_id), kept_host)
    await bus.wait_caused(rejoin, "games.event.room_state")

    # gone: everyone went
    gone_id, gone_name, (gone_host, gone_guest) = await waiting_room("gone")
    await bus.send(PlayerDisconnectedCommand(room_id=gone_id), gone_host)
    await bus.send(PlayerDisconnectedCommand(room_id=gone_id), gone_guest)
    removed = await bus.wait_for(
        lambda e: e.type == "games.event.room_removed",
        room_id=gone_id,
        what="room_removed of the idle room",
    )
    assert removed.payload.reason == "abandoned"  # type: ignore[attr-defined]
    assert await redis_client.get(keys.room_state(gone_id)) is None
    assert await redis_client.get(keys.room_name("bigger_dice", gone_name)) is None
    assert not await redis_client.sismember(keys.rooms_by_game("bigger_dice"), gone_id)
    for user in (gone_host, gone_guest):
        assert await redis_client.hget(keys.user_rooms(user.user_id), gone_id) is None

    # the kept room's (stale) expiry has fired too; a command sent after it is answered
    # after it, and the room is still there
    await wait_until_gone_from_timers(
        redis_client, keys, timer_member(kept_id, TimerKind.ROOM_EXPIRY, "idle:1")
    )
    probe = await bus.send(Ready(room_id=kept_id), kept_host)
    assert error_code(await bus.wait_caused(probe)) == "not_selected"
    assert not any(e.type == "games.event.room_removed" for e in bus.by_room[kept_id])
    assert await redis_client.get(keys.room_state(kept_id)) is not None
    assert await redis_client.get(keys.room_name("bigger_dice", kept_name)) == kept_id.encode()

    await ordinary_game_still_finishes(bus, redis_client, topic_prefix, tag)


@pytest.fixture
async def short_lived_engine(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, create_topics, tmp_path: Path
) -> AsyncIterator[tuple[EngineProcess, Bus]]:
    extra = {**ENGINE_ENV, "ENGINE_FINISHED_ROOM_SECONDS": "1"}
    async with running_engine(
        kafka_bootstrap, redis_url, topic_prefix, create_topics, tmp_path, extra=extra
    ) as env:
        yield env


async def test_a_finished_room_is_removed_after_its_keep_time(
    short_lived_engine: tuple[EngineProcess, Bus],
    redis_client: aioredis.Redis,
    topic_prefix: str,
) -> None:
    _, bus = short_lived_engine
    keys = RedisKeys(prefix=topic_prefix)
    tag = uuid.uuid4().hex[:6]
    players = [actor(0, tag), actor(1, tag)]
    name = f"done {tag}"
    game = await play_game(bus, players, room_name=name)
    # (room_removed `game_started` came earlier: the room left the lobby lists)
    await bus.wait_for(
        lambda e: (
            e.type == "games.event.room_removed" and e.payload.reason == "game_finished"  # type: ignore[attr-defined]
        ),
        room_id=game.room_id,
        what="room_removed game_finished of the finished room",
    )
    assert await redis_client.get(keys.room_state(game.room_id)) is None
    assert await redis_client.get(keys.room_name("bigger_dice", name)) is None
    for user in players:
        assert await redis_client.hget(keys.user_rooms(user.user_id), game.room_id) is None


@pytest.mark.timeout(180)
async def test_a_waiting_room_whose_browsers_all_closed_expires_through_the_gateway(
    engine_env: tuple[EngineProcess, Bus],
    redis_client: aioredis.Redis,
    kafka_bootstrap: str,
    redis_url: str,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    """End to end: the gateway reports a lobby member's last socket closing as well as the
    host's, so the room looks idle to the rules and goes after ENGINE_IDLE_ROOM_SECONDS."""
    _, bus = engine_env
    keys = RedisKeys(prefix=topic_prefix)
    jwt = Keys(tmp_path / "jwt")
    gateway = GatewayProc(
        bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=topic_prefix,
        key_prefix=topic_prefix,
        public_key=jwt.public_path,
        log_dir=tmp_path,
    )
    try:
        await asyncio.to_thread(gateway.wait_ready)
        tag = uuid.uuid4().hex[:6]
        host = await authed(gateway.url, jwt, f"host{tag}")
        guest = await authed(gateway.url, jwt, f"guest{tag}")
        name = f"browsers {tag}"
        await host.send(
            {"type": "games.command.create_room", "game_type": "bigger_dice", "room_name": name}
        )
        state = await host.expect("games.event.room_state")
        room_id = str(state["room"]["room_id"])
        await guest.send({"type": "games.command.join_room", "room_name": name})
        await guest.expect("games.event.room_state")
        await host.close()
        await guest.close()
        removed = await bus.wait_for(
            lambda e: e.type == "games.event.room_removed",
            room_id=room_id,
            what="room_removed of the room both browsers left",
        )
        assert removed.payload.reason == "abandoned"  # type: ignore[attr-defined]
        assert await redis_client.get(keys.room_state(room_id)) is None
    finally:
        gateway.terminate()
