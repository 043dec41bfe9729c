"""Load generator processes: two-player rooms, one die roll at a time per room, timed from the
roll sent until both players have seen its result.

The coordinator starts `workers` processes (`spawn`); each sets its rooms up and then runs the
steps it is sent through a pipe:
- `("closed", rooms, seconds)`: one roll in flight in each of its first `rooms` rooms, the next
  as soon as the turn is known (as fast as the system answers);
- `("open", rate, seconds)`: rolls at a fixed rate (its share), each for a room with nothing in
  flight; a roll that finds no such room is counted as `missed`. Latency runs from the roll's
  scheduled time, so a late send counts against the system (no coordinated omission).
Each step answers with a `StepResult` dict. `kind` is `parlour` (the real stack through
`parlour_client`) or `peer` (python-socketio's protocol spoken over `websockets`, see peer.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import multiprocessing
import random
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.hops import hop_durations, hop_times
from parlour_client import CommandRejected, Frame, ParlourClient, room_of

ROLLED = "games.event.bigger_dice.rolled"
TURN = "games.event.turn_changed"
OVER = "games.event.bigger_dice.game_over"


@dataclass
class WorkerSpec:
    kind: str  # "parlour" | "peer"
    urls: list[str]
    rooms: int
    tokens: list[tuple[str, str]]  # (host token, guest token) per room; empty for the peer
    index: int = 0
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])


@dataclass
class Room:
    index: int
    room_id: str = ""
    turn: str = ""
    in_flight: float | None = None  # perf_counter the roll counts from
    sent_wall: float = 0.0
    seen: int = 0  # players that saw the roll's result
    turn_known: bool = False
    over: bool = False
    rolls: int = 0
    stage: str = ""  # what starting its next game waits for (named when that fails)


class Driver:
    """What both kinds share: the idle set, latencies and the step loops."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.rooms = [Room(i) for i in range(spec.rooms)]
        self.idle: set[int] = set()
        self.limit = spec.rooms
        self.latencies: list[float] = []
        self.hops: list[dict[str, float]] = []
        self.errors = 0
        self.changed = asyncio.Event()

    async def setup(self) -> None:
        raise NotImplementedError

    async def roll(self, room: Room, counted_from: float) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def done(self, room: Room, now: float) -> None:
        """The roll's result reached both players."""
        if room.in_flight is not None:
            self.latencies.append((now - room.in_flight) * 1000.0)
        room.in_flight = None
        self.maybe_idle(room)

    def maybe_idle(self, room: Room) -> None:
        if room.in_flight is None and room.turn_known and not room.over and room.index < self.limit:
            self.idle.add(room.index)
            self.changed.set()

    async def closed(self, rooms: int, seconds: float) -> dict[str, Any]:
        self.limit = rooms
        self.idle = {r.index for r in self.rooms[:rooms] if self._ready(r)}
        self.latencies = []
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            batch, self.idle = self.idle, set()
            for index in batch:
                await self.roll(self.rooms[index], time.perf_counter())
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 0.05)
        elapsed = time.perf_counter() - started
        await self.drain()
        return {"latencies_ms": self.latencies, "done": len(self.latencies), "seconds": elapsed}

    async def open(self, rate: float, seconds: float) -> dict[str, Any]:
        self.limit = len(self.rooms)
        self.idle = {r.index for r in self.rooms if self._ready(r)}
        self.latencies = []
        interval = 1.0 / rate
        started = time.perf_counter()
        due = started
        sent = missed = 0
        while due - started < seconds:
            now = time.perf_counter()
            while due <= now and due - started < seconds:
                if self.idle:
                    await self.roll(self.rooms[self.idle.pop()], due)
                    sent += 1
                else:
                    missed += 1
                due += interval
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        elapsed = time.perf_counter() - started
        await self.drain()
        return {
            "latencies_ms": self.latencies,
            "done": len(self.latencies),
            "sent": sent,
            "missed": missed,
            "seconds": elapsed,
        }

    def _ready(self, room: Room) -> bool:
        return room.in_flight is None and room.turn_known and not room.over

    async def drain(self, within: float = 10.0) -> None:
        deadline = time.perf_counter() + within
        while any(r.in_flight is not None for r in self.rooms):
            if time.perf_counter() > deadline:
                for room in self.rooms:
                    if room.in_flight is not None:
                        self.errors += 1
                        room.in_flight = None
                        self.maybe_idle(room)
                return
            await asyncio.sleep(0.01)


