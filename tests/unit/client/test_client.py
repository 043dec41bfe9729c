"""parlour_client against a scripted in-process WebSocket server (no Kafka, no Redis): the
welcome and login, acks and errors by request_id, waits that time out or fail on close, the
per-room seq with duplicates dropped, and resume/reconnect with last_seq."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from parlour_client import (
    AuthenticationFailed,
    ClientClosed,
    CommandRejected,
    ParlourClient,
    parse,
    room_of,
)
from parlour_protocol.v1.system import Ack


class FakeGateway:
    """Answers like a gateway: welcome, authenticate (token "good" only), heartbeat, and
    every command with an ack, except `fail` commands (an error), `silent` ones (nothing) and
    `flaky` ones (`service_unavailable` twice, then an ack).
    `rejoin_room` replays the room events it sent after `last_seq`."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.sockets: list[ServerConnection] = []
        self.events: list[dict[str, Any]] = []
        self.flaky = 0

    async def handler(self, ws: ServerConnection) -> None:
        self.sockets.append(ws)
        await ws.send(
            json.dumps(
                {
                    "type": "system.welcome",
                    "seq": None,
                    "connection_id": "c1",
                    "heartbeat_interval": 1,
                }
            )
        )
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                message = json.loads(raw)
                self.received.append(message)
                await self.answer(ws, message)

    async def answer(self, ws: ServerConnection, message: dict[str, Any]) -> None:
        kind, rid = message["type"], message.get("request_id")
        if kind == "system.authenticate":
            if message.get("token") == "good" or message.get("user_id"):
                user = message.get("user_id") or "u1"
                await ws.send(
                    json.dumps({"type": "system.authenticated", "user_id": user, "username": user})
                )
            else:
                await ws.send(
                    json.dumps(
                        {
                            "type": "system.error",
                            "code": "auth_failed",
                            "message": "no",
                            "request_id": rid,
                        }
                    )
                )
            return
        if kind == "system.heartbeat":
            await ws.send(json.dumps({"type": "system.heartbeat_ack"}))
            return
        if kind == "silent":
            return
        if kind == "flaky":  # not confirmed twice, then acknowledged
            self.flaky += 1
            if self.flaky <= 2:
                await ws.send(
                    json.dumps(
                        {
                            "type": "system.error",
                            "code": "service_unavailable",
                            "message": "not confirmed",
                            "request_id": rid,
                        }
                    )
                )
                return
        if kind == "fail":
            await ws.send(
                json.dumps(
                    {
                        "type": "system.error",
                        "code": "not_your_turn",
                        "message": "wait",
                        "request_id": rid,
                    }
                )
            )
            return
        await ws.send(json.dumps({"type": "system.ack", "request_id": rid, "msg_id": f"m-{rid}"}))
        if kind == "games.command.rejoin_room":
            for event in self.events:
                if event["seq"] > (message.get("last_seq") or 0):
                    await ws.send(json.dumps(event))

    async def emit(self, room_id: str, seq: int, kind: str = "games.event.turn_changed") -> None:
        event = {"type": kind, "room_id": room_id, "seq": seq}
        self.events.append(event)
        await self.sockets[-1].send(json.dumps(event))


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[FakeGateway, str]]:
    fake = FakeGateway()
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield fake, f"ws://127.0.0.1:{port}/ws"


async def test_connects_authenticates_and_gets_acks(gateway: tuple[FakeGateway, str]) -> None:
    fake, url = gateway
    async with await ParlourClient.connect(url, token="good") as client:
        assert client.user_id == "u1"
        assert client.connection_id == "c1"
        ack = await client.command({"type": "games.command.list_rooms"})
        assert ack["type"] == "system.ack"
        assert ack["msg_id"] == "m-" + ack["request_id"]
        sent = fake.received[-1]
        assert sent["type"] == "games.command.list_rooms"
        assert sent["request_id"] == ack["request_id"]
        assert isinstance(parse(ack), Ack)


async def test_dev_mode_login_names_the_user(gateway: tuple[FakeGateway, str]) -> None:
    _, url = gateway
    async with await ParlourClient.connect(url, user_id="alice") as client:
        assert client.user_id == "alice"


