"""Hostile mix: ordinary 2-player games keep running while hostile users try to grow, flood,
replay and reconnect-storm real gateways and engines. Prints figures; asserts nothing.

    .venv/bin/python scripts/hostile_mix.py [--minutes 5] [--games 4] [--room-seconds 15]

Needs `make infra-up` (or KAFKA_BOOTSTRAP_SERVERS / REDIS_URL, or --kafka / --redis). It starts
2 engines and 2 gateways on a fresh topic and key prefix (the integration tests' harnesses,
tests/support/engine_harness.py and gateway_harness.py), runs the load for --minutes,
then lets every client leave and waits for the rooms' timers to remove what is left. Memory
(RSS of each service, Redis used_memory, keys under the prefix) is printed before, every 30 s
during, right after the hostile load stops and after everyone has left. At the end it stops
every process it started, deletes its topics and the keys under its prefix.

Hostile users (loopback only; each loop is paced and stops with the run):
  growth   bans and mutes of made-up ids, many rooms per host, chat floods of 1,000 four-byte
           characters, chat-history reads, a spectator joining the banned room
  floods   frames past the rate limit, create/leave loops, direct-message floods
  replays  rejoin_room with last_seq 0 of the user's own room and of others' rooms
  storms   connect/authenticate/disconnect loops, unauthenticated sockets held open
Each hostile group and each ordinary player comes from its own made-up client address
(X-Forwarded-For, believed because the gateways trust 127.0.0.1 as a proxy).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import statistics
import string
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the harnesses: tests.support

import redis.asyncio as aioredis  # noqa: E402
from bench_support import cpu_seconds, kafka_bootstrap, percentile, redis_url, rss_bytes  # noqa: E402
from tests.support.engine_harness import EngineProcess  # noqa: E402
from tests.support.gateway_harness import GatewayProc, Keys, create_topics, delete_topics  # noqa: E402
from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402

SAMPLE_EVERY = 30.0
FOUR_BYTE_CHAT = "\U0001f3b2" * 1000  # 1,000 game dice: 4 bytes each in UTF-8
ID_CHARS = string.ascii_letters + string.digits + "_.:@-"


def say(text: str) -> None:
    print(text, flush=True)


# --------------------------------------------------------------------------- figures


@dataclass
class Stats:
    actions: Counter[str] = field(default_factory=Counter)
    hostile_errors: Counter[str] = field(default_factory=Counter)
    ordinary_errors: Counter[str] = field(default_factory=Counter)
    close_codes: Counter[str] = field(default_factory=Counter)
    handshakes: Counter[str] = field(default_factory=Counter)
    biggest_frame: Counter[str] = field(default_factory=Counter)  # type -> bytes (max)
    game_seconds: dict[str, list[float]] = field(default_factory=dict)  # phase -> durations
    game_failures: Counter[str] = field(default_factory=Counter)
    slow_steps: list[tuple[float, str, str]] = field(default_factory=list)
    """(seconds, step, room id) of each ordinary game's slowest step"""


