"""The development Redis Cluster (`up --topology cluster`): six redis-server processes on
loopback with `cluster-enabled`, each with its own directory (append-only file and
nodes.conf) under .infra/redis-cluster/<port>/, joined once by
`redis-cli --cluster create ... --cluster-replicas 1`: three masters, one replica each."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from infra.addresses import RedisTarget, env_port, port_open
from infra.apt import Need, apt_install
from infra.console import InfraError, say
from infra.paths import LOG_DIR, REDIS_CLUSTER_DIR, RUN_DIR
from infra.processes import is_redis_in, our_pid, rotate_log
from infra.redis_probe import redis_call, redis_ping
from infra.redis_server import redis_command

MASTERS = 3
NODES = MASTERS * 2
HOST = "127.0.0.1"
#: how long a master may be unreachable before its replica is promoted
NODE_TIMEOUT_MS = 5000


@dataclass(frozen=True)
class RedisNode:
    port: int

    @property
    def name(self) -> str:
        return f"redis-{self.port}"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def dir(self) -> Path:
        return REDIS_CLUSTER_DIR / str(self.port)

    @property
    def pid_file(self) -> Path:
        return RUN_DIR / f"redis-cluster-{self.port}.pid"

    @property
    def log(self) -> Path:
        return LOG_DIR / f"redis-cluster-{self.port}.log"

    @property
    def target(self) -> RedisTarget:
        return RedisTarget(HOST, self.port, None, None, 0, f"redis://{self.address}/0")

    def pid(self) -> int | None:
        return our_pid(self.pid_file, is_redis_in(self.dir))


def redis_nodes() -> list[RedisNode]:
    """The nodes, on consecutive ports from CLUSTER_REDIS_PORT (default 17000); each also
    uses its port + 10000 for the cluster bus."""
    first = env_port("CLUSTER_REDIS_PORT", 17000)
    return [RedisNode(first + i) for i in range(NODES)]


def cluster_nodes_setting() -> str:
    """REDIS_CLUSTER_NODES: every node, host:port, comma-separated."""
    return ",".join(node.address for node in redis_nodes())


def cluster_info(node: RedisNode) -> dict[str, str]:
    """CLUSTER INFO of one node as a dict; raises OSError when it does not answer."""
    [reply] = redis_call(node.target, ["CLUSTER", "INFO"])
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    return dict(
        line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#")
    )


def node_role(node: RedisNode) -> str:
    """'master (slots a-b)' or 'replica of host:port', from the node's own CLUSTER NODES."""
    [reply] = redis_call(node.target, ["CLUSTER", "NODES"])
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    lines = [line.split() for line in text.splitlines() if line.strip()]
    address = {fields[0]: fields[1].split("@")[0] for fields in lines}
    for fields in lines:
        if "myself" in fields[2].split(","):
            if "master" in fields[2]:
                slots = " ".join(fields[8:]) or "none"
                return f"master (slots {slots})"
            return f"replica of {address.get(fields[3], fields[3])}"
    return "unknown"


def _not_ready(nodes: list[RedisNode]) -> str | None:
    """Why the cluster is not ready yet, None when it is: every node says cluster_state:ok,
    sees 3 masters and 3 replicas none of which it flags as failing, and every replica is
    connected to its master. (cluster_state:ok alone comes first after a restart, while the
    nodes still flag each other as failing and clients are told of fewer replicas.)"""
    for node in nodes:
        state = cluster_info(node).get("cluster_state")
        if state != "ok":
            return f"{node.name}: cluster_state {state}"
        [reply] = redis_call(node.target, ["CLUSTER", "NODES"])
        text = reply.decode() if isinstance(reply, bytes) else str(reply)
        flags = [line.split()[2].split(",") for line in text.splitlines() if line.strip()]
        bad = [f for f in flags if {"fail", "fail?", "handshake", "noaddr"} & set(f)]
        masters = sum("master" in f for f in flags)
        if bad or masters != MASTERS or len(flags) != NODES:
            return f"{node.name} sees {masters} masters of {len(flags)} nodes, {len(bad)} failing"
        [role] = redis_call(node.target, ["ROLE"])
        if isinstance(role, list) and role and role[0] == b"slave" and role[3] != b"connected":
            return f"{node.name}: replica not yet connected to its master"
    return None


