"""The benchmark suite: every phase in one run, a progress bar each, figures printed and
written, nothing asserted.

    .venv/bin/python scripts/bench            # full run -> docs/benchmarks/
    .venv/bin/python scripts/bench --quick    # <= 3 minutes, written to a temporary directory
    .venv/bin/python scripts/bench --url wss://play.example/ws --private-key key.pem \\
        [--issuer ISS] [--audience AUD]       # a remote deployment: end to end + connections

Phases: 1. end to end through real gateways and engines (two-player Bigger Dice rooms, a roll
until both players see `rolled`: light load at 1 and 5 rooms, fixed offered loads and closed
loops with the CPU each service process spends per command, and a ramp of offered loads up to
the highest sustainable rate); 2. the floor (Kafka
twice + Redis once); 3. the peer (python-socketio + AsyncRedisManager) under the same load;
4. idle authenticated connections per gateway (RSS, handshakes/s); 5. fan-out into rooms of 10
players and 50 spectators; 6. the engine alone (scripts/bench_engine.py); 7. what a gateway
spends on an event meant for sockets it does not hold (scripts/bench_filter.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm  # type: ignore[import-untyped]

from bench import floor as floor_phase
from bench.holders import Holders, raise_fd_limit
from bench.hops import Histograms, add, hop_table_from_metrics, scrape
from bench.loadgen import Fleet
from bench.report import CPU_TARGETS_MS, hop_table, machine, summary, write
from bench.stack import Target, local_stack
from bench.support import (
    PYTHON,
    ROOT,
    cpu_seconds,
    free_port,
    infra_env,
    kafka_bootstrap,
    redis_url,
    room_chat_event,
    rss_bytes,
    stop,
)

PHASES = ("e2e", "floor", "peer", "connections", "fanout", "engine", "filter")


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
    light: tuple[int, ...] = (1, 5)  # rooms, one roll in flight each: latency against the floor
    light_seconds: float = 3.0
    idle_seconds: float = 2.0  # no load: what the processes spend doing nothing
    ramp_start: float = 250.0  # offered commands/s of the ramp's first step
    ramp_factor: float = 1.5  # each next step offers this much more
    ramp_steps: int = 8  # at most, before the refinement step
    ramp_seconds: float = 3.0
    ramp_p99_ms: float = 100.0  # a step is sustained while p99 stays within this
    ramp_completed: float = 0.95  # ... and this fraction of the offered rolls completes
    floor_samples: int = 300
    floor_rate: float = 100.0
    connections: int = 200  # per gateway
    fanout_rooms: int = 2
    fanout_events: int = 300
    engine_rooms: int = 50
    engine_seconds: float = 4.0
    filter_events: int = 100_000
    extra: dict[str, Any] = field(default_factory=dict)


QUICK = Plan(
    "quick",
    workers=2,
    rooms=60,
    step_seconds=3.0,
    light_seconds=2.0,
    idle_seconds=1.0,
    ramp_factor=1.8,
    ramp_steps=5,
    ramp_seconds=2.0,
    floor_samples=200,
    connections=100,
    fanout_events=200,
    engine_rooms=30,
    engine_seconds=3.0,
    filter_events=10_000,
)
FULL = Plan(
    "full",
    workers=4,
    rooms=300,
    step_seconds=20.0,
    warmup_seconds=10.0,
    light_seconds=10.0,
    idle_seconds=5.0,
    ramp_factor=1.4,
    ramp_steps=10,
    ramp_seconds=8.0,
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


Processes = dict[str, list[int]]
"""The service processes whose CPU a step is charged with, by role ("engine", "gateway" for
Parlour, "server" for the peer); empty for a remote target."""


def cpu_total(pids: list[int]) -> float | None:
    """CPU seconds the processes have used so far; None when one is gone (no figure beats a
    wrong one)."""
    try:
        return sum(cpu_seconds(pid) for pid in pids)
    except OSError:
        return None


class Meter:
    """The CPU each role's processes spend over a step, per command completed."""

    def __init__(self, processes: Processes) -> None:
        self.processes = {role: pids for role, pids in processes.items() if pids}
        self.before: dict[str, float | None] = {}
        self.started = 0.0

    def start(self) -> None:
        self.before = {role: cpu_total(pids) for role, pids in self.processes.items()}
        self.started = time.monotonic()

    def stop(self, done: int) -> dict[str, Any]:
        wall = time.monotonic() - self.started
        per_command: dict[str, float | None] = {}
        busy: dict[str, float | None] = {}
        for role, pids in self.processes.items():
            before, after = self.before.get(role), cpu_total(pids)
            if before is None or after is None:
                per_command[role] = busy[role] = None
                continue
            used = after - before
            per_command[role] = 1000.0 * used / done if done else None
            busy[role] = 100.0 * used / wall if wall > 0 else None
        return {"cpu_ms_per_command": per_command, "cpu_pct": busy}


