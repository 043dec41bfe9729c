"""The two ASGI apps of one gateway process: the public one (`/ws`, the browser client, and
the lifespan that starts the clients) and the small operations app (`/health`, `/ready`,
`/metrics`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from parlour_gateway.gateway import Gateway
from parlour_gateway.webclient import mount_web_client


def _gateway_http(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


HttpGateway = Annotated[Gateway, Depends(_gateway_http)]


def create_ws_app(gateway: Gateway) -> WsFastPath:
    """The ASGI app of the public port, as `main.serve` hands it to uvicorn: `/ws` sockets
    go to `gateway.serve` through `WsFastPath`, the one entry point of a socket; the FastAPI
    app behind it runs the lifespan (which starts and stops the gateway) and serves the
    browser client."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = FastAPI(title="parlour-gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    mount_web_client(app)
    return WsFastPath(app, gateway)


class WsFastPath:
    """The ASGI app uvicorn serves: `/ws` sockets go straight to the gateway; everything else
    (lifespan, the web client) to the FastAPI app. `/ws` is deliberately not a FastAPI route:
    a socket lives for hours, and a route would keep its middleware frames, exit stacks and
    dependency results alive the whole time (about 6 KB per socket); the gateway needs none
    of them."""

    def __init__(self, app: FastAPI, gateway: Gateway, path: str = "/ws") -> None:
        self.app = app
        self.gateway = gateway
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == self.path:
            await self.gateway.serve(WebSocket(scope, receive, send))
            return
        await self.app(scope, receive, send)


def create_ops_app(gateway: Gateway) -> FastAPI:
    app = FastAPI(title="parlour-gateway-ops", docs_url=None, redoc_url=None)
    app.state.gateway = gateway

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "gateway_id": gateway.settings.gateway_id}

    @app.get("/ready")
    async def ready(gw: HttpGateway) -> JSONResponse:
        checks = await gw.readiness()
        ok = all(checks.values())
        body: dict[str, object] = {"ready": ok, **checks}
        problems = gw.task_problems()
        if problems:  # which background loop is failing, dead or stalled, and how
            body["failing_tasks"] = problems
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics(gw: HttpGateway) -> Response:
        return Response(generate_latest(gw.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