class Sock:
    """One client socket: a reader task that counts what arrives and wakes waiters."""

    def __init__(self, stats: Stats, role: str, address: str, user: str | None = None) -> None:
        self.stats = stats
        self.user = user
        self.role = role  # "hostile", "storm" or "ordinary"
        self.address = address
        self.ws: ClientConnection | None = None
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.closing = False  # the client itself closes: not a close code the gateway chose
        self.turns: dict[str, dict[str, Any]] = {}  # room_id -> newest turn/game_over frame
        self._waiters: list[tuple[Callable[[dict[str, Any]], bool], asyncio.Future[Any]]] = []
        self._reader: asyncio.Task[None] | None = None

    async def open(self, url: str, token: str | None) -> bool:
        """Connect (and authenticate when given a token); False when refused or failed."""
        try:
            self.ws = await connect(
                url,
                open_timeout=10,
                max_size=2**23,
                additional_headers={"X-Forwarded-For": self.address},
            )
        except InvalidStatus as exc:
            self.stats.handshakes[f"{self.role} refused HTTP {exc.response.status_code}"] += 1
            return False
        except (OSError, TimeoutError) as exc:
            self.stats.handshakes[f"{self.role} failed {type(exc).__name__}"] += 1
            return False
        self.stats.handshakes[f"{self.role} accepted"] += 1
        self._reader = asyncio.create_task(self._read(self.ws))
        if token is None:
            return True
        frame = await self.request({"type": "system.authenticate", "token": token}, rid=False)
        return frame is not None and frame["type"] == "system.authenticated"

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                frame: dict[str, Any] = json.loads(raw)
                kind = frame.get("type", "?")
                size = len(raw.encode()) if isinstance(raw, str) else len(raw)
                if size > self.stats.biggest_frame[kind]:
                    self.stats.biggest_frame[kind] = size
                if kind == "system.error":
                    errors = (
                        self.stats.ordinary_errors
                        if self.role == "ordinary"
                        else self.stats.hostile_errors
                    )
                    errors[str(frame.get("code"))] += 1
                elif kind in ("games.event.turn_changed", "games.event.bigger_dice.game_over"):
                    self.turns[str(frame.get("room_id"))] = frame
                for waiter in list(self._waiters):
                    match, future = waiter
                    if not future.done() and match(frame):
                        future.set_result(frame)
                        self._waiters.remove(waiter)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = ws.close_code
            if self.closing:
                label = f"closed by the client ({self.close_code})"
            elif self.close_code is None:
                label = "dropped without a close frame"
            else:
                label = f"closed by the gateway {self.close_code}"
            self.stats.close_codes[f"{self.role} {label}"] += 1
            self.closed.set()
            for _, future in self._waiters:
                if not future.done():
                    future.set_result(None)
            self._waiters.clear()

    def expect(self, match: Callable[[dict[str, Any]], bool]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.closed.is_set():
            future.set_result(None)
        else:
            self._waiters.append((match, future))
        return future

    async def send(self, message: dict[str, Any]) -> bool:
        if self.ws is None or self.closed.is_set():
            return False
        try:
            await self.ws.send(json.dumps(message, ensure_ascii=False))
        except ConnectionClosed:
            return False
        return True

    async def request(
        self, message: dict[str, Any], *, within: float = 15, rid: bool = True
    ) -> dict[str, Any] | None:
        """Send and wait for the answer carrying its request_id (for authenticate: the
        authenticated/error frame); None on timeout or close."""
        if rid:
            request_id = uuid.uuid4().hex[:16]
            message = {**message, "request_id": request_id}
            future = self.expect(lambda f: f.get("request_id") == request_id)
        else:
            future = self.expect(lambda f: f["type"] in ("system.authenticated", "system.error"))
        if not await self.send(message):
            future.cancel()
            return None
        try:
            result: dict[str, Any] | None = await asyncio.wait_for(future, within)
        except TimeoutError:
            return None
        return result

    async def wait(
        self, match: Callable[[dict[str, Any]], bool], within: float = 30
    ) -> dict[str, Any] | None:
        future = self.expect(match)
        try:
            result: dict[str, Any] | None = await asyncio.wait_for(future, within)
        except TimeoutError:
            return None
        return result

    async def close(self) -> None:
        self.closing = not self.closed.is_set()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)
        if self._reader is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._reader, 5)


# --------------------------------------------------------------------------- the run


@dataclass
class Run:
    stats: Stats
    keys: Keys
    urls: list[str]
    tag: str
    stop_hostile: asyncio.Event = field(default_factory=asyncio.Event)
    stop_games: asyncio.Event = field(default_factory=asyncio.Event)
    game_rooms: list[str] = field(default_factory=list)
    hostile_room: str | None = None  # the growth host's room, which the replays target too
    phase: str = "quiet, before the hostile load"  # when an ordinary game began
    sockets: list[Sock] = field(default_factory=list)

    def url(self, n: int) -> str:
        return self.urls[n % len(self.urls)]

    async def sock(self, user: str | None, role: str, address: str, n: int = 0) -> Sock | None:
        sock = Sock(self.stats, role, address, user)
        token = None if user is None else self.keys.token(user)
        if not await sock.open(self.url(n), token):
            await sock.close()
            return None
        self.sockets.append(sock)
        return sock

    async def forget(self, sock: Sock) -> None:
        await sock.close()
        with contextlib.suppress(ValueError):
            self.sockets.remove(sock)


def made_up_id() -> str:
    return "".join(random.choices(ID_CHARS, k=64))


