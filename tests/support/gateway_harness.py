"""Helpers for the gateway's integration tests: real gateway processes, real Kafka and Redis,
`websockets` clients. Not a test module (imported by test_gateway_*.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from parlour_gateway.dev_tokens import generate_keypair, make_token
from parlour_protocol.v1 import Audience, AudienceKind, EventEnvelope, Topics, encode
from parlour_protocol.v1.chat import ChatChannel, ChatMessage
from tests.support.engine_harness import free_port
from tests.support.paths import REPO_ROOT

ROOT = REPO_ROOT
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable


def run_sync(coro: Any) -> Any:
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        return runner.run(coro)


async def create_topics(bootstrap: str, prefix: str) -> None:
    topics = Topics(prefix=prefix).with_partitions()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, p, 1) for n, p in topics.items()])
        deadline = time.monotonic() + 30
        while True:
            described = await admin.describe_topics(list(topics))
            if all(
                t["error_code"] == 0
                and len(t["partitions"]) == topics[t["topic"]]
                and all(p["leader"] >= 0 for p in t["partitions"])
                for t in described
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("topics not ready")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        await admin.delete_topics(list(Topics(prefix=prefix).with_partitions()))
    finally:
        await admin.close()


class Keys:
    def __init__(self, directory: Path) -> None:
        self.private_path, self.public_path = generate_keypair(directory)
        self.private = self.private_path.read_text()

    def token(self, sub: str, **kwargs: Any) -> str:
        kwargs.setdefault("username", f"name-{sub}")
        return make_token(self.private, sub, **kwargs)


class GatewayProc:
    """One `python -m parlour_gateway` process on free ports."""

    def __init__(
        self,
        *,
        bootstrap: str,
        redis_url: str,
        topic_prefix: str,
        key_prefix: str,
        public_key: Path | None,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        gateway_id: str | None = None,
    ) -> None:
        self.port = free_port()
        self.health_port = free_port()
        self.gateway_id = gateway_id or f"gw-{uuid.uuid4().hex[:6]}"
        self.log_path = log_dir / f"{self.gateway_id}.log"
        full_env = {
            **os.environ,
            "WS_HOST": "127.0.0.1",
            "WS_PORT": str(self.port),
            "WS_HEALTH_HOST": "127.0.0.1",
            "WS_HEALTH_PORT": str(self.health_port),
            "GATEWAY_ID": self.gateway_id,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_TOPIC_PREFIX": topic_prefix,
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": key_prefix,
            "LOG_FORMAT": "json",
        }
        if public_key is not None:
            full_env["JWT_PUBLIC_KEY_PATH"] = str(public_key)
        full_env.update(env or {})
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "parlour_gateway"],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def http(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.health_port}{path}", timeout=5)

    def wait_ready(self, timeout: float = 40) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited {self.proc.returncode}: {self.logs()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if self.http("/ready").status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"gateway not ready in {timeout}s: {self.logs()[-3000:]}")

    def logs(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def terminate(self, within: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(within)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


class Client:
    """A `websockets` client that keeps every frame it received."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self._cursor = 0

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> Client:
        kwargs.setdefault("max_size", 2**22)
        kwargs.setdefault("open_timeout", 10)
        ws = await connect(url, **kwargs)
        return cls(ws)

    async def send(self, message: Mapping[str, Any] | str | bytes) -> None:
        if isinstance(message, Mapping):
            await self.ws.send(json.dumps(message))
        else:
            await self.ws.send(message)

    async def next(self, within: float = 10) -> dict[str, Any]:
        if self._cursor < len(self.frames):
            self._cursor += 1
            return self.frames[self._cursor - 1]
        raw = await asyncio.wait_for(self.ws.recv(), within)
        frame: dict[str, Any] = json.loads(raw)
        self.frames.append(frame)
        self._cursor += 1
        return frame

    async def expect(
        self, predicate: Callable[[dict[str, Any]], bool] | str, within: float = 10
    ) -> dict[str, Any]:
        """Skip frames until one matches (a `type` string or a predicate)."""
        match = (lambda f: f.get("type") == predicate) if isinstance(predicate, str) else predicate
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching frame; got {self.frames[-5:]}")
            frame = await self.next(left)
            if match(frame):
                return frame

    async def expect_close(self, within: float = 10) -> tuple[int | None, str]:
        """Read until the server closes; returns (code, reason)."""
        deadline = time.monotonic() + within
        try:
            while time.monotonic() < deadline:
                raw = await asyncio.wait_for(self.ws.recv(), deadline - time.monotonic())
                self.frames.append(json.loads(raw))
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            return (rcvd.code if rcvd else None, rcvd.reason if rcvd else "")
        raise TimeoutError(f"socket not closed; last frames {self.frames[-5:]}")

    async def authenticate(self, token: str) -> dict[str, Any]:
        await self.expect("system.welcome")
        await self.send({"type": "system.authenticate", "token": token})
        return await self.expect(lambda f: f["type"] in ("system.authenticated", "system.error"))

    async def ping_ok(self) -> None:
        """The socket still answers (heartbeat round trip)."""
        await self.send({"type": "system.heartbeat"})
        await self.expect("system.heartbeat_ack", within=5)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()


