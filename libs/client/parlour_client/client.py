"""`ParlourClient`: one authenticated WebSocket to a Parlour gateway.

- `connect()` opens the socket, reads `system.welcome`, authenticates (a signed token, or a
  user id on a gateway in AUTH_DEV_MODE) and heartbeats with data frames as the welcome asks.
- `command()` sends with a fresh `request_id` and returns the gateway's `system.ack` (its
  `msg_id` is the command's idempotency key) or raises `CommandRejected` on `system.error`;
  a `service_unavailable` answer (not confirmed) is retried with the same `request_id`, which
  the gateway deduplicates, so the command takes effect at most once.
- `expect()` registers interest in a frame before the action that causes it; `wait_for()`
  is the same plus the wait. Every wait has a timeout and fails with `ClientClosed` when the
  socket goes away, so nothing hangs.
- The newest `seq` of each room is tracked; a frame whose `seq` is not newer than the room's is
  a duplicate (a replay overlap) and is dropped. `resume()` rejoins a room with `last_seq`, and
  `reconnect()` opens a new socket and resumes every room seen.

Frames are dicts from `json.loads`, handed to `on_frame(frame, received_at)` first when given
(`received_at` is `time.perf_counter()` when the frame was read: load generators time with it).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import time
import uuid
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from parlour_client.errors import AuthenticationFailed, ClientClosed, CommandRejected
from parlour_protocol.v1 import ServerEvent, decode_server_message

Frame = dict[str, Any]
FrameHandler = Callable[[Frame, float], None]
Match = Callable[[Frame], bool]

_ANSWERS = frozenset({"system.ack", "system.error"})
_ids = itertools.count(1)


def room_of(frame: Mapping[str, Any]) -> str | None:
    """The room a frame is about: its `room_id`, or the `room_id` of its `room` snapshot."""
    room_id = frame.get("room_id")
    if room_id is not None:
        return str(room_id)
    room = frame.get("room")
    if isinstance(room, dict) and room.get("room_id") is not None:
        return str(room["room_id"])
    return None


def parse(frame: Mapping[str, Any]) -> ServerEvent:
    """The protocol model of a frame (validated); `ProtocolError` when it is not one."""
    return decode_server_message(json.dumps(frame).encode())


class ParlourClient:
    """One socket, one user. Build with `await ParlourClient.connect(url, token=...)`."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        user_id: str | None = None,
        username: str | None = None,
        timeout: float = 10.0,
        on_frame: FrameHandler | None = None,
        keep: int = 0,
        heartbeat: bool = True,
    ) -> None:
        self.url = url
        self.token = token
        self.dev_user_id = user_id
        self.dev_username = username or user_id
        self.timeout = timeout
        self.on_frame = on_frame
        self.heartbeat = heartbeat
        self.frames: collections.deque[Frame] = collections.deque(maxlen=keep or None)
        """The newest `keep` frames (none kept when `keep` is 0), for tests and debugging."""
        self._keep = keep > 0
        self.user_id: str | None = None
        self.connection_id: str | None = None
        self.heartbeat_interval = 15.0
        self.duplicates = 0
        """Frames dropped because their room `seq` was not newer than one already seen."""
        self.gaps = 0
        """Times a room's `seq` jumped by more than one (events missed: resume to recover)."""
        self.close_code: int | None = None
        self.close_reason = ""
        self._seqs: dict[str, int] = {}
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._beats: asyncio.Task[None] | None = None
        self._answers: dict[str, asyncio.Future[Frame]] = {}
        self._waiters: list[tuple[Match, asyncio.Future[Frame]]] = []
        self._reconnecting = False

    # --- life cycle -----------------------------------------------------------------------

    @classmethod
    async def connect(cls, url: str, **kwargs: Any) -> ParlourClient:
        """A connected, authenticated client (keyword arguments as for the constructor)."""
        client = cls(url, **kwargs)
        await client.open()
        return client

    async def open(self) -> None:
        """Open the socket, read the welcome and authenticate (when a token or user id is
        set). Raises `AuthenticationFailed`, `TimeoutError` or `OSError`."""
        self._ws = await connect(
            self.url, open_timeout=self.timeout, max_size=2**20, compression=None
        )
        self.close_code, self.close_reason = None, ""
        welcome = self.expect(lambda f: f["type"] == "system.welcome")
        self._reader = asyncio.create_task(self._read(self._ws))
        frame = await self._within(welcome, self.timeout)
        self.connection_id = frame.get("connection_id")
        self.heartbeat_interval = float(frame.get("heartbeat_interval") or 15)
        if self.token is not None or self.dev_user_id is not None:
            await self.authenticate()
        if self.heartbeat:
            self._beats = asyncio.create_task(self._heartbeat())

    async def authenticate(self, token: str | None = None) -> Frame:
        """Send `system.authenticate` (also to re-authenticate with a fresh `token`) and
        return `system.authenticated`."""
        if token is not None:
            self.token = token
        message: dict[str, Any] = {"type": "system.authenticate"}
        if self.token is not None:
            message["token"] = self.token
        else:
            message.update(user_id=self.dev_user_id, username=self.dev_username)
        rid = self.new_request_id()
        answer = self.expect(
            lambda f: (
                f["type"] == "system.authenticated"
                or (f["type"] == "system.error" and f.get("request_id") == rid)
            )
        )
        await self.send({**message, "request_id": rid})
        try:
            frame = await self._within(answer, self.timeout)
        except ClientClosed as exc:
            raise AuthenticationFailed(None, str(exc)) from exc
        if frame["type"] != "system.authenticated":
            raise AuthenticationFailed(frame)
        self.user_id = str(frame["user_id"])
        return frame

    async def close(self) -> None:
        """Close the socket and stop the background tasks; waits fail with `ClientClosed`."""
        await self._disconnect()
        self._fail_waiters(answers_only=False)

    async def _disconnect(self) -> None:
        if self._beats is not None:
            self._beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beats
            self._beats = None
        if self._ws is not None:
            with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
                await asyncio.wait_for(self._ws.close(), self.timeout)
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._reader, self.timeout)
            self._reader = None

    async def reconnect(self) -> list[Frame]:
        """A new socket for the same user, then `resume()` of every room seen; returns the
        acks of the rejoins. Waits on frames (`expect`) carry over to the new socket; waits
        on answers to commands sent on the old one fail with `ClientClosed`."""
        self._reconnecting = True
        try:
            await self._disconnect()
        finally:
            self._reconnecting = False
        self._fail_waiters(answers_only=True)
        await self.open()
        return [await self.resume(room_id) for room_id in list(self._seqs)]

    async def __aenter__(self) -> ParlourClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        return self._reader is None or self._reader.done()

    # --- sending --------------------------------------------------------------------------

    @staticmethod
    def new_request_id() -> str:
        return f"{uuid.uuid4().hex[:12]}-{next(_ids)}"

    async def send(self, message: Mapping[str, Any]) -> None:
        """Send one frame as is (no request id added, no answer awaited)."""
        if self._ws is None:
            raise ClientClosed(None, "not connected")
        try:
            await self._ws.send(json.dumps(message, separators=(",", ":")))
        except ConnectionClosed as exc:
            raise ClientClosed(exc.rcvd.code if exc.rcvd else None, str(exc)) from exc

    async def command(
        self,
        message: Mapping[str, Any],
        *,
        within: float | None = None,
        request_id: str | None = None,
        unavailable_retries: int = 3,
    ) -> Frame:
        """Send with a fresh `request_id` (or the one given); return the `system.ack` (its
        `msg_id` names the command), or raise `CommandRejected` (`system.error`) or
        `TimeoutError`.

        `service_unavailable` means the gateway could not confirm the command (Kafka did not
        acknowledge it in time): it may or may not take effect. The command is then sent again
        with the same `request_id` on the same socket, up to `unavailable_retries` times with
        a growing pause; the gateway derives the command's idempotency key from it, so the
        command takes effect at most once however often it is sent."""
        rid = request_id or self.new_request_id()
        for attempt in itertools.count():
            answer, sending = self.send_command(message, rid)
            try:
                await sending
                frame = await self._within(answer, self.timeout if within is None else within)
            finally:
                self._answers.pop(rid, None)
            if frame["type"] != "system.error":
                return frame
            if frame.get("code") != "service_unavailable" or attempt >= unavailable_retries:
                raise CommandRejected(frame)
            await asyncio.sleep(min(2.0, 0.2 * 2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def send_command(
        self, message: Mapping[str, Any], request_id: str | None = None
    ) -> tuple[asyncio.Future[Frame], asyncio.Task[None]]:
        """The low-level half of `command()`: the future of the answer (`system.ack` or
        `system.error`, not raised) and the task sending the frame, for callers that time
        both themselves."""
        rid = request_id or self.new_request_id()
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._answers[rid] = future
        sending = asyncio.ensure_future(self.send({**message, "request_id": rid}))
        return future, sending

    async def request(
        self, message: Mapping[str, Any], match: Match, *, within: float | None = None
    ) -> Frame:
        """A command and the first frame after it that `match` accepts (registered before
        sending, so a fast answer is not missed)."""
        wanted = self.expect(match)
        try:
            await self.command(message, within=within)
        except BaseException:
            wanted.cancel()
            raise
        return await self._within(wanted, self.timeout if within is None else within)

    async def resume(self, room_id: str, *, within: float | None = None) -> Frame:
        """`rejoin_room` with the newest `seq` seen of the room: the gateway replays what came
        after it (or sends a fresh `room_state`). Returns the ack."""
        message: dict[str, Any] = {"type": "games.command.rejoin_room", "room_id": room_id}
        if room_id in self._seqs:
            message["last_seq"] = self._seqs[room_id]
        return await self.command(message, within=within)

    # --- receiving ------------------------------------------------------------------------

    def expect(self, match: Match) -> asyncio.Future[Frame]:
        """The future of the first frame from now on that `match` accepts."""
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._waiters.append((match, future))
        return future

    async def wait_for(self, match: Match, *, within: float | None = None) -> Frame:
        """The first frame from now on that `match` accepts; `TimeoutError` after `within`
        seconds (the client's default when None)."""
        return await self._within(self.expect(match), self.timeout if within is None else within)

    def last_seq(self, room_id: str) -> int:
        """The newest `seq` seen for the room (0 when none)."""
        return self._seqs.get(room_id, 0)

    @property
    def rooms(self) -> dict[str, int]:
        """Every room with a `seq` seen, and its newest `seq`."""
        return dict(self._seqs)

    async def _within(self, future: asyncio.Future[Frame], seconds: float) -> Frame:
        try:
            return await asyncio.wait_for(future, seconds)
        except TimeoutError:
            raise TimeoutError(f"no answer within {seconds}s on {self.url}") from None

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                self.deliver(json.loads(raw), time.perf_counter())
        except ConnectionClosed:
            pass
        finally:
            if ws.close_code is not None:
                self.close_code, self.close_reason = ws.close_code, ws.close_reason or ""
            self._fail_waiters(answers_only=self._reconnecting)

    def deliver(self, frame: Frame, received_at: float) -> None:
        """Handle one frame as if read from the socket (public for tests and replays)."""
        seq = frame.get("seq")
        if seq is not None:
            room_id = room_of(frame)
            if room_id is not None:
                last = self._seqs.get(room_id, 0)
                if seq <= last:
                    self.duplicates += 1
                    return
                if last and seq > last + 1:
                    self.gaps += 1
                self._seqs[room_id] = seq
        if self._keep:
            self.frames.append(frame)
        if self.on_frame is not None:
            self.on_frame(frame, received_at)
        if frame.get("type") in _ANSWERS:
            future = self._answers.pop(str(frame.get("request_id")), None)
            if future is not None:
                if not future.done():
                    future.set_result(frame)
                return
        if self._waiters:
            waiting = []
            for match, future in self._waiters:
                if future.done():
                    continue
                if match(frame):
                    future.set_result(frame)
                else:
                    waiting.append((match, future))
            self._waiters = waiting

    def _fail_waiters(self, *, answers_only: bool) -> None:
        error = ClientClosed(self.close_code, self.close_reason)
        waiters = [] if answers_only else [f for _, f in self._waiters]
        for future in [*self._answers.values(), *waiters]:
            if not future.done():
                future.set_exception(error)
                # a waiter nobody awaits any more must not log "exception never retrieved"
                future.exception()
        self._answers.clear()
        if not answers_only:
            self._waiters.clear()

    async def _heartbeat(self) -> None:
        with contextlib.suppress(ClientClosed):
            while True:
                await asyncio.sleep(self.heartbeat_interval)
                await self.send({"type": "system.heartbeat"})