class ParlourDriver(Driver):
    """Two `ParlourClient`s per room, on different gateways when there are several."""

    def __init__(self, spec: WorkerSpec) -> None:
        super().__init__(spec)
        self.clients: list[tuple[ParlourClient, ParlourClient]] = []
        self.by_room_id: dict[str, Room] = {}
        self.recreating: set[asyncio.Task[None]] = set()
        self.names = itertools.count()

    def _on_frame(self, frame: Frame, received_at: float) -> None:
        kind = frame.get("type")
        if kind not in (ROLLED, TURN, OVER):
            return
        room = self.by_room_id.get(room_of(frame) or "")
        if room is None:
            return
        if kind == ROLLED:
            if room.in_flight is not None:
                room.seen += 1
                stamps = hop_times(frame)
                if stamps is not None:
                    self.hops.append(hop_durations(stamps, room.sent_wall, time.time()))
                if room.seen == 2:
                    room.turn_known = False  # the next turn is announced after the roll
                    self.done(room, received_at)
        elif kind == TURN:
            room.turn = str(frame.get("current_turn"))
            room.turn_known = True
            self.maybe_idle(room)
        else:
            if room.over:
                return  # the other player's copy: one new game per room slot
            room.over = True
            room.turn_known = False
            self.idle.discard(room.index)
            task = asyncio.create_task(self._next_game(room))
            self.recreating.add(task)
            task.add_done_callback(self.recreating.discard)

    async def setup(self) -> None:
        urls = self.spec.urls
        sem = asyncio.Semaphore(20)

        async def pair(i: int) -> tuple[ParlourClient, ParlourClient]:
            async with sem:
                host_token, guest_token = self.spec.tokens[i]
                n = self.spec.index + i
                host = await ParlourClient.connect(
                    urls[n % len(urls)], token=host_token, on_frame=self._on_frame, timeout=30
                )
                guest = await ParlourClient.connect(
                    urls[(n + 1) % len(urls)],
                    token=guest_token,
                    on_frame=self._on_frame,
                    timeout=30,
                )
                return host, guest

        self.clients = list(await asyncio.gather(*(pair(i) for i in range(len(self.rooms)))))

        async def start(room: Room) -> None:
            async with sem:
                await self._start_game(room)

        await asyncio.gather(*(start(r) for r in self.rooms))

    async def _start_game(self, room: Room) -> None:
        host, guest = self.clients[room.index]
        name = f"b{self.spec.tag}-{self.spec.index}-{next(self.names)}"
        room.stage = "create_room"
        state = await host.request(
            {
                "type": "games.command.create_room",
                "game_type": "bigger_dice",
                "room_name": name,
                "max_players": 2,
            },
            lambda f: f["type"] == "games.event.room_state",
            within=30,
        )
        room_id = str(state["room"]["room_id"])
        joined = host.expect(lambda f: f["type"] == "games.event.lobby_joined")
        room.stage = "join_room"
        await guest.command({"type": "games.command.join_room", "room_name": name}, within=30)
        room.stage = "lobby_joined"
        await asyncio.wait_for(joined, 30)
        room.stage = "select_player"
        for user in (host.user_id, guest.user_id):
            await host.command(
                {"type": "games.command.select_player", "room_id": room_id, "target_user_id": user},
                within=30,
            )
        room.room_id, room.over, room.turn_known, room.in_flight = room_id, False, False, None
        self.by_room_id[room_id] = room
        turn = host.expect(lambda f: f["type"] == TURN and f.get("room_id") == room_id)
        room.stage = "ready"
        for player in (host, guest):
            await player.command({"type": "games.command.ready", "room_id": room_id}, within=30)
        room.stage = "turn_changed"
        await asyncio.wait_for(turn, 30)
        room.stage = ""

    async def _next_game(self, room: Room) -> None:
        """A finished game: both leave and a fresh room takes its place."""
        host, guest = self.clients[room.index]
        old = room.room_id
        try:
            room.stage = "leave_room"
            for player in (host, guest):
                with contextlib.suppress(CommandRejected):
                    await player.command(
                        {"type": "games.command.leave_room", "room_id": old}, within=30
                    )
            self.by_room_id.pop(old, None)
            await self._start_game(room)
        except (TimeoutError, CommandRejected) as exc:
            self.errors += 1
            print(
                f"loadgen: room {room.index} could not start a new game "
                f"({room.stage}): {type(exc).__name__}: {exc}",
                flush=True,
            )

    async def roll(self, room: Room, counted_from: float) -> None:
        host, guest = self.clients[room.index]
        roller = host if room.turn == host.user_id else guest
        room.in_flight, room.seen, room.rolls = counted_from, 0, room.rolls + 1
        room.sent_wall = time.time()
        self.idle.discard(room.index)
        answer, sending = roller.send_command(
            {"type": "games.command.bigger_dice.roll", "room_id": room.room_id}
        )
        answer.add_done_callback(functools.partial(self._answered, room))
        await sending

    def _answered(self, room: Room, future: asyncio.Future[Frame]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        if future.result()["type"] == "system.error":  # refused: no result will come
            self.errors += 1
            room.in_flight = None
            self.maybe_idle(room)

    async def close(self) -> None:
        for task in list(self.recreating):
            task.cancel()
        await asyncio.gather(
            *(c.close() for pair in self.clients for c in pair), return_exceptions=True
        )


class SioSocket:
    """The few bits of Socket.IO v5 / Engine.IO v4 a die roll needs, over `websockets`."""

    def __init__(self, ws: ClientConnection, on_event: Any) -> None:
        self.ws = ws
        self.on_event = on_event
        self.acks: dict[int, asyncio.Future[Any]] = {}
        self.ids = itertools.count(1)
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, on_event: Any) -> SioSocket:
        ws = await connect(
            f"{url}/socket.io/?EIO=4&transport=websocket", open_timeout=30, compression=None
        )
        first = await ws.recv()
        if not str(first).startswith("0"):
            raise RuntimeError(f"not an Engine.IO open packet: {first!r}")
        await ws.send("40")
        answer = await ws.recv()
        if not str(answer).startswith("40"):
            raise RuntimeError(f"namespace refused: {answer!r}")
        return cls(ws, on_event)

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                text = str(raw)
                now = time.perf_counter()
                if text == "2":
                    await self.ws.send("3")
                elif text.startswith("42"):
                    name, data = json.loads(text[2:])
                    self.on_event(name, data, now)
                elif text.startswith("43"):
                    digits = len(text) - len(text[2:].lstrip("0123456789"))
                    future = self.acks.pop(int(text[2:digits]), None)
                    if future is not None and not future.done():
                        future.set_result(json.loads(text[digits:]))

    async def emit(self, name: str, data: Any) -> None:
        await self.ws.send("42" + json.dumps([name, data], separators=(",", ":")))

    async def call(self, name: str, data: Any, within: float = 30) -> Any:
        ack_id = next(self.ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.acks[ack_id] = future
        await self.ws.send(f"42{ack_id}" + json.dumps([name, data], separators=(",", ":")))
        return await asyncio.wait_for(future, within)

    async def close(self) -> None:
        self.reader.cancel()
        with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
            await asyncio.wait_for(self.ws.close(), 5)


class PeerDriver(Driver):
    """Two Socket.IO sockets per room on different peer servers; players alternate."""

    def __init__(self, spec: WorkerSpec) -> None:
        super().__init__(spec)
        self.sockets: list[tuple[SioSocket, SioSocket]] = []
        self.by_name: dict[str, Room] = {}
        self.counter = itertools.count(1)
        self.expected: dict[int, int] = {}  # room index -> roll number in flight

    def _on_event(self, name: str, data: Any, now: float) -> None:
        if name != "rolled":
            return
        room = self.by_name.get(str(data.get("room")))
        if room is None or room.in_flight is None or data.get("n") != self.expected.get(room.index):
            return
        room.seen += 1
        if room.seen == 2:
            self.done(room, now)

    async def setup(self) -> None:
        urls = self.spec.urls
        sem = asyncio.Semaphore(20)

        async def one(room: Room) -> tuple[SioSocket, SioSocket]:
            async with sem:
                n = self.spec.index + room.index
                a = await SioSocket.open(urls[n % len(urls)], self._on_event)
                b = await SioSocket.open(urls[(n + 1) % len(urls)], self._on_event)
                room.room_id = f"p{self.spec.tag}-{self.spec.index}-{room.index}"
                self.by_name[room.room_id] = room
                for sock in (a, b):
                    await sock.call("join", {"room": room.room_id})
                room.turn_known = True
                return a, b

        self.sockets = list(await asyncio.gather(*(one(r) for r in self.rooms)))

    async def roll(self, room: Room, counted_from: float) -> None:
        a, b = self.sockets[room.index]
        room.rolls += 1
        room.in_flight, room.seen = counted_from, 0
        number = next(self.counter)
        self.expected[room.index] = number
        self.idle.discard(room.index)
        await (a if room.rolls % 2 else b).emit("roll", {"room": room.room_id, "n": number})

    async def close(self) -> None:
        await asyncio.gather(
            *(s.close() for pair in self.sockets for s in pair), return_exceptions=True
        )


async def _serve(pipe: Connection, spec: WorkerSpec) -> None:
    driver: Driver = ParlourDriver(spec) if spec.kind == "parlour" else PeerDriver(spec)
    try:
        await driver.setup()
        pipe.send({"ready": True})
        while True:
            step = await asyncio.to_thread(pipe.recv)
            if step[0] == "stop":
                break
            driver.errors = 0
            driver.hops = []
            if step[0] == "closed":
                result = await driver.closed(int(step[1]), float(step[2]))
            else:
                result = await driver.open(float(step[1]), float(step[2]))
            result["errors"] = driver.errors
            result["hops"] = driver.hops
            pipe.send(result)
    finally:
        await driver.close()


def worker_main(pipe: Connection, spec: WorkerSpec) -> None:
    random.seed(spec.index)
    try:
        asyncio.run(_serve(pipe, spec))
    except Exception as exc:  # noqa: BLE001 - reported to the coordinator, which fails the phase
        pipe.send({"error": f"{type(exc).__name__}: {exc}"})


class Fleet:
    """The coordinator's side: `workers` processes, each with its share of the rooms."""

    def __init__(self, kind: str, urls: list[str], rooms: int, workers: int, tokens: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.workers: list[tuple[Any, Connection]] = []
        shares = [rooms // workers + (1 if i < rooms % workers else 0) for i in range(workers)]
        offset = 0
        for i, share in enumerate(shares):
            spec = WorkerSpec(
                kind=kind,
                urls=urls,
                rooms=share,
                tokens=tokens(offset, share) if tokens else [],
                index=i,
            )
            offset += share
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(theirs, spec), daemon=True)
            proc.start()
            self.workers.append((proc, ours))
        self.shares = shares

    def _gather(self, within: float) -> list[dict[str, Any]]:
        out = []
        for proc, pipe in self.workers:
            if not pipe.poll(within):
                raise TimeoutError(f"load generator {proc.pid} did not answer in {within}s")
            answer = pipe.recv()
            if "error" in answer:
                raise RuntimeError(f"load generator {proc.pid}: {answer['error']}")
            out.append(answer)
        return out

    def ready(self, within: float = 300) -> None:
        self._gather(within)

    def closed(self, rooms: int, seconds: float) -> dict[str, Any]:
        for (_, pipe), share in zip(self.workers, self._split(rooms), strict=True):
            pipe.send(("closed", share, seconds))
        return merge(self._gather(seconds + 60))

    def open(self, rate: float, seconds: float) -> dict[str, Any]:
        for _, pipe in self.workers:
            pipe.send(("open", rate / len(self.workers), seconds))
        return merge(self._gather(seconds + 60))

    def _split(self, rooms: int) -> list[int]:
        n = len(self.workers)
        return [min(s, rooms // n + (1 if i < rooms % n else 0)) for i, s in enumerate(self.shares)]

    def stop(self) -> None:
        for proc, pipe in self.workers:
            with contextlib.suppress(OSError):
                pipe.send(("stop",))
            proc.join(20)
            if proc.is_alive():
                proc.kill()
                proc.join(5)


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [x for p in parts for x in p["latencies_ms"]]
    seconds = max(p["seconds"] for p in parts)
    return {
        "latencies_ms": latencies,
        "done": len(latencies),
        "sent": sum(p.get("sent", p["done"]) for p in parts),
        "missed": sum(p.get("missed", 0) for p in parts),
        "errors": sum(p["errors"] for p in parts),
        "seconds": seconds,
        "rate": len(latencies) / seconds if seconds else 0.0,
        "hops": [h for p in parts for h in p["hops"]],
    }
