"""The benchmark suite: every phase in one run, a progress bar each, figures printed and
written, nothing asserted.

    .venv/bin/python scripts/bench            # full run -> docs/benchmarks/
    .venv/bin/python scripts/bench --quick    # <= 3 minutes, written to a temporary directory
    .venv/bin/python scripts/bench --url wss://play.example/ws --private-key key.pem \\
        [--issuer ISS] [--audience AUD]       # a remote deployment: end to end + connections

Phases: 1. end to end through real gateways and engines (two-player Bigger Dice rooms, a roll
until both players see `rolled`, at fixed offered loads and closed loops); 2. the floor (Kafka
twice + Redis once); 3. the peer (python-socketio + AsyncRedisManager) under the same load;
4. idle authenticated connections per gateway (RSS, handshakes/s); 5. fan-out into rooms of 10
players and 50 spectators; 6. the engine alone (scripts/bench_engine.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm  # type: ignore[import-untyped]

from bench import floor as floor_phase
from bench.holders import Holders, raise_fd_limit
from bench.hops import Histograms, add, hop_table_from_metrics, scrape
from bench.loadgen import Fleet
from bench.report import hop_table, machine, summary, write
from bench.stack import Target, local_stack
from bench.support import (
    PYTHON,
    ROOT,
    free_port,
    infra_env,
    kafka_bootstrap,
    redis_url,
    rss_bytes,
    stop,
)

PHASES = ("e2e", "floor", "peer", "connections", "fanout", "engine")


@dataclass(frozen=True)
class Plan:
    """How big each phase is: `quick` fits in `make test`, `full` is for a quiet machine."""

    name: str
    workers: int
    rooms: int  # the pool of rooms; the open-loop loads draw on all of them
    step_seconds: float
    warmup_seconds: float = 2.0
    rates: tuple[int, ...] = (200, 500, 1000)
    closed: tuple[int, ...] = (20, 50)
    floor_samples: int = 300
    floor_rate: float = 100.0
    connections: int = 200  # per gateway
    fanout_rooms: int = 2
    fanout_events: int = 300
    engine_rooms: int = 50
    engine_seconds: float = 4.0
    extra: dict[str, Any] = field(default_factory=dict)


QUICK = Plan(
    "quick",
    workers=2,
    rooms=60,
    step_seconds=3.0,
    floor_samples=200,
    connections=100,
    fanout_events=200,
    engine_rooms=30,
    engine_seconds=3.0,
)
FULL = Plan(
    "full",
    workers=4,
    rooms=300,
    step_seconds=20.0,
    warmup_seconds=10.0,
    floor_samples=2000,
    connections=10_000,
    fanout_rooms=20,
    fanout_events=5000,
    engine_rooms=1000,
    engine_seconds=10.0,
)


def say(text: str) -> None:
    tqdm.write(text)
    sys.stdout.flush()


def bar(desc: str, total: int) -> Any:
    return tqdm(total=total, desc=desc, unit="step", mininterval=1.0, leave=True, file=sys.stderr)


# --- phase 1 and 3: rolls through a stack ----------------------------------------------------


def load_steps(plan: Plan) -> list[tuple[str, str, float]]:
    steps = [(f"{rate}/s offered", "open", float(rate)) for rate in plan.rates]
    closed = [n for n in plan.closed if n < plan.rooms] + [plan.rooms]
    steps += [(f"closed loop, {n} rooms", "closed", float(n)) for n in closed]
    return steps


def drive(
    kind: str,
    urls: list[str],
    plan: Plan,
    tokens: Any,
    samples: dict[str, list[float]],
    metrics: list[str] | None = None,
) -> dict[str, Any]:
    """Set the rooms up in `plan.workers` processes and run every load step."""
    steps = load_steps(plan)
    progress = bar(f"{kind}: rooms + loads", len(steps) + 1)
    fleet = Fleet(kind, urls, plan.rooms, plan.workers, tokens)
    out: dict[str, Any] = {"steps": {}, "max_rooms": plan.rooms}
    hops: dict[str, dict[str, dict[str, float]]] = {}
    try:
        fleet.ready()
        fleet.closed(plan.rooms, plan.warmup_seconds)  # warm-up, not reported
        progress.update(1)
        for label, mode, value in steps:
            before = scrape_hops(metrics or [])
            if mode == "open":
                result = fleet.open(value, plan.step_seconds)
                result["offered"] = value
            else:
                result = fleet.closed(int(value), plan.step_seconds)
                result["rooms"] = int(value)
            figures = {**summary(result["latencies_ms"]), **_counts(result)}
            out["steps"][label] = figures
            samples[label] = result["latencies_ms"]
            if result["hops"]:
                hops[label] = hop_table(result["hops"])
            elif metrics and (table := hop_table_from_metrics(before, scrape_hops(metrics))):
                hops[label] = table
            progress.set_postfix_str(
                f"{label}: p50 {figures['p50_ms']:.1f} ms, {figures['rate']:.0f}/s"
            )
            progress.update(1)
    finally:
        progress.close()
        fleet.stop()
    last = out["steps"][steps[-1][0]]
    out["max_sustainable"] = last["rate"]
    out["hops"] = hops
    return out


def scrape_hops(urls: list[str]) -> Histograms:
    """The gateways' hop histograms summed; a gateway that does not answer adds nothing."""
    total: Histograms = {}
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                total = add(total, scrape(answer.read().decode()))
        except OSError as exc:
            say(f"bench: no metrics from {url}: {exc}")
    return total


