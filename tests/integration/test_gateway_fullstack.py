"""Full stack: two real gateways + one real engine on real Kafka and Redis; browsers are
`websockets` clients. The players of one room sit on different gateways and play a whole
Bigger Dice game; every client sees every room event once, in seq order. Then one gateway is
SIGKILLed mid-game: its client reconnects to the other gateway and resumes with last_seq."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from engine_harness import EngineProcess
from gateway_harness import GatewayProc, Keys
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from parlour_protocol.v1 import RedisKeys, Topics

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

GW_ENV = {
    "WS_HEARTBEAT_INTERVAL_SECONDS": "2",  # socket records live 6 s without a heartbeat
    "PRESENCE_SWEEP_SECONDS": "1",
}


class Player:
    """A browser: one socket at a time, every frame kept across reconnects."""

    def __init__(self, user_id: str, token: str) -> None:
        self.user_id = user_id
        self.token = token
        self.frames: list[dict[str, Any]] = []
        self.ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def connect(self, url: str) -> None:
        self.ws = await connect(url, open_timeout=10)
        self._reader = asyncio.create_task(self._read(self.ws))
        await self.wait(lambda f: f["type"] == "system.welcome", after=len(self.frames))
        mark = len(self.frames)
        await self.send({"type": "system.authenticate", "token": self.token})
        await self.wait(lambda f: f["type"] == "system.authenticated", after=mark)

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                self.frames.append(json.loads(raw))
                self._changed.set()

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(message))

    async def wait(
        self, match: Callable[[dict[str, Any]], bool], *, after: int = 0, within: float = 20
    ) -> dict[str, Any]:
        deadline = time.monotonic() + within
        index = after
        while True:
            while index < len(self.frames):
                frame = self.frames[index]
                index += 1
                if match(frame):
                    return frame
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.user_id}: no match; last {self.frames[-5:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def command(self, message: dict[str, Any]) -> None:
        """Send with a request_id and wait for the gateway's ack (or fail on its error)."""
        rid = uuid.uuid4().hex[:12]
        mark = len(self.frames)
        await self.send({**message, "request_id": rid})
        frame = await self.wait(lambda f: f.get("request_id") == rid, after=mark)
        assert frame["type"] == "system.ack", frame

    def room_seqs(self, room_id: str) -> list[int]:
        return [
            f["seq"] for f in self.frames if f.get("seq") is not None and _room_of(f) == room_id
        ]

    @property
    def last_seq(self) -> int:
        seqs = [f["seq"] for f in self.frames if f.get("seq") is not None]
        return max(seqs, default=0)

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader


def _room_of(frame: dict[str, Any]) -> str | None:
    if "room_id" in frame:
        return str(frame["room_id"])
    room = frame.get("room")
    return str(room["room_id"]) if isinstance(room, dict) else None