async def paced(
    run: Run, per_second: float, step: Callable[[int], Awaitable[bool]], limit: int
) -> None:
    """Call `step(i)` at most `per_second` times a second until the hostile phase ends, the
    step says stop, or `limit` calls."""
    began = time.monotonic()
    for i in range(limit):
        if run.stop_hostile.is_set() or not await step(i):
            return
        ahead = began + (i + 1) / per_second - time.monotonic()
        if ahead > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.stop_hostile.wait(), ahead)


async def create_room(sock: Sock, name: str) -> str | None:
    answer = sock.expect(
        lambda f: f["type"] == "games.event.room_state" and f["room"]["room_name"] == name
    )
    reply = await sock.request(
        {"type": "games.command.create_room", "game_type": "bigger_dice", "room_name": name}
    )
    if reply is None or reply["type"] != "system.ack":
        answer.cancel()
        return None
    try:
        state = await asyncio.wait_for(answer, 15)
    except TimeoutError:
        return None
    return None if state is None else str(state["room"]["room_id"])


# --------------------------------------------------------------------------- ordinary games


async def ordinary_pair(run: Run, index: int) -> None:
    """Two players on different gateways play Bigger Dice games back to back."""
    users = [f"ord{index}a-{run.tag}", f"ord{index}b-{run.tag}"]
    socks: list[Sock | None] = [None, None]
    game = 0
    while not run.stop_games.is_set():
        for i in (0, 1):
            current = socks[i]
            if current is None or current.closed.is_set():
                if current is not None:
                    await run.forget(current)
                    run.stats.game_failures["a player's socket was closed; reconnected"] += 1
                socks[i] = await run.sock(users[i], "ordinary", f"10.1.{index}.{i + 1}", i)
        host, guest = socks
        if host is None or guest is None:
            run.stats.game_failures["could not connect"] += 1
            await asyncio.sleep(1)
            continue
        game += 1
        began = time.monotonic()
        why = await play_one(run, host, guest, f"Game {index}-{game} {run.tag}")
        if why is None:
            run.stats.game_seconds.setdefault(run.phase, []).append(time.monotonic() - began)
        else:
            run.stats.game_failures[why] += 1
    for sock in socks:
        if sock is not None:
            await run.forget(sock)


async def play_one(run: Run, host: Sock, guest: Sock, name: str) -> str | None:
    """One game from create_room to game_over; None when it finished, else why not. Its
    slowest step (the wait from one step's start to the next's) goes to `slow_steps`."""
    slowest = (0.0, "", "")
    last = (time.monotonic(), "create_room")
    current_room = "-"

    def step(next_step: str, room: str) -> None:
        nonlocal slowest, last, current_room
        current_room = room
        now = time.monotonic()
        if now - last[0] > slowest[0]:
            slowest = (now - last[0], last[1], room)
        last = (now, next_step)

    try:
        return await _play(run, host, guest, name, step)
    finally:
        step("", current_room)
        run.stats.slow_steps.append(slowest)


async def _play(
    run: Run, host: Sock, guest: Sock, name: str, step: Callable[[str, str], None]
) -> str | None:
    room = await create_room(host, name)
    if room is None:
        return "create_room failed"
    run.game_rooms.append(room)
    step("join_room", room)
    joined = host.expect(
        lambda f: f["type"] == "games.event.lobby_joined" and f.get("room_id") == room
    )
    reply = await guest.request({"type": "games.command.join_room", "room_name": name})
    if reply is None or reply["type"] != "system.ack" or await _within(joined, 15) is None:
        return f"join failed: {reply and reply.get('code')}"
    users = {host: str(host.user), guest: str(guest.user)}
    step("select_player x2, ready x2, game_started", room)
    for target in users.values():
        select = {"type": "games.command.select_player", "room_id": room, "target_user_id": target}
        if (await host.request(select) or {}).get("type") != "system.ack":
            return "select failed"
    started = host.expect(
        lambda f: f["type"] == "games.event.game_started" and f.get("room_id") == room
    )
    for sock in users:
        if (await sock.request({"type": "games.command.ready", "room_id": room}) or {}).get(
            "type"
        ) != "system.ack":
            return "ready failed"
    if await _within(started, 20) is None:
        return "game did not start"
    by_user = {user: sock for sock, user in users.items()}
    seen = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        step(f"roll and its turn event after seq {seen}", room)
        frame = host.turns.get(room)
        if frame is None or int(frame.get("seq") or 0) <= seen:
            newer = host.expect(_turn_event(room, seen))
            frame = host.turns.get(room)
            if frame is None or int(frame.get("seq") or 0) <= seen:
                frame = await _within(newer, 40)
            else:
                newer.cancel()
            if frame is None:
                return "no turn event within 40 s"
        seen = int(frame["seq"])
        if frame["type"] == "games.event.bigger_dice.game_over":
            for sock in users:
                await sock.request({"type": "games.command.leave_room", "room_id": room})
            return None
        roller = by_user.get(frame["current_turn"])
        if roller is None:
            return "turn of an unknown player"
        reply = await roller.request({"type": "games.command.bigger_dice.roll", "room_id": room})
        if reply is None or reply["type"] != "system.ack":
            return f"roll not acknowledged: {reply and reply.get('code')}"
    return "game longer than 300 s"


