"""The soak run: services up, load processes for --minutes, a sample every 30 s, everyone
leaves, the engine's clean-up is waited for, the keys left are judged, the report written."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiokafka.errors import KafkaError

from parlour_gateway.dev_tokens import generate_keypair
from soak import report
from soak.sampler import cpu_seconds, key_groups, redis_figures, room_states, rss_bytes
from soak.services import (
    APPLIED_TTL_SECONDS,
    ENDED_ROOM_TTL_SECONDS,
    HEARTBEAT_SECONDS,
    ROOM_SECONDS,
    Service,
    start_engine,
    start_gateway,
)
from soak.topology import ROOT, Topology, create_topics, delete_topics, masters, python, resolve

SAMPLE_EVERY = 30.0


def say(text: str) -> None:
    print(text, flush=True)


@dataclass
class Worker:
    n: int
    proc: subprocess.Popen[bytes]
    stats: Path

    def read(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.stats.read_text())
        except (OSError, ValueError):
            return {}
        return data


@dataclass
class Soak:
    args: argparse.Namespace
    topology: Topology
    prefix: str
    workdir: Path
    services: list[Service] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)
    masters: list[aioredis.Redis] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    began: float = field(default_factory=time.monotonic)
    _last_commands: tuple[float, int] | None = None

    async def refresh_masters(self) -> list[aioredis.Redis]:
        """The masters as the cluster has them now (a failover moves them), the old clients
        closed."""
        fresh = await masters(self.topology)
        for old in self.masters:
            await old.aclose()
        self.masters = fresh
        return fresh

    async def redis_or_none(self) -> dict[str, Any]:
        """`redis_figures`, or the error when Redis did not answer (a node failing over):
        the soak goes on and the sample says so."""
        try:
            return await redis_figures(await self.refresh_masters(), self.prefix)
        except (OSError, aioredis.RedisError) as exc:
            say(f"  redis did not answer this sample: {exc!r}")
            return {
                "used_memory": None,
                "dbsize": None,
                "prefix_keys": None,
                "prefix_bytes": None,
                "error": repr(exc),
            }

    def load_totals(self) -> dict[str, Any]:
        """The load processes' counters, summed."""
        total: dict[str, Any] = {}
        for worker in self.workers:
            for name, value in worker.read().items():
                if name == "phase":
                    total.setdefault("phases", []).append(value)
                elif name == "pid":
                    continue
                elif isinstance(value, dict):
                    counter = total.setdefault(name, Counter())
                    counter.update(value)
                elif name == "connect_seconds":
                    total[name] = max(total.get(name) or 0.0, value or 0.0)
                elif isinstance(value, int):
                    total[name] = total.get(name, 0) + value
        for name in ("errors", "timeouts", "closes", "connect_failures", "games_failed"):
            total[name] = dict(total.get(name, Counter()))
        total["errors_total"] = sum(total["errors"].values()) + sum(total["timeouts"].values())
        for name in ("connected", "connected_peak", "commands", "games_finished", "games_started"):
            total.setdefault(name, 0)
        return total

    async def sample(self, label: str) -> dict[str, Any]:
        now = time.monotonic()
        load = self.load_totals()
        rate = 0.0
        if self._last_commands is not None and now > self._last_commands[0]:
            rate = (load["commands"] - self._last_commands[1]) / (now - self._last_commands[0])
        self._last_commands = (now, load["commands"])
        pids = {s.name: s.pid for s in self.services}
        pids.update({f"load{w.n}": w.proc.pid for w in self.workers})
        rss_now = {name: rss_bytes(pid) for name, pid in pids.items()}
        figures = await self.redis_or_none()
        sample: dict[str, Any] = {
            "t": now - self.began,
            "label": label,
            "rss": rss_now,
            "cpu": {name: cpu_seconds(pid) for name, pid in pids.items()},
            "redis": figures,
            "load": load,
            "commands_per_sec": rate,
        }
        self.samples.append(sample)
        rss = " ".join(f"{s.name}={(rss_now[s.name] or 0) / 2**20:.0f}" for s in self.services)
        r = figures
        say(
            f"[{sample['t']:5.0f}s] {label:<14} conns {load['connected']:>5} "
            f"games {load['games_finished']:>5} cmd/s {rate:6.1f} errors {load['errors_total']:>4}"
            f" | RSS MB {rss} | redis {(r['used_memory'] or 0) / 2**20:.1f} MB, dbsize "
            f"{r['dbsize']}, prefix keys {r['prefix_keys']}"
        )
        return sample


