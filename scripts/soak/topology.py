"""Where the soak runs: the single-node topology (one broker, one Redis) or the clustered one
(3 brokers, a Redis Cluster of 3 masters and 3 replicas), started with scripts/infra when it
does not answer; the soak's own topics; the Redis masters it samples."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from infra.kafka_cluster import REPLICATION, TOPIC_CONFIGS, cluster_bootstrap
from infra.paths import ENV_FILE, TOPOLOGY_FILE
from infra.redis_cluster import cluster_nodes_setting, redis_nodes

from parlour_protocol.v1 import Topics

ROOT = Path(__file__).resolve().parents[2]
SINGLE_KAFKA = "127.0.0.1:9092"
SINGLE_REDIS = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Topology:
    name: str  # single | cluster
    kafka: str
    redis_url: str
    """one node's URL (the seed on a cluster)"""
    redis_cluster_nodes: str | None
    """REDIS_CLUSTER_NODES for the services (cluster only)"""
    replication: int
    topic_configs: dict[str, str]

    def service_env(self) -> dict[str, str]:
        env = {"KAFKA_BOOTSTRAP_SERVERS": self.kafka, "REDIS_URL": self.redis_url}
        if self.redis_cluster_nodes:
            env["REDIS_CLUSTER_NODES"] = self.redis_cluster_nodes
        return env


def _answers(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


def _redis_address(url: str) -> str:
    return url.split("//", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]


def _infra_up(topology: str) -> None:
    """`python scripts/infra up [--topology cluster]`, leaving .infra/run/env and
    .infra/run/topology as they were: other users of this checkout (tests) read them, and
    the soak passes its addresses to its services itself."""
    saved = {path: path.read_bytes() for path in (ENV_FILE, TOPOLOGY_FILE) if path.exists()}
    command = [sys.executable, str(ROOT / "scripts" / "infra"), "up"]
    if topology == "cluster":
        command += ["--topology", "cluster"]
    try:
        subprocess.run(command, cwd=ROOT, check=True, timeout=600)
    finally:
        for path, content in saved.items():
            tmp = path.with_suffix(".soak-tmp")
            tmp.write_bytes(content)
            tmp.replace(path)


def resolve(name: str, kafka: str | None, redis_url: str | None) -> Topology:
    """The addresses of `name`, started with scripts/infra unless given or answering."""
    if name == "cluster":
        nodes = cluster_nodes_setting()
        topology = Topology(
            "cluster",
            kafka or cluster_bootstrap(),
            redis_url or f"redis://{redis_nodes()[0].address}/0",
            nodes,
            REPLICATION,
            dict(TOPIC_CONFIGS),
        )
        needed = [*topology.kafka.split(","), *nodes.split(",")]
    else:
        topology = Topology("single", kafka or SINGLE_KAFKA, redis_url or SINGLE_REDIS, None, 1, {})
        needed = [*topology.kafka.split(","), _redis_address(topology.redis_url)]
    if not all(_answers(address) for address in needed):
        if kafka or redis_url:
            raise SystemExit(f"soak: nothing answers at {', '.join(needed)}")
        print(f"soak: starting the {name} topology (scripts/infra up)", flush=True)
        _infra_up(name)
    return topology


async def create_topics(topology: Topology, prefix: str) -> list[str]:
    """The soak's own topics (its prefix), replicated as the topology's are; waits until
    every partition has a leader."""
    wanted = Topics(prefix=prefix).with_partitions()
    admin = AIOKafkaAdminClient(bootstrap_servers=topology.kafka, request_timeout_ms=30_000)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    name, partitions, topology.replication, topic_configs=topology.topic_configs
                )
                for name, partitions in wanted.items()
            ]
        )
        deadline = time.monotonic() + 60
        while True:
            described = await admin.describe_topics(list(wanted))
            if all(
                t["error_code"] == 0
                and len(t["partitions"]) == wanted[t["topic"]]
                and all(p["leader"] >= 0 for p in t["partitions"])
                for t in described
            ):
                return list(wanted)
            if time.monotonic() > deadline:
                raise RuntimeError(f"soak topics not ready: {described}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def delete_topics(topology: Topology, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=topology.kafka, request_timeout_ms=30_000)
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


async def masters(topology: Topology) -> list[aioredis.Redis]:
    """A client per Redis master: every master of the cluster, or the one Redis."""
    seed = aioredis.from_url(topology.redis_url)
    if topology.redis_cluster_nodes is None:
        return [seed]
    try:
        raw = await seed.execute_command("CLUSTER", "NODES")  # type: ignore[no-untyped-call]
    finally:
        await seed.aclose()
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    clients = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 2 and "master" in fields[2].split(",") and "fail" not in fields[2]:
            address = fields[1].split("@", 1)[0]
            clients.append(aioredis.from_url(f"redis://{address}/0"))
    return clients


def free_port() -> int:
    """A free port below the ephemeral range (as the test harnesses pick theirs)."""
    import random

    rng = random.Random()
    for _ in range(200):
        port = rng.randint(20_000, 32_000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000")


def python() -> str:
    """The project's virtualenv Python (the services and the load processes run on it)."""
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else (shutil.which("python3") or sys.executable)