def _turn_event(room: str, after: int) -> Callable[[dict[str, Any]], bool]:
    def match(frame: dict[str, Any]) -> bool:
        return (
            frame.get("room_id") == room
            and frame["type"] in ("games.event.turn_changed", "games.event.bigger_dice.game_over")
            and int(frame.get("seq") or 0) > after
        )

    return match


async def _within(future: asyncio.Future[Any], seconds: float) -> Any:
    try:
        return await asyncio.wait_for(future, seconds)
    except TimeoutError:
        return None


# --------------------------------------------------------------------------- hostile users


async def growth(run: Run) -> None:
    """A host bans and mutes made-up ids in their room and floods its chat with 4-byte
    characters; a spectator joins now and then; another user hosts as many rooms as allowed;
    a third reads chat history over and over."""
    host = await run.sock(f"grow-{run.tag}", "hostile", "10.6.0.1")
    if host is None:
        return
    name = f"Banned {run.tag}"
    room = await create_room(host, name)
    if room is None:
        run.stats.actions["growth: could not create its room"] += 1
        return
    run.hostile_room = room

    async def ban_or_mute(i: int) -> bool:
        kind = "ban_player" if i % 2 == 0 else "mute_user"
        sent = await host.send(
            {"type": f"games.command.{kind}", "room_id": room, "target_user_id": made_up_id()}
        )
        run.stats.actions[f"growth: {kind} of made-up ids"] += 1
        if i % 200 == 199:
            await spectate()
        return sent

    async def spectate() -> None:
        spectator = await run.sock(f"spec-{run.tag}", "hostile", "10.6.0.2")
        if spectator is None:
            return
        answer = spectator.expect(lambda f: f["type"] in ("games.event.room_state", "system.error"))
        await spectator.send({"type": "games.command.join_as_spectator", "room_name": name})
        await _within(answer, 10)
        run.stats.actions["growth: spectator joins of the banned room"] += 1
        await run.forget(spectator)

    async def chat(i: int) -> bool:
        run.stats.actions["growth: 1,000 x 4-byte chat lines"] += 1
        return await host.send(
            {
                "type": "games.command.send_chat",
                "room_id": room,
                "channel": "lobby",
                "content": FOUR_BYTE_CHAT,
            }
        )

    async def history(i: int) -> bool:
        reader = history_sock
        assert reader is not None
        await reader.request(
            {
                "type": "games.command.get_chat_history",
                "room_id": room,
                "channel": "lobby",
                "limit": 200,
            }
        )
        run.stats.actions["growth: chat history reads (200)"] += 1
        return True

    async def many_rooms(i: int) -> bool:
        assert roomer is not None
        made = await create_room(roomer, f"Many {i} {run.tag}")
        run.stats.actions[
            f"growth: create_room of a many-rooms host ({'ok' if made else 'refused'})"
        ] += 1
        return not roomer.closed.is_set()

    history_sock = await run.sock(f"grow-{run.tag}", "hostile", "10.6.0.1", 1)
    roomer = await run.sock(f"roomer-{run.tag}", "hostile", "10.6.0.3")
    loops = [paced(run, 30, ban_or_mute, 100_000), paced(run, 10, chat, 20_000)]
    if history_sock is not None:
        loops.append(paced(run, 2, history, 5_000))
    if roomer is not None:
        loops.append(paced(run, 2, many_rooms, 5_000))
    await asyncio.gather(*loops)


