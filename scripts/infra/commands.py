"""`up`, `status`, `down` and `tools`: the command line of the infra package."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import sys
import time
from collections.abc import Iterator
from urllib.parse import quote

import infra
from infra.addresses import KafkaTarget, RedisTarget, kafka_target, port_open, redis_target
from infra.cluster import cluster_processes, cluster_status, cluster_up
from infra.console import InfraError, say
from infra.kafka_broker import kafka_up
from infra.kafka_probe import ensure_topics, existing_topics, kafka_check, service_topics
from infra.nodes import kill_node, start_node
from infra.paths import (
    CLUSTER_ENV_FILE,
    ENV_FILE,
    KAFKA_PID,
    LOG_DIR,
    REDIS_PID,
    RUN_DIR,
    TOPOLOGY_FILE,
)
from infra.processes import cmdline, is_our_kafka, is_our_redis, our_pid, stop_all
from infra.redis_probe import redis_persistence, redis_ping
from infra.redis_server import redis_up
from infra.tools import ensure_test_tools


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    """One `up`/`down` at a time per checkout."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with (RUN_DIR / "infra.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _write_env(kafka: KafkaTarget, redis: RedisTarget) -> None:
    ENV_FILE.write_text(
        "# written by scripts/infra up: the addresses the services should use\n"
        f"KAFKA_BOOTSTRAP_SERVERS={quote(kafka.bootstrap, safe=':,.[]')}\n"
        f"REDIS_URL={redis.url}\n"
    )


def _say_persistence(redis: RedisTarget) -> None:
    line = redis_persistence(redis)
    say(f"       {line}")
    pid = our_pid(REDIS_PID, is_our_redis)
    ours = pid is not None and f":{redis.port}" in " ".join(cmdline(pid))
    if not line.startswith("AOF on") and ours:
        # started by an older infra, before the append-only file: `up` leaves it running
        say(
            "       (started without an append-only file by an older scripts/infra; "
            "`make infra-down && make infra-up` restarts it with one, empty)"
        )


TOPOLOGIES = ("single", "cluster")


def _recorded_topology() -> str:
    """The topology `up` started last in this checkout (single when none)."""
    try:
        recorded = TOPOLOGY_FILE.read_text().strip()
    except OSError:
        return "single"
    return recorded if recorded in TOPOLOGIES else "single"


def cmd_up(topology: str) -> None:
    if topology == "cluster":
        with _lock():
            cluster_up()
            TOPOLOGY_FILE.write_text("cluster\n")
        return
    kafka, redis = kafka_target(), redis_target()
    with _lock():
        began = time.monotonic()
        redis_how, redis_was_up = redis_up(redis)
        say(f"redis  {redis.url:<28} {redis_how}")
        _say_persistence(redis)
        kafka_how, kafka_was_up = kafka_up(kafka)
        say(f"kafka  {kafka.bootstrap:<28} {kafka_how}")
        created = ensure_topics(kafka.bootstrap)
        say(
            "topics "
            + ", ".join(f"{name} ({n})" for name, n in service_topics().items())
            + (f" - created {len(created)}" if created else " - all present")
        )
        _write_env(kafka, redis)
        TOPOLOGY_FILE.write_text("single\n")
    if redis_was_up and kafka_was_up and not created:
        say("everything is already up")
    else:
        say(f"infra up in {time.monotonic() - began:.1f}s")
    say(f"use: KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap} REDIS_URL={redis.url}")


def cmd_status(topology: str | None) -> int:
    if (topology or _recorded_topology()) == "cluster":
        return cluster_status()
    kafka, redis = kafka_target(), redis_target()
    healthy = True
    rpid = our_pid(REDIS_PID, is_our_redis)
    why = redis_ping(redis)
    owner = f"started by this checkout, pid {rpid}" if rpid else "not started by this checkout"
    say(f"redis  {redis.url:<28} " + (f"up ({owner})" if why is None else f"DOWN: {why}"))
    healthy &= why is None
    if why is None:
        _say_persistence(redis)
    kpid = our_pid(KAFKA_PID, is_our_kafka)
    owner = f"started by this checkout, pid {kpid}" if kpid else "not started by this checkout"
    if port_open(kafka.host, kafka.port):
        why = kafka_check(kafka.bootstrap, timeout=15)
    else:
        why = "nothing listens" + (" (starting?)" if kpid else "")
    say(f"kafka  {kafka.bootstrap:<28} " + (f"up ({owner})" if why is None else f"DOWN: {why}"))
    healthy &= why is None
    if why is None:
        have = existing_topics(kafka.bootstrap) or set()
        missing = [t for t in service_topics() if t not in have]
        say("topics " + ("all present" if not missing else "MISSING: " + ", ".join(missing)))
        healthy &= not missing
    return 0 if healthy else 1


def cmd_down(topology: str | None) -> None:
    """Stop what this checkout started: both topologies, or the one named."""
    single = [("kafka", KAFKA_PID, is_our_kafka), ("redis", REDIS_PID, is_our_redis)]
    cluster = cluster_processes()
    with _lock():
        if topology != "cluster":
            stop_all(single, grace=45)
            ENV_FILE.unlink(missing_ok=True)
        if topology != "single":
            # quietly when nothing of the cluster runs: most checkouts never start one
            running = [p for p in cluster if our_pid(p[1], p[2]) is not None]
            if running or topology == "cluster":
                stop_all(cluster, grace=45)
            CLUSTER_ENV_FILE.unlink(missing_ok=True)
        if topology in (None, _recorded_topology()):
            TOPOLOGY_FILE.unlink(missing_ok=True)


def cmd_tools() -> None:
    ensure_test_tools()


def main(argv: list[str] | None = None) -> int:
    doc = infra.__doc__ or ""
    parser = argparse.ArgumentParser(prog="infra", description=doc.splitlines()[0])
    parser.add_argument(
        "command", choices=["up", "down", "status", "tools", "kill-node", "start-node"]
    )
    parser.add_argument(
        "node", nargs="?", help="kill-node/start-node: a cluster node, e.g. kafka-2, redis-17001"
    )
    parser.add_argument(
        "--topology",
        choices=TOPOLOGIES,
        default=None,
        help="single (default for up): one broker, one Redis; cluster: 3 Kafka brokers and a "
        "Redis Cluster of 3 masters and 3 replicas. status: the one `up` started last; "
        "down: both",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            cmd_up(args.topology or "single")
        elif args.command == "down":
            cmd_down(args.topology)
        elif args.command == "tools":
            cmd_tools()
        elif args.command in ("kill-node", "start-node"):
            if args.node is None:
                parser.error(f"{args.command} needs a node name (see `status --topology cluster`)")
            if args.command == "kill-node":
                kill_node(args.node)
            else:
                start_node(args.node)
        else:
            return cmd_status(args.topology)
    except InfraError as exc:
        print(f"infra {args.command}: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print(f"infra {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
