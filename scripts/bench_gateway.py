"""Gateway benchmark: prints figures, asserts nothing.

1. Idle: one gateway process holding N authenticated sockets that heartbeat every
   --heartbeat seconds: RSS per connection and the gateway's idle CPU.
2. Fan-out: --fanout-sockets sockets (distinct users) in rooms of 2-10; room events produced
   straight onto Kafka; deliveries/s and delivery latency p50/p99 (event timestamp -> client
   receive), once as a burst and once paced.
3. The same figures for a bare `websockets` server (Kafka consumer + json + websockets, no
   auth, no pydantic, no ASGI) as the floor.

    .venv/bin/python scripts/bench_gateway.py                 # N = 20,000 (capped by fd limit)
    .venv/bin/python scripts/bench_gateway.py --connections 5000

Needs Kafka and Redis (`make infra-up`). Each run uses its own topic and key prefix.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from bench.support import (
    PYTHON,
    ROOT,
    cpu_seconds,
    free_port,
    kafka_bootstrap,
    percentile,
    redis_url,
    room_chat_event,
    rss_bytes,
    stop,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from parlour_gateway.dev_tokens import generate_keypair, make_token
from parlour_protocol.v1 import Topics
from parlour_protocol.v1.records import H_TO

# ------------------------------------------------------------------ process helpers


def raise_fd_limit() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1_048_576
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def wait_port(port: int, within: float = 40) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port}")


async def wait_settled(health_port: int, within: float = 120) -> None:
    """Until the gateway holds no sockets (their cleanup ran)."""
    import httpx

    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                text = (await client.get(f"http://127.0.0.1:{health_port}/metrics")).text
                for line in text.splitlines():
                    gauge = line.startswith("parlour_gateway_connections_current ")
                    if gauge and float(line.split()[1]) == 0:
                        return
            await asyncio.sleep(0.5)


async def wait_ready(health_port: int, within: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"http://127.0.0.1:{health_port}/ready")).status_code == 200:
                    return
            await asyncio.sleep(0.3)
    raise RuntimeError("gateway not ready")


# ------------------------------------------------------------------ bare server (the floor)


async def bare_server(port: int, bootstrap: str, topic: str) -> None:
    """A bare websockets server: first frame names the user; events from Kafka go to the
    sockets of the listed users. The floor the gateway is compared with."""
    by_user: dict[str, set[ServerConnection]] = {}

    async def handler(ws: ServerConnection) -> None:
        first = json.loads(await ws.recv())
        uid = first["user"]
        by_user.setdefault(uid, set()).add(ws)
        await ws.send('{"type":"ok"}')
        try:
            async for raw in ws:
                if b"heartbeat" in (raw if isinstance(raw, bytes) else raw.encode()):
                    await ws.send('{"type":"system.heartbeat_ack"}')
        finally:
            by_user[uid].discard(ws)

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    parts = consumer.partitions_for_topic(topic) or set()
    if not parts:
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in parts]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)

    async def pump() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            for records in batches.values():
                for record in records:
                    # the record form (parlour_protocol.v1.records): value = the frame, the
                    # audience's users in the first header, `<kind>:<ids>`
                    text = (record.value or b"").decode()
                    _, _, to = dict(record.headers).get(H_TO, b":").decode().partition(":")
                    for uid in to.split(","):
                        for ws in list(by_user.get(uid, ())):
                            with contextlib.suppress(Exception):
                                await ws.send(text)

    async with serve(handler, "127.0.0.1", port, max_size=2**16, compression=None):
        await pump()


# ------------------------------------------------------------------ clients


class Fleet:
    def __init__(self) -> None:
        self.conns: list[ClientConnection] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.latencies: list[float] = []
        self.received = 0
        self.last_recv = 0.0
        self.record = False
        self.errors = 0

    async def _reader(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for raw in ws:
                if self.record and "chat_message" in raw[:60]:
                    now = time.time()
                    msg = json.loads(raw)
                    sent = datetime.fromisoformat(msg["timestamp"].replace("Z", "+00:00"))
                    self.latencies.append(now - sent.timestamp())
                    self.received += 1
                    self.last_recv = now

    async def _beats(self, ws: ClientConnection, interval: float) -> None:
        await asyncio.sleep(random.uniform(0, interval))
        with contextlib.suppress(Exception):
            while True:
                await ws.send('{"type":"system.heartbeat"}')
                await asyncio.sleep(interval)

    async def open_gateway(self, url: str, token: str, heartbeat: float) -> None:
        for attempt in range(3):  # an overloaded gateway may time a login out: retry
            try:
                await self._open_gateway(url, token, heartbeat)
                return
            except Exception:
                if attempt == 2:
                    raise
                await asyncio.sleep(1 + attempt)

    async def _open_gateway(self, url: str, token: str, heartbeat: float) -> None:
        ws = await connect(
            url, max_size=2**20, compression=None, open_timeout=60, ping_interval=None
        )
        await ws.recv()  # welcome
        await ws.send(json.dumps({"type": "system.authenticate", "token": token}))
        answer = json.loads(await ws.recv())
        if answer["type"] != "system.authenticated":
            raise RuntimeError(f"auth failed: {answer}")
        self._adopt(ws, heartbeat)

    async def open_bare(self, url: str, user: str, heartbeat: float) -> None:
        ws = await connect(
            url, max_size=2**20, compression=None, open_timeout=60, ping_interval=None
        )
        await ws.send(json.dumps({"user": user}))
        await ws.recv()
        self._adopt(ws, heartbeat)

    def _adopt(self, ws: ClientConnection, heartbeat: float) -> None:
        self.conns.append(ws)
        self.tasks.append(asyncio.create_task(self._reader(ws)))
        self.tasks.append(asyncio.create_task(self._beats(ws, heartbeat)))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        sem = asyncio.Semaphore(500)

        async def one(ws: ClientConnection) -> None:
            async with sem:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 5)

        await asyncio.gather(*(one(ws) for ws in self.conns))
        self.conns.clear()
        self.tasks.clear()


async def open_many(n: int, opener: Any, concurrency: int = 200) -> float:
    sem = asyncio.Semaphore(concurrency)
    failures = 0

    async def one(i: int) -> None:
        nonlocal failures
        async with sem:
            try:
                await opener(i)
            except Exception as exc:  # noqa: BLE001 - a bench counts failures
                failures += 1
                if failures <= 3:
                    print(f"    connect {i} failed: {type(exc).__name__}: {exc}")

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    if failures:
        print(f"    {failures} of {n} connections failed")
    return time.monotonic() - started


# ------------------------------------------------------------------ phases


async def idle_phase(
    pid: int, n: int, opener: Any, fleet: Fleet, heartbeat: float, window: float
) -> dict[str, float]:
    before = rss_bytes(pid)
    took = await open_many(n, opener)
    await asyncio.sleep(10)  # let the login burst settle before measuring
    after = rss_bytes(pid)
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(window)
    cpu1, t1 = cpu_seconds(pid), time.monotonic()
    return {
        "connections": len(fleet.conns),
        "connect_seconds": took,
        "rss_before_mb": before / 2**20,
        "rss_after_mb": after / 2**20,
        "rss_per_conn_kb": (after - before) / max(1, len(fleet.conns)) / 1024,
        "idle_cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0),
    }


def make_rooms(users: list[str]) -> list[list[str]]:
    rooms, i = [], 0
    rng = random.Random(7)
    while i < len(users):
        size = rng.randint(2, 10)
        rooms.append(users[i : i + size])
        i += size
    return rooms


async def fanout_phase(
    bootstrap: str,
    topic: str,
    rooms: list[list[str]],
    fleet: Fleet,
    events: int,
    rate: float | None,
) -> dict[str, float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1)
    await producer.start()
    seqs = {i: 0 for i in range(len(rooms))}
    room_ids = [uuid.uuid4().hex for _ in rooms]
    fleet.latencies.clear()
    fleet.received = 0
    fleet.record = True
    expected = 0
    started = time.time()
    futures = []
    for k in range(events):
        r = k % len(rooms)
        seqs[r] += 1
        expected += len(rooms[r])
        value, headers = room_chat_event(room_ids[r], seqs[r], rooms[r])
        futures.append(await producer.send(topic, value, key=room_ids[r].encode(), headers=headers))
        if rate is not None:
            await asyncio.sleep(max(0.0, started + (k + 1) / rate - time.time()))
    await asyncio.gather(*futures)
    deadline = time.monotonic() + 60
    while fleet.received < expected and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    fleet.record = False
    await producer.stop()
    span = max(1e-6, fleet.last_recv - started)
    return {
        "events": events,
        "deliveries": fleet.received,
        "expected": expected,
        "deliveries_per_sec": fleet.received / span,
        "p50_ms": 1000 * percentile(fleet.latencies, 0.5),
        "p99_ms": 1000 * percentile(fleet.latencies, 0.99),
        "mean_ms": 1000 * (statistics.fmean(fleet.latencies) if fleet.latencies else float("nan")),
    }


def show(title: str, figures: dict[str, float]) -> None:
    print(f"  {title}")
    for key, value in figures.items():
        print(
            f"    {key:<20} {value:,.2f}" if isinstance(value, float) else f"    {key:<20} {value}"
        )


# ------------------------------------------------------------------ main


async def run(args: argparse.Namespace) -> None:
    limit = raise_fd_limit()
    n = min(args.connections, limit - 200)
    if n < args.connections:
        print(f"fd limit {limit}: holding {n} connections instead of {args.connections}")
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    topics = Topics(prefix=prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=args.bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(t, p, 1) for t, p in topics.with_partitions().items()])
    await asyncio.sleep(2)
    tmp = Path(tempfile.mkdtemp())
    private, public = generate_keypair(tmp)
    pem = private.read_text()
    distinct = max(args.fanout_sockets, 1000)
    print(f"signing {distinct} tokens ...")
    tokens = [make_token(pem, f"b{i}", expires_in=7200) for i in range(distinct)]
    users = [f"b{i}" for i in range(args.fanout_sockets)]
    rooms = make_rooms(users)
    results: dict[str, dict[str, dict[str, float]]] = {}
    try:
        # ---------------- gateway
        port, hport = free_port(), free_port()
        env = {
            **os.environ,
            "WS_HOST": "127.0.0.1",
            "WS_PORT": str(port),
            "WS_HEALTH_HOST": "127.0.0.1",
            "WS_HEALTH_PORT": str(hport),
            "KAFKA_BOOTSTRAP_SERVERS": args.bootstrap,
            "KAFKA_TOPIC_PREFIX": prefix,
            "REDIS_URL": args.redis_url,
            "REDIS_KEY_PREFIX": prefix,
            "JWT_PUBLIC_KEY_PATH": str(public),
            "WS_MAX_CONNECTIONS_PER_USER": str(n // distinct + 2),
            "WS_MAX_CONNECTIONS": str(n + 10),
            "WS_HEARTBEAT_INTERVAL_SECONDS": str(int(args.heartbeat)),
            "WS_RATE_LIMIT_BURST": "1000",
            # every bench socket comes from 127.0.0.1, all at once: lift the per-IP limits
            "WS_IP_HANDSHAKE_BURST": str(n + 10),
            "WS_IP_MAX_UNAUTHENTICATED": str(n + 10),
            "WS_MAX_UNAUTHENTICATED": str(n + 10),
            "LOG_LEVEL": "WARNING",
        }
        proc = subprocess.Popen([PYTHON, "-m", "parlour_gateway"], env=env, cwd=ROOT)  # noqa: ASYNC220
        try:
            await wait_ready(hport)
            url = f"ws://127.0.0.1:{port}/ws"
            print(f"gateway pid {proc.pid}: idle phase with {n} sockets ...")
            idle = Fleet()
            idle_figs = await idle_phase(
                proc.pid,
                n,
                lambda i: idle.open_gateway(url, tokens[i % distinct], args.heartbeat),
                idle,
                args.heartbeat,
                args.window,
            )
            await idle.close()
            settle = time.monotonic()
            await wait_settled(hport)
            print(f"gateway: {n} sockets cleaned up in {time.monotonic() - settle:.1f}s")
            await asyncio.sleep(2)
            print("gateway: fan-out phase ...")
            fan = Fleet()
            await open_many(len(users), lambda i: fan.open_gateway(url, tokens[i], args.heartbeat))
            burst = await fanout_phase(args.bootstrap, topics.events, rooms, fan, args.events, None)
            paced = await fanout_phase(
                args.bootstrap, topics.events, rooms, fan, args.events // 2, args.rate
            )
            await fan.close()
            results["gateway"] = {"idle": idle_figs, "fanout_burst": burst, "fanout_paced": paced}
        finally:
            stop(proc, grace=15)
        if not args.skip_baseline:
            bport = free_port()
            bare = subprocess.Popen(  # noqa: ASYNC220
                [
                    PYTHON,
                    __file__,
                    "--bare-server",
                    str(bport),
                    "--bootstrap",
                    args.bootstrap,
                    "--bare-topic",
                    topics.events,
                ],
                cwd=ROOT,
            )
            try:
                await wait_port(bport)
                await asyncio.sleep(1)
                burl = f"ws://127.0.0.1:{bport}"
                print(f"bare websockets server pid {bare.pid}: idle phase ...")
                idle = Fleet()
                idle_figs = await idle_phase(
                    bare.pid,
                    n,
                    lambda i: idle.open_bare(burl, f"b{i}", args.heartbeat),
                    idle,
                    args.heartbeat,
                    args.window,
                )
                await idle.close()
                await asyncio.sleep(2)
                print("bare: fan-out phase ...")
                fan = Fleet()
                await open_many(len(users), lambda i: fan.open_bare(burl, users[i], args.heartbeat))
                burst = await fanout_phase(
                    args.bootstrap, topics.events, rooms, fan, args.events, None
                )
                paced = await fanout_phase(
                    args.bootstrap, topics.events, rooms, fan, args.events // 2, args.rate
                )
                await fan.close()
                results["bare websockets"] = {
                    "idle": idle_figs,
                    "fanout_burst": burst,
                    "fanout_paced": paced,
                }
            finally:
                bare.kill()
                bare.wait(5)
    finally:
        with contextlib.suppress(Exception):
            await admin.delete_topics(list(topics.with_partitions()))
        await admin.close()
    print()
    print(
        f"== results (N={n}, heartbeat {args.heartbeat}s, fan-out {len(users)} sockets in "
        f"{len(rooms)} rooms of 2-10, {args.events} burst events, {args.events // 2} paced at "
        f"{args.rate}/s) =="
    )
    for server, phases in results.items():
        print(server)
        for phase, figures in phases.items():
            show(phase, figures)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=20_000)
    parser.add_argument("--fanout-sockets", type=int, default=1_000)
    parser.add_argument("--events", type=int, default=4_000, help="burst events")
    parser.add_argument("--rate", type=float, default=500.0, help="paced events per second")
    parser.add_argument("--heartbeat", type=float, default=15.0)
    parser.add_argument("--window", type=float, default=20.0, help="idle CPU window, seconds")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--bootstrap", default=kafka_bootstrap())
    parser.add_argument("--redis-url", default=redis_url())
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bare-topic", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        raise_fd_limit()
        asyncio.run(bare_server(args.bare_server, args.bootstrap, args.bare_topic))
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
