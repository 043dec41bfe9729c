"""Where Kafka and Redis are: read from the environment, or the default loopback ports."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from infra.console import InfraError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class KafkaTarget:
    bootstrap: str
    host: str
    port: int
    from_env: bool

    @property
    def startable(self) -> bool:
        """Only a single loopback address can be started here."""
        return "," not in self.bootstrap and self.host in LOOPBACK


@dataclass(frozen=True)
class RedisTarget:
    host: str
    port: int
    username: str | None
    password: str | None
    db: int
    url: str
    from_env: bool

    @property
    def startable(self) -> bool:
        return self.host in LOOPBACK and self.password is None


def env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise InfraError(f"{name}={raw!r} is not a TCP port")
    return int(raw)


def _split_host_port(address: str, default_port: int) -> tuple[str, int]:
    host, sep, port = address.strip().rpartition(":")
    if not sep:
        return address.strip(), default_port
    if not port.isdigit():
        raise InfraError(f"{address!r} is not host:port")
    return host.strip("[]"), int(port)


def kafka_target() -> KafkaTarget:
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if env:
        first = env.split(",")[0]
        host, port = _split_host_port(first, 9092)
        return KafkaTarget(env, host, port, from_env=True)
    port = env_port("KAFKA_PORT", 9092)
    return KafkaTarget(f"127.0.0.1:{port}", "127.0.0.1", port, from_env=False)


def redis_target() -> RedisTarget:
    url = os.environ.get("REDIS_URL", "").strip()
    if url:
        parts = urlsplit(url)
        if parts.scheme not in {"redis", "rediss"}:
            raise InfraError(f"REDIS_URL={url!r}: only redis:// URLs are supported here")
        if parts.scheme == "rediss":
            raise InfraError("REDIS_URL uses TLS (rediss://); the infra checks only plain Redis")
        db_text = parts.path.lstrip("/") or "0"
        password = unquote(parts.password) if parts.password else None
        return RedisTarget(
            host=parts.hostname or "127.0.0.1",
            username=unquote(parts.username) if parts.username else None,
            port=parts.port or 6379,
            password=password,
            db=int(db_text) if db_text.isdigit() else 0,
            url=url,
            from_env=True,
        )
    host = os.environ.get("REDIS_HOST", "").strip()
    port = env_port("REDIS_PORT", 6379)
    from_env = bool(host) or "REDIS_PORT" in os.environ
    host = host or "127.0.0.1"
    return RedisTarget(host, port, None, None, 0, f"redis://{host}:{port}/0", from_env)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