def start_workers(soak: Soak, go: Path, private_key: Path) -> None:
    args = soak.args
    count = args.load_processes
    urls = ",".join(s.url for s in soak.services if s.ws_port is not None)
    bounds = [args.connections * i // count // 2 * 2 for i in range(count)] + [args.connections]
    for n in range(count):
        stats = soak.workdir / f"load{n + 1}.json"
        command = [
            python(),
            str(ROOT / "scripts" / "soak"),
            "load",
            f"--urls={urls}",
            f"--private-key={private_key}",
            f"--tag={soak.prefix.rstrip('.')}",
            f"--first={bounds[n]}",
            f"--last={bounds[n + 1]}",
            f"--go={go}",
            f"--stats={stats}",
            f"--players={args.players}",
            f"--chatters={args.chatters}",
            f"--listers={args.listers}",
            f"--think={args.think}",
            f"--finish-timeout={args.finish_timeout}",
        ]
        with (soak.workdir / f"load{n + 1}.log").open("ab") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        soak.workers.append(Worker(n + 1, proc, stats))


async def drive(soak: Soak) -> dict[str, Any]:
    """The load from start to everyone gone; returns the clean-up figures."""
    args = soak.args
    go = soak.workdir / "go"
    deadline = time.monotonic() + 300
    while not all(w.read().get("phase") == "ready" for w in soak.workers):
        if time.monotonic() > deadline or any(w.proc.poll() is not None for w in soak.workers):
            raise RuntimeError(f"the load processes did not get ready: see {soak.workdir}")
        await asyncio.sleep(0.2)
    soak.began = time.monotonic()
    await soak.sample("start")
    end = time.monotonic() + args.minutes * 60
    tmp = go.with_suffix(".tmp")
    tmp.write_text(str(time.time() + args.minutes * 60))
    tmp.replace(go)
    loaded_since: float | None = None
    while (left := end - time.monotonic()) > 0:
        await asyncio.sleep(min(left, SAMPLE_EVERY))
        if time.monotonic() < end - 1:
            phases = soak.load_totals().get("phases", [])
            full = len(phases) == len(soak.workers) and all(p == "running" for p in phases)
            if full and loaded_since is None:
                loaded_since = time.monotonic()
            await soak.sample("load" if full else "connecting")
        for worker in soak.workers:
            if worker.proc.poll() not in (None, 0):
                raise RuntimeError(f"load process {worker.n} failed: see {soak.workdir}")
    await soak.sample("load end")
    # every user leaves its rooms and disconnects; the load processes then exit
    deadline = time.monotonic() + 180
    for worker in soak.workers:
        while worker.proc.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.5)
    await soak.sample("everyone left")
    return await wait_for_cleanup(soak)