async def floods(run: Run) -> None:
    """Frames far past the rate limit, create/leave loops, direct-message floods."""

    async def rate_flood() -> None:
        for _ in range(1_000):
            if run.stop_hostile.is_set():
                return
            sock = await run.sock(f"flood-{run.tag}", "hostile", "10.7.0.1")
            if sock is None:
                await asyncio.sleep(1)
                continue
            for _ in range(500):  # five times the burst, as fast as the socket takes them
                if not await sock.send({"type": "system.heartbeat"}):
                    break
                run.stats.actions["floods: frames past the rate limit"] += 1
            await _within(asyncio.ensure_future(sock.closed.wait()), 5)
            await run.forget(sock)

    async def create_leave() -> None:
        sock = await run.sock(f"churn-{run.tag}", "hostile", "10.7.0.2")
        if sock is None:
            return

        async def step(i: int) -> bool:
            room = await create_room(sock, f"Churn {i} {run.tag}")
            if room is not None:
                await sock.request({"type": "games.command.leave_room", "room_id": room})
            run.stats.actions["floods: create/leave cycles"] += 1
            return not sock.closed.is_set()

        await paced(run, 20, step, 50_000)

    async def direct_messages() -> None:
        sender = await run.sock(f"dm-{run.tag}", "hostile", "10.7.0.3")
        victim = await run.sock(f"victim-{run.tag}", "hostile", "10.7.0.4", 1)
        if sender is None or victim is None:
            return

        async def step(i: int) -> bool:
            run.stats.actions["floods: direct messages"] += 1
            return await sender.send(
                {
                    "type": "chat.command.send_message",
                    "recipient_id": f"victim-{run.tag}",
                    "content": FOUR_BYTE_CHAT[: 1 + i % 1000],
                }
            )

        await paced(run, 40, step, 100_000)

    await asyncio.gather(rate_flood(), create_leave(), direct_messages())


async def replays(run: Run) -> None:
    """rejoin_room {last_seq: 0} of the user's own busy room (the growth host's) and of
    others' game rooms, twice a second; a closed socket comes back, as a browser would."""
    user = f"grow-{run.tag}"
    for _ in range(100):
        if run.stop_hostile.is_set():
            return
        sock = await run.sock(user, "hostile", "10.8.0.1", 1)
        if sock is None:
            await asyncio.sleep(1)
            continue

        async def step(i: int, sock: Sock = sock) -> bool:
            own = run.hostile_room
            targets = ([own] if own else []) + run.game_rooms[-5:]
            if not targets:
                return True
            room = targets[i % len(targets)]
            await sock.request(
                {"type": "games.command.rejoin_room", "room_id": room, "last_seq": 0}
            )
            kind = "own room" if room == own else "others' rooms"
            run.stats.actions[f"replays: rejoin last_seq 0, {kind}"] += 1
            return not sock.closed.is_set()

        await paced(run, 2, step, 10_000)
        if sock.closed.is_set():
            run.stats.actions["replays: replaying socket closed, reconnected"] += 1
        await run.forget(sock)


async def storms(run: Run) -> None:
    """Connect/authenticate/disconnect loops, and unauthenticated sockets held open until the
    gateway closes them (AUTH_TIMEOUT_SECONDS), then opened again."""

    async def churn(worker: int, per_second: float, gateway: int | None) -> None:
        async def step(i: int) -> bool:
            n = i if gateway is None else gateway
            sock = await run.sock(f"storm{worker}-{run.tag}", "storm", f"10.9.{worker}.1", n)
            run.stats.actions[f"storms: connect/auth/disconnect at {per_second:.0f}/s"] += 1
            if sock is not None:
                await run.forget(sock)
            return True

        await paced(run, per_second, step, 50_000)

    async def hold(address: str, count: int, gateway: int | None) -> None:
        """`count` unauthenticated sockets from one address, on one gateway or spread."""

        async def one(n: int) -> None:
            for _ in range(1_000):
                if run.stop_hostile.is_set():
                    return
                sock = await run.sock(None, "storm", address, n if gateway is None else gateway)
                if sock is None:
                    await asyncio.sleep(2)
                    continue
                run.stats.actions["storms: unauthenticated sockets opened"] += 1
                stopped = asyncio.ensure_future(run.stop_hostile.wait())
                await asyncio.wait(
                    [stopped, asyncio.ensure_future(sock.closed.wait())],
                    return_when=asyncio.FIRST_COMPLETED,
                )
                stopped.cancel()
                await run.forget(sock)

        await asyncio.gather(*(one(n) for n in range(count)))

    await asyncio.gather(
        *(churn(w, 5, None) for w in range(3)),
        churn(3, 20, 0),  # past WS_IP_HANDSHAKES_PER_SEC once its burst is spent
        hold("10.9.100.1", 150, 0),  # past WS_IP_MAX_UNAUTHENTICATED on one gateway
        hold("10.9.100.2", 60, None),
    )


