"""One load process of the soak (`python scripts/soak load ...`, started by the soak itself):
holds a contiguous range of the soak's users, each one authenticated socket, and plays their
roles until the deadline; then every user leaves every room it is in and disconnects.

Roles, by position in the range (the soak's --players/--chatters/--listers shares):
  player   pairs (host on one gateway, guest on the other) play Bigger Dice back to back:
           create_room, join_room, select_player x2, ready x2, roll on their turn (after a
           think time) until game_over, leave_room x2, again
  chatter  hosts a waiting room of its own and sends a lobby chat line every --chat-every
           seconds; after --chat-lines lines it leaves (the room is then empty) and opens the
           next one
  lister   lists the Bigger Dice rooms every --list-every seconds (which also subscribes the
           socket to the room_created broadcasts)
  idle     only heartbeats (parlour_client sends one every heartbeat_interval of the welcome)
Every 2 s (and at the end) the process writes its counters as JSON to --stats (atomically),
which the soak reads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soak.client import GAME_OVER, Conn, Counters, Frame
from soak.tokens import sign_tokens

CONNECT_CONCURRENCY = 50
ROLL_TRIES = 5
TURN_WAIT_SECONDS = 120.0


@dataclass
class Load:
    args: argparse.Namespace
    counters: Counters = field(default_factory=Counters)
    conns: list[Conn] = field(default_factory=list)
    rooms: dict[int, set[str]] = field(default_factory=dict)
    """conn index -> the rooms that user is in (to leave them at the end)"""
    games_started: int = 0
    games_finished: int = 0
    games_failed: dict[str, int] = field(default_factory=dict)
    chat_lines: int = 0
    lists: int = 0
    leaves: int = 0
    leave_failures: int = 0
    roll_retries: int = 0
    connected_peak: int = 0
    connect_seconds: float | None = None
    phase: str = "signing tokens"
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def failed(self, why: str) -> None:
        self.games_failed[why] = self.games_failed.get(why, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        c = self.counters
        return {
            "pid": os.getpid(),
            "phase": self.phase,
            "users": len(self.conns),
            "connected": sum(1 for conn in self.conns if conn.open),
            "connected_peak": self.connected_peak,
            "connect_seconds": self.connect_seconds,
            "commands": c.commands,
            "frames_in": c.frames_in,
            "games_started": self.games_started,
            "games_finished": self.games_finished,
            "games_failed": dict(self.games_failed),
            "chat_lines": self.chat_lines,
            "lists": self.lists,
            "leaves": self.leaves,
            "leave_failures": self.leave_failures,
            "roll_retries": self.roll_retries,
            "errors": dict(c.errors),
            "timeouts": dict(c.timeouts),
            "closes": dict(c.closes),
            "connect_failures": dict(c.connect_failures),
        }

    def write_stats(self) -> None:
        path = Path(self.args.stats)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.snapshot()))
        tmp.replace(path)

    async def pause(self, seconds: float) -> bool:
        """Sleep unless the run stops first; False when it stopped."""
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
        except TimeoutError:
            return True
        return False

    def think(self) -> float:
        """A pair's pause before a roll or the next game."""
        return float(self.args.think) * random.uniform(0.5, 1.5)


def roles(count: int, args: argparse.Namespace) -> list[str]:
    """The role of each position: pairs of players first, then chatters, listers, idle."""
    players = int(count * args.players) // 2 * 2
    chatters = int(count * args.chatters)
    listers = int(count * args.listers)
    out = ["player"] * players + ["chatter"] * chatters + ["lister"] * listers
    return (out + ["idle"] * count)[:count]


async def create_room(load: Load, index: int, name: str) -> str | None:
    conn = load.conns[index]
    state = conn.expect(
        lambda f: f["type"] == "games.event.room_state" and f["room"]["room_name"] == name
    )
    create = {"type": "games.command.create_room", "game_type": "bigger_dice"}
    if not await conn.command({**create, "room_name": name, "max_players": 2}):
        state.cancel()
        return None
    frame = await conn.wait(state, "room_state")
    if frame is None:
        return None
    room_id = str(frame["room"]["room_id"])
    load.rooms.setdefault(index, set()).add(room_id)
    return room_id