def drive(
    kind: str,
    urls: list[str],
    plan: Plan,
    tokens: Any,
    samples: dict[str, list[float]],
    metrics: list[str] | None = None,
    processes: Processes | None = None,
) -> dict[str, Any]:
    """Set the rooms up in `plan.workers` processes and run every load step: light load, the
    fixed loads and closed loops, then the ramp. Each step's figures carry the CPU the
    service processes spent on it per command completed (the events it caused included)."""
    steps = load_steps(plan)
    light = [n for n in plan.light if n <= plan.rooms]
    progress = bar(f"{kind}: rooms, idle, light, loads, ramp", 2 + len(light) + len(steps) + 1)
    fleet = Fleet(kind, urls, plan.rooms, plan.workers, tokens)
    meter = Meter(processes or {})
    out: dict[str, Any] = {"steps": {}, "light": {}, "max_rooms": plan.rooms}
    hops: dict[str, dict[str, dict[str, float]]] = {}

    def step(
        label: str, mode: str, value: float, seconds: float, keep: bool = True
    ) -> dict[str, Any]:
        """One load step; `keep`: its latencies go to the plots and its hops to the report."""
        before = scrape_hops(metrics if keep and metrics else [])
        meter.start()
        if mode == "open":
            result = fleet.open(value, seconds)
            result["offered"] = value
        else:
            result = fleet.closed(int(value), seconds)
            result["rooms"] = int(value)
        figures = {**summary(result["latencies_ms"]), **_counts(result)}
        figures.update(meter.stop(result["done"]))
        if keep:
            samples[label] = result["latencies_ms"]
            if result["hops"]:
                hops[label] = hop_table(result["hops"])
            elif metrics and (table := hop_table_from_metrics(before, scrape_hops(metrics))):
                hops[label] = table
        say(f"{kind} {label}: {step_line(figures)}")
        progress.set_postfix_str(
            f"{label}: p50 {figures['p50_ms']:.1f} ms, {figures['rate']:.0f}/s"
        )
        progress.update(1)
        return figures

    try:
        fleet.ready()
        fleet.closed(plan.rooms, plan.warmup_seconds)  # warm-up, not reported
        progress.update(1)
        meter.start()
        time.sleep(plan.idle_seconds)
        out["idle_cpu_pct"] = meter.stop(0)["cpu_pct"]
        progress.update(1)
        for n in light:
            label = f"light, {n} room{'s' if n > 1 else ''}"
            out["light"][label] = step(label, "closed", float(n), plan.light_seconds)
        for label, mode, value in steps:
            out["steps"][label] = step(label, mode, value, plan.step_seconds)
        out["ramp"] = ramp(plan, step)
        progress.update(1)
    finally:
        progress.close()
        fleet.stop()
    out["closed_pool_rate"] = out["steps"][steps[-1][0]]["rate"]
    out["max_sustainable"] = out["ramp"]["sustainable_rate"]
    out["hops"] = hops
    return out


