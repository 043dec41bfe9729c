"""A tiny HTTP server for probes and scraping: `/health` (the process runs), `/ready` (Kafka
and Redis answer, every background task is alive) and `/metrics` (Prometheus text); and the
check that warns when Redis may evict keys. Plain asyncio: it serves a handful of GETs per
minute, so it needs no framework and shares the engine's event loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError, ResponseError

from parlour_engine.logging import get_logger
from parlour_engine.metrics import EngineMetrics
from parlour_runtime.redis_client import AnyRedis


@dataclass(frozen=True)
class Readiness:
    """What `/ready` answers: 200 when every check passed and every task is "ok"; warnings
    are reported without failing the probe (they need an operator, not a restart)."""

    checks: dict[str, bool]
    tasks: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return all(self.checks.values()) and all(v == "ok" for v in self.tasks.values())

    def body(self) -> bytes:
        return json.dumps(
            {
                "status": "ready" if self.ready else "not_ready",
                "checks": self.checks,
                "tasks": self.tasks,
                "warnings": self.warnings,
            }
        ).encode()


ReadyCheck = Callable[[], Awaitable[Readiness]]

_log = get_logger(__name__)
_MAX_REQUEST_BYTES = 8192
_READ_TIMEOUT_SECONDS = 5.0


class HealthServer:
    def __init__(
        self, host: str, port: int, metrics: EngineMetrics, ready_check: ReadyCheck
    ) -> None:
        self._host = host
        self._port = port
        self._metrics = metrics
        self._ready_check = ready_check
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0 in tests)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)
        _log.info("health_listening", host=self._host, port=self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_SECONDS)
            if len(head) > _MAX_REQUEST_BYTES:
                raise ValueError("request head too large")
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            status, content_type, body = await self._route(method, target.split("?", 1)[0])
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            status, content_type, body = 400, "text/plain", b"bad request\n"
        try:
            writer.write(
                f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode("latin-1")
                + body
            )
            await writer.drain()
        except ConnectionError:
            pass  # the prober went away; nothing to answer
        finally:
            writer.close()

    async def _route(self, method: str, path: str) -> tuple[int, str, bytes]:
        if method != "GET":
            return 405, "text/plain", b"method not allowed\n"
        if path == "/health":
            return 200, "application/json", b'{"status":"ok"}'
        if path == "/ready":
            readiness = await self._ready_check()
            return (200 if readiness.ready else 503), "application/json", readiness.body()
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self._metrics.registry)
        return 404, "text/plain", b"not found\n"


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


async def redis_eviction_policy(redis: AnyRedis) -> str:
    """Redis's `maxmemory-policy`. Anything but `noeviction` lets Redis drop keys (room state,
    msg_id records, timers) under memory pressure. A managed Redis may refuse CONFIG: then
    INFO memory, which reports the same policy."""
    try:
        reply = await redis.config_get("maxmemory-policy")
    except ResponseError:
        info = await redis.info("memory")
        return str(info.get("maxmemory_policy", "unknown"))
    value: object = reply.get("maxmemory-policy", "unknown")
    return value.decode() if isinstance(value, bytes) else str(value)


async def eviction_warnings(redis: AnyRedis, metrics: EngineMetrics) -> list[str]:
    """A warning when Redis may evict keys (sets the gauge either way); none when Redis
    cannot tell. Redis that evicts loses rooms, msg_id records and timers silently."""
    try:
        policy = await asyncio.wait_for(redis_eviction_policy(redis), 2)
    except (RedisError, OSError, TimeoutError) as exc:
        _log.warning("redis_policy_unknown", error=f"{type(exc).__name__}: {exc}")
        return []
    evicting = policy != "noeviction"
    metrics.redis_evicting.set(1 if evicting else 0)
    if not evicting:
        return []
    return [
        f"redis maxmemory-policy is {policy}, not noeviction: Redis may drop room state "
        "under memory pressure"
    ]