async def leave(load: Load, index: int, room_id: str) -> None:
    """leave_room, and wait until the engine applied it (the leaver hears its own
    player_left, or player_disconnected from a running game): a user who disconnects before
    that would still be in the room then."""
    conn = load.conns[index]
    if not conn.open:
        return

    def applied(f: Frame) -> bool:
        if f.get("room_id") == room_id:
            if f["type"] == "games.event.player_left":
                return f.get("player_id") == conn.user_id
            # leaving a running game keeps the seat: the room hears a disconnect instead
            if f["type"] == "games.event.player_disconnected":
                return f.get("user_id") == conn.user_id
        # the engine's answer when the room went first (a finished room lives
        # ENGINE_FINISHED_ROOM_SECONDS): a user does one thing at a time, so it is this one's
        return f["type"] == "system.error" and f.get("code") in ("room_not_found", "not_in_room")

    left = conn.expect(applied)
    frame = await conn.request({"type": "games.command.leave_room", "room_id": room_id})
    conn.forget_room(room_id)
    if frame is not None and frame["type"] == "system.ack":
        await conn.wait(left, "player_left")
        load.leaves += 1
        load.rooms.get(index, set()).discard(room_id)
    elif frame is not None and frame.get("code") in ("room_not_found", "not_in_room"):
        left.cancel()
        load.rooms.get(index, set()).discard(room_id)  # already gone: nothing to leave
    else:
        left.cancel()
        load.leave_failures += 1


async def play_pair(load: Load, host_i: int, guest_i: int) -> None:
    host, guest = load.conns[host_i], load.conns[guest_i]
    by_user = {host.user_id: host, guest.user_id: guest}
    game = 0
    while not load.stop.is_set():
        if not (host.open and guest.open):
            load.failed("a socket was closed")
            return
        game += 1
        name = f"{load.args.tag}-g{load.args.first + host_i}-{game}"
        room = await create_room(load, host_i, name)
        if room is None:
            load.failed("create_room")
            await load.pause(5)
            continue
        load.games_started += 1
        why = await play_game(load, host, guest, by_user, room, name, guest_i)
        if why is None:
            load.games_finished += 1
        else:
            load.failed(why)
        await asyncio.gather(
            *(leave(load, i, room) for i in (host_i, guest_i) if room in load.rooms.get(i, set()))
        )
        if not await load.pause(load.think()):
            return


async def play_game(
    load: Load,
    host: Conn,
    guest: Conn,
    by_user: dict[str, Conn],
    room: str,
    name: str,
    guest_i: int,
) -> str | None:
    """From the created room to game_over; None when it finished, else the failed step."""
    joined = host.expect(
        lambda f: f["type"] == "games.event.lobby_joined" and f.get("room_id") == room
    )
    if not await guest.command({"type": "games.command.join_room", "room_name": name}):
        joined.cancel()
        return "join_room"
    load.rooms.setdefault(guest_i, set()).add(room)
    if await host.wait(joined, "lobby_joined") is None:
        return "lobby_joined"
    for target in (host.user_id, guest.user_id):
        select = {"type": "games.command.select_player", "room_id": room, "target_user_id": target}
        if not await host.command(select):
            return "select_player"
    for player in (host, guest):
        if not await player.command({"type": "games.command.ready", "room_id": room}):
            return "ready"
    seen = 0
    while True:
        # the turn timer (ENGINE_TURN_TIMEOUT_SECONDS, 30 s) rolls for a player whose rolls
        # all failed, so a turn comes within it unless the room is stuck
        frame = await host.next_turn(room, seen, within=TURN_WAIT_SECONDS)
        if frame is None:
            return "turn_changed"
        if frame["type"] == GAME_OVER:
            return None
        seen = int(frame.get("seq") or 0)
        # a game in progress is played to its end when the run stops (quickly): players who
        # leave a running game keep their seats and the game would play on, by its turn timer
        await asyncio.sleep(0.05 if load.stop.is_set() else load.think())
        roller = by_user.get(str(frame.get("current_turn")))
        if roller is None:
            return "turn of a stranger"
        roll = {"type": "games.command.bigger_dice.roll", "room_id": room}
        for attempt in range(ROLL_TRIES):
            if await roller.command(roll):
                break
            # not accepted (a timeout, or still service_unavailable after the client's own
            # re-sends with the same request_id): the game goes on, so the roll is tried
            # again as a new command (a second roll of the same turn is refused not_your_turn)
            load.roll_retries += 1
            if not roller.open:
                return "roll: socket closed"
            await asyncio.sleep(1 + attempt)


async def chat(load: Load, index: int) -> None:
    conn = load.conns[index]
    n = 0
    await load.pause(random.uniform(0, load.args.chat_every))
    while not load.stop.is_set() and conn.open:
        n += 1
        room = await create_room(load, index, f"{load.args.tag}-c{load.args.first + index}-{n}")
        if room is None:
            await load.pause(5)
            continue
        for line in range(load.args.chat_lines):
            if not await load.pause(load.args.chat_every * random.uniform(0.5, 1.5)):
                return
            content = f"line {line} from {conn.user_id}"
            message = {"type": "games.command.send_chat", "room_id": room, "channel": "lobby"}
            if await conn.command({**message, "content": content}):
                load.chat_lines += 1
        await leave(load, index, room)


