"""One node of the cluster topology at a time, for fault tests (`make chaos`):

    python scripts/infra kill-node kafka-2        # SIGKILL that broker (no clean shutdown)
    python scripts/infra start-node kafka-2       # start it again, wait until all 3 serve
    python scripts/infra kill-node redis-17001
    python scripts/infra start-node redis-17001   # it rejoins (as a replica if it failed over)

Node names are those `status --topology cluster` prints. `start-node` starts every node of
that cluster that is not running (the one killed) and waits as `up` waits."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

from infra.console import InfraError, say
from infra.kafka_cluster import kafka_cluster_up, kafka_nodes
from infra.processes import is_kafka_on, is_redis_in
from infra.redis_cluster import redis_cluster_up, redis_nodes


@dataclass(frozen=True)
class Node:
    name: str
    kind: str  # "kafka" or "redis"
    port: int

    def pid(self) -> int | None:
        for knode in kafka_nodes():
            if knode.name == self.name:
                return knode.pid()
        for rnode in redis_nodes():
            if rnode.name == self.name:
                return rnode.pid()
        return None

    def alive(self, pid: int) -> bool:
        for knode in kafka_nodes():
            if knode.name == self.name:
                return is_kafka_on(knode.config)(pid)
        for rnode in redis_nodes():
            if rnode.name == self.name:
                return is_redis_in(rnode.dir)(pid)
        return False


def cluster_nodes() -> list[Node]:
    """Every node of the cluster topology, Kafka brokers first."""
    kafka = [Node(n.name, "kafka", n.port) for n in kafka_nodes()]
    redis = [Node(n.name, "redis", n.port) for n in redis_nodes()]
    return kafka + redis


def find_node(name: str) -> Node:
    for node in cluster_nodes():
        if name in (node.name, str(node.port)):
            return node
    names = ", ".join(n.name for n in cluster_nodes())
    raise InfraError(f"no cluster node {name!r} (the nodes: {names})")


def kill_node(name: str, sig: signal.Signals = signal.SIGKILL) -> int:
    """Send `sig` (SIGKILL: a crash) to a running node this checkout started and, for
    SIGKILL/SIGTERM, wait until it is gone; returns its pid."""
    node = find_node(name)
    pid = node.pid()
    if pid is None:
        raise InfraError(f"{node.name} is not running (or was not started by this checkout)")
    os.kill(pid, sig)
    if sig in (signal.SIGKILL, signal.SIGTERM):
        deadline = time.monotonic() + 30
        while node.alive(pid):
            if time.monotonic() > deadline:
                raise InfraError(f"{node.name} (pid {pid}) still runs 30s after {sig.name}")
            time.sleep(0.05)
    say(f"{node.name:<12} {sig.name} sent (pid {pid})")
    return pid


def start_node(name: str) -> str:
    """Start the stopped nodes of `name`'s cluster and wait until that cluster is whole."""
    node = find_node(name)
    how, _ = kafka_cluster_up() if node.kind == "kafka" else redis_cluster_up()
    say(f"{node.name:<12} {how}")
    return how
