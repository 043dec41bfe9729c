"""`parlour_gateway_errors_sent_total{code}` counts the `system.error` frames sockets are given:
the gateway's own answers and the engine's errors delivered as events, once per socket they
reach, and nothing else (in-process, no I/O)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from starlette.websockets import WebSocket

from parlour_gateway.auth import Identity
from parlour_gateway.connection import Connection
from parlour_gateway.dev_tokens import generate_keypair
from parlour_gateway.events import EventConsumer
from parlour_gateway.hub import Hub
from parlour_gateway.metrics import Metrics
from parlour_gateway.ratelimit import KeyedBuckets
from parlour_gateway.session import Session, SessionDeps
from parlour_gateway.settings import GatewaySettings
from parlour_protocol.v1 import (
    Audience,
    AudienceKind,
    CloseCode,
    ErrorCode,
    EventEnvelope,
    RedisKeys,
    encode,
)
from parlour_protocol.v1.chat import DirectMessageReceived
from parlour_protocol.v1.system import Error, HeartbeatAck

GW = "gw-1"


def _sent(metrics: Metrics, code: ErrorCode) -> float | None:
    return metrics.registry.get_sample_value(
        "parlour_gateway_errors_sent_total", {"code": code.value}
    )


def _frames(conn: Connection) -> list[dict[str, Any]]:
    out = []
    while not conn.queue.empty():
        out.append(json.loads(conn.queue.get_nowait().text))
    return out


def _error_codes(frames: list[dict[str, Any]]) -> list[str]:
    return [f["code"] for f in frames if f["type"] == "system.error"]


def test_every_code_is_a_series_from_the_start() -> None:
    """A bounded label set, shown at 0, so `rate()` sees a code's first error."""
    metrics = Metrics()
    assert all(_sent(metrics, code) == 0 for code in ErrorCode)


# --- the gateway's own errors ---------------------------------------------------------------


@pytest.fixture
def session(tmp_path: Path) -> Session:
    _, public = generate_keypair(tmp_path)
    settings = GatewaySettings(jwt_public_key_path=public)

    async def went_online(identity: Identity) -> None:
        raise AssertionError("not reached")

    deps = SessionDeps(
        settings=settings,
        metrics=Metrics(),
        verifier=None,
        redis=cast(Any, None),
        presence=cast(Any, None),
        publisher=cast(Any, None),
        hub=Hub(GW),
        keys=RedisKeys(),
        direct_messages=KeyedBuckets(1.0, 1, 16),
        admit_authenticated=lambda conn: True,
        went_online=went_online,
    )
    return Session(deps, Connection("c1", 4), cast(WebSocket, object()))


def test_gateway_errors_are_counted_by_code_as_they_are_queued(session: Session) -> None:
    metrics = session.deps.metrics
    session.error(ErrorCode.RATE_LIMITED, "too many messages; this one was dropped")
    session.error(ErrorCode.RATE_LIMITED, "too many messages; this one was dropped")
    session.error(ErrorCode.AUTH_REQUIRED, "authenticate first", request_id="r1")
    session.send(HeartbeatAck())  # not an error: counts nothing
    frames = _frames(session.conn)
    assert _error_codes(frames) == ["rate_limited", "rate_limited", "auth_required"]
    assert _sent(metrics, ErrorCode.RATE_LIMITED) == 2
    assert _sent(metrics, ErrorCode.AUTH_REQUIRED) == 1
    assert sum(_sent(metrics, code) or 0 for code in ErrorCode) == 3


def test_an_error_the_socket_never_gets_is_not_counted(session: Session) -> None:
    """A full queue (the client stopped reading) or a closing socket drops the frame."""
    metrics = session.deps.metrics
    for _ in range(session.conn.queue.maxsize + 1):
        session.error(ErrorCode.INTERNAL_ERROR, "the message did not take effect")
    assert session.conn.close_code == CloseCode.SLOW_CONSUMER
    session.error(ErrorCode.INTERNAL_ERROR, "the message did not take effect")
    queued = _error_codes(_frames(session.conn))
    assert len(queued) == session.conn.queue.maxsize
    assert _sent(metrics, ErrorCode.INTERNAL_ERROR) == len(queued)


# --- the engine's errors, delivered as events -----------------------------------------------


def _conn(hub: Hub, user: str) -> Connection:
    conn = Connection(uuid.uuid4().hex, 64)
    hub.add(conn)
    conn.identity = Identity(user_id=user, username=user)
    hub.bind(conn)
    return conn


def _error_event(code: ErrorCode, audience: Audience) -> bytes:
    payload = Error(code=code, message="no", request_id="r7", room_id="room-1")
    envelope = EventEnvelope(type=payload.type, audience=audience, payload=payload)
    return encode(envelope)


def _chat_event(audience: Audience) -> bytes:
    payload = DirectMessageReceived(
        message_id=uuid.uuid4().hex,
        sender_id="bob",
        sender_name="bob",
        recipient_id="alice",
        content="hi",
        sent_at=datetime.now(UTC),
    )
    envelope = EventEnvelope(type=payload.type, audience=audience, payload=payload)
    return encode(envelope)


def test_engine_errors_are_counted_once_per_socket_they_reach() -> None:
    hub = Hub(GW)
    metrics = Metrics()
    consumer = EventConsumer(cast(Any, None), "events", hub, metrics)
    phone, laptop = _conn(hub, "alice"), _conn(hub, "alice")
    to_alice = Audience(kind=AudienceKind.USER, user_ids=["alice"])
    to_nobody_here = Audience(kind=AudienceKind.USER, user_ids=["carol"])

    assert consumer.handle(_error_event(ErrorCode.NOT_YOUR_TURN, to_alice)) == 2
    assert consumer.handle(_error_event(ErrorCode.ROOM_FULL, to_nobody_here)) == 0
    assert consumer.handle(_chat_event(to_alice)) == 2

    for conn in (phone, laptop):
        assert _error_codes(_frames(conn)) == ["not_your_turn"]
    assert _sent(metrics, ErrorCode.NOT_YOUR_TURN) == 2
    assert _sent(metrics, ErrorCode.ROOM_FULL) == 0
    assert sum(_sent(metrics, code) or 0 for code in ErrorCode) == 2