def _counts(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "rate": result["rate"],
        "sent": result["sent"],
        "missed": result["missed"],
        "errors": result["errors"],
        "seconds": result["seconds"],
        "offered": result.get("offered"),
        "rooms": result.get("rooms"),
    }


def token_factory(target: Target, tag: str) -> Any:
    def tokens(offset: int, count: int) -> list[tuple[str, str]]:
        return [
            (target.token(f"h{tag}-{i}"), target.token(f"g{tag}-{i}"))
            for i in range(offset, offset + count)
        ]

    return tokens


@contextlib.contextmanager
def peer_servers(count: int, redis: str) -> Any:
    """`count` python-socketio processes sharing rooms through one Redis channel."""
    channel = f"bench-peer-{uuid.uuid4().hex[:6]}"
    ports = [free_port() for _ in range(count)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "scripts")}
    procs = [
        subprocess.Popen(
            [
                PYTHON,
                "-m",
                "bench.peer",
                "--port",
                str(p),
                "--redis-url",
                redis,
                "--channel",
                channel,
            ],
            env=env,
            cwd=ROOT,
        )
        for p in ports
    ]
    try:
        for port, proc in zip(ports, procs, strict=True):
            _wait_port(port, proc)
        yield [f"ws://127.0.0.1:{p}" for p in ports]
    finally:
        for proc in procs:
            stop(proc, grace=10)


def _wait_port(port: int, proc: subprocess.Popen[bytes], within: float = 60) -> None:
    import socket

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"peer server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"peer server not listening on {port}")


# --- phase 4: idle connections --------------------------------------------------------------


