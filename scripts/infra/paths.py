"""Where the infra keeps its state: the checkout's .infra/ directory and the broker's sources."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / ".infra"
RUN_DIR = INFRA / "run"
LOG_DIR = INFRA / "logs"
KAFKA_DIR = INFRA / "kafka"
KAFKA_LIBS = KAFKA_DIR / "libs"
KAFKA_DATA = KAFKA_DIR / "data"
KAFKA_CONFIG = KAFKA_DIR / "server.properties"
KAFKA_PID = RUN_DIR / "kafka.pid"
REDIS_PID = RUN_DIR / "redis.pid"
REDIS_DATA = INFRA / "redis"  # the append-only file lives here (appendonlydir/)
ENV_FILE = RUN_DIR / "env"
CLUSTER_ENV_FILE = RUN_DIR / "env.cluster"
"""The cluster topology's addresses: a file of its own, so starting the cluster never points
what reads `ENV_FILE` (tests, `make run`, the benchmarks) away from the single node."""
KAFKA_SRC = ROOT / "scripts" / "kafka"

# the clustered topology (`up --topology cluster`): one directory per node, named by its
# number (Kafka) or its port (Redis); pid files RUN_DIR/kafka-cluster-<n>.pid and
# RUN_DIR/redis-cluster-<port>.pid
KAFKA_CLUSTER_DIR = INFRA / "kafka-cluster"
REDIS_CLUSTER_DIR = INFRA / "redis-cluster"
TOPOLOGY_FILE = RUN_DIR / "topology"  # which topology `up` started last: single | cluster