def _is_room_event(room_id: str, *types: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f["type"] in types and _room_of(f) == room_id


@pytest.fixture
async def stack(
    kafka_bootstrap: str,
    redis_url: str,
    topic_prefix: str,
    create_topics: Any,
    tmp_path: Path,
) -> AsyncIterator[tuple[EngineProcess, GatewayProc, GatewayProc, Keys]]:
    await create_topics(kafka_bootstrap, Topics(prefix=topic_prefix).with_partitions())
    keys = Keys(tmp_path / "jwt")
    engine = EngineProcess.configure(
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=topic_prefix,
        log_dir=tmp_path,
    )
    engine.start()
    gateways = [
        GatewayProc(
            bootstrap=kafka_bootstrap,
            redis_url=redis_url,
            topic_prefix=topic_prefix,
            key_prefix=topic_prefix,
            public_key=keys.public_path,
            log_dir=tmp_path,
            env=GW_ENV,
            gateway_id=f"gw{i}-{uuid.uuid4().hex[:4]}",
        )
        for i in (1, 2)
    ]
    try:
        await engine.wait_ready()
        for gw in gateways:
            await asyncio.to_thread(gw.wait_ready)
        yield engine, gateways[0], gateways[1], keys
    finally:
        for gw in gateways:
            gw.terminate()
        engine.kill()


async def _create_room(host: Player, room_name: str) -> str:
    """A 2-player Bigger Dice room hosted by `host`; returns its id."""
    mark = len(host.frames)
    await host.command(
        {
            "type": "games.command.create_room",
            "game_type": "bigger_dice",
            "room_name": room_name,
            "max_players": 2,
        }
    )
    state = await host.wait(lambda f: f["type"] == "games.event.room_state", after=mark)
    return str(state["room"]["room_id"])


async def _start_game(host: Player, guest: Player, room_name: str) -> str:
    mark = len(host.frames)
    room_id = await _create_room(host, room_name)
    await guest.command({"type": "games.command.join_room", "room_name": room_name})
    await host.wait(_is_room_event(room_id, "games.event.lobby_joined"), after=mark)
    for target in (host.user_id, guest.user_id):
        await host.command(
            {"type": "games.command.select_player", "room_id": room_id, "target_user_id": target}
        )
    for player in (host, guest):
        await player.command({"type": "games.command.ready", "room_id": room_id})
    await host.wait(_is_room_event(room_id, "games.event.game_started"), after=mark)
    return room_id


async def _play_turns(
    room_id: str,
    players: dict[str, Player],
    watcher: Player,
    *,
    max_turns: int | None = None,
    seen: int = 0,
) -> tuple[int, bool]:
    """Roll for whoever's turn it is; stop at game_over or after `max_turns` rolls.
    Returns the newest turn seq seen and whether the game is over."""
    turns = 0
    while True:
        event = await watcher.wait(
            lambda f, after=seen: (
                _room_of(f) == room_id
                and f["type"] in ("games.event.turn_changed", "games.event.bigger_dice.game_over")
                and (f.get("seq") or 0) > after
            ),
            within=30,
        )
        seen = event["seq"]
        if event["type"] == "games.event.bigger_dice.game_over":
            return seen, True
        if max_turns is not None and turns >= max_turns:
            return seen - 1, False  # leave this turn_changed to the next call
        await players[event["current_turn"]].command(
            {"type": "games.command.bigger_dice.roll", "room_id": room_id}
        )
        turns += 1


def _assert_once_in_order(player: Player, room_id: str, *, from_one: bool) -> None:
    seqs = player.room_seqs(room_id)
    assert seqs, player.user_id
    assert len(seqs) == len(set(seqs)), f"{player.user_id} saw duplicates: {seqs}"
    assert seqs == sorted(seqs), f"{player.user_id} saw events out of order: {seqs}"
    first = 1 if from_one else seqs[0]
    assert seqs == list(range(first, seqs[-1] + 1)), f"{player.user_id} missed events: {seqs}"


async def test_gateway_fullstack_game_across_two_gateways(
    stack: tuple[EngineProcess, GatewayProc, GatewayProc, Keys],
) -> None:
    _, gw1, gw2, keys = stack
    tag = uuid.uuid4().hex[:6]
    host = Player(f"h{tag}", keys.token(f"h{tag}"))
    guest = Player(f"g{tag}", keys.token(f"g{tag}"))
    await host.connect(gw1.url)
    await guest.connect(gw2.url)
    room_id = await _start_game(host, guest, f"Table {tag}")
    _, over = await _play_turns(room_id, {host.user_id: host, guest.user_id: guest}, host)
    assert over
    await guest.wait(_is_room_event(room_id, "games.event.bigger_dice.game_over"))
    _assert_once_in_order(host, room_id, from_one=True)
    _assert_once_in_order(guest, room_id, from_one=False)
    assert guest.room_seqs(room_id)[-1] == host.room_seqs(room_id)[-1]
    await host.close()
    await guest.close()


async def test_gateway_fullstack_failover_resume_with_last_seq(
    stack: tuple[EngineProcess, GatewayProc, GatewayProc, Keys],
    redis_client: aioredis.Redis,
    topic_prefix: str,
) -> None:
    _, gw1, gw2, keys = stack
    rkeys = RedisKeys(prefix=topic_prefix)
    tag = uuid.uuid4().hex[:6]
    host = Player(f"h{tag}", keys.token(f"h{tag}"))
    guest = Player(f"g{tag}", keys.token(f"g{tag}"))
    await host.connect(gw1.url)
    await guest.connect(gw2.url)
    room_id = await _start_game(host, guest, f"Fail {tag}")
    players = {host.user_id: host, guest.user_id: guest}
    seen, over = await _play_turns(room_id, players, host, max_turns=2)
    assert not over
    await guest.wait(lambda f: _room_of(f) == room_id and f.get("seq") == seen)
    dead_sockets = [
        m.decode() for m in await redis_client.smembers(rkeys.user_sockets(guest.user_id))
    ]
    assert dead_sockets

    gw2.kill()  # SIGKILL: no goodbye, no presence cleanup
    await guest.close()
    last_seq = max(guest.room_seqs(room_id))
    # the game goes on while the guest is away, if it is the host's turn
    turn = await host.wait(
        lambda f: (
            _room_of(f) == room_id
            and f["type"] == "games.event.turn_changed"
            and f["seq"] > seen - 1
        )
    )
    resume_after = turn["seq"] - 1
    if turn["current_turn"] == host.user_id:
        await host.command({"type": "games.command.bigger_dice.roll", "room_id": room_id})
        await host.wait(lambda f: _room_of(f) == room_id and (f.get("seq") or 0) > turn["seq"])
        resume_after = turn["seq"]

    # reconnect to the surviving gateway and resume
    await guest.connect(gw1.url)
    mark = len(guest.frames)
    await guest.command(
        {"type": "games.command.rejoin_room", "room_id": room_id, "last_seq": last_seq}
    )
    await guest.wait(_is_room_event(room_id, "games.event.room_state"), after=mark)
    _, over = await _play_turns(room_id, players, host, seen=resume_after)
    assert over
    await guest.wait(_is_room_event(room_id, "games.event.bigger_dice.game_over"))
    _assert_once_in_order(host, room_id, from_one=True)
    _assert_once_in_order(guest, room_id, from_one=False)
    assert guest.room_seqs(room_id)[-1] == host.room_seqs(room_id)[-1]

    # the dead gateway's presence records are gone within their TTL (6 s) + a sweep
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = [s for s in dead_sockets if await redis_client.exists(rkeys.socket(s))]
        members = {
            m.decode() for m in await redis_client.smembers(rkeys.user_sockets(guest.user_id))
        }
        if not left and not members & set(dead_sockets):
            break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError(f"dead sockets still listed: {left}, {members}")
    assert await redis_client.sismember(rkeys.presence_online(), guest.user_id)
    await host.close()
    await guest.close()


async def _chat(player: Player, room_id: str, text: str) -> int:
    """Send a lobby chat line and return its seq, once the sender has it back."""
    mark = len(player.frames)
    await player.command(
        {
            "type": "games.command.send_chat",
            "room_id": room_id,
            "channel": "lobby",
            "content": text,
        }
    )
    frame = await player.wait(
        lambda f: f["type"] == "games.event.chat_message" and f.get("content") == text,
        after=mark,
    )
    return int(frame["seq"])


async def test_gateway_fullstack_resume_replay_is_not_overtaken_by_live_events(
    stack: tuple[EngineProcess, GatewayProc, GatewayProc, Keys],
) -> None:
    """The race: a room event reaches a fresh socket after system.authenticate and before the
    client's rejoin_room {last_seq}. The replayed older events must still come first."""
    _, gw1, _, keys = stack
    tag = uuid.uuid4().hex[:6]
    host = Player(f"h{tag}", keys.token(f"h{tag}"))
    guest = Player(f"g{tag}", keys.token(f"g{tag}"))
    await host.connect(gw1.url)
    await guest.connect(gw1.url)
    mark = len(host.frames)
    await host.command(
        {
            "type": "games.command.create_room",
            "game_type": "bigger_dice",
            "room_name": f"Resume {tag}",
            "max_players": 2,
        }
    )
    state = await host.wait(lambda f: f["type"] == "games.event.room_state", after=mark)
    room_id = str(state["room"]["room_id"])
    await guest.command({"type": "games.command.join_room", "room_name": f"Resume {tag}"})
    seq = await _chat(host, room_id, "before")
    await guest.wait(lambda f: _room_of(f) == room_id and f.get("seq") == seq)
    last_seq = max(guest.room_seqs(room_id))

    await guest.close()
    missed = await _chat(host, room_id, "while away")
    await guest.connect(gw1.url)  # authenticated: the guest is in the room per user_rooms
    mark = len(guest.frames)
    # host and guest share gw1, so once the host has this event the guest's new socket has
    # been handed it too: before its rejoin_room
    live = await _chat(host, room_id, "after auth, before rejoin")
    assert live > missed > last_seq
    await guest.command(
        {"type": "games.command.rejoin_room", "room_id": room_id, "last_seq": last_seq}
    )
    await guest.wait(lambda f: _room_of(f) == room_id and f.get("seq") == live, after=mark)
    await guest.wait(_is_room_event(room_id, "games.event.room_state"), after=mark)
    after = await _chat(host, room_id, "after rejoin")
    await guest.wait(lambda f: _room_of(f) == room_id and f.get("seq") == after, after=mark)
    resumed = [
        f["seq"] for f in guest.frames[mark:] if f.get("seq") is not None and _room_of(f) == room_id
    ]
    assert resumed == sorted(resumed), f"out of order after resume: {resumed}"
    assert resumed[0] == last_seq + 1
    assert missed in resumed
    assert live in resumed
    _assert_once_in_order(guest, room_id, from_one=False)
    await host.close()
    await guest.close()


async def test_gateway_fullstack_retry_with_same_request_id_takes_effect_once(
    stack: tuple[EngineProcess, GatewayProc, GatewayProc, Keys],
    redis_client: aioredis.Redis,
    topic_prefix: str,
) -> None:
    """A client re-sends a command whose answer it did not get (as after service_unavailable):
    same request_id on the same socket -> same msg_id -> the engine applies it once."""
    _, gw1, _, keys = stack
    rkeys = RedisKeys(prefix=topic_prefix)
    tag = uuid.uuid4().hex[:6]
    host = Player(f"h{tag}", keys.token(f"h{tag}"))
    await host.connect(gw1.url)

    create = {
        "type": "games.command.create_room",
        "game_type": "bigger_dice",
        "room_name": f"Retry {tag}",
        "max_players": 2,
        "request_id": "create-1",
    }
    mark = len(host.frames)
    await host.send(create)
    await host.send(create)  # the retry

    def is_ack(f: dict[str, Any]) -> bool:
        return f["type"] == "system.ack" and f.get("request_id") == "create-1"

    await host.wait(is_ack, after=mark)
    first = next(i for i in range(mark, len(host.frames)) if is_ack(host.frames[i]))
    await host.wait(is_ack, after=first + 1)
    acks = [f for f in host.frames[mark:] if f.get("request_id") == "create-1"]
    assert len(acks) == 2
    assert acks[0]["msg_id"] == acks[1]["msg_id"]
    state = await host.wait(lambda f: f["type"] == "games.event.room_state", after=mark)
    room_id = str(state["room"]["room_id"])

    chat = {
        "type": "games.command.send_chat",
        "room_id": room_id,
        "channel": "lobby",
        "content": "said once",
        "request_id": "chat-1",
    }
    await host.send(chat)
    await host.send(chat)  # the retry
    # a later command of the same room is applied after both copies (same Kafka key)
    marker_seq = await _chat(host, room_id, "marker")
    said = [
        f
        for f in host.frames[mark:]
        if f["type"] == "games.event.chat_message" and f.get("content") == "said once"
    ]
    assert len(said) == 1, said
    assert said[0]["seq"] < marker_seq
    errors = [f for f in host.frames[mark:] if f["type"] == "system.error"]
    assert errors == []
    room_states = {
        f["room"]["room_id"] for f in host.frames[mark:] if f["type"] == "games.event.room_state"
    }
    assert room_states == {room_id}
    rooms = await redis_client.smembers(rkeys.rooms_by_game("bigger_dice"))
    assert {r.decode() for r in rooms} == {room_id}
    history = await redis_client.xrange(rkeys.room_events(room_id))
    assert len(history) == marker_seq  # every seq used once: no second chat, no second room
    await host.close()