async def authed(url: str, keys: Keys, user_id: str, **kwargs: Any) -> Client:
    client = await Client.open(url, **kwargs)
    frame = await client.authenticate(keys.token(user_id))
    assert frame["type"] == "system.authenticated", frame
    return client


class Kafka:
    """Produce events onto, and read commands from, one test's topics."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.bootstrap = bootstrap
        self.topics = Topics(prefix=prefix)
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        self.consumer: AIOKafkaConsumer | None = None
        self.commands: list[dict[str, Any]] = []

    async def start(self, read_commands: bool = True) -> None:
        await self.producer.start()
        if read_commands:
            self.consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap, group_id=None, auto_offset_reset="earliest"
            )
            await self.consumer.start()
            parts = await self.producer.partitions_for(self.topics.commands)
            tps = [TopicPartition(self.topics.commands, p) for p in parts]
            self.consumer.assign(tps)
            await self.consumer.seek_to_beginning(*tps)

    async def stop(self) -> None:
        await self.producer.stop()
        if self.consumer is not None:
            await self.consumer.stop()

    async def publish(self, envelope: EventEnvelope, key: str | None = None) -> None:
        await self.producer.send_and_wait(
            self.topics.events,
            encode(envelope),
            key=(key or envelope.room_id or "k").encode(),
        )

    async def publish_raw(self, value: bytes, key: bytes = b"k") -> None:
        await self.producer.send_and_wait(self.topics.events, value, key=key)

    async def command(
        self, predicate: Callable[[dict[str, Any]], bool], within: float = 15
    ) -> tuple[dict[str, Any], bytes | None]:
        """Wait for a command envelope (JSON dict) matching `predicate`; returns it and its key."""
        assert self.consumer is not None
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            batches = await self.consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    value = json.loads(record.value)
                    self.commands.append({"env": value, "key": record.key})
            for item in self.commands:
                if predicate(item["env"]):
                    self.commands.remove(item)
                    return item["env"], item["key"]
        raise TimeoutError(f"no matching command; seen {[c['env']['type'] for c in self.commands]}")


def types(frames: Iterable[dict[str, Any]]) -> list[str]:
    return [f["type"] for f in frames]


def chat_event(
    room_id: str, user_ids: list[str], seq: int | None, text: str = "hi"
) -> EventEnvelope:
    payload = ChatMessage(
        room_id=room_id,
        channel=ChatChannel.LOBBY,
        message_id=uuid.uuid4().hex,
        user_id="someone",
        username="someone",
        content=text,
        timestamp=datetime.now(UTC),
        seq=seq,
    )
    return EventEnvelope(
        type=payload.type,
        room_id=room_id,
        seq=seq,
        audience=Audience(kind=AudienceKind.ROOM, user_ids=user_ids),
        payload=payload,
    )