async def test_a_refused_token_raises(gateway: tuple[FakeGateway, str]) -> None:
    _, url = gateway
    with pytest.raises(AuthenticationFailed, match="auth_failed"):
        await ParlourClient.connect(url, token="bad")


async def test_an_error_answer_raises_with_its_code(gateway: tuple[FakeGateway, str]) -> None:
    _, url = gateway
    async with await ParlourClient.connect(url, token="good") as client:
        with pytest.raises(CommandRejected) as caught:
            await client.command({"type": "fail"})
        assert caught.value.code == "not_your_turn"


async def test_unconfirmed_commands_are_sent_again_with_the_same_request_id(
    gateway: tuple[FakeGateway, str],
) -> None:
    fake, url = gateway
    async with await ParlourClient.connect(url, token="good") as client:
        ack = await client.command({"type": "flaky"})
        assert ack["type"] == "system.ack"
        sent = [m for m in fake.received if m["type"] == "flaky"]
        assert len(sent) == 3
        assert len({m["request_id"] for m in sent}) == 1  # deduplicated by the gateway
        fake.flaky = 0
        with pytest.raises(CommandRejected) as caught:
            await client.command({"type": "flaky"}, unavailable_retries=1)
        assert caught.value.code == "service_unavailable"


async def test_no_answer_times_out(gateway: tuple[FakeGateway, str]) -> None:
    _, url = gateway
    async with await ParlourClient.connect(url, token="good") as client:
        with pytest.raises(TimeoutError):
            await client.command({"type": "silent"}, within=0.2)


async def test_a_wait_fails_when_the_socket_closes(gateway: tuple[FakeGateway, str]) -> None:
    fake, url = gateway
    async with await ParlourClient.connect(url, token="good") as client:
        waiting = asyncio.ensure_future(client.wait_for(lambda f: False, within=10))
        await asyncio.sleep(0)
        await fake.sockets[-1].close(4001, "bye")
        with pytest.raises(ClientClosed):
            await waiting
        assert client.close_code == 4001


async def test_heartbeats_are_data_frames(gateway: tuple[FakeGateway, str]) -> None:
    fake, url = gateway
    async with await ParlourClient.connect(url, token="good") as client:
        await client.wait_for(lambda f: f["type"] == "system.heartbeat_ack", within=5)
        assert {"type": "system.heartbeat"} in fake.received


async def test_tracks_seq_per_room_and_drops_duplicates(gateway: tuple[FakeGateway, str]) -> None:
    fake, url = gateway
    seen: list[dict[str, Any]] = []
    async with await ParlourClient.connect(
        url, token="good", on_frame=lambda f, _at: seen.append(f)
    ) as client:
        other_room = client.expect(lambda f: room_of(f) == "r2")
        for seq in (1, 2, 2, 3):
            await fake.emit("r1", seq)
        await fake.emit("r2", 7)
        await asyncio.wait_for(other_room, 5)
        assert client.last_seq("r1") == 3
        assert client.rooms == {"r1": 3, "r2": 7}
        assert client.duplicates == 1
        assert [f["seq"] for f in seen if f.get("room_id") == "r1"] == [1, 2, 3]


async def test_reconnect_resumes_each_room_from_its_last_seq(
    gateway: tuple[FakeGateway, str],
) -> None:
    fake, url = gateway
    async with await ParlourClient.connect(url, token="good") as client:
        got_two = client.expect(lambda f: f.get("seq") == 2)
        await fake.emit("r1", 1)
        await fake.emit("r1", 2)
        await asyncio.wait_for(got_two, 5)
        fake.events.append({"type": "games.event.turn_changed", "room_id": "r1", "seq": 3})
        replayed = client.expect(lambda f: f.get("seq") == 3)
        acks = await client.reconnect()
        assert len(acks) == 1
        rejoin = [m for m in fake.received if m["type"] == "games.command.rejoin_room"]
        assert rejoin[-1]["room_id"] == "r1"
        assert rejoin[-1]["last_seq"] == 2
        await asyncio.wait_for(replayed, 5)
        assert client.last_seq("r1") == 3
        assert client.duplicates == 0


def test_room_of_reads_the_snapshot_too() -> None:
    assert room_of({"type": "x", "room": {"room_id": "r9"}}) == "r9"
    assert room_of({"type": "x", "room_id": "r8"}) == "r8"
    assert room_of({"type": "x"}) is None
