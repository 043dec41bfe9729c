"""The development Kafka cluster (`up --topology cluster`): three KRaft nodes on loopback, each
broker and controller in one JVM, the three controllers a static quorum, every node with its
own storage under .infra/kafka-cluster/<n>/ formatted with one cluster id."""

from __future__ import annotations

import os
import string
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from infra.addresses import env_port, port_open
from infra.console import InfraError, say
from infra.kafka_broker import ensure_java_and_jars, format_storage, new_cluster_id, spawn_broker
from infra.kafka_probe import broker_ids, kafka_check
from infra.paths import KAFKA_CLUSTER_DIR, KAFKA_SRC, LOG_DIR, RUN_DIR
from infra.processes import is_kafka_on, our_pid, tail

NODES = 3
HOST = "127.0.0.1"
#: replicas of every Parlour topic, and how many must have a record before acks=all returns
REPLICATION = 3
MIN_INSYNC = 2
TOPIC_CONFIGS = {"min.insync.replicas": str(MIN_INSYNC)}
# three JVMs on a small machine: less heap each than the single broker's 512 MB
HEAP = "-Xms192m -Xmx384m"


@dataclass(frozen=True)
class KafkaNode:
    node_id: int
    port: int
    controller_port: int

    @property
    def name(self) -> str:
        return f"kafka-{self.node_id}"

    @property
    def dir(self) -> Path:
        return KAFKA_CLUSTER_DIR / str(self.node_id)

    @property
    def config(self) -> Path:
        return self.dir / "server.properties"

    @property
    def pid_file(self) -> Path:
        return RUN_DIR / f"kafka-cluster-{self.node_id}.pid"

    @property
    def log(self) -> Path:
        return LOG_DIR / f"kafka-cluster-{self.node_id}.log"

    def pid(self) -> int | None:
        return our_pid(self.pid_file, is_kafka_on(self.config))


def kafka_nodes() -> list[KafkaNode]:
    """The nodes, on consecutive ports from CLUSTER_KAFKA_PORT (default 19092) and
    CLUSTER_KAFKA_CONTROLLER_PORT (default 19192)."""
    port = env_port("CLUSTER_KAFKA_PORT", 19092)
    controller = env_port("CLUSTER_KAFKA_CONTROLLER_PORT", 19192)
    return [KafkaNode(i + 1, port + i, controller + i) for i in range(NODES)]


def cluster_bootstrap() -> str:
    return ",".join(f"{HOST}:{node.port}" for node in kafka_nodes())


def _write_config(node: KafkaNode, voters: str) -> None:
    template = string.Template((KAFKA_SRC / "cluster.properties").read_text())
    node.dir.mkdir(parents=True, exist_ok=True)
    node.config.write_text(
        template.substitute(
            node_id=node.node_id,
            voters=voters,
            host=HOST,
            port=node.port,
            controller_port=node.controller_port,
            data_dir=node.dir / "data",
        )
    )


def _cluster_id() -> str:
    """One id for every node's storage, kept beside them so a node formatted later (its
    directory removed) joins the same cluster."""
    path = KAFKA_CLUSTER_DIR / "cluster.id"
    if path.exists():
        return path.read_text().strip()
    KAFKA_CLUSTER_DIR.mkdir(parents=True, exist_ok=True)
    cluster_id = new_cluster_id()
    path.write_text(cluster_id + "\n")
    return cluster_id


def kafka_cluster_up() -> tuple[str, bool]:
    """Start the nodes that are not running and wait until the three brokers serve a
    produce (acks=all) and a consume; returns (how, already_up)."""
    nodes = kafka_nodes()
    bootstrap = cluster_bootstrap()
    running = {node.node_id: node.pid() for node in nodes}
    if all(running.values()) and kafka_check(bootstrap, 15, REPLICATION) is None:
        return "already running (started by this checkout)", True
    missing = [node for node in nodes if running[node.node_id] is None]
    for node in missing:
        for port in (node.port, node.controller_port):
            if port_open(HOST, port):
                raise InfraError(
                    f"port {port} ({node.name}) is taken by another process; set "
                    "CLUSTER_KAFKA_PORT / CLUSTER_KAFKA_CONTROLLER_PORT to free ports"
                )
    procs: dict[int, subprocess.Popen[bytes]] = {}
    if missing:
        ensure_java_and_jars()
        voters = ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in nodes)
        cluster_id = _cluster_id()
        say(f"kafka  starting {', '.join(n.name for n in missing)} on {bootstrap} ...")
        for node in missing:
            _write_config(node, voters)
            format_storage(node.config, node.dir / "data", cluster_id)
        for node in missing:
            procs[node.node_id] = spawn_broker(node.config, node.dir, node.log, node.pid_file, HEAP)
    return _wait_ready(nodes, procs), False


def _wait_ready(nodes: list[KafkaNode], procs: dict[int, subprocess.Popen[bytes]]) -> str:
    bootstrap = cluster_bootstrap()
    started = time.monotonic()
    timeout = float(os.environ.get("KAFKA_START_TIMEOUT", "180"))
    why = "not started"
    while time.monotonic() - started < timeout:
        for node in nodes:
            proc = procs.get(node.node_id)
            # right after the fork a child still shows python's command line: ask Popen
            gone = proc.poll() is not None if proc is not None else node.pid() is None
            if gone:
                node.pid_file.unlink(missing_ok=True)
                raise InfraError(
                    f"{node.name} exited during start-up; last lines of "
                    f".infra/logs/{node.log.name}:\n{tail(node.log)}"
                )
        if all(port_open(HOST, node.port) for node in nodes):
            brokers = broker_ids(bootstrap)
            if len(brokers) < NODES:
                why = f"{len(brokers)} of {NODES} brokers in the metadata"
            else:
                why = kafka_check(bootstrap, 20, REPLICATION) or ""
                if not why:
                    return f"started ({NODES} brokers, ready in {time.monotonic() - started:.1f}s)"
        time.sleep(0.5)
    raise InfraError(
        f"the Kafka cluster did not become usable within {timeout:.0f}s ({why}); "
        f"see .infra/logs/kafka-cluster-<n>.log"
    )