async def list_rooms(load: Load, index: int) -> None:
    conn = load.conns[index]
    await load.pause(random.uniform(0, load.args.list_every))
    while not load.stop.is_set() and conn.open:
        message = {"type": "games.command.list_rooms", "game_type": "bigger_dice", "limit": 20}
        if await conn.command(message):
            load.lists += 1
        await load.pause(load.args.list_every * random.uniform(0.5, 1.5))


async def connect_all(load: Load, tokens: list[str], users: list[str]) -> None:
    urls = load.args.urls.split(",")
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(i: int) -> None:
        async with gate:
            conn = load.conns[i]
            # position i of the whole soak: a pair's two players sit on different gateways
            url = urls[(load.args.first + i) % len(urls)]
            for attempt in range(3):
                if await conn.connect(url, tokens[i]) or load.stop.is_set():
                    break
                await asyncio.sleep(1 + attempt)
            load.connected_peak = max(load.connected_peak, sum(1 for c in load.conns if c.open))

    load.conns.extend(Conn(user, load.counters) for user in users)
    await asyncio.gather(*(one(i) for i in range(len(users))))


async def stats_loop(load: Load) -> None:
    while True:
        load.write_stats()
        await asyncio.sleep(2)


async def wait_for_go(path: Path) -> float:
    """The soak writes the deadline (epoch seconds) into `path` once every load process is
    ready: they start together."""
    while True:
        try:
            return float(await asyncio.to_thread(path.read_text))
        except (OSError, ValueError):
            await asyncio.sleep(0.1)


async def run(args: argparse.Namespace) -> None:
    load = Load(args)
    count = args.last - args.first
    users = [f"{args.tag}-u{args.first + i}" for i in range(count)]
    pem = await asyncio.to_thread(Path(args.private_key).read_text)
    tokens = await asyncio.to_thread(sign_tokens, pem, users, 24 * 3600)
    load.phase = "ready"
    writer = asyncio.create_task(stats_loop(load))
    until = await wait_for_go(Path(args.go))
    load.phase = "connecting"
    stopper = asyncio.get_running_loop().call_later(max(0.0, until - time.time()), load.stop.set)
    began = time.monotonic()
    await connect_all(load, tokens, users)
    load.connect_seconds = round(time.monotonic() - began, 1)
    load.phase = "running"
    tasks: list[asyncio.Task[None]] = []
    kinds = roles(count, args)
    for i, role in enumerate(kinds):
        if role == "player" and i % 2 == 0:
            tasks.append(asyncio.create_task(play_pair(load, i, i + 1)))
        elif role == "chatter":
            tasks.append(asyncio.create_task(chat(load, i)))
        elif role == "lister":
            tasks.append(asyncio.create_task(list_rooms(load, i)))
    await load.stop.wait()
    stopper.cancel()
    load.phase = "leaving"
    # every role ends at its next step; a game in progress is first played to its end
    if tasks:
        await asyncio.wait(tasks, timeout=args.finish_timeout)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def leave_all(i: int) -> None:
        async with gate:
            for room in list(load.rooms.get(i, ())):
                await leave(load, i, room)

    await asyncio.gather(*(leave_all(i) for i in range(count)))
    load.phase = "disconnecting"

    async def close(conn: Conn) -> None:
        async with gate:
            await conn.close()

    await asyncio.gather(*(close(conn) for conn in load.conns))
    load.phase = "done"
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
    load.write_stats()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--urls", required=True, help="comma-separated gateway ws:// URLs")
    parser.add_argument("--private-key", required=True, help="PEM that signs the tokens")
    parser.add_argument("--tag", required=True, help="names users and rooms")
    parser.add_argument("--first", type=int, required=True, help="first user position")
    parser.add_argument("--last", type=int, required=True, help="one past the last position")
    parser.add_argument("--go", required=True, help="file that brings the deadline: start then")
    parser.add_argument("--stats", required=True, help="file the counters are written to")
    parser.add_argument("--finish-timeout", type=float, default=120.0)
    parser.add_argument("--players", type=float, default=0.1)
    parser.add_argument("--chatters", type=float, default=0.05)
    parser.add_argument("--listers", type=float, default=0.05)
    parser.add_argument("--think", type=float, default=1.0)
    parser.add_argument("--chat-every", type=float, default=10.0)
    parser.add_argument("--chat-lines", type=int, default=6)
    parser.add_argument("--list-every", type=float, default=20.0)


def main(args: argparse.Namespace) -> int:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(run(args))
    return 0