async def wait_for_cleanup(soak: Soak) -> dict[str, Any]:
    """Poll the keys under the prefix until the engine removed the rooms: until none are left
    (--until-empty) or only expiring and long-lived ones are, or the timeout."""
    args = soak.args
    began = time.monotonic()
    timed_out = True
    told = began
    while time.monotonic() - began < args.cleanup_timeout:
        try:
            groups = await key_groups(await soak.refresh_masters(), soak.prefix, sizes=False)
        except (OSError, aioredis.RedisError) as exc:
            say(f"  clean-up: redis did not answer: {exc!r}")
            await asyncio.sleep(2)
            continue
        verdicts = {g.verdict for g in groups}
        if time.monotonic() - told >= 10:
            told = time.monotonic()
            waiting = [f"{g.shape} x{g.count}" for g in groups if g.verdict != "long-lived"]
            say(f"  clean-up: {time.monotonic() - began:.0f} s, left: {', '.join(waiting)}")
        if args.until_empty and verdicts <= {"long-lived"}:
            timed_out = False
            break
        if not args.until_empty and "leak" not in verdicts:
            timed_out = False
            break
        await asyncio.sleep(2)
    seconds = time.monotonic() - began
    await soak.sample("cleaned up" if not timed_out else "cleanup timeout")
    groups = await key_groups(await soak.refresh_masters(), soak.prefix)
    left = [g.as_dict() for g in groups]
    rooms = await room_states(soak.masters, soak.prefix)
    return {
        "rooms_left": dict(rooms),
        "seconds": seconds,
        "timeout": args.cleanup_timeout,
        "until_empty": args.until_empty,
        "timed_out": timed_out,
        "keys_left": left,
        "leaks": [k for k in left if k["verdict"] == "leak"],
    }


def figures_at(samples: list[dict[str, Any]], label: str, pick: str) -> dict[str, Any] | None:
    chosen = [s for s in samples if s["label"] == label]
    if not chosen:
        return None
    return chosen[0] if pick == "first" else chosen[-1]


def build_result(
    soak: Soak,
    cleanup: dict[str, Any],
    exit_codes: dict[str, int | None],
    after_stop: dict[str, int],
    started_at: str,
) -> dict[str, Any]:
    args = soak.args
    samples = soak.samples
    start = samples[0]
    end = samples[-1]
    loaded_first = figures_at(samples, "load", "first") or figures_at(samples, "load end", "first")
    loaded_last = figures_at(samples, "load end", "last") or end
    processes = []
    for service in soak.services:
        series = [s["rss"].get(service.name) for s in samples]
        processes.append(
            {
                "name": service.name,
                "pid": service.pid,
                "rss_start": start["rss"].get(service.name),
                "rss_loaded_first": (loaded_first or end)["rss"].get(service.name),
                "rss_loaded_last": loaded_last["rss"].get(service.name),
                "rss_peak": max((v for v in series if v is not None), default=None),
                "rss_end": end["rss"].get(service.name),
                "cpu_seconds": end["cpu"].get(service.name),
                "exit_code": exit_codes.get(service.name),
            }
        )
    redis_memory: dict[str, Any] = {}
    for figure in ("used_memory", "dbsize", "prefix_keys", "prefix_bytes"):
        redis_memory[f"{figure}_start"] = start["redis"][figure]
        redis_memory[f"{figure}_loaded_first"] = (loaded_first or end)["redis"][figure]
        redis_memory[f"{figure}_loaded_last"] = loaded_last["redis"][figure]
        redis_memory[f"{figure}_end"] = end["redis"][figure]
    load = end["load"]
    rates = [s["commands_per_sec"] for s in samples if s["label"] in ("load", "load end")]
    problems = []
    if cleanup["leaks"]:
        problems.append("keys leaked: " + ", ".join(k["shape"] for k in cleanup["leaks"]))
    crashed = [name for name, code in exit_codes.items() if code not in (0, None)]
    if crashed:
        problems.append("services exited badly: " + ", ".join(crashed))
    if load.get("games_finished", 0) == 0 and args.players > 0:
        problems.append("no game finished")
    if load.get("connected_peak", 0) < args.connections * 0.99:
        problems.append(f"only {load.get('connected_peak', 0)} of {args.connections} connected")
    return {
        "version": 1,
        "topology": soak.topology.name,
        "kafka": soak.topology.kafka,
        "redis": soak.topology.redis_cluster_nodes or soak.topology.redis_url,
        "redis_masters": len(soak.masters),
        "prefix": soak.prefix,
        "started_at": started_at,
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{os.cpu_count()} CPUs, {platform.platform()}, "
        f"load average at the end {os.getloadavg()[0]:.1f}",
        "settings": {
            "connections": args.connections,
            "minutes": args.minutes,
            "load_processes": args.load_processes,
            "players": args.players,
            "chatters": args.chatters,
            "listers": args.listers,
            "think": args.think,
            "heartbeat": HEARTBEAT_SECONDS,
            "engine_room_seconds": ROOM_SECONDS,
            "engine_ended_room_ttl_seconds": ENDED_ROOM_TTL_SECONDS,
            "engine_applied_ttl_seconds": APPLIED_TTL_SECONDS,
        },
        "processes": processes,
        "redis_memory": redis_memory,
        "games": {
            "started": load.get("games_started", 0),
            "finished": load.get("games_finished", 0),
            "failed": load.get("games_failed", {}),
        },
        "load": {
            name: load.get(name, 0)
            for name in (
                "connected_peak",
                "commands",
                "frames_in",
                "chat_lines",
                "lists",
                "leaves",
                "leave_failures",
                "roll_retries",
            )
        }
        | {
            "connect_failures": load.get("connect_failures", {}),
            "connect_seconds": load.get("connect_seconds"),
            "closes": load.get("closes", {}),
        },
        "commands_per_sec_mean": sum(rates) / len(rates) if rates else 0.0,
        "errors": load.get("errors", {}),
        "timeouts": load.get("timeouts", {}),
        "samples": samples,
        "cleanup": {**cleanup, "after_stop": after_stop},
        "ok": not problems,
        "problems": problems,
    }