# --------------------------------------------------------------------------- memory


@dataclass
class Services:
    engines: list[EngineProcess]
    gateways: list[GatewayProc]
    redis: aioredis.Redis
    prefix: str


def cpu_text(pid: int | None) -> str:
    """User + system CPU seconds the process has used so far."""
    if pid is None:
        return "-"
    try:
        return f"{cpu_seconds(pid):.0f}"
    except OSError:
        return "gone"


def rss_text(pid: int | None) -> str:
    """The process's resident memory in MB."""
    if pid is None:
        return "-"
    try:
        return f"{rss_bytes(pid) / 2**20:.0f}"
    except OSError:
        return "gone"


async def key_count(redis: aioredis.Redis, prefix: str) -> tuple[int, Counter[str]]:
    """How many keys lie under the prefix, by shape (ids replaced with *)."""
    shapes: Counter[str] = Counter()
    async for key in redis.scan_iter(match=f"{prefix}*", count=2_000):
        shapes[_shape(key.decode(errors="replace")[len(prefix) :])] += 1
    return sum(shapes.values()), shapes


def _shape(rest: str) -> str:
    return ":".join(
        "*" if re.search(r"[0-9{]", part) or len(part) > 24 else part for part in rest.split(":")
    )


async def leftovers(redis: aioredis.Redis, prefix: str) -> list[str]:
    """The keys under the prefix by shape, each with its count and TTL range: a key without
    a TTL (-1) stays for ever, one with a TTL goes by itself."""
    keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=2_000)]
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.ttl(key)
        pipe.memory_usage(key)
    replies = await pipe.execute()
    ttls: dict[str, list[int]] = {}
    sizes: Counter[str] = Counter()
    for i, key in enumerate(keys):
        shape = _shape(key.decode(errors="replace")[len(prefix) :])
        ttls.setdefault(shape, []).append(int(replies[2 * i]))
        sizes[shape] += int(replies[2 * i + 1] or 0)
    return [
        f"{shape} x{len(t)} {sizes[shape] / 1024:.0f} KiB "
        f"(TTL {'none' if min(t) < 0 else f'{min(t)}..{max(t)} s'})"
        for shape, t in sorted(ttls.items(), key=lambda item: -sizes[item[0]])
    ]


async def prefix_bytes(redis: aioredis.Redis, prefix: str) -> int:
    """MEMORY USAGE summed over the keys under the prefix: this run's share of Redis."""
    total = 0
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=f"{prefix}*", count=2_000):
        batch.append(key)
        if len(batch) == 500:
            total += await _usage(redis, batch)
            batch = []
    return total + await _usage(redis, batch)


async def _usage(redis: aioredis.Redis, keys: list[bytes]) -> int:
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key)
    return sum(int(n or 0) for n in await pipe.execute())


async def sample(services: Services, label: str) -> None:
    info = await services.redis.info("memory")
    count, _ = await key_count(services.redis, services.prefix)
    own = await prefix_bytes(services.redis, services.prefix)
    pids = [e.proc.pid if e.proc else None for e in services.engines]
    pids += [g.proc.pid for g in services.gateways]
    rss = " ".join(rss_text(pid) for pid in pids)
    cpu = " ".join(cpu_text(pid) for pid in [*pids, os.getpid()])
    say(
        f"  {label:<24} RSS MB {rss:<16} CPU s {cpu:<20} "
        f"redis used_memory {int(info['used_memory']) / 2**20:6.1f} MB, "
        f"under the prefix {count} keys {own / 2**20:6.2f} MB"
    )


