"""What the suite runs against: a local stack it starts (real gateway and engine processes on
their own topics and key prefix, removed afterwards) or a remote deployment named by its
gateway URLs, with tokens signed by the key the deployment trusts."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from redis.exceptions import RedisError

from bench.support import PYTHON, ROOT, delete_prefix, free_port, stop
from parlour_gateway.dev_tokens import generate_keypair
from parlour_protocol.v1 import Topics

BENCH_GATEWAY_ENV = {
    # the load comes from one address, all at once: lift the per-address and per-socket limits
    "WS_IP_HANDSHAKE_BURST": "100000",
    "WS_IP_HANDSHAKES_PER_SEC": "100000",
    "WS_IP_MAX_UNAUTHENTICATED": "100000",
    "WS_MAX_UNAUTHENTICATED": "100000",
    "WS_MAX_CONNECTIONS": "100000",
    "WS_RATE_LIMIT_PER_SEC": "1000",
    "WS_RATE_LIMIT_BURST": "1000",
    # per-hop timestamps on the commands, observed in parlour_gateway_hop_seconds (bench/hops.py);
    # a gateway without the setting ignores it
    "GATEWAY_HOP_TIMESTAMPS": "true",
}
BENCH_ENGINE_ENV = {"ENGINE_TURN_TIMEOUT_SECONDS": "3600"}


@dataclass
class Target:
    """Gateway URLs and a way to make a token for any user id."""

    urls: list[str]
    private_key: str
    issuer: str | None = None
    audience: str | None = None
    kafka: str = ""
    prefix: str = ""
    gateway_pids: list[int] = field(default_factory=list)
    engine_pids: list[int] = field(default_factory=list)
    metrics_urls: list[str] = field(default_factory=list)
    """the gateways' Prometheus endpoints, read for the per-hop table (none: no table)"""

    _key: rsa.RSAPrivateKey | None = field(default=None, init=False, repr=False)

    def token(self, user_id: str) -> str:
        """An RS256 JWT for `user_id` (claims as `parlour_gateway.dev_tokens.make_token`
        writes them). The key is loaded once: loading a PEM checks the key, which costs tens
        of milliseconds, and thousands of sockets need a token each."""
        if self._key is None:
            key = serialization.load_pem_private_key(self.private_key.encode(), password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError("the private key is not an RSA key (RS256 needs one)")
            self._key = key
        now = int(time.time())
        claims: dict[str, object] = {
            "sub": user_id,
            "iat": now,
            "exp": now + 4 * 3600,
            "roles": ["user"],
            "username": user_id,
        }
        if self.issuer is not None:
            claims["iss"] = self.issuer
        if self.audience is not None:
            claims["aud"] = self.audience
        signing = f"{_b64(_JWT_HEADER)}.{_b64(json.dumps(claims).encode())}"
        signature = self._key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing}.{_b64(signature)}"


_JWT_HEADER = b'{"alg":"RS256","typ":"JWT"}'


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Service:
    """One service process, its health port and its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    health_port: int
    log: IO[bytes]
    port: int = 0

    def wait_ready(self, within: float = 120) -> None:
        deadline = time.monotonic() + within
        url = f"http://127.0.0.1:{self.health_port}/ready"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready in {within}s: {self.tail()}")

    def tail(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-2000:]


def _start(name: str, module: str, env: dict[str, str], work: Path, port: int = 0) -> Service:
    health = int(env.get("WS_HEALTH_PORT") or env.get("ENGINE_HEALTH_PORT") or 0)
    log = (work / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        [PYTHON, "-m", module], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
    )
    return Service(name, proc, health, log, port)


async def _create_topics(kafka: str, prefix: str) -> None:
    topics = Topics(prefix=prefix).with_partitions()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka, request_timeout_ms=15_000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, p, 1) for n, p in topics.items()])
        for _ in range(300):
            described = await admin.describe_topics(list(topics))
            if all(
                t["error_code"] == 0 and all(p["leader"] >= 0 for p in t["partitions"])
                for t in described
            ):
                return
            await asyncio.sleep(0.1)
        raise RuntimeError("topics not ready")
    finally:
        await admin.close()


async def _delete_topics(kafka: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka, request_timeout_ms=15_000)
    await admin.start()
    try:
        await admin.delete_topics(list(Topics(prefix=prefix).with_partitions()))
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def local_stack(
    *, kafka: str, redis_url: str, gateways: int, engines: int
) -> AsyncIterator[Target]:
    """`engines` engine and `gateways` gateway processes on fresh topics and key prefix."""
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    work = Path(tempfile.mkdtemp(prefix="parlour-bench-"))
    private, public = generate_keypair(work / "jwt")
    await _create_topics(kafka, prefix)
    common = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "KAFKA_TOPIC_PREFIX": prefix,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "WARNING",
    }
    services: list[Service] = []
    try:
        for i in range(engines):
            env = {
                **common,
                **BENCH_ENGINE_ENV,
                "ENGINE_GROUP_ID": f"{prefix}engine",
                "ENGINE_HEALTH_HOST": "127.0.0.1",
                "ENGINE_HEALTH_PORT": str(free_port()),
            }
            services.append(_start(f"engine{i + 1}", "parlour_engine", env, work))
        for i in range(gateways):
            port = free_port()
            env = {
                **common,
                **BENCH_GATEWAY_ENV,
                "WS_HOST": "127.0.0.1",
                "WS_PORT": str(port),
                "WS_HEALTH_HOST": "127.0.0.1",
                "WS_HEALTH_PORT": str(free_port()),
                "GATEWAY_ID": f"bench-gw{i + 1}-{prefix[5:11]}",
                "JWT_PUBLIC_KEY_PATH": str(public),
            }
            services.append(_start(f"gateway{i + 1}", "parlour_gateway", env, work, port))
        for service in services:
            await asyncio.to_thread(service.wait_ready)
        gws = [s for s in services if s.port]
        yield Target(
            urls=[f"ws://127.0.0.1:{s.port}/ws" for s in gws],
            private_key=private.read_text(),
            kafka=kafka,
            prefix=prefix,
            gateway_pids=[s.proc.pid for s in gws],
            engine_pids=[s.proc.pid for s in services if not s.port],
            metrics_urls=[f"http://127.0.0.1:{s.health_port}/metrics" for s in gws],
        )
    finally:
        await asyncio.gather(*(asyncio.to_thread(stop, s.proc, 20) for s in services))
        for service in services:
            service.log.close()
        with contextlib.suppress(KafkaError):
            await _delete_topics(kafka, prefix)
        try:
            await delete_prefix(redis_url, prefix)
        except RedisError as exc:  # the figures matter more than the clean-up: say, go on
            print(f"bench: keys {prefix}* not all removed: {exc}", flush=True)
        shutil.rmtree(work, ignore_errors=True)
