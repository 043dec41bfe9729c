"""Benchmark one engine process through real Kafka and Redis (no gateway).

    .venv/bin/python scripts/bench_engine.py [--rooms 1000] [--players 4] [--seconds 10]

1. starts `python -m parlour_engine` on fresh prefixed topics and Redis keys;
2. sets up `--rooms` rooms and starts a Bigger Dice game in each (create, joins, selects,
   readies), tracking whose turn it is from the `turn_changed` events;
3. throughput: keeps one roll in flight per room (the current player's), as fast as the engine
   answers, and counts rolls per second;
4. latency: sends rolls open-loop at half that rate and measures command-sent to first-event-
   received (p50/p99);
5. floor: a raw aiokafka produce -> consume round trip on the same broker (acks=all);
6. per hop (`--hops`, on by default): rolls carry `p-hops` with the bench's `gp`, the engine
   adds `ec`/`ek`/`ep` to the events, the bench `bc` when it reads them; p50/p99 of each step
   during the latency phase.

Targets (reported, not asserted): >= 5,000 commands/s per process, p99 <= 10 ms at half load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from bench.support import delete_prefix, free_port, kafka_bootstrap, percentile, redis_url, stop

from parlour_protocol.v1 import Topics
from parlour_protocol.v1.records import (
    F_CAUSE,
    H_EVENT,
    H_HOPS,
    HOPS,
    event_fields,
    hop,
    parse_hops,
)

_CAUSE = re.compile(rb'"causation_id":"([0-9a-f-]{36})"')
_TURN = re.compile(rb'"room_id":"([^"]+)","current_turn":"([^"]+)","turn_number":(\d+)')
_ROOM = re.compile(rb'"room_id":"([^"]+)"')


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.prefix = f"bench{uuid.uuid4().hex[:6]}."
        self.topics = Topics(prefix=self.prefix)
        self.bootstrap = args.kafka
        self.turn: dict[str, tuple[str, int]] = {}  # room -> (user, turn number)
        self.over: set[str] = set()
        self.in_flight: dict[str, tuple[str, float]] = {}  # msg_id -> (room, sent at)
        self.room_busy: set[str] = set()
        self.idle: set[str] = set()
        self.latencies: list[float] = []
        self.caused: dict[str, float] = {}
        self.events = 0
        self.seen_types: dict[bytes, int] = {}
        self.turn_event = asyncio.Event()
        self.producer: AIOKafkaProducer | None = None
        self.reader: asyncio.Task[None] | None = None
        self.engine: subprocess.Popen[bytes] | None = None
        self.waiters: dict[str, asyncio.Future[None]] = {}
        self.hops: dict[str, list[float]] = {}
        """per-hop seconds ("gp-ec", ...) of the events that carried `p-hops`"""
        self.figures: dict[str, float] = {}
        """The measures of `run()`, for the suite (scripts/bench) to report."""

    # --- set-up --------------------------------------------------------------------------

    async def create_topics(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            names = {**self.topics.with_partitions(), f"{self.prefix}floor": 1}
            await admin.create_topics([NewTopic(n, p, 1) for n, p in names.items()])
            for _ in range(300):
                described = await admin.describe_topics(list(names))
                if all(
                    t["error_code"] == 0 and all(p["leader"] >= 0 for p in t["partitions"])
                    for t in described
                ):
                    return
                await asyncio.sleep(0.1)
            raise RuntimeError("topics not ready")
        finally:
            await admin.close()

    async def delete_topics(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([*self.topics.with_partitions(), f"{self.prefix}floor"])
        finally:
            await admin.close()

    def start_engine(self, log: Path) -> int:
        port = free_port()
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_TOPIC_PREFIX": self.prefix,
            "REDIS_URL": self.args.redis,
            "REDIS_KEY_PREFIX": self.prefix,
            "ENGINE_GROUP_ID": f"{self.prefix}engine",
            "ENGINE_HEALTH_HOST": "127.0.0.1",
            "ENGINE_HEALTH_PORT": str(port),
            "LOG_FORMAT": "json",
            "LOG_LEVEL": self.args.engine_log_level,
            "ENGINE_TURN_TIMEOUT_SECONDS": "3600",
        }
        with log.open("wb") as out:
            profile = ["-m", "cProfile", "-o", self.args.profile] if self.args.profile else []
            self.engine = subprocess.Popen(
                [sys.executable, *profile, "-m", "parlour_engine"],
                env=env,
                stdout=out,
                stderr=out,
            )
        return port

    async def wait_engine_ready(self, port: int) -> None:
        for _ in range(600):
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
                await writer.drain()
                status = await reader.readline()
                writer.close()
                if b" 200 " in status:
                    return
            await asyncio.sleep(0.1)
        raise RuntimeError("engine not ready")

    async def engine_histogram(self, port: int) -> dict[float, float]:
        """The engine's `parlour_engine_command_seconds` buckets (le -> cumulative count):
        time from decoding a command to its events being handed to the producer."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        body = (await reader.read()).decode()
        writer.close()
        out: dict[float, float] = {}
        for match in re.finditer(
            r'parlour_engine_command_seconds_bucket\{le="([^"]+)"\} ([0-9.e+]+)', body
        ):
            out[float(match.group(1))] = float(match.group(2))
        return out

    @staticmethod
    def bucket_pct(before: dict[float, float], after: dict[float, float], q: float) -> str:
        """The upper bound of the bucket holding the q-quantile of the observations made
        between two histogram reads."""
        diff = {le: after[le] - before.get(le, 0.0) for le in sorted(after)}
        total = diff.get(float("inf"), 0.0)
        if total <= 0:
            return "-"
        for le, count in diff.items():
            if count >= q * total:
                return f"<= {le * 1000:g}"
        return "-"

    def engine_cpu(self) -> float:
        """CPU seconds the engine process used so far (user + system)."""
        assert self.engine is not None
        fields = Path(f"/proc/{self.engine.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    # --- events --------------------------------------------------------------------------

    async def read_events(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=5
        )
        await consumer.start()
        parts = [TopicPartition(self.topics.events, p) for p in range(6)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=50)
                now = time.perf_counter()
                for records in batches.values():
                    for record in records:
                        self._on_event(record.value, now, record.headers)
        finally:
            await consumer.stop()

    def _on_event(
        self, value: bytes, now: float, headers: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        self.events += 1
        h = dict(headers)
        if H_EVENT in h:  # the record form: routing and ids in headers, value = the frame
            msg_id = event_fields(h[H_EVENT]).get(F_CAUSE)
        else:  # the older form: the whole envelope as value
            cause = _CAUSE.search(value)
            msg_id = None if cause is None else cause.group(1).decode()
        hops = h.get(H_HOPS)
        if hops is not None:
            stamps = parse_hops(hops)
            stamps.append(("bc", time.time_ns() // 1000))  # the bench consumed it
            for (a, a_us), (b, b_us) in itertools.pairwise(stamps):
                self.hops.setdefault(f"{a}-{b}", []).append((b_us - a_us) / 1e6)
        if msg_id is not None:
            sent = self.in_flight.pop(msg_id, None)
            if sent is not None:
                room, at = sent
                self.latencies.append(now - at)
                if b'"type":"system.error"' in value[:200]:
                    self._idle_again(room)  # refused: no turn_changed will come
            waiter = self.waiters.pop(msg_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        if b'"type":"games.event.turn_changed"' in value[:200]:
            turn = _TURN.search(value)
            if turn is not None:
                room, user, number = (
                    turn.group(1).decode(),
                    turn.group(2).decode(),
                    int(turn.group(3)),
                )
                if number > self.turn.get(room, ("", 0))[1]:
                    self.turn[room] = (user, number)
                    self._idle_again(room)
                    self.turn_event.set()
        elif b"games.event.bigger_dice.game_over" in value[:200]:
            room_match = _ROOM.search(value)
            if room_match is not None:
                over = room_match.group(1).decode()
                self.over.add(over)
                self.idle.discard(over)

    # --- commands ------------------------------------------------------------------------

    def envelope(
        self, kind: str, user: str, room: str | None, payload: dict[str, object]
    ) -> tuple[str, bytes, bytes]:
        msg_id = str(uuid.uuid4())
        key = room or user
        body = {
            "msg_id": msg_id,
            "type": kind,
            "key": key,
            "room_id": room,
            "actor": {"user_id": user, "username": user, "roles": ["user"]},
            "connection_id": f"c-{user}",
            "gateway_id": "bench",
            "timestamp": datetime.now(UTC).isoformat(),
            "payload": {"type": kind, **payload},
        }
        return msg_id, key.encode(), json.dumps(body, separators=(",", ":")).encode()

    async def send(
        self, kind: str, user: str, room: str | None, payload: dict[str, object]
    ) -> asyncio.Future[None]:
        assert self.producer is not None
        msg_id, key, value = self.envelope(kind, user, room, payload)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters[msg_id] = waiter
        await self.producer.send(self.topics.commands, value, key=key)
        return waiter

    async def phase(self, label: str, waiters: list[asyncio.Future[None]]) -> None:
        started = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*waiters), 300)
        took = time.perf_counter() - started
        print(f"  set-up {label:<8} {len(waiters):>6} commands in {took:5.1f}s", flush=True)

    async def setup_rooms(self) -> list[str]:
        rooms = [str(uuid.uuid4()) for _ in range(self.args.rooms)]
        players = self.args.players
        users = {r: [f"u{i}-{r[:8]}" for i in range(players)] for r in rooms}
        await self.phase(
            "create",
            [
                await self.send(
                    "games.command.create_room",
                    users[r][0],
                    r,
                    {
                        "game_type": "bigger_dice",
                        "room_name": f"bench {r[:13]}",
                        "max_players": players,
                    },
                )
                for r in rooms
            ],
        )
        await self.phase(
            "join",
            [
                await self.send(
                    "games.command.join_room", u, None, {"room_name": f"bench {r[:13]}"}
                )
                for r in rooms
                for u in users[r][1:]
            ],
        )
        await self.phase(
            "select",
            [
                await self.send(
                    "games.command.select_player",
                    users[r][0],
                    r,
                    {"room_id": r, "target_user_id": u},
                )
                for r in rooms
                for u in users[r]
            ],
        )
        await self.phase(
            "ready",
            [
                await self.send("games.command.ready", u, r, {"room_id": r})
                for r in rooms
                for u in users[r]
            ],
        )
        missing = [r for r in rooms if r not in self.turn]
        if missing:
            raise RuntimeError(f"{len(missing)} rooms did not start")
        self.idle = set(rooms) - self.over
        return rooms

    async def roll(self, room: str) -> None:
        assert self.producer is not None
        user, _ = self.turn[room]
        msg_id, key, value = self.envelope(
            "games.command.bigger_dice.roll", user, room, {"room_id": room}
        )
        self.room_busy.add(room)
        self.idle.discard(room)
        self.in_flight[msg_id] = (room, time.perf_counter())
        headers = [(H_HOPS, hop("", "gp").encode())] if self.args.hops else None
        await self.producer.send(self.topics.commands, value, key=key, headers=headers)

    def _idle_again(self, room: str) -> None:
        """The room's next roll can go: its turn is known and nothing is in flight."""
        self.room_busy.discard(room)
        if room not in self.over:
            self.idle.add(room)

    async def closed_loop(self, rooms: list[str], seconds: float) -> tuple[int, float]:
        """One roll in flight per room, as fast as the engine answers."""
        self.latencies.clear()
        started = time.perf_counter()
        sent = 0
        while time.perf_counter() - started < seconds:
            if len(rooms) - len(self.over) < len(rooms) * 0.5:
                break  # most games are over; what is left would measure the tail
            batch = list(self.idle)
            for room in batch:
                await self.roll(room)
            sent += len(batch)
            self.turn_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.turn_event.wait(), 0.05)
        elapsed = time.perf_counter() - started
        done = len(self.latencies)
        return done, elapsed

    async def open_loop(self, rooms: list[str], rate: float, seconds: float) -> list[float]:
        """Rolls at a fixed rate, each for a room with no roll in flight."""
        await self.drain()
        self.latencies.clear()
        self.hops.clear()  # the breakdown is of the latency phase
        interval = 1.0 / rate
        started = time.perf_counter()
        next_at = started
        while time.perf_counter() - started < seconds:
            now = time.perf_counter()
            due = int((now - next_at) / interval) + 1 if now >= next_at else 0
            for _ in range(due):
                if not self.idle:
                    break
                await self.roll(self.idle.pop())
                next_at += interval
            await asyncio.sleep(max(0.0, min(interval, next_at - time.perf_counter())))
        await self.drain()
        return list(self.latencies)

    async def drain(self) -> None:
        for _ in range(500):
            if not self.in_flight:
                return
            await asyncio.sleep(0.01)

    async def floor(self, count: int = 2000, rate: float = 1000.0) -> list[float]:
        """Raw aiokafka produce -> consume round trip on the same broker."""
        topic = f"{self.prefix}floor"
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=True)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=5
        )
        await producer.start()
        await consumer.start()
        part = TopicPartition(topic, 0)
        consumer.assign([part])
        await consumer.seek_to_end(part)
        sent: dict[int, float] = {}
        latencies: list[float] = []

        async def read() -> None:
            while len(latencies) < count:
                batches = await consumer.getmany(timeout_ms=50)
                now = time.perf_counter()
                for records in batches.values():
                    for record in records:
                        at = sent.pop(int(record.value.split(b" ", 1)[0]), None)
                        if at is not None:
                            latencies.append(now - at)

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.5)  # let the consumer's first fetch settle before timing
        try:
            for i in range(count):
                sent[i] = time.perf_counter()
                await producer.send(topic, str(i).encode() + b" " + b"x" * 600)
                await asyncio.sleep(1.0 / rate)
            await asyncio.wait_for(reader, 30)
        finally:
            reader.cancel()
            await producer.stop()
            await consumer.stop()
        return latencies

    async def run(self) -> None:
        args = self.args
        log = Path(args.log)
        print(
            f"bench: prefix {self.prefix}, {args.rooms} rooms x {args.players} players", flush=True
        )
        await self.create_topics()
        port = self.start_engine(log)
        try:
            await self.wait_engine_ready(port)
            self.producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, enable_idempotence=True
            )
            await self.producer.start()
            self.reader = asyncio.create_task(self.read_events())
            rooms = await self.setup_rooms()

            cpu_before = self.engine_cpu()
            done, elapsed = await self.closed_loop(rooms, args.seconds)
            cpu_used = self.engine_cpu() - cpu_before
            throughput = done / elapsed
            closed_lat = list(self.latencies)
            print(f"  throughput {done} rolls in {elapsed:.1f}s", flush=True)

            half = args.rate or max(1.0, throughput / 2)
            # games end as they are played: keep rooms available for the latency phase
            hist_before = await self.engine_histogram(port)
            latencies = await self.open_loop(rooms, half, args.latency_seconds)
            hist_after = await self.engine_histogram(port)
            floor = await self.floor(getattr(args, "floor_samples", 2000))
            ms = 1000.0
            self.figures = {
                "rooms": float(args.rooms),
                "commands_per_s": throughput,
                "closed_p50_ms": percentile(closed_lat, 0.5) * ms,
                "closed_p99_ms": percentile(closed_lat, 0.99) * ms,
                "cpu_pct": 100 * cpu_used / elapsed,
                "cpu_ms_per_command": 1000 * cpu_used / max(done, 1),
                "half_rate": half,
                "half_p50_ms": percentile(latencies, 0.5) * ms,
                "half_p99_ms": percentile(latencies, 0.99) * ms,
                "floor_p50_ms": percentile(floor, 0.5) * ms,
            }
            rows = [
                (f"sustained rolls/s, {args.rooms} rooms (closed loop)", f"{throughput:,.0f}"),
                (
                    "  latency p50 / p99 at full load (ms)",
                    f"{percentile(closed_lat, 0.5) * ms:.1f} / "
                    f"{percentile(closed_lat, 0.99) * ms:.1f}",
                ),
                ("  engine CPU busy (% of one core)", f"{100 * cpu_used / elapsed:.0f}"),
                ("  engine CPU per roll (ms)", f"{1000 * cpu_used / max(done, 1):.3f}"),
                ("open-loop rate (half), rolls/s", f"{half:,.0f}"),
                ("  command->event p50 (ms)", f"{percentile(latencies, 0.5) * ms:.2f}"),
                ("  command->event p99 (ms)", f"{percentile(latencies, 0.99) * ms:.2f}"),
                ("  samples", f"{len(latencies)}"),
                (
                    "  in-engine decode->produce p50 / p99 (ms)",
                    f"{self.bucket_pct(hist_before, hist_after, 0.5)} / "
                    f"{self.bucket_pct(hist_before, hist_after, 0.99)}",
                ),
                ("floor: aiokafka produce->consume p50 (ms)", f"{percentile(floor, 0.5) * ms:.2f}"),
                (
                    "floor: aiokafka produce->consume p99 (ms)",
                    f"{percentile(floor, 0.99) * ms:.2f}",
                ),
                ("  floor mean (ms)", f"{statistics.fmean(floor) * ms:.2f}" if floor else "-"),
                ("events consumed", f"{self.events:,}"),
            ]
            for name in sorted(self.hops, key=_hop_order):
                samples = self.hops[name]
                rows.append(
                    (
                        f"  hop {name} p50 / p99 (ms)",
                        f"{percentile(samples, 0.5) * ms:.2f} / "
                        f"{percentile(samples, 0.99) * ms:.2f}",
                    )
                )
            print()
            print(f"{'measure':<46} {'value':>15}")
            print(f"{'-' * 46} {'-' * 15}")
            for label, value in rows:
                print(f"{label:<46} {value:>15}")
        finally:
            if self.reader is not None:
                self.reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.reader
            if self.producer is not None:
                await self.producer.stop()
            if self.engine is not None:
                stop(self.engine, grace=20)
            with contextlib.suppress(Exception):
                await self.delete_topics()
            await self.delete_keys()

    async def delete_keys(self) -> None:
        """Remove every Redis key of this run (rooms, records, indexes, streams)."""
        await delete_prefix(self.args.redis, self.prefix)


def _hop_order(name: str) -> int:
    first = name.split("-", 1)[0]
    order = [*HOPS, "bc"]
    return order.index(first) if first in order else len(order)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kafka", default=kafka_bootstrap())
    parser.add_argument("--redis", default=redis_url())
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--players", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0, help="closed-loop phase length")
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=0.0, help="latency phase rate (default half)")
    parser.add_argument("--floor-samples", type=int, default=2000)
    parser.add_argument("--engine-log-level", default="WARNING")
    parser.add_argument("--log", default="/tmp/parlour-bench-engine.log")
    parser.add_argument("--profile", default="", help="write the engine's cProfile stats here")
    parser.add_argument(
        "--hops",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stamp rolls with per-hop timestamps (p-hops) and print the breakdown",
    )
    asyncio.run(Bench(parser.parse_args()).run())


if __name__ == "__main__":
    main()
