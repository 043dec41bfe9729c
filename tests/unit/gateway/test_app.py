"""The public ASGI app as production builds it (`create_ws_app`, what `main.serve` hands to
uvicorn): `/ws` sockets reach `Gateway.serve` through the fast path, the only way in; the
lifespan starts and stops the gateway; other paths are the FastAPI app's."""

from __future__ import annotations

from typing import cast

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from parlour_gateway.app import create_ws_app
from parlour_gateway.gateway import Gateway


class FakeGateway:
    """What the public app calls on a gateway, recorded."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def start(self) -> None:
        self.calls.append("start")

    async def stop(self) -> None:
        self.calls.append("stop")

    async def serve(self, ws: WebSocket) -> None:
        self.calls.append(f"serve {ws.url.path}")
        await ws.accept()
        await ws.send_text("served")
        await ws.close()


def test_ws_sockets_go_to_the_gateway() -> None:
    gateway = FakeGateway()
    client = TestClient(create_ws_app(cast(Gateway, gateway)))
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_text() == "served"
    assert gateway.calls == ["serve /ws"]


def test_no_other_path_takes_a_socket() -> None:
    gateway = FakeGateway()
    client = TestClient(create_ws_app(cast(Gateway, gateway)))
    for path in ("/ws/", "/wss", "/"):
        with pytest.raises(WebSocketDisconnect), client.websocket_connect(path) as ws:
            ws.receive_text()
    assert client.get("/ws").status_code == 404
    assert gateway.calls == []


def test_the_lifespan_starts_and_stops_the_gateway() -> None:
    gateway = FakeGateway()
    with TestClient(create_ws_app(cast(Gateway, gateway))) as client:
        assert gateway.calls == ["start"]
        with client.websocket_connect("/ws") as ws:
            assert ws.receive_text() == "served"
    assert gateway.calls == ["start", "serve /ws", "stop"]
