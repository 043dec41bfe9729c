"""One socket's input handling before auth (decode errors, auth_required) with an in-process
WebSocket stand-in, and command envelopes (pure). No Redis or Kafka here: the integration
tests in tests/integration/gateway/test_limits.py cover those paths for real."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from starlette.websockets import WebSocket

from parlour_gateway import session as session_module
from parlour_gateway.auth import Identity
from parlour_gateway.commands import build_envelope, name_lookup
from parlour_gateway.connection import Connection, Outgoing
from parlour_gateway.dev_tokens import generate_keypair
from parlour_gateway.hub import Hub
from parlour_gateway.metrics import Metrics
from parlour_gateway.ratelimit import KeyedBuckets
from parlour_gateway.session import Session, SessionDeps
from parlour_gateway.settings import GatewaySettings
from parlour_gateway.wsproto import SEND_TEXTS
from parlour_protocol.v1 import (
    Audience,
    AudienceKind,
    CloseCode,
    EventEnvelope,
    RedisKeys,
    decode_client_message,
    encode,
)
from parlour_protocol.v1.chat import ChatChannel, ChatMessage
from parlour_protocol.v1.rooms import CreateRoom


class FakeSocket:
    def __init__(self) -> None:
        self.scope: dict[str, Any] = {"type": "websocket", "extensions": {}}
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self.got = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send_text(self, text: str) -> None:
        self.sent.append(json.loads(text))
        self.got.set()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)
        await self.inbox.put({"type": "websocket.disconnect", "code": code})

    def feed(self, data: str | bytes) -> None:
        key = "text" if isinstance(data, str) else "bytes"
        self.inbox.put_nowait({"type": "websocket.receive", key: data})

    async def wait_for(self, count: int) -> list[dict[str, Any]]:
        async with asyncio.timeout(5):
            while len(self.sent) < count:
                self.got.clear()
                await self.got.wait()
        return self.sent


def _deps(settings: GatewaySettings, redis: Any = None) -> SessionDeps:
    """What a session gets from its gateway; the clients these tests never reach are None."""

    async def went_online(identity: Identity) -> None:
        raise AssertionError("no authentication in these tests")

    return SessionDeps(
        settings=settings,
        metrics=Metrics(),
        verifier=None,
        redis=redis,
        presence=cast(Any, None),
        publisher=cast(Any, None),
        hub=Hub(settings.gateway_id),
        keys=RedisKeys(),
        direct_messages=KeyedBuckets(1.0, 1, 16),
        admit_authenticated=lambda conn: True,
        went_online=went_online,
    )


@pytest.fixture
def settings(tmp_path: Path) -> GatewaySettings:
    _, public = generate_keypair(tmp_path)
    return GatewaySettings(
        jwt_public_key_path=public,
        ws_max_message_size=2048,
        auth_timeout_seconds=0.5,
        ws_rate_limit_burst=100,
    )


async def _run(settings: GatewaySettings, frames: list[str | bytes], expect: int) -> FakeSocket:
    ws = FakeSocket()
    conn = Connection("c1", 16)
    session = Session(_deps(settings), conn, cast(WebSocket, ws))
    task = asyncio.create_task(session.run())
    for frame in frames:
        ws.feed(frame)
    await ws.wait_for(expect)
    await ws.inbox.put({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(task, 5)
    return ws


async def test_decode_errors_are_answered_and_the_socket_stays(settings: GatewaySettings) -> None:
    frames: list[str | bytes] = [
        "{oops",
        json.dumps({"type": "nope.nope", "request_id": "r1"}),
        json.dumps({"type": "games.command.ready", "request_id": "r2"}),
        json.dumps({"type": "system.heartbeat", "pad": "x" * 3000}),
        b"\x80\x81",
        json.dumps({"type": "system.heartbeat"}),
    ]
    ws = await _run(settings, frames, expect=7)
    welcome, *answers = ws.sent[:7]
    assert welcome["type"] == "system.welcome"
    assert [(a["type"], a.get("code"), a.get("reason")) for a in answers] == [
        ("system.error", "invalid_message", "invalid_json"),
        ("system.error", "invalid_message", "unknown_type"),
        ("system.error", "invalid_message", "invalid_fields"),
        ("system.error", "message_too_large", "too_large"),
        ("system.error", "invalid_message", "invalid_json"),
        ("system.heartbeat_ack", None, None),
    ]
    assert answers[1]["request_id"] == "r1"
    assert answers[2]["request_id"] == "r2"
    assert answers[2]["fields"] == [{"path": "room_id", "message": "Field required"}]
    assert ws.closed is None


async def test_commands_before_auth_are_refused(settings: GatewaySettings) -> None:
    ws = await _run(
        settings, [json.dumps({"type": "games.command.list_rooms", "request_id": "x"})], 2
    )
    assert ws.sent[1]["code"] == "auth_required"
    assert ws.sent[1]["request_id"] == "x"


async def test_auth_timeout_closes(settings: GatewaySettings) -> None:
    ws = FakeSocket()
    session = Session(_deps(settings), Connection("c2", 16), cast(WebSocket, ws))
    await asyncio.wait_for(session.run(), 5)
    assert ws.closed is not None
    assert ws.closed[0] == CloseCode.AUTH_TIMEOUT


def test_envelopes_take_identity_from_the_token_and_key_by_room() -> None:
    me = Identity(user_id="u1", username="Me", roles=["user"])
    create = decode_client_message(
        b'{"type":"games.command.create_room","game_type":"bigger_dice","room_name":"T",'
        b'"actor":{"user_id":"root"},"request_id":"q"}'
    )
    assert isinstance(create, CreateRoom)
    env = build_envelope(create, me, connection_id="c", gateway_id="g")
    assert env.actor.user_id == "u1"
    assert env.room_id is not None
    assert env.key == env.room_id
    assert env.request_id == "q"
    # a new create_room gets a new room; a retry (same request_id, same socket) the same one
    again = create.model_copy(update={"request_id": "q2"})
    assert build_envelope(again, me, connection_id="c", gateway_id="g").room_id != env.room_id
    assert build_envelope(create, me, connection_id="c2", gateway_id="g").room_id != env.room_id
    retry = build_envelope(create, me, connection_id="c", gateway_id="g")
    assert (retry.room_id, retry.msg_id) == (env.room_id, env.msg_id)
    ready = decode_client_message(b'{"type":"games.command.ready","room_id":"r7"}')
    assert build_envelope(ready, me, connection_id="c", gateway_id="g").key == "r7"
    listing = decode_client_message(b'{"type":"games.command.list_rooms"}')
    env = build_envelope(listing, me, connection_id="c", gateway_id="g")
    assert (env.key, env.room_id) == ("u1", None)
    join = decode_client_message(b'{"type":"games.command.join_room","room_name":"Big One"}')
    assert name_lookup(join) == ("bigger_dice", "Big One")
    env = build_envelope(join, me, connection_id="c", gateway_id="g", resolved_room_id="r9")
    assert (env.key, env.room_id) == ("r9", "r9")
    rejoin_by_id = decode_client_message(b'{"type":"games.command.rejoin_room","room_id":"r1"}')
    assert name_lookup(rejoin_by_id) is None
    rejoin_by_name = decode_client_message(b'{"type":"games.command.rejoin_room","room_name":"A"}')
    assert name_lookup(rejoin_by_name) == ("bigger_dice", "A")


def test_msg_id_is_derived_from_user_connection_and_request_id() -> None:
    me = Identity(user_id="u1", username="Me")
    roll = decode_client_message(
        b'{"type":"games.command.bigger_dice.roll","room_id":"r1","request_id":"7"}'
    )
    first = build_envelope(roll, me, connection_id="c1", gateway_id="g").msg_id
    assert build_envelope(roll, me, connection_id="c1", gateway_id="g2").msg_id == first
    assert build_envelope(roll, me, connection_id="c2", gateway_id="g").msg_id != first
    other = Identity(user_id="u2", username="Other")
    assert build_envelope(roll, other, connection_id="c1", gateway_id="g").msg_id != first
    anonymous = decode_client_message(b'{"type":"games.command.bigger_dice.roll","room_id":"r1"}')
    ids = {build_envelope(anonymous, me, connection_id="c1", gateway_id="g").msg_id for _ in "ab"}
    assert len(ids) == 2  # no request_id: nothing to deduplicate by


# ------------------------------------------------------------------ resume replay


class FakeStreamRedis:
    """The two stream reads of a replay over one room's entries, with Redis's id bounds
    (`-`, `+`, `(` exclusive) and COUNT; every call is recorded."""

    def __init__(self, entries: list[tuple[int, bytes]]) -> None:
        self.entries = [
            (f"{1000 + seq}-0".encode(), {b"seq": b"%d" % seq, b"env": env}) for seq, env in entries
        ]
        self.calls: list[tuple[str, int]] = []

    @staticmethod
    def _key(entry_id: bytes) -> tuple[int, int]:
        ms, n = entry_id.decode().split("-")
        return int(ms), int(n)

    def _within(self, entry_id: bytes, low: str, high: str) -> bool:
        key = self._key(entry_id)
        if low != "-":
            bound = self._key(low.lstrip("(").encode())
            if key < bound or (low.startswith("(") and key == bound):
                return False
        if high != "+":
            bound = self._key(high.lstrip("(").encode())
            if key > bound or (high.startswith("(") and key == bound):
                return False
        return True

    async def xrange(self, name: str, min: str, max: str, count: int) -> list[Any]:
        self.calls.append(("xrange", count))
        return [e for e in self.entries if self._within(e[0], min, max)][:count]

    async def xrevrange(self, name: str, max: str, min: str, count: int) -> list[Any]:
        self.calls.append(("xrevrange", count))
        return [e for e in reversed(self.entries) if self._within(e[0], min, max)][:count]


def _stream(seqs: range, audience: list[str]) -> list[tuple[int, bytes]]:
    out = []
    for seq in seqs:
        payload = ChatMessage(
            room_id="r1",
            channel=ChatChannel.LOBBY,
            message_id=f"m{seq}",
            user_id="b",
            username="b",
            content=f"line {seq}",
            timestamp=datetime.now(UTC),
            seq=seq,
        )
        envelope = EventEnvelope(
            type=payload.type,
            room_id="r1",
            seq=seq,
            audience=Audience(kind=AudienceKind.ROOM, user_ids=audience),
            payload=payload,
        )
        out.append((seq, encode(envelope)))
    return out


async def _replayed(
    settings: GatewaySettings, entries: list[tuple[int, bytes]], last_seq: int, queue_max: int
) -> tuple[FakeSocket, Connection, SessionDeps]:
    deps = _deps(settings, FakeStreamRedis(entries))
    ws = FakeSocket()
    conn = Connection("c1", queue_max)
    conn.identity = Identity(user_id="a", username="a")
    session = Session(deps, conn, cast(WebSocket, ws))
    writer = asyncio.create_task(session._writer())
    try:
        await asyncio.wait_for(session._replay("r1", last_seq, "a"), 5)
        await asyncio.wait_for(conn.queue.join(), 5)
    finally:
        writer.cancel()
    return ws, conn, deps


async def test_replay_is_paced_into_a_small_send_queue(settings: GatewaySettings) -> None:
    """300 missed events through a 16-frame queue: every one arrives once, in order, and
    the socket is not closed as a slow consumer."""
    ws, conn, deps = await _replayed(settings, _stream(range(1, 301), ["a", "b"]), 0, 16)
    assert [f["seq"] for f in ws.sent] == list(range(1, 301))
    assert conn.close_code is None
    calls = cast(FakeStreamRedis, deps.redis).calls
    assert all(count == 100 for _, count in calls)  # paged, never all at once


async def test_replay_starts_after_last_seq_across_pages(settings: GatewaySettings) -> None:
    ws, _, deps = await _replayed(settings, _stream(range(1, 301), ["a"]), 137, 256)
    assert [f["seq"] for f in ws.sent] == list(range(138, 301))
    # back from the newest to seq 137 (two pages), then forward from 138 (two pages)
    calls = cast(FakeStreamRedis, deps.redis).calls
    assert [name for name, _ in calls] == ["xrevrange"] * 2 + ["xrange"] * 2


async def test_replay_filters_on_seq_before_decoding(settings: GatewaySettings) -> None:
    """Entries at or before last_seq are never decoded (these would count as bad events)."""
    entries = [(seq, b"not json") for seq in range(1, 6)] + _stream(range(6, 9), ["a"])
    ws, _, deps = await _replayed(settings, entries, 5, 64)
    assert [f["seq"] for f in ws.sent] == [6, 7, 8]
    assert deps.metrics.bad_events._value.get() == 0
    ws, _, deps = await _replayed(settings, entries, 3, 64)
    assert [f["seq"] for f in ws.sent] == [6, 7, 8]
    assert deps.metrics.bad_events._value.get() == 2


async def test_replay_skips_a_gap_the_stream_no_longer_holds(settings: GatewaySettings) -> None:
    """The stream starts at seq 50: a client at 10 gets nothing replayed (the engine's answer
    to its rejoin, a fresh room_state, covers the gap); one at 49 gets everything."""
    ws, _, _ = await _replayed(settings, _stream(range(50, 81), ["a"]), 10, 64)
    assert ws.sent == []
    ws, _, _ = await _replayed(settings, _stream(range(50, 81), ["a"]), 49, 64)
    assert [f["seq"] for f in ws.sent] == list(range(50, 81))
    ws, _, _ = await _replayed(settings, _stream(range(50, 81), ["a"]), 80, 64)
    assert ws.sent == []


async def test_replay_sends_only_what_the_user_was_an_audience_of(
    settings: GatewaySettings,
) -> None:
    entries = (
        _stream(range(1, 4), ["a"]) + _stream(range(4, 5), ["b"]) + _stream(range(5, 6), ["a"])
    )
    ws, _, _ = await _replayed(settings, entries, 0, 64)
    assert [f["seq"] for f in ws.sent] == [1, 2, 3, 5]


async def test_the_writer_task_lives_only_while_frames_come(
    settings: GatewaySettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle socket holds no writer task (memory per idle connection); the next frame
    queued starts one again, and every frame still reaches the socket once, in order."""
    monkeypatch.setattr(session_module, "_WRITER_IDLE_SECONDS", 0.05)
    ws = FakeSocket()
    conn = Connection("c1", 16)
    session = Session(_deps(settings), conn, cast(WebSocket, ws))
    task = asyncio.create_task(session.run())
    await ws.wait_for(1)  # the welcome started a writer
    for n in range(3):  # it ends once idle; the next frame queued starts a new one
        writer = session._writer_task
        assert writer is not None
        assert await asyncio.wait_for(writer, 5) is False  # ended idle, not as a gone socket
        assert session._writer_task is None
        ws.feed(json.dumps({"type": "system.heartbeat"}))
        await ws.wait_for(2 + n)
    assert [f["type"] for f in ws.sent] == ["system.welcome"] + ["system.heartbeat_ack"] * 3
    await ws.inbox.put({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(task, 5)
    assert conn.queue.on_put is None  # nothing starts a writer after the session ended


async def test_the_writer_sends_queued_frames_together_when_the_server_offers_it(
    settings: GatewaySettings,
) -> None:
    """Frames queued before the writer looks go out in one `parlour.send_texts` call, in
    order, each counted done once."""
    ws = FakeSocket()
    writes: list[list[str]] = []

    async def send_texts(texts: list[str]) -> None:
        writes.append(list(texts))
        for text in texts:
            await ws.send_text(text)

    ws.scope["extensions"][SEND_TEXTS] = send_texts
    conn = Connection("c1", 16)
    session = Session(_deps(settings), conn, cast(WebSocket, ws))
    for n in range(3):
        conn.offer(Outgoing(json.dumps({"type": "system.heartbeat_ack", "n": n})))
    writer = asyncio.create_task(session._writer())
    await asyncio.wait_for(conn.queue.join(), 5)
    conn.offer(Outgoing(json.dumps({"type": "system.heartbeat_ack", "n": 3})))
    await asyncio.wait_for(conn.queue.join(), 5)
    writer.cancel()
    assert [len(w) for w in writes] == [3, 1]
    assert [f["n"] for f in ws.sent] == [0, 1, 2, 3]