def connections(target: Target, plan: Plan, tag: str) -> list[dict[str, Any]]:
    limit = raise_fd_limit()
    per_gateway = min(plan.connections, max(100, limit // 2 - 500))
    rows = []
    progress = bar("connections: per gateway", len(target.urls))
    try:
        for i, url in enumerate(target.urls):
            pid = target.gateway_pids[i] if target.gateway_pids else None
            tokens = [target.token(f"c{tag}-{i}-{n}") for n in range(per_gateway)]
            before = rss_bytes(pid) if pid else None
            holders = Holders(url, tokens, concurrency=100)
            try:
                opened = holders.ask(("opened",))
                time.sleep(2)  # let the login burst settle before reading memory
                after = rss_bytes(pid) if pid else None
            finally:
                holders.stop()
            row: dict[str, Any] = {
                "gateway": i + 1,
                "sockets": opened["open"],
                "failures": opened["failures"],
                "handshakes_per_s": opened["open"] / max(opened["seconds"], 1e-6),
            }
            if before is not None and after is not None:
                row["rss_before_mib"] = before / 2**20
                row["rss_after_mib"] = after / 2**20
                row["kib_per_connection"] = (after - before) / max(1, opened["open"]) / 1024
            rows.append(row)
            progress.set_postfix_str(f"gw{i + 1}: {row['sockets']} sockets")
            progress.update(1)
    finally:
        progress.close()
    return rows


# --- phase 5: fan-out -----------------------------------------------------------------------


async def fanout(target: Target, plan: Plan, tag: str) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    from parlour_protocol.v1 import Audience, AudienceKind, EventEnvelope, Topics, encode
    from parlour_protocol.v1.chat import ChatChannel, ChatMessage

    players, spectators = 10, 50
    size = players + spectators
    users = [[f"f{tag}-{r}-{n}" for n in range(size)] for r in range(plan.fanout_rooms)]
    tokens = [target.token(u) for room in users for u in room]
    progress = bar("fan-out: sockets, events, deliveries", 3)
    holders = Holders(target.urls[0], tokens, concurrency=100)
    producer = AIOKafkaProducer(bootstrap_servers=target.kafka, linger_ms=5, acks=1)
    try:
        opened = await asyncio.to_thread(holders.ask, ("opened",))
        progress.update(1)
        room_ids = [uuid.uuid4().hex for _ in users]
        seqs = [0] * len(users)
        values: list[tuple[bytes, bytes]] = []
        for k in range(plan.fanout_events):
            r = k % len(users)
            seqs[r] += 1
            payload = ChatMessage(
                room_id=room_ids[r],
                channel=ChatChannel.LOBBY,
                message_id=uuid.uuid4().hex,
                user_id="bench",
                username="bench",
                content="x" * 64,
                timestamp=datetime.now(UTC),
                seq=seqs[r],
            )
            envelope = EventEnvelope(
                type=payload.type,
                room_id=room_ids[r],
                seq=seqs[r],
                payload=payload,
                audience=Audience(kind=AudienceKind.ROOM, user_ids=users[r]),
            )
            values.append((room_ids[r].encode(), encode(envelope)))
        expected = sum(len(users[k % len(users)]) for k in range(plan.fanout_events))
        await producer.start()
        await asyncio.to_thread(holders.ask, ("reset",))
        started = time.time()
        sends = [
            await producer.send(Topics(prefix=target.prefix).events, value, key=key)
            for key, value in values
        ]
        await asyncio.gather(*sends)
        progress.update(1)
        deadline = time.monotonic() + 60
        state = await asyncio.to_thread(holders.ask, ("count",))
        while state["received"] < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            state = await asyncio.to_thread(holders.ask, ("count",))
        progress.update(1)
    finally:
        progress.close()
        await producer.stop()
        await asyncio.to_thread(holders.stop)
    span = max(1e-6, state["last"] - started)
    lat = state["latencies_ms"]
    return {
        "rooms": len(users),
        "players": players,
        "spectators": spectators,
        "sockets": opened["open"],
        "events": plan.fanout_events,
        "expected": expected,
        "deliveries": state["received"],
        "deliveries_per_s": state["received"] / span,
        "p50_ms": summary(lat)["p50_ms"],
        "p99_ms": summary(lat)["p99_ms"],
    }


# --- phase 6: the engine alone ---------------------------------------------------------------


async def engine(plan: Plan, kafka: str, redis: str) -> dict[str, float]:
    from bench_engine import Bench

    args = argparse.Namespace(
        kafka=kafka,
        redis=redis,
        rooms=plan.engine_rooms,
        players=2,
        seconds=plan.engine_seconds,
        latency_seconds=plan.engine_seconds / 2,
        rate=0.0,
        floor_samples=200,
        engine_log_level="WARNING",
        log=str(Path(tempfile.gettempdir()) / f"parlour-bench-engine-{os.getpid()}.log"),
        profile="",
    )
    progress = bar("engine alone", 1)
    try:
        bench = Bench(args)
        with contextlib.redirect_stdout(sys.stderr):
            await bench.run()
        progress.update(1)
        return bench.figures
    finally:
        progress.close()


# --- the run ---------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    raise_fd_limit()  # before the services start: they inherit it
    plan = QUICK if args.quick else FULL
    if args.seconds:
        plan = Plan(**{**plan.__dict__, "step_seconds": args.seconds})
    if args.rooms:
        plan = Plan(**{**plan.__dict__, "rooms": args.rooms})
    if args.workers:
        plan = Plan(**{**plan.__dict__, "workers": args.workers})
    wanted = [p for p in args.phases.split(",") if p] if args.phases else list(PHASES)
    out = Path(args.out) if args.out else _default_out(plan)
    tag = uuid.uuid4().hex[:6]
    result: dict[str, Any] = {
        "mode": plan.name,
        "machine": machine(),
        "plan": {k: v for k, v in plan.__dict__.items() if k != "extra"},
        "skipped": {},
    }
    samples: dict[str, dict[str, list[float]]] = {"parlour": {}, "peer": {}}
    started = time.monotonic()
    if args.url:
        private = await asyncio.to_thread(_read, args.private_key)
        if not private:
            print("bench: --url needs --private-key (the key the deployment's tokens are signed")
            print("with; its gateway must trust the matching public key)")
            return 2
        target = Target(
            urls=args.url,
            private_key=private,
            issuer=args.issuer,
            audience=args.audience,
            metrics_urls=args.metrics or [],
        )
        result["target"] = f"remote ({', '.join(args.url)})"
        for phase in ("floor", "peer", "fanout", "engine"):
            if phase in wanted:
                wanted.remove(phase)
                result["skipped"][phase] = "remote target: needs the deployment's Kafka and Redis"
        await _phases(target, plan, wanted, result, samples, tag, args)
    else:
        cluster = " (Redis Cluster)" if infra_env().get("REDIS_CLUSTER_NODES") else ""
        result["target"] = (
            f"local: {args.gateways} gateway(s), {args.engines} engine(s), Kafka {args.kafka}, "
            f"Redis {args.redis}{cluster}"
        )
        say(f"bench ({plan.name}): starting {args.gateways} gateways and {args.engines} engines")
        async with local_stack(
            kafka=args.kafka, redis_url=args.redis, gateways=args.gateways, engines=args.engines
        ) as target:
            await _phases(target, plan, wanted, result, samples, tag, args)
        if "engine" in wanted:
            result["engine"] = await engine(plan, args.kafka, args.redis)
    result["seconds"] = round(time.monotonic() - started, 1)
    text = write(_clean(result), samples, out)
    print()
    print(text)
    print(f"\nbench: {result['seconds']} s; written to {out}")
    return 0


async def _phases(
    target: Target,
    plan: Plan,
    wanted: list[str],
    result: dict[str, Any],
    samples: dict[str, dict[str, list[float]]],
    tag: str,
    args: argparse.Namespace,
) -> None:
    e2e: dict[str, Any] = {}
    result["e2e"] = e2e
    if "e2e" in wanted:
        e2e["parlour"] = await asyncio.to_thread(
            drive,
            "parlour",
            target.urls,
            plan,
            token_factory(target, tag),
            samples["parlour"],
            target.metrics_urls,
        )
        hops = e2e["parlour"].pop("hops")
        if hops:
            result["hops"] = hops
    if "floor" in wanted:
        progress = bar("floor: Kafka x2 + Redis", plan.floor_samples)
        try:
            floor = await floor_phase.measure(
                args.kafka, args.redis, plan.floor_samples, plan.floor_rate, progress.update
            )
        finally:
            progress.close()
        result["floor"] = summary(floor["latencies_ms"])
    if "peer" in wanted:
        with peer_servers(len(target.urls), args.redis) as urls:
            e2e["peer"] = await asyncio.to_thread(drive, "peer", urls, plan, None, samples["peer"])
            e2e["peer"].pop("hops", None)
    if "connections" in wanted:
        result["connections"] = await asyncio.to_thread(connections, target, plan, tag)
    if "fanout" in wanted:
        result["fanout"] = await fanout(target, plan, tag)


def _read(path: str | None) -> str:
    return Path(path).read_text() if path else ""


def _default_out(plan: Plan) -> Path:
    if plan.name == "full":
        return ROOT / "docs" / "benchmarks"
    return Path(tempfile.gettempdir()) / "parlour-bench-quick"


def _clean(value: Any) -> Any:
    """NaN (no samples) as null, so results.json is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="the <= 3 minute smoke run")
    parser.add_argument("--out", help="where results go (default docs/benchmarks/, quick: /tmp)")
    parser.add_argument("--phases", help=f"comma-separated subset of {','.join(PHASES)}")
    parser.add_argument("--seconds", type=float, help="length of each load step")
    parser.add_argument("--rooms", type=int, help="rooms in the pool (the largest closed loop)")
    parser.add_argument("--workers", type=int, help="load generator processes")
    parser.add_argument("--gateways", type=int, default=2, help="local gateway processes")
    parser.add_argument("--engines", type=int, default=1, help="local engine processes")
    parser.add_argument("--kafka", default=kafka_bootstrap())
    parser.add_argument("--redis", default=redis_url())
    remote = parser.add_argument_group("a remote deployment instead of a local stack")
    remote.add_argument("--url", action="append", help="a gateway's WebSocket URL (repeatable)")
    remote.add_argument("--private-key", help="PEM file of the key the gateway's tokens trust")
    remote.add_argument("--issuer", help="`iss` claim, when the gateway sets JWT_ISSUER")
    remote.add_argument("--audience", help="`aud` claim, when the gateway sets JWT_AUDIENCE")
    remote.add_argument(
        "--metrics",
        action="append",
        help="a gateway's /metrics URL (repeatable): the per-hop table, when the gateways run "
        "with GATEWAY_HOP_TIMESTAMPS on",
    )
    args = parser.parse_args(argv)
    return asyncio.run(run(args))
