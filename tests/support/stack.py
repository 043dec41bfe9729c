"""The full stack for `websockets` clients: two real gateways and one real engine on real
Kafka and Redis (the `stack` fixture), a player's socket, and the game steps tests share."""

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
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from parlour_protocol.v1 import Topics
from tests.support.engine_harness import EngineProcess
from tests.support.gateway_harness import GatewayProc, Keys

GW_ENV = {
    "WS_HEARTBEAT_INTERVAL_SECONDS": "2",  # socket records live 6 s without a heartbeat
    "PRESENCE_SWEEP_SECONDS": "1",
}


class Player:
    """A browser: one socket at a time, every frame kept across reconnects."""

    def __init__(self, user_id: str, token: str | None) -> None:
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
        if self.token is not None:
            await self.send({"type": "system.authenticate", "token": self.token})
        else:  # a gateway in AUTH_DEV_MODE takes the user as named (development only)
            await self.send(
                {"type": "system.authenticate", "user_id": self.user_id, "username": self.user_id}
            )
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
        return [f["seq"] for f in self.frames if f.get("seq") is not None and room_of(f) == room_id]

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


def room_of(frame: dict[str, Any]) -> str | None:
    if "room_id" in frame:
        return str(frame["room_id"])
    room = frame.get("room")
    return str(room["room_id"]) if isinstance(room, dict) else None


def is_room_event(room_id: str, *types: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f["type"] in types and room_of(f) == room_id


@contextlib.asynccontextmanager
async def running_stack(
    *,
    kafka_bootstrap: str,
    redis_url: str,
    topic_prefix: str,
    create_topics: Any,
    tmp_path: Path,
    gateways: int = 2,
    engine_env: dict[str, str] | None = None,
    gateway_env: dict[str, str] | None = None,
) -> AsyncIterator[tuple[EngineProcess, list[GatewayProc], Keys]]:
    """One real engine and `gateways` real gateways (token logins with the test's own key
    pair) on the test's topics and key prefix; `engine_env`/`gateway_env` add settings."""
    await create_topics(kafka_bootstrap, Topics(prefix=topic_prefix).with_partitions())
    keys = Keys(tmp_path / "jwt")
    engine = EngineProcess.configure(
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=topic_prefix,
        log_dir=tmp_path,
        extra=engine_env,
    )
    engine.start()
    procs = [
        GatewayProc(
            bootstrap=kafka_bootstrap,
            redis_url=redis_url,
            topic_prefix=topic_prefix,
            key_prefix=topic_prefix,
            public_key=keys.public_path,
            log_dir=tmp_path,
            env={**GW_ENV, **(gateway_env or {})},
            gateway_id=f"gw{i}-{uuid.uuid4().hex[:4]}",
        )
        for i in range(1, gateways + 1)
    ]
    try:
        await engine.wait_ready()
        for gw in procs:
            await asyncio.to_thread(gw.wait_ready)
        yield engine, procs, keys
    finally:
        for gw in procs:
            gw.terminate()
        engine.kill()


@pytest.fixture
async def stack(
    kafka_bootstrap: str,
    redis_url: str,
    topic_prefix: str,
    create_topics: Any,
    tmp_path: Path,
) -> AsyncIterator[tuple[EngineProcess, GatewayProc, GatewayProc, Keys]]:
    """Two gateways and one engine: the players of a room sit on different gateways."""
    async with running_stack(
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=topic_prefix,
        create_topics=create_topics,
        tmp_path=tmp_path,
    ) as (engine, (gw1, gw2), keys):
        yield engine, gw1, gw2, keys


async def create_room(host: Player, room_name: str) -> str:
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


async def start_game(host: Player, guest: Player, room_name: str) -> str:
    mark = len(host.frames)
    room_id = await create_room(host, room_name)
    await guest.command({"type": "games.command.join_room", "room_name": room_name})
    await host.wait(is_room_event(room_id, "games.event.lobby_joined"), after=mark)
    for target in (host.user_id, guest.user_id):
        await host.command(
            {"type": "games.command.select_player", "room_id": room_id, "target_user_id": target}
        )
    for player in (host, guest):
        await player.command({"type": "games.command.ready", "room_id": room_id})
    await host.wait(is_room_event(room_id, "games.event.game_started"), after=mark)
    return room_id


async def play_turns(
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
                room_of(f) == room_id
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


def assert_once_in_order(player: Player, room_id: str, *, from_one: bool) -> None:
    seqs = player.room_seqs(room_id)
    assert seqs, player.user_id
    assert len(seqs) == len(set(seqs)), f"{player.user_id} saw duplicates: {seqs}"
    assert seqs == sorted(seqs), f"{player.user_id} saw events out of order: {seqs}"
    first = 1 if from_one else seqs[0]
    assert seqs == list(range(first, seqs[-1] + 1)), f"{player.user_id} missed events: {seqs}"


async def send_chat(player: Player, room_id: str, text: str) -> int:
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
