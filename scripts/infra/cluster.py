"""The clustered topology as a whole: `up`, `status` and the list of processes `down` stops,
for the Kafka cluster (kafka_cluster) and the Redis Cluster (redis_cluster) together."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from infra.addresses import port_open
from infra.console import InfraError, say
from infra.kafka_cluster import (
    MIN_INSYNC,
    REPLICATION,
    TOPIC_CONFIGS,
    cluster_bootstrap,
    kafka_cluster_up,
    kafka_nodes,
)
from infra.kafka_probe import (
    broker_ids,
    ensure_topics,
    existing_topics,
    kafka_check,
    service_topics,
)
from infra.paths import CLUSTER_ENV_FILE
from infra.processes import is_kafka_on, is_redis_in
from infra.redis_cluster import (
    HOST,
    cluster_info,
    cluster_nodes_setting,
    node_role,
    redis_cluster_up,
    redis_nodes,
)


def _write_env() -> None:
    first = redis_nodes()[0]
    CLUSTER_ENV_FILE.write_text(
        "# written by scripts/infra up --topology cluster: the addresses of the cluster\n"
        f"KAFKA_BOOTSTRAP_SERVERS={cluster_bootstrap()}\n"
        "# every Redis Cluster node: the services use RedisCluster when this is set (REDIS_URL\n"
        "# then only gives credentials and TLS)\n"
        f"REDIS_CLUSTER_NODES={cluster_nodes_setting()}\n"
        f"REDIS_URL=redis://{first.address}/0\n"
    )


def cluster_up() -> None:
    began = time.monotonic()
    redis_how, redis_was_up = redis_cluster_up()
    say(f"redis  {cluster_nodes_setting()}  {redis_how}")
    kafka_how, kafka_was_up = kafka_cluster_up()
    bootstrap = cluster_bootstrap()
    say(f"kafka  {bootstrap}  {kafka_how}")
    created = ensure_topics(bootstrap, replication=REPLICATION, configs=TOPIC_CONFIGS)
    say(
        "topics "
        + ", ".join(f"{name} ({n})" for name, n in service_topics().items())
        + f", replication {REPLICATION}, min.insync.replicas {MIN_INSYNC}"
        + (f" - created {len(created)}" if created else " - all present")
    )
    _write_env()
    if redis_was_up and kafka_was_up and not created:
        say("everything is already up")
    else:
        say(f"infra up (cluster) in {time.monotonic() - began:.1f}s")
    say(f"use: set -a; . {CLUSTER_ENV_FILE.relative_to(CLUSTER_ENV_FILE.parents[2])}; set +a")


def cluster_status() -> int:
    """One line per node: its role, and up (with the pid this checkout started) or down."""
    healthy = True
    for node in redis_nodes():
        pid = node.pid()
        try:
            state = cluster_info(node).get("cluster_state", "?")
            line = f"{node_role(node)}, cluster_state {state}"
            healthy &= state == "ok"
        except (OSError, InfraError) as exc:
            line = f"DOWN: {exc}"
            healthy = False
        owner = f" (pid {pid})" if pid else " (not started by this checkout)"
        say(f"{node.name:<12} {node.address:<16} {line}" + (owner if "DOWN" not in line else ""))
    bootstrap = cluster_bootstrap()
    in_metadata = broker_ids(bootstrap)
    for knode in kafka_nodes():
        pid = knode.pid()
        if not port_open(HOST, knode.port):
            line = "DOWN: nothing listens" + (" (starting?)" if pid else "")
            healthy = False
        elif knode.node_id not in in_metadata:
            line = "listening, but not in the cluster's metadata"
            healthy = False
        else:
            line = f"broker+controller (quorum voter), up (pid {pid})"
        say(f"{knode.name:<12} 127.0.0.1:{knode.port:<6} {line}")
    if in_metadata:
        why = kafka_check(bootstrap, timeout=15, replication=REPLICATION)
        say("kafka        " + ("produce/consume with acks=all works" if why is None else why))
        healthy &= why is None
        have = existing_topics(bootstrap) or set()
        missing = [t for t in service_topics() if t not in have]
        say("topics       " + ("all present" if not missing else "MISSING: " + ", ".join(missing)))
        healthy &= not missing
    return 0 if healthy else 1


def cluster_processes() -> list[tuple[str, Path, Callable[[int], bool]]]:
    """What `down` stops: every node of both clusters this checkout started."""
    kafka = [(n.name, n.pid_file, is_kafka_on(n.config)) for n in kafka_nodes()]
    redis = [(n.name, n.pid_file, is_redis_in(n.dir)) for n in redis_nodes()]
    return kafka + redis