async def main_async(args: argparse.Namespace) -> int:
    topology = resolve(args.topology, args.kafka, args.redis)
    prefix = f"soak{uuid.uuid4().hex[:6]}."
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="soak-"))
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    say(
        f"soak: {args.minutes:g} min, {args.connections} connections, {topology.name} topology "
        f"(kafka {topology.kafka}, redis {topology.redis_cluster_nodes or topology.redis_url}), "
        f"prefix {prefix}, logs in {workdir}"
    )
    private_key, public_key = generate_keypair(workdir / "jwt")
    topics = await create_topics(topology, prefix)
    soak = Soak(args, topology, prefix, workdir)
    soak.masters = await masters(topology)
    exit_codes: dict[str, int | None] = {}
    after_stop: dict[str, int] = {}
    cleanup: dict[str, Any] | None = None
    try:
        for n in (1, 2):
            soak.services.append(start_engine(topology, prefix, workdir, n))
        for n in (1, 2):
            soak.services.append(
                start_gateway(topology, prefix, workdir, n, public_key, args.connections)
            )
        # the load processes sign their tokens meanwhile, then wait for the go
        start_workers(soak, workdir / "go", private_key)
        await asyncio.gather(*(s.wait_ready() for s in soak.services))
        cleanup = await drive(soak)
    finally:
        for worker in soak.workers:
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait(10)
        for service in soak.services:
            exit_codes[service.name] = await asyncio.to_thread(service.stop)
        try:
            groups = await key_groups(await soak.refresh_masters(), prefix, sizes=False)
            after_stop = {g.shape: g.count for g in groups}
            if not args.keep_keys:
                for master in soak.masters:
                    async for key in master.scan_iter(match=f"{prefix}*", count=2_000):
                        await master.delete(key)
        except (OSError, aioredis.RedisError) as exc:
            say(f"soak: could not list or delete its keys ({prefix}*): {exc!r}")
        for master in soak.masters:
            await master.aclose()
        try:
            await delete_topics(topology, topics)
        except (OSError, KafkaError) as exc:
            say(f"soak: could not delete its topics {topics}: {exc!r}")
    assert cleanup is not None
    result = build_result(soak, cleanup, exit_codes, after_stop, started_at)
    json_path = Path(args.json or workdir / "soak.json")
    md_path = Path(args.markdown or workdir / "soak.md")
    report.write(result, json_path, md_path)
    say("")
    say(report.markdown(result))
    say(f"written: {json_path} and {md_path}")
    return 0 if result["ok"] else 1
