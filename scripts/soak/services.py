"""The services under soak: real `python -m parlour_gateway` and `python -m parlour_engine`
processes on the soak's topics and key prefix, each logging to a file of the run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from soak.topology import ROOT, Topology, free_port, python

ROOM_SECONDS = 3
"""ENGINE_IDLE_ROOM_SECONDS and ENGINE_FINISHED_ROOM_SECONDS of the soak's engines (600 and 300
by default): every user has left at the end, so the rooms should go within seconds."""
ENDED_ROOM_TTL_SECONDS = 5
"""ENGINE_ENDED_ROOM_TTL_SECONDS (default 600): how long a removed room's replay stream and
chat lists stay"""
APPLIED_TTL_SECONDS = 60
"""ENGINE_APPLIED_TTL_SECONDS (default 86,400, its minimum 60): the idempotency records of a
room live this long after its last command"""
HEARTBEAT_SECONDS = 15
"""WS_HEARTBEAT_INTERVAL_SECONDS (the default): socket records live 3x this"""


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    health_port: int
    log_path: Path
    ws_port: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/ws"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def wait_ready(self, within: float = 90) -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient() as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    ready = await client.get(f"http://127.0.0.1:{self.health_port}/ready")
                    if ready.status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} not ready in {within}s:\n{self.log_tail()}")
                await asyncio.sleep(0.3)

    def stop(self, grace: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def _inherited() -> dict[str, str]:
    """This process's environment without the addresses: the topology sets its own (a
    REDIS_CLUSTER_NODES from a sourced .infra/run/env must not turn a single-node soak into
    a cluster one)."""
    return {
        name: value
        for name, value in os.environ.items()
        if name not in ("REDIS_CLUSTER_NODES", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS")
    }


def engine_env(topology: Topology, prefix: str, port: int) -> dict[str, str]:
    return {
        **_inherited(),
        **topology.service_env(),
        "KAFKA_TOPIC_PREFIX": prefix,
        "REDIS_KEY_PREFIX": prefix,
        "ENGINE_GROUP_ID": f"{prefix}parlour-engine",
        "ENGINE_HEALTH_HOST": "127.0.0.1",
        "ENGINE_HEALTH_PORT": str(port),
        "ENGINE_IDLE_ROOM_SECONDS": str(ROOM_SECONDS),
        "ENGINE_FINISHED_ROOM_SECONDS": str(ROOM_SECONDS),
        "ENGINE_ENDED_ROOM_TTL_SECONDS": str(ENDED_ROOM_TTL_SECONDS),
        "ENGINE_APPLIED_TTL_SECONDS": str(APPLIED_TTL_SECONDS),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "WARNING",
    }


def gateway_env(
    topology: Topology,
    prefix: str,
    gateway_id: str,
    ports: tuple[int, int],
    public_key: Path,
    connections: int,
) -> dict[str, str]:
    room = str(connections + 100)
    return {
        **_inherited(),
        **topology.service_env(),
        "KAFKA_TOPIC_PREFIX": prefix,
        "REDIS_KEY_PREFIX": prefix,
        "GATEWAY_ID": gateway_id,
        "WS_HOST": "127.0.0.1",
        "WS_PORT": str(ports[0]),
        "WS_HEALTH_HOST": "127.0.0.1",
        "WS_HEALTH_PORT": str(ports[1]),
        "JWT_PUBLIC_KEY_PATH": str(public_key),
        "WS_HEARTBEAT_INTERVAL_SECONDS": str(HEARTBEAT_SECONDS),
        # thousands of sockets open at once on a busy 2-core machine: a login may wait its
        # turn longer than the default 10 s
        "AUTH_TIMEOUT_SECONDS": "30",
        "WS_MAX_CONNECTIONS": room,
        # every soak socket comes from 127.0.0.1, thousands within seconds: lift the per-address
        # handshake limits (the soak measures memory and leaks, not the abuse limits)
        "WS_MAX_UNAUTHENTICATED": room,
        "WS_IP_HANDSHAKE_BURST": room,
        "WS_IP_HANDSHAKES_PER_SEC": room,
        "WS_IP_MAX_UNAUTHENTICATED": room,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "WARNING",
    }


def _spawn(module: str, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [python(), "-m", module], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )


def start_engine(topology: Topology, prefix: str, workdir: Path, n: int) -> Service:
    port = free_port()
    log = workdir / f"engine{n}.log"
    proc = _spawn("parlour_engine", engine_env(topology, prefix, port), log)
    return Service(f"engine{n}", proc, port, log)


def start_gateway(
    topology: Topology, prefix: str, workdir: Path, n: int, public_key: Path, connections: int
) -> Service:
    ports = (free_port(), free_port())
    gateway_id = f"{prefix}gw{n}"
    log = workdir / f"gateway{n}.log"
    env = gateway_env(topology, prefix, gateway_id, ports, public_key, connections)
    proc = _spawn("parlour_gateway", env, log)
    return Service(f"gateway{n}", proc, ports[1], log, ws_port=ports[0])
