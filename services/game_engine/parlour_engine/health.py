"""A tiny HTTP server for probes and scraping: `/health` (the process runs), `/ready` (Kafka
and Redis answer) and `/metrics` (Prometheus text). Plain asyncio: it serves a handful of
GETs per minute, so it needs no framework and shares the engine's event loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from parlour_engine.logging import get_logger
from parlour_engine.metrics import EngineMetrics

ReadyCheck = Callable[[], Awaitable[dict[str, bool]]]

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
            checks = await self._ready_check()
            ready = all(checks.values())
            body = json.dumps({"status": "ready" if ready else "not_ready", "checks": checks})
            return (200 if ready else 503), "application/json", body.encode()
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