def _start(node: RedisNode, server: str) -> None:
    node.dir.mkdir(parents=True, exist_ok=True)
    rotate_log(node.log)
    command = [
        *redis_command(server, node.port, data_dir=node.dir, log=node.log, pid_file=node.pid_file),
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",  # in --dir: the node's identity and its view of the cluster
        "--cluster-node-timeout",
        str(NODE_TIMEOUT_MS),
    ]
    result = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise InfraError(f"{node.name} did not start: {result.stderr.strip()}")


def _create(nodes: list[RedisNode]) -> None:
    cli = shutil.which("redis-cli")
    if cli is None:
        need = Need("redis-cli", "redis-tools", "joins the Redis Cluster")
        cli = apt_install(need)[need.command]
    say(f"redis  joining {NODES} nodes: {MASTERS} masters, 1 replica each ...")
    addresses = [n.address for n in nodes]
    result = subprocess.run(
        [cli, "--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise InfraError(
            "redis-cli --cluster create failed:\n" + (result.stdout + result.stderr)[-1500:]
        )


def _not_ready_yet(nodes: list[RedisNode]) -> str | None:
    """`_not_ready`, where a node answering LOADING is not ready yet: a replica loads again
    the copy its master sends after it rejoins."""
    try:
        return _not_ready(nodes)
    except InfraError as exc:
        if "LOADING" in str(exc):
            return "a node is loading its data"
        raise


def _not_answering(node: RedisNode) -> str | None:
    """None once the node has its data; a restarted node answers PING and INFO at once but
    LOADING to most other commands while it reads its append-only file."""
    if (why := redis_ping(node.target)) is not None:
        return why
    [reply] = redis_call(node.target, ["INFO", "persistence"])
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    if "loading:1" in text:
        return "loading its append-only file"
    return None


def redis_cluster_up() -> tuple[str, bool]:
    """Start the nodes that are not running, join them when they are new, and wait until
    every node says cluster_state:ok; returns (how, already_up)."""
    nodes = redis_nodes()
    started = time.monotonic()
    missing = [node for node in nodes if node.pid() is None]
    for node in missing:
        for port in (node.port, node.port + 10000):
            if port_open(HOST, port):
                raise InfraError(
                    f"port {port} ({node.name}) is taken by another process; "
                    "set CLUSTER_REDIS_PORT to free ports"
                )
    if missing:
        need = Need("redis-server", "redis-server", "the Redis Cluster")
        server = apt_install(need, instead="run the single-node topology")[need.command]
        say(f"redis  starting {', '.join(n.name for n in missing)} ...")
        for node in missing:
            _start(node, server)
    deadline = time.monotonic() + 60
    for node in nodes:
        while (why := _not_answering(node)) is not None:
            if time.monotonic() > deadline:
                raise InfraError(f"{node.name} did not answer within 60s ({why})")
            time.sleep(0.1)
    infos = [cluster_info(node) for node in nodes]
    if all(info.get("cluster_known_nodes") == "1" for info in infos):
        _create(nodes)  # brand-new nodes; restarted ones rejoin from their nodes.conf
    elif any(info.get("cluster_known_nodes") != str(NODES) for info in infos):
        raise InfraError(
            "the Redis Cluster nodes disagree on its members; `make infra-down` and remove "
            ".infra/redis-cluster/ to start an empty cluster"
        )
    deadline = time.monotonic() + 60
    while (why := _not_ready_yet(nodes)) is not None:
        if time.monotonic() > deadline:
            raise InfraError(f"the Redis Cluster is not ready after 60s: {why}")
        time.sleep(0.2)
    if not missing:
        return "already running (started by this checkout)", True
    return f"started ({NODES} nodes, cluster_state ok in {time.monotonic() - started:.1f}s)", False