def ramp(plan: Plan, step: Any) -> dict[str, Any]:
    """Offered loads growing by `plan.ramp_factor` until one is not sustained (p99 above
    `plan.ramp_p99_ms` or fewer than `plan.ramp_completed` of the offered rolls completed),
    then one step halfway (geometrically) between the last sustained load and that one; when
    the first step already fails, up to two steps below it."""
    rows: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    failed: float | None = None
    offered = plan.ramp_start
    for _ in range(plan.ramp_steps):
        row = _ramp_step(plan, step, offered)
        rows.append(row)
        if not row["sustained"]:
            failed = offered
            break
        best = row
        offered *= plan.ramp_factor
    if failed is not None and best is not None:
        row = _ramp_step(plan, step, round(math.sqrt(best["offered"] * failed)))
        rows.append(row)
        if row["sustained"]:
            best = row
    offered = plan.ramp_start
    for _ in range(2 if best is None else 0):  # even the first step failed: go down instead
        offered = round(offered / plan.ramp_factor)
        row = _ramp_step(plan, step, offered)
        rows.append(row)
        if row["sustained"]:
            best = row
            break
    first_failure = next((r for r in rows if not r["sustained"]), None)
    return {
        "p99_bound_ms": plan.ramp_p99_ms,
        "completed_bound": plan.ramp_completed,
        "steps": rows,
        "sustainable_offered": best["offered"] if best else None,
        "sustainable_rate": best["rate"] if best else None,
        "sustainable_p99_ms": best["p99_ms"] if best else None,
        "stopped_by": first_failure["why"] if first_failure else "the ramp ended first",
    }


def _ramp_step(plan: Plan, step: Any, offered: float) -> dict[str, Any]:
    figures = step(f"ramp, {offered:,.0f}/s offered", "open", offered, plan.ramp_seconds, False)
    completed = figures["rate"] / offered if offered else 0.0
    why = []
    p99 = figures["p99_ms"]
    if not figures["samples"] or p99 != p99 or p99 > plan.ramp_p99_ms:
        why.append(f"p99 {p99:.0f} ms > {plan.ramp_p99_ms:.0f} ms")
    if completed < plan.ramp_completed:
        pool = " (rolls missed: no idle room at this latency)" if figures.get("missed") else ""
        why.append(f"{100 * completed:.0f}% completed < {100 * plan.ramp_completed:.0f}%{pool}")
    return {**figures, "completed_fraction": completed, "sustained": not why, "why": "; ".join(why)}


def step_line(figures: dict[str, Any]) -> str:
    """One step's figures for the console: latencies, rate, CPU per command by role."""
    cpu = ", ".join(
        (f"{role} {value:.3f}" if value is not None else f"{role} -")
        + (f" (target <= {CPU_TARGETS_MS[role]})" if role in CPU_TARGETS_MS else "")
        for role, value in (figures.get("cpu_ms_per_command") or {}).items()
    )
    return (
        f"p50 {figures['p50_ms']:.1f} / p99 {figures['p99_ms']:.1f} ms, "
        f"{figures['rate']:,.0f} cmd/s"
        + (f", {figures['missed']} missed" if figures.get("missed") else "")
        + (f"; CPU ms/cmd: {cpu}" if cpu else "")
    )


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
    """`count` python-socketio processes sharing rooms through one Redis channel: their URLs
    and process ids."""
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
        yield [f"ws://127.0.0.1:{p}" for p in ports], [proc.pid for proc in procs]
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
            settled = _settle(target.metrics_urls[i] if target.metrics_urls else None)
            row: dict[str, Any] = {
                "gateway": i + 1,
                "sockets": opened["open"],
                "failures": opened["failures"],
                "handshakes_per_s": opened["open"] / max(opened["seconds"], 1e-6),
            }
            if settled is not None:
                row["settle_seconds"] = settled
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


def _settle(metrics_url: str | None, within: float = 120.0) -> float | None:
    """Wait until the gateway has finished closing the phase's sockets (its open-socket gauge,
    which counts a socket until its presence clean-up ran, is back to 0), so the next phase
    does not measure the tail of this one's disconnect storm. Seconds waited; None without a
    metrics URL (a remote target)."""
    if metrics_url is None:
        return None
    started = time.monotonic()
    while time.monotonic() - started < within:
        with urllib.request.urlopen(metrics_url, timeout=5) as answer:
            text = answer.read().decode()
        match = _OPEN_SOCKETS.search(text)
        if match is None or float(match.group(1)) == 0:
            break
        time.sleep(0.5)
    return round(time.monotonic() - started, 1)


_OPEN_SOCKETS = re.compile(r"^parlour_gateway_connections_current ([0-9.e+]+)$", re.MULTILINE)


# --- phase 5: fan-out -----------------------------------------------------------------------


