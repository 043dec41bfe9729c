"""What the benchmarks share (bench_engine, bench_gateway, bench_protocol, hostile_mix): the
Kafka and Redis they run against, the services' Python, free ports, stopping a service,
reading a process's CPU time and memory, and percentiles.

Imported by name: a benchmark run as `python scripts/<bench>.py` has scripts/ on its path.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
"""The project's virtualenv Python, for the services a benchmark starts."""

DEFAULT_KAFKA = "127.0.0.1:9092"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def infra_env() -> dict[str, str]:
    """The environment, completed by the addresses `make infra-up` settled on (its
    .infra/run/env file); a variable set in the environment wins."""
    env = dict(os.environ)
    env_file = ROOT / ".infra" / "run" / "env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and not name.startswith("#"):
                env.setdefault(name.strip(), value.strip())
    return env


def kafka_bootstrap() -> str:
    """KAFKA_BOOTSTRAP_SERVERS from the environment or `make infra-up`, else the default."""
    return infra_env().get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_KAFKA


def redis_url() -> str:
    """REDIS_URL from the environment or `make infra-up`, else the default."""
    return infra_env().get("REDIS_URL") or DEFAULT_REDIS


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, then SIGKILL when the process has not exited within `grace` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far. OSError when it is gone."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """The process's resident memory. OSError when it is gone."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` 0.5 for the median, 0.99 for p99); NaN for
    no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def redis_client(url: str) -> Any:
    """An asyncio Redis client for `url`: a cluster client when REDIS_CLUSTER_NODES is set
    (`make infra-up TOPOLOGY=cluster` writes it), which follows MOVED and scans every node."""
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import RedisCluster

    if infra_env().get("REDIS_CLUSTER_NODES"):
        return RedisCluster.from_url(url)
    return aioredis.from_url(url)


async def delete_prefix(url: str, prefix: str) -> int:
    """Remove every Redis key under `prefix`, one key per command (keys of different cluster
    slots never share one) and one command at a time; returns how many."""
    client = redis_client(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        removed = 0
        for key in keys:
            removed += int(await client.unlink(key))
        return removed
    finally:
        await client.aclose()


def room_chat_event(room_id: str, seq: int, user_ids: list[str]) -> tuple[bytes, Any]:
    """(value, headers) of a 64-character lobby chat line of `room_id` at `seq` for
    `user_ids`, as the engines write event records (the frame as value, routing in headers):
    what the fan-out benchmarks push through a gateway."""
    from datetime import UTC, datetime

    from parlour_protocol.v1 import Audience, AudienceKind, EventEnvelope
    from parlour_protocol.v1.chat import ChatChannel, ChatMessage
    from parlour_protocol.v1.records import event_record

    payload = ChatMessage(
        room_id=room_id,
        channel=ChatChannel.LOBBY,
        message_id=uuid.uuid4().hex,
        user_id="bench",
        username="bench",
        content="x" * 64,
        timestamp=datetime.now(UTC),
        seq=seq,
    )
    envelope = EventEnvelope(
        type=payload.type,
        room_id=room_id,
        seq=seq,
        payload=payload,
        audience=Audience(kind=AudienceKind.ROOM, user_ids=user_ids),
    )
    return event_record(envelope)