# --------------------------------------------------------------------------- main


def infra_addresses(args: argparse.Namespace) -> tuple[str, str]:
    kafka = args.kafka or kafka_bootstrap()
    redis = args.redis or redis_url()
    for address in (kafka.split(",")[0].rsplit(":", 1)[0], re.sub(r"^.*//|:\d+.*$", "", redis)):
        if address not in ("127.0.0.1", "localhost", "::1", "[::1]"):
            raise SystemExit(f"hostile_mix runs on loopback only, not against {address}")
    return kafka, redis


async def main_async(args: argparse.Namespace) -> None:
    kafka, redis_url = infra_addresses(args)
    tag = uuid.uuid4().hex[:6]
    prefix = f"hm{tag}."
    workdir = Path(tempfile.mkdtemp(prefix="hostile_mix-"))
    say(
        f"hostile mix: {args.minutes} min of {args.attacks}, {args.games} ordinary games at "
        f"a time, prefix {prefix}"
    )
    say(f"kafka {kafka}  redis {redis_url}  logs {workdir}")
    keys = Keys(workdir / "jwt")
    await create_topics(kafka, prefix)
    lifetimes = str(args.room_seconds)
    engine_env = {
        "ENGINE_IDLE_ROOM_SECONDS": lifetimes,
        "ENGINE_FINISHED_ROOM_SECONDS": lifetimes,
        "ENGINE_ENDED_ROOM_TTL_SECONDS": lifetimes,
        "ENGINE_TURN_TIMEOUT_SECONDS": "30",
        "LOG_LEVEL": "WARNING",
    }
    engines = [
        EngineProcess.configure(
            kafka_bootstrap=kafka,
            redis_url=redis_url,
            topic_prefix=prefix,
            log_dir=workdir,
            name=f"engine{i}",
            extra=engine_env,
        )
        for i in (1, 2)
    ]
    gateways: list[GatewayProc] = []
    redis = aioredis.from_url(redis_url)
    services = Services(engines, gateways, redis, prefix)
    run = Run(Stats(), keys, [], tag)
    try:
        for engine in engines:
            engine.start()
        for i in (1, 2):
            gateways.append(
                GatewayProc(
                    bootstrap=kafka,
                    redis_url=redis_url,
                    topic_prefix=prefix,
                    key_prefix=prefix,
                    public_key=keys.public_path,
                    log_dir=workdir,
                    env={"WS_TRUSTED_PROXIES": "127.0.0.1", "LOG_LEVEL": "WARNING"},
                    gateway_id=f"hm-gw{i}-{tag}",
                )
            )
        for engine in engines:
            await engine.wait_ready(60)
        for gateway in gateways:
            await asyncio.to_thread(gateway.wait_ready, 60)
        run.urls = [g.url for g in gateways]
        say(
            "memory: RSS of engine 1, engine 2, gateway 1, gateway 2; CPU seconds used so far "
            "by the same four and by this load generator; Redis used_memory is the whole Redis "
            "(shared with whatever else uses it), the prefix figures are this run's keys (by "
            "MEMORY USAGE)"
        )
        await sample(services, "before")
        await drive(run, services, args)
    finally:
        for sock in list(run.sockets):
            await sock.close()
        for gateway in gateways:
            gateway.terminate()
        for engine in engines:
            engine.stop()
        with contextlib.suppress(Exception):
            await delete_topics(kafka, prefix)
        with contextlib.suppress(Exception):
            async for key in redis.scan_iter(match=f"{prefix}*", count=2_000):
                await redis.delete(key)
        await redis.aclose()
    report(run.stats)
    say(f"logs kept in {workdir}" if args.keep_logs else "")
    if not args.keep_logs:
        shutil.rmtree(workdir, ignore_errors=True)


