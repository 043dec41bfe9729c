"""Where Redis is, read the same way by every process: `RedisSettings` and the one
effective URL it yields (`RedisSettings.redis_dsn`).

``REDIS_URL`` wins over the parts ``REDIS_HOST``, ``REDIS_PORT``, ``REDIS_DB`` and
``REDIS_PASSWORD``. It may be ``redis://``, ``rediss://`` (TLS) or ``unix://``: it is checked
at start-up by the parser of the redis client that will use it, so a URL accepted here is a
URL the client accepts, the same way in every service.

``REDIS_CLUSTER_NODES`` (comma-separated ``host:port`` seeds) selects a Redis Cluster instead:
the services then speak to it with redis-py's ``RedisCluster``, which discovers every node from
any seed. The credentials and TLS of the effective URL still apply (its user, its password or
``REDIS_PASSWORD``, ``rediss://``); its host, port and database do not (a cluster has database 0
only, and no unix sockets).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, Field, SecretStr, field_validator
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url

_SCHEMES = ("redis://", "rediss://", "unix://")
_ADDRESS_FIELDS = frozenset(
    {"redis_url", "redis_host", "redis_port", "redis_db", "redis_password", "redis_cluster_nodes"}
)


def parse_cluster_nodes(value: str) -> list[tuple[str, int]]:
    """``host:port,host:port`` (an IPv6 host in brackets: ``[::1]:7000``) as pairs; a
    ValueError that names the bad item otherwise."""
    seeds: list[tuple[str, int]] = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"{item!r} is not host:port")
        seeds.append((host, int(port)))
    if not seeds:
        raise ValueError("names no host:port")
    return seeds


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """The effective URL taken apart, for tools that speak to Redis without the client."""

    url: str
    tls: bool
    host: str | None  # None for a unix socket
    port: int
    path: str | None  # the unix socket, else None
    db: int
    username: str | None
    password: str | None


class RedisSettings(BaseModel):
    """The Redis of a process. Inherit it before `ServiceSettings`."""

    redis_url: str | None = Field(
        default=None,
        description="Redis URL: `redis://`, `rediss://` (TLS) or `unix://`; wins over "
        "`REDIS_HOST`/`REDIS_PORT`/`REDIS_DB`/`REDIS_PASSWORD`",
    )
    redis_host: str = Field(default="127.0.0.1", description="Redis, as parts: its host")
    redis_port: int = Field(default=6379, ge=1, le=65535, description="its port")
    redis_db: int = Field(default=0, ge=0, description="its database number")
    redis_password: SecretStr | None = Field(default=None, description="its password; never logged")
    redis_cluster_nodes: str | None = Field(
        default=None,
        description="Redis Cluster: comma-separated `host:port` seed nodes (any few of the "
        "cluster's nodes); when set the services use a cluster client, with the user, password "
        "and TLS of the Redis URL/parts but not their host, port or database",
    )
    redis_key_prefix: str = Field(
        default="",
        description="prefix of every Redis key; the gateways' and the engines' must match",
    )

    @field_validator("redis_url", mode="before")
    @classmethod
    def _blank_redis_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator("redis_cluster_nodes", mode="before")
    @classmethod
    def _blank_cluster_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("redis_cluster_nodes")
    @classmethod
    def _seeds_parse(cls, value: str | None) -> str | None:
        if value is not None:
            parse_cluster_nodes(value)
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_client_accepts(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(_SCHEMES):
            raise ValueError("must start with redis://, rediss:// or unix://")
        try:
            parse_url(value)
        except ValueError as exc:
            # redis-py's messages never echo the URL (which may hold a password)
            raise ValueError(f"not a Redis URL: {exc}") from None
        return value

    @property
    def redis_dsn(self) -> str:
        """The effective URL: REDIS_URL, else one built from the parts."""
        if self.redis_url is not None:
            return self.redis_url
        password = self.redis_password.get_secret_value() if self.redis_password else ""
        auth = f":{quote(password, safe='')}@" if password else ""
        host = f"[{self.redis_host}]" if ":" in self.redis_host else self.redis_host
        return f"redis://{auth}{host}:{self.redis_port}/{self.redis_db}"

    @property
    def redis_address(self) -> RedisAddress:
        """`redis_dsn` taken apart by the client's own parser."""
        url = self.redis_dsn
        parts: dict[str, Any] = dict(parse_url(url))
        unix = parts.get("connection_class") is UnixDomainSocketConnection
        return RedisAddress(
            url=url,
            tls=parts.get("connection_class") is SSLConnection,
            host=None if unix else str(parts.get("host") or "127.0.0.1"),
            port=int(parts.get("port") or 6379),
            path=str(parts["path"]) if unix else None,
            db=int(parts.get("db") or 0),
            username=parts.get("username"),
            password=parts.get("password"),
        )

    @property
    def redis_cluster_seeds(self) -> list[tuple[str, int]]:
        """`REDIS_CLUSTER_NODES` as (host, port) pairs; empty when no cluster is set."""
        nodes = self.redis_cluster_nodes
        return [] if nodes is None else parse_cluster_nodes(nodes)

    @property
    def redis_is_cluster(self) -> bool:
        return self.redis_cluster_nodes is not None

    @property
    def redis_address_from_env(self) -> bool:
        """True when any of the address variables was set (not all defaults)."""
        return bool(self.model_fields_set & _ADDRESS_FIELDS)
