"""Where Kafka and Redis are: read from the environment by the services' own settings kit
(`parlour_runtime.ServiceAddresses`: KAFKA_BOOTSTRAP_SERVERS, else KAFKA_HOST:KAFKA_PORT;
REDIS_URL, else REDIS_HOST/REDIS_PORT/REDIS_DB/REDIS_PASSWORD), so the infra starts and
checks exactly what the services will use; and whether something listens there."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from infra.console import InfraError

if TYPE_CHECKING:
    from parlour_runtime import ServiceAddresses

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class KafkaTarget:
    bootstrap: str
    host: str
    port: int

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

    @property
    def startable(self) -> bool:
        return self.host in LOOPBACK and self.password is None


def env_port(name: str, default: int) -> int:
    """A port the infra alone reads (KAFKA_CONTROLLER_PORT)."""
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


def _addresses() -> ServiceAddresses:
    # imported here: `down` runs without the virtualenv, and needs no address
    try:
        from parlour_runtime import ServiceAddresses, SettingsError, load
    except ImportError:
        raise InfraError(
            "parlour_runtime is not importable: run this with the project's virtualenv "
            "(`make install`, then `.venv/bin/python scripts/infra ...`)"
        ) from None
    try:
        return load(ServiceAddresses)
    except SettingsError as exc:
        raise InfraError(str(exc)) from None


def kafka_target() -> KafkaTarget:
    servers = _addresses().bootstrap_servers
    host, port = _split_host_port(servers[0], 9092)
    return KafkaTarget(",".join(servers), host, port)


def redis_target() -> RedisTarget:
    address = _addresses().redis_address
    if address.tls:
        raise InfraError("REDIS_URL uses TLS (rediss://); the infra checks only plain Redis")
    if address.host is None:
        raise InfraError("REDIS_URL is a unix socket; the infra checks only Redis over TCP")
    return RedisTarget(
        host=address.host,
        port=address.port,
        username=address.username,
        password=address.password,
        db=address.db,
        url=address.url,
    )


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