async def drive(run: Run, services: Services, args: argparse.Namespace) -> None:
    games = [asyncio.create_task(ordinary_pair(run, i)) for i in range(args.games)]
    await asyncio.sleep(args.quiet_seconds)  # the games' usual duration, for comparison
    run.phase = "under the hostile load"
    hostile = [asyncio.create_task(ATTACKS[name](run)) for name in args.attacks.split(",")]
    began = time.monotonic()
    end = began + args.minutes * 60
    while (left := end - time.monotonic()) > 0:
        await asyncio.sleep(min(left, SAMPLE_EVERY))
        if time.monotonic() < end:
            await sample(services, f"during, {time.monotonic() - began:4.0f} s")
    run.stop_hostile.set()
    await asyncio.wait(hostile, timeout=30)
    for sock in [s for s in run.sockets if s.role != "ordinary"]:
        await run.forget(sock)
    await sample(services, "hostile load stopped")
    run.phase = "after the hostile load"
    run.stop_games.set()
    await asyncio.wait(games, timeout=120)
    for task in games + hostile:
        task.cancel()
    for sock in list(run.sockets):
        await run.forget(sock)
    await sample(services, "everyone left")
    # the rooms' timers remove what is left: wait for the key count to settle
    wait_until = time.monotonic() + 2 * args.room_seconds + 60
    last, steady_since = -1, time.monotonic()
    while time.monotonic() < wait_until:
        await asyncio.sleep(5)
        count, _ = await key_count(services.redis, services.prefix)
        if count != last:
            last, steady_since = count, time.monotonic()
        elif time.monotonic() - steady_since > args.room_seconds + 10:
            break
    await sample(services, f"{time.monotonic() - began - args.minutes * 60:.0f} s after the load")
    left = await leftovers(services.redis, services.prefix)
    say("  keys left under the prefix: " + ("; ".join(left) or "none"))


def report(stats: Stats) -> None:
    say("ordinary games (create_room to game_over), by when they began:")
    for phase, durations in stats.game_seconds.items():
        seconds = sorted(durations)
        p95 = percentile(seconds, 0.95)
        say(
            f"  {phase}: finished {len(seconds)}, p50 {statistics.median(seconds):.2f} s, "
            f"p95 {p95:.2f} s, max {seconds[-1]:.2f} s"
        )
    if not stats.game_seconds:
        say("  finished 0")
    say(f"  did not finish: {dict(stats.game_failures) or 'none'}")
    for took, what, room in sorted(stats.slow_steps, reverse=True)[:5]:
        say(f"  slow step: {took:.2f} s in {what} (room {room})")
    say(f"  system.error codes seen by ordinary players: {dict(stats.ordinary_errors) or 'none'}")
    say("hostile clients:")
    say(f"  system.error codes: {dict(stats.hostile_errors.most_common()) or 'none'}")
    for action, n in sorted(stats.actions.items()):
        say(f"  {action}: {n}")
    say("close codes seen (by role):")
    for label, n in sorted(stats.close_codes.items()):
        say(f"  {label}: {n}")
    say("handshakes:")
    for label, n in sorted(stats.handshakes.items()):
        say(f"  {label}: {n}")
    say("largest frame received, by type (bytes):")
    for kind, n in stats.biggest_frame.most_common(6):
        say(f"  {kind}: {n}")


ATTACKS: dict[str, Callable[[Run], Coroutine[Any, Any, None]]] = {
    "growth": growth,
    "floods": floods,
    "replays": replays,
    "storms": storms,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=5.0, help="hostile load (default 5)")
    parser.add_argument("--games", type=int, default=4, help="ordinary games at a time")
    parser.add_argument(
        "--room-seconds",
        type=int,
        default=15,
        help="ENGINE_IDLE_ROOM_SECONDS / ENGINE_FINISHED_ROOM_SECONDS of the engines",
    )
    parser.add_argument(
        "--quiet-seconds",
        type=float,
        default=20.0,
        help="ordinary games alone before the hostile load starts (their usual duration)",
    )
    parser.add_argument(
        "--attacks",
        default=",".join(ATTACKS),
        help=f"comma-separated subset of {','.join(ATTACKS)} (default: all)",
    )
    parser.add_argument("--kafka", help="bootstrap servers (default: .infra/run/env)")
    parser.add_argument("--redis", help="Redis URL (default: .infra/run/env)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the services' logs")
    args = parser.parse_args(argv)
    unknown = set(args.attacks.split(",")) - set(ATTACKS)
    if unknown:
        parser.error(f"unknown attacks: {', '.join(sorted(unknown))}")
    try:
        asyncio.run(main_async(args))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
