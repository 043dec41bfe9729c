"""`parlour-gateway`: the WebSocket server and the operations server in one process.

SIGTERM/SIGINT: stop accepting, close every socket with SERVICE_RESTART (1012) so clients
reconnect elsewhere, flush the producer, exit; a hard deadline (SHUTDOWN_TIMEOUT_SECONDS) ends
the process even if a step hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Generator

import uvicorn

from parlour_gateway.app import create_ops_app, create_ws_app
from parlour_gateway.gateway import Gateway
from parlour_gateway.logs import get_logger
from parlour_gateway.settings import GatewaySettings
from parlour_gateway.wsproto import LightWebSocketProtocol
from parlour_runtime import SettingsError, configure_logging, load, log_deprecated_in_use, run_on

log = get_logger("parlour_gateway.main")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the gateway drains sockets first."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve(settings: GatewaySettings) -> None:
    gateway = Gateway(settings)
    ws_config = uvicorn.Config(
        create_ws_app(gateway),
        host=settings.bind_host,
        port=settings.ws_port,
        ws=LightWebSocketProtocol,  # websockets-sansio with lighter per-socket state
        ws_max_size=settings.server_max_frame,
        ws_ping_interval=settings.ws_ping_interval_seconds,
        ws_ping_timeout=settings.ws_ping_timeout_seconds,
        ws_per_message_deflate=settings.ws_per_message_deflate,
        # the client address is decided by WS_TRUSTED_PROXIES alone: uvicorn's own handling
        # would believe X-Forwarded-For from any local peer (FORWARDED_ALLOW_IPS=127.0.0.1)
        proxy_headers=False,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=3,
        backlog=4096,
    )
    ops_config = uvicorn.Config(
        create_ops_app(gateway),
        host=settings.health_bind_host,
        port=settings.ws_health_port,
        proxy_headers=False,
        lifespan="off",
        log_config=None,
        access_log=False,
    )
    ws_server, ops_server = _Server(ws_config), _Server(ops_config)
    loop = asyncio.get_running_loop()
    stopping = False
    tasks: set[asyncio.Task[None]] = set()

    async def shutdown(signame: str) -> None:
        log.info("shutdown_requested", signal=signame, sockets=len(gateway.hub.connections))
        loop.call_later(settings.shutdown_timeout_seconds, _hard_exit)
        await gateway.drain(within=max(1.0, settings.shutdown_timeout_seconds - 5))
        ws_server.should_exit = True
        ops_server.should_exit = True

    def on_signal(sig: signal.Signals) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        tasks.add(loop.create_task(shutdown(sig.name)))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)

    ops_task = asyncio.create_task(ops_server.serve())
    await ws_server.serve()
    ops_server.should_exit = True
    await ops_task
    if not ws_server.started:  # lifespan start-up failed (Kafka/Redis unreachable)
        raise SystemExit(3)


def _hard_exit() -> None:
    log.error("shutdown_deadline_exceeded")
    os._exit(1)


def main() -> None:
    try:
        settings = load(GatewaySettings)
    except SettingsError as exc:
        print(f"parlour-gateway: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    log_deprecated_in_use(GatewaySettings)
    if settings.auth_dev_mode:
        log.warning(
            "AUTH_DEV_MODE_ENABLED",
            detail="token-less logins are accepted: anyone can claim any user id. "
            "Never enable this outside local development.",
            ws_host=settings.bind_host,
            ws_health_host=settings.health_bind_host,
        )
    with contextlib.suppress(KeyboardInterrupt):
        run_on(serve(settings), settings.event_loop)


if __name__ == "__main__":
    main()