async def fanout(target: Target, plan: Plan, tag: str) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    from parlour_protocol.v1 import Topics

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
        values: list[tuple[bytes, tuple[bytes, Any]]] = []
        for k in range(plan.fanout_events):
            r = k % len(users)
            seqs[r] += 1
            values.append((room_ids[r].encode(), room_chat_event(room_ids[r], seqs[r], users[r])))
        expected = sum(len(users[k % len(users)]) for k in range(plan.fanout_events))
        await producer.start()
        await asyncio.to_thread(holders.ask, ("reset",))
        started = time.time()
        sends = [
            await producer.send(
                Topics(prefix=target.prefix).events, value, key=key, headers=headers
            )
            for key, (value, headers) in values
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
        hops=True,
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


async def filtered(plan: Plan, kafka: str) -> dict[str, float]:
    """CPU microseconds a gateway spends per event meant for sockets it does not hold
    (scripts/bench_filter.py: ~600-byte events read through the gateway's own EventConsumer,
    beside a bare aiokafka iteration)."""
    from bench_filter import measure

    progress = bar("gateway filter", 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            per_event = await measure(kafka, plan.filter_events)
        progress.update(1)
        return {"events": float(plan.filter_events), **per_event}
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
    failed: dict[str, str] = {}
    started = time.monotonic()
    result["_lap"] = started
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
        for phase in ("floor", "peer", "fanout", "engine", "filter"):
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
        lap(result, "stack stop")
        # a phase that breaks must not lose what the others measured: its error is reported
        # and the run exits non-zero (make bench-quick is the harness's smoke test)
        if "engine" in wanted:
            try:
                result["engine"] = await engine(plan, args.kafka, args.redis)
            except Exception as exc:  # noqa: BLE001 - reported in the results, exit status 1
                failed["engine"] = f"{type(exc).__name__}: {exc}"
            lap(result, "engine")
        if "filter" in wanted:
            try:
                result["filter"] = await filtered(plan, args.kafka)
            except Exception as exc:  # noqa: BLE001 - reported in the results, exit status 1
                failed["filter"] = f"{type(exc).__name__}: {exc}"
            lap(result, "filter")
    result["seconds"] = round(time.monotonic() - started, 1)
    result.pop("_lap", None)
    for phase, why in failed.items():
        result["skipped"][phase] = f"failed: {why}"
    text = write(_clean(result), samples, out)
    print()
    print(text)
    print(f"\nbench: {result['seconds']} s; written to {out}")
    if failed:
        print(f"bench: phases failed: {', '.join(failed)}", file=sys.stderr)
        return 1
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
    lap(result, "stack start")
    if "e2e" in wanted:
        e2e["parlour"] = await asyncio.to_thread(
            drive,
            "parlour",
            target.urls,
            plan,
            token_factory(target, tag),
            samples["parlour"],
            target.metrics_urls,
            {"engine": target.engine_pids, "gateway": target.gateway_pids},
        )
        hops = e2e["parlour"].pop("hops")
        if hops:
            result["hops"] = hops
        lap(result, "e2e")
    if "floor" in wanted:
        progress = bar("floor: Kafka x2 + Redis", plan.floor_samples)
        try:
            floor = await floor_phase.measure(
                args.kafka, args.redis, plan.floor_samples, plan.floor_rate, progress.update
            )
        finally:
            progress.close()
        result["floor"] = summary(floor["latencies_ms"])
        lap(result, "floor")
    if "peer" in wanted:
        with peer_servers(len(target.urls), args.redis) as (urls, pids):
            e2e["peer"] = await asyncio.to_thread(
                drive, "peer", urls, plan, None, samples["peer"], None, {"server": pids}
            )
            e2e["peer"].pop("hops", None)
        lap(result, "peer")
    if "connections" in wanted:
        result["connections"] = await asyncio.to_thread(connections, target, plan, tag)
        lap(result, "connections")
    if "fanout" in wanted:
        result["fanout"] = await fanout(target, plan, tag)
        lap(result, "fanout")


def lap(result: dict[str, Any], phase: str) -> None:
    """Record how long `phase` took (the time since the previous lap or the run's start), so a
    quick run tells what a full one will cost."""
    now = time.monotonic()
    laps = result.setdefault("phase_seconds", {})
    laps[phase] = round(now - result.get("_lap", now), 1)
    result["_lap"] = now


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
