"""One WebSocket from welcome to close: a reader task, a writer task draining the bounded send
queue while it has frames (started by the first frame queued, gone after
_WRITER_IDLE_SECONDS without one: an idle socket costs no task for it), and one loop timer
(no task) for the auth, idle, token-expiry and resume-hold deadlines, re-armed lazily when it
fires (a frame only moves `last_activity`). Every close goes through
`Connection.request_close`, so the first reason wins and is the one the client sees.

A session is given `SessionDeps`, the few clients and gateway-wide callables it uses, never
the `Gateway` itself: no import cycle, and a unit test drives a session with small fakes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import structlog
from pydantic import BaseModel
from starlette.websockets import WebSocket, WebSocketDisconnect

from parlour_gateway.auth import AuthError, AuthFailure, Identity, TokenVerifier, dev_identity
from parlour_gateway.commands import build_envelope, name_lookup
from parlour_gateway.connection import CloseRequest, Connection, Outgoing
from parlour_gateway.hub import Hub
from parlour_gateway.logs import get_logger
from parlour_gateway.metrics import Metrics
from parlour_gateway.presence import Presence, SocketInfo
from parlour_gateway.publisher import CommandPublisher, PublishError
from parlour_gateway.ratelimit import KeyedBuckets, TokenBucket
from parlour_gateway.settings import GatewaySettings
from parlour_gateway.wsproto import SEND_TEXTS
from parlour_protocol.v1 import (
    ClientCommand,
    CloseCode,
    ErrorCode,
    ProtocolError,
    RedisKeys,
    decode_client_message,
    decode_event_envelope,
    encode,
)
from parlour_protocol.v1.chat import SendDirectMessage
from parlour_protocol.v1.records import HOP_FRAME_WRITTEN, HOP_GATEWAY_RECEIVED, hop
from parlour_protocol.v1.rooms import ListRooms, RejoinRoom
from parlour_protocol.v1.system import (
    Ack,
    Authenticate,
    Authenticated,
    Error,
    FieldError,
    Heartbeat,
    HeartbeatAck,
    ReauthRequired,
    StateSnapshot,
    SyncState,
    Welcome,
)
from parlour_runtime.redis_client import REDIS_ERRORS, AnyRedis

log = get_logger("parlour_gateway.session")


@dataclass(frozen=True, slots=True)
class SessionDeps:
    """What every session of one gateway shares: built once, when the gateway's clients
    have started, and handed to each socket's `Session`."""

    settings: GatewaySettings
    metrics: Metrics
    verifier: TokenVerifier | None
    """None when no public key is configured (only dev-mode logins are possible)"""
    redis: AnyRedis
    presence: Presence
    publisher: CommandPublisher
    hub: Hub
    keys: RedisKeys
    direct_messages: KeyedBuckets
    """per-user throttle of `chat.command.send_message` (each one is a 24 h Redis key),
    shared by all of a user's sockets on this gateway"""
    admit_authenticated: Callable[[Connection], bool]
    """the socket's first authentication succeeded: move it from the unauthenticated caps to
    one of the gateway's WS_MAX_CONNECTIONS places; False when none is free"""
    went_online: Callable[[Identity], Awaitable[None]]
    """the user's first socket anywhere registered: tell the engine they are online"""


class Session:
    def __init__(self, deps: SessionDeps, conn: Connection, ws: WebSocket) -> None:
        self.deps = deps
        self.settings = deps.settings
        self.conn = conn
        self.ws = ws
        self.started = time.monotonic()
        self.last_activity = self.started
        self.auth_failures = 0
        self.strikes = 0
        self.bucket = TokenBucket(
            rate=self.settings.ws_rate_limit_per_sec,
            burst=self.settings.ws_rate_limit_burst,
            updated=self.started,
        )
        self.reauth_deadline: datetime | None = None
        self.registered = False
        self.hold_until: float | None = None
        """monotonic time when rooms held since authentication open without a rejoin"""
        self._timer: asyncio.TimerHandle | None = None
        self._done: asyncio.Future[None] | None = None
        self._resyncs: set[asyncio.Task[None]] = set()
        """rejoins in flight for rooms whose seq went backwards on this socket"""
        self._received_us: int | None = None
        """when the frame being handled arrived (GATEWAY_HOP_TIMESTAMPS), epoch microseconds"""
        self._writer_task: asyncio.Task[bool] | None = None

    # --- output ---
    def send(self, message: BaseModel) -> bool:
        queued = self.conn.offer(Outgoing(encode(message).decode()))
        if queued and isinstance(message, Error):
            self.deps.metrics.errors_sent.labels(code=message.code.value).inc()
        return queued

    def error(
        self,
        code: ErrorCode,
        message: str,
        *,
        request_id: str | None = None,
        room_id: str | None = None,
        error: ProtocolError | None = None,
    ) -> None:
        self.send(
            Error(
                code=code,
                message=message,
                request_id=request_id,
                room_id=room_id,
                reason=error.code if error else None,
                fields=[FieldError(path=f.path, message=f.message) for f in error.fields]
                if error and error.fields
                else None,
            )
        )

    # --- lifecycle ---
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self.conn.queue.on_put = self._start_writer
        self.send(
            Welcome(
                connection_id=self.conn.connection_id,
                heartbeat_interval=self.settings.ws_heartbeat_interval_seconds,
            )
        )
        reader = asyncio.create_task(self._reader())
        reader.add_done_callback(self._finish)
        self.conn.listener = self._on_close_request  # a close request ends the wait too
        self.conn.on_rewind = self._on_rewind
        self._plan()
        try:
            await self._done
            if self.conn.close_code is not None and not reader.done():
                await self._close()
            else:
                self.deps.metrics.connections_total.labels("client_closed").inc()
        finally:
            self.conn.queue.on_put = None
            self.conn.listener = None
            self.conn.on_rewind = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            tasks = [reader] if self._writer_task is None else [reader, self._writer_task]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _start_writer(self) -> None:
        """A frame was queued and no writer waits for one: start the writer if none runs."""
        if self._writer_task is None:
            task = asyncio.get_running_loop().create_task(self._writer())
            task.add_done_callback(self._writer_done)
            self._writer_task = task

    def _writer_done(self, task: asyncio.Task[bool]) -> None:
        if self._writer_task is task:
            self._writer_task = None
        # the socket is gone (True) or the writer failed: the session ends
        if not task.cancelled() and (task.exception() is not None or task.result()):
            self._finish()

    def _replan(self) -> None:
        """The deadlines changed (authenticated, fresh token): re-arm the timer."""
        if self._done is not None:  # the session runs (unit tests may drive it piecemeal)
            self._plan()

    def _finish(self, _task: object = None) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def _on_close_request(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._finish()

    async def _close(self) -> None:
        conn = self.conn
        assert conn.close_code is not None
        if conn.close_kind is CloseRequest.SLOW_CONSUMER:
            self.deps.metrics.send_queue_closes.inc()
        elif self._writer_task is not None:
            # let the error that explains the close reach the client first
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conn.queue.join(), 1.0)
        conn.queue.on_put = None
        if (writer := self._writer_task) is not None:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        self.deps.metrics.connections_total.labels(
            conn.close_kind.value if conn.close_kind else "closed"
        ).inc()
        log.info("socket_closing", code=int(conn.close_code), why=conn.close_kind)
        with contextlib.suppress(TimeoutError, RuntimeError, WebSocketDisconnect, OSError):
            await asyncio.wait_for(
                self.ws.close(code=int(conn.close_code), reason=conn.close_reason[:120]),
                self.settings.ws_close_timeout_seconds,
            )

    async def _writer(self) -> bool:
        """Send queued frames until the queue stayed empty for _WRITER_IDLE_SECONDS (False:
        the next frame queued starts a new writer) or the socket is gone (True). The frames
        queued by the time it looks go out together, in one transport write, when the server
        offers it (wsproto.SEND_TEXTS); one by one through the ASGI `send` otherwise."""
        queue = self.conn.queue
        metrics = self.deps.metrics
        extensions = self.ws.scope.get("extensions") or {}
        send_texts: Callable[[list[str]], Awaitable[None]] | None = extensions.get(SEND_TEXTS)
        while True:
            if queue.empty() and not await queue.wait(_WRITER_IDLE_SECONDS) and queue.empty():
                # nothing awaits between this check and the end of the task, and the queue
                # calls on_put (a new writer) only while no writer waits
                self._writer_task = None
                return False
            batch = queue.take(_FRAMES_PER_WRITE)
            try:
                if send_texts is not None:
                    await send_texts([out.text for out in batch])
                else:
                    for out in batch:
                        await self.ws.send_text(out.text)
            except (WebSocketDisconnect, RuntimeError, OSError):
                return True
            finally:
                for _ in batch:
                    queue.task_done()
            now = time.time()
            for out in batch:
                if out.event_ts is not None:
                    metrics.delivery_latency.observe(max(0.0, now - out.event_ts))
                if out.hops is not None:
                    hops, out.hops = out.hops, None  # once per event (see Outgoing.hops)
                    metrics.observe_hops(hop(hops, HOP_FRAME_WRITTEN))

    async def _reader(self) -> None:
        queue = self.conn.queue
        while True:
            if queue.qsize() * 2 > queue.maxsize:
                # the answers to this client's own frames wait for the writer, so a burst of
                # frames cannot fill the queue that detects clients that stop reading events
                await queue.join()
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("text")
            if data is None:
                data = message.get("bytes")
            if data is None:
                continue
            self.last_activity = time.monotonic()
            self.conn.active = True
            try:
                await self._on_frame(data)
            except Exception:  # one bad frame must not end the socket (logged, answered)
                log.exception("frame_failed", conn_id=self.conn.connection_id)
                self.error(ErrorCode.INTERNAL_ERROR, "the message did not take effect")

    def _plan(self) -> None:
        """Act on every deadline that passed, then arm the loop timer for the next one."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        s = self.settings
        while self.conn.close_code is None:
            now_mono = time.monotonic()
            now = datetime.now(UTC)
            waits: list[float] = []
            idle_left = self.last_activity + s.ws_heartbeat_timeout_seconds - now_mono
            if idle_left <= 0:
                self.conn.request_close(
                    CloseRequest.HEARTBEAT_TIMEOUT, CloseCode.HEARTBEAT_TIMEOUT, "idle timeout"
                )
                return
            waits.append(idle_left)
            if self.hold_until is not None:
                hold_left = self.hold_until - now_mono
                if hold_left <= 0 or not self.conn.auth_holds:
                    self.hold_until = None
                    self.conn.release_auth_holds()
                else:
                    waits.append(hold_left)
            identity = self.conn.identity
            if identity is None:
                auth_left = self.started + s.auth_timeout_seconds - now_mono
                if auth_left <= 0:
                    self.deps.metrics.auth_failures.labels("timeout").inc()
                    self.conn.request_close(
                        CloseRequest.AUTH_TIMEOUT, CloseCode.AUTH_TIMEOUT, "no authentication"
                    )
                    return
                waits.append(auth_left)
            elif identity.expires_at is not None:
                if self.reauth_deadline is None:
                    exp_left = (identity.expires_at - now).total_seconds()
                    if exp_left <= 0:
                        self.reauth_deadline = identity.expires_at + timedelta(
                            seconds=s.auth_reauth_grace_seconds
                        )
                        self.send(ReauthRequired(deadline=self.reauth_deadline))
                        continue
                    waits.append(exp_left)
                else:
                    grace_left = (self.reauth_deadline - now).total_seconds()
                    if grace_left <= 0:
                        self.error(ErrorCode.TOKEN_EXPIRED, "the token expired; reconnect")
                        self.conn.request_close(
                            CloseRequest.TOKEN_EXPIRED, CloseCode.TOKEN_EXPIRED, "token expired"
                        )
                        return
                    waits.append(grace_left)
            self._timer = asyncio.get_running_loop().call_later(min(waits) + 0.01, self._plan)
            return

    # --- input ---
    async def _on_frame(self, data: str | bytes) -> None:
        s = self.settings
        if s.gateway_hop_timestamps:
            self._received_us = time.time_ns() // 1000
        metrics = self.deps.metrics
        if not self.bucket.take(time.monotonic()):
            self.strikes += 1
            metrics.rate_limited.inc()
            if self.strikes >= s.ws_rate_limit_strikes:
                self.conn.request_close(
                    CloseRequest.RATE_LIMITED, CloseCode.RATE_LIMITED, "rate limit exceeded"
                )
            else:
                self.error(ErrorCode.RATE_LIMITED, "too many messages; this one was dropped")
            return
        self.strikes = 0
        try:
            command = decode_client_message(data, max_bytes=s.ws_max_message_size)
        except ProtocolError as exc:
            metrics.messages_in.labels("invalid").inc()
            self.error(exc.error_code, exc.message, request_id=exc.request_id, error=exc)
            return
        metrics.messages_in.labels(command.type).inc()
        structlog.contextvars.bind_contextvars(
            conn_id=self.conn.connection_id, user_id=self.conn.user_id
        )
        try:
            await self._on_command(command)
        finally:
            structlog.contextvars.clear_contextvars()

    async def _on_command(self, command: ClientCommand) -> None:
        if isinstance(command, Authenticate):
            await self._authenticate(command)
            return
        if isinstance(command, Heartbeat):
            self.send(HeartbeatAck())
            return
        identity = self.conn.identity
        if identity is None:
            self.error(
                ErrorCode.AUTH_REQUIRED,
                "send system.authenticate first",
                request_id=command.request_id,
            )
            return
        if isinstance(command, SyncState):
            try:
                rooms = await self.deps.presence.user_rooms(identity.user_id)
            except REDIS_ERRORS:
                self.error(
                    ErrorCode.SERVICE_UNAVAILABLE,
                    "state is unavailable",
                    request_id=command.request_id,
                )
                return
            self.send(StateSnapshot(active_rooms=sorted(rooms)))
            return
        await self._forward(command, identity)

    async def _authenticate(self, command: Authenticate) -> None:
        s = self.settings
        metrics = self.deps.metrics
        try:
            if command.token is None and s.auth_dev_mode:
                identity = dev_identity(command.user_id, command.username)
            elif self.deps.verifier is None:
                raise AuthError(AuthFailure.DEV_DISABLED, "a token is required")
            else:
                identity = self.deps.verifier.verify(command.token)
        except AuthError as exc:
            self.auth_failures += 1
            metrics.auth_failures.labels(exc.reason.value).inc()
            log.info("auth_failed", reason=exc.reason.value, failures=self.auth_failures)
            self.error(ErrorCode.AUTH_FAILED, exc.message, request_id=command.request_id)
            if self.auth_failures >= s.auth_max_failures and self.conn.identity is None:
                self.conn.request_close(
                    CloseRequest.AUTH_FAILED, CloseCode.AUTH_FAILED, "authentication failed"
                )
            return
        current = self.conn.identity
        if current is not None:
            if identity.user_id != current.user_id:
                metrics.auth_failures.labels(AuthFailure.USER_CHANGED.value).inc()
                self.error(
                    ErrorCode.ALREADY_AUTHENTICATED,
                    "this socket belongs to another user",
                    request_id=command.request_id,
                )
                return
            self.conn.identity = identity  # a fresh token: new expiry
            self.reauth_deadline = None
            self._replan()
            self._send_authenticated(identity)
            return
        try:
            became_online = await self.deps.presence.register(
                SocketInfo(self.conn.connection_id, identity.user_id, identity.username),
                s.ws_max_connections_per_user,
                time.time(),
            )
        except REDIS_ERRORS as exc:
            log.warning("presence_register_failed", error=type(exc).__name__)
            self.error(
                ErrorCode.SERVICE_UNAVAILABLE,
                "presence is unavailable; retry",
                request_id=command.request_id,
            )
            return
        if became_online is None:
            metrics.auth_failures.labels("too_many_connections").inc()
            self.conn.request_close(
                CloseRequest.TOO_MANY_CONNECTIONS,
                CloseCode.TOO_MANY_CONNECTIONS,
                f"at most {s.ws_max_connections_per_user} connections per user",
            )
            return
        self.registered = True
        if not self.deps.admit_authenticated(self.conn):
            self.conn.request_close(
                CloseRequest.GATEWAY_FULL,
                CloseCode.TRY_AGAIN_LATER,
                f"gateway at its cap of {s.ws_max_connections} connections",
            )
            return
        self.conn.identity = identity
        self._send_authenticated(identity)
        await self._hold_user_rooms(identity.user_id)
        self.deps.hub.bind(self.conn)
        self._replan()
        log.info("authenticated", user_id=identity.user_id)
        if became_online:
            await self.deps.went_online(identity)

    async def _hold_user_rooms(self, user_id: str) -> None:
        """Before the socket receives events: hold the rooms the user is already in, so the
        client's rejoin_room replay comes before newer live events (see connection.py)."""
        hold = self.settings.ws_resume_hold_seconds
        if hold <= 0:
            return
        try:
            rooms = await self.deps.presence.user_rooms(user_id)
        except REDIS_ERRORS as exc:  # no hold: events flow at once, as before
            log.warning("user_rooms_failed", error=type(exc).__name__)
            return
        if rooms:
            self.conn.hold_rooms(rooms)
            self.hold_until = time.monotonic() + hold

    def _send_authenticated(self, identity: Identity) -> None:
        self.send(
            Authenticated(
                user_id=identity.user_id,
                username=identity.username,
                roles=identity.roles,
                expires_at=identity.expires_at,
            )
        )

    async def _forward(self, command: ClientCommand, identity: Identity) -> None:
        if isinstance(command, SendDirectMessage) and not self.deps.direct_messages.take(
            identity.user_id, time.monotonic()
        ):
            # each direct message is a stored record in the engine: a per-user budget, on
            # top of the socket's frame rate
            self.deps.metrics.direct_messages_throttled.inc()
            self.error(
                ErrorCode.RATE_LIMITED,
                f"at most {self.settings.ws_direct_messages_per_minute} direct messages a "
                "minute; this one was not sent",
                request_id=command.request_id,
            )
            return
        resolved: str | None = None
        lookup = name_lookup(command)
        if lookup is not None:
            try:
                resolved = await self._resolve_room_name(*lookup)
            except REDIS_ERRORS:
                self.error(
                    ErrorCode.SERVICE_UNAVAILABLE,
                    "the command did not take effect; retry",
                    request_id=command.request_id,
                )
                return
        envelope = build_envelope(
            command,
            identity,
            connection_id=self.conn.connection_id,
            gateway_id=self.settings.gateway_id,
            resolved_room_id=resolved,
        )
        if isinstance(command, ListRooms):
            # before the engine reads the list: no room created after it is missed
            self.deps.hub.subscribe_lobby(self.conn, command.game_type, time.monotonic())
        replay_from: int | None = None
        room_id = envelope.room_id
        if (
            isinstance(command, RejoinRoom)
            and command.last_seq is not None
            and room_id
            and await self._member(identity.user_id, room_id)
        ):
            # a non-member gets no replay and no hold: the engine answers it (not_in_room)
            replay_from = command.last_seq
            self.conn.begin_hold(room_id, replay_from)
        try:
            hops = None
            if self._received_us is not None:
                hops = hop("", HOP_GATEWAY_RECEIVED, self._received_us)
            try:
                await self.deps.publisher.publish(envelope, hops)
            except PublishError as exc:
                log.warning("publish_failed", type=command.type, error=str(exc))
                self.error(
                    ErrorCode.SERVICE_UNAVAILABLE,
                    "not confirmed; it takes effect at most once; re-send it with the same "
                    "request_id on this connection to be sure",
                    request_id=command.request_id,
                    room_id=room_id,
                )
                return
            log.info("command_forwarded", type=command.type, msg_id=str(envelope.msg_id))
            if command.request_id is not None:
                self.send(Ack(request_id=command.request_id, msg_id=str(envelope.msg_id)))
            if replay_from is not None and room_id is not None:
                await self._replay(room_id, replay_from, identity.user_id)
        finally:
            if replay_from is not None and room_id is not None and self.conn.holding(room_id):
                self.conn.end_hold(room_id)

    async def _resolve_room_name(self, game_type: str, room_name: str) -> str | None:
        raw = await self.deps.redis.get(self.deps.keys.room_name(game_type, room_name))
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def _on_rewind(self, room_id: str) -> None:
        """The room's seq went backwards for this socket (Redis lost writes and the room
        restarted lower): hold its live events and ask the engine for a fresh room_state, as
        the client's own rejoin would. The room opens with that room_state, or when the hold
        times out."""
        identity = self.conn.identity
        log.warning("room_seq_rewound", room_id=room_id, conn_id=self.conn.connection_id)
        if identity is None:
            return
        hold = self.settings.ws_resume_hold_seconds
        if hold > 0:
            self.conn.hold_rooms([room_id])
            self.hold_until = max(self.hold_until or 0.0, time.monotonic() + hold)
            self._replan()
        task = asyncio.get_running_loop().create_task(self._resync(room_id, identity))
        self._resyncs.add(task)
        task.add_done_callback(self._resyncs.discard)

    async def _resync(self, room_id: str, identity: Identity) -> None:
        envelope = build_envelope(
            RejoinRoom(room_id=room_id),
            identity,
            connection_id=self.conn.connection_id,
            gateway_id=self.settings.gateway_id,
        )
        try:
            await self.deps.publisher.publish(envelope)
        except PublishError as exc:  # the hold times out and the room's events flow again
            log.warning("resync_publish_failed", room_id=room_id, error=str(exc))

    async def _member(self, user_id: str, room_id: str) -> bool:
        try:
            return await self.deps.presence.in_room(user_id, room_id)
        except REDIS_ERRORS as exc:  # no replay: the engine's fresh room_state covers the gap
            log.warning("membership_read_failed", room_id=room_id, error=type(exc).__name__)
            return False

    async def _replay(self, room_id: str, last_seq: int, user_id: str) -> None:
        """Send a member the room's events after `last_seq` from its replay stream, in order.

        The stream is read in pages of `_REPLAY_PAGE` entries (`XREVRANGE` back to the first
        entry after `last_seq`, then `XRANGE` forward from it); an entry's `seq` field is read
        before its envelope is decoded, and the replay waits for the send queue to drain
        below half before adding more, so a long gap neither overflows the queue (which would
        close the socket) nor is held in memory at once. When the stream no longer reaches
        back to `last_seq + 1` nothing is replayed: the engine answers a member's rejoin with
        a fresh room_state, which covers the gap."""
        redis = self.deps.redis
        stream = self.deps.keys.room_events(room_id)
        sent = 0
        try:
            lower = await _replay_start(redis, stream, last_seq)
            if lower is None:
                log.info("replay_skipped", room_id=room_id, last_seq=last_seq)
                return
            while True:
                page = _entries(await redis.xrange(stream, min=lower, max="+", count=_REPLAY_PAGE))
                for _, fields in page:
                    seq = _entry_seq(fields)
                    if seq is None or seq <= last_seq:
                        continue
                    if not await self._room_in_queue():
                        return
                    try:
                        envelope = decode_event_envelope(fields[b"env"])
                    except (KeyError, ProtocolError):
                        self.deps.metrics.bad_events.inc()
                        continue
                    # a stream holds the whole room's history: only replay what this user
                    # was sent
                    if user_id not in envelope.audience.user_ids:
                        continue
                    sent += self.conn.deliver_replayed(
                        room_id,
                        seq,
                        Outgoing(encode(envelope.payload).decode()),
                        envelope.timestamp.timestamp(),
                    )
                if len(page) < _REPLAY_PAGE:
                    return
                lower = "(" + page[-1][0].decode()
        except REDIS_ERRORS as exc:
            log.warning("replay_read_failed", room_id=room_id, error=type(exc).__name__)
        finally:
            self.deps.metrics.replayed.inc(sent)
            log.info("replayed", room_id=room_id, last_seq=last_seq, sent=sent)

    async def _room_in_queue(self) -> bool:
        """Wait until the send queue is below half of its bounds; False when the socket is
        closing (or the client read nothing for a heartbeat timeout: closed as slow)."""
        conn = self.conn
        if conn.backlogged():
            try:
                await asyncio.wait_for(
                    conn.queue.join(), self.settings.ws_heartbeat_timeout_seconds
                )
            except TimeoutError:
                conn.request_close(
                    CloseRequest.SLOW_CONSUMER, CloseCode.SLOW_CONSUMER, "replay not read"
                )
        return conn.close_code is None


_REPLAY_PAGE = 100
_WRITER_IDLE_SECONDS = 1.0
_FRAMES_PER_WRITE = 64
"""most frames a socket's writer sends in one transport write"""
"""how long a socket's writer task waits for the next frame before it ends (see _writer)"""
"""Stream entries per XRANGE / XREVRANGE call of a replay."""


async def _replay_start(redis: AnyRedis, stream: str, last_seq: int) -> str | None:
    """The stream id of the first entry after `last_seq`, found by paging back from the
    newest; None when no entry is newer or the stream no longer reaches back to
    `last_seq + 1`. Seqs grow with stream ids (the engine appends room events in seq order)."""
    upper = "+"
    first: tuple[str, int] | None = None
    while True:
        page = _entries(await redis.xrevrange(stream, max=upper, min="-", count=_REPLAY_PAGE))
        for entry_id, fields in page:
            seq = _entry_seq(fields)
            if seq is None:
                continue
            if seq <= last_seq:
                return None if first is None else first[0]
            first = (entry_id.decode(), seq)
        if len(page) < _REPLAY_PAGE:
            break
        upper = "(" + page[-1][0].decode()
    # the stream's oldest entry is newer than last_seq: it covers the gap only if it follows it
    if first is not None and first[1] == last_seq + 1:
        return first[0]
    return None


_Entry = tuple[bytes, dict[bytes, bytes]]


def _entries(reply: Any) -> list[_Entry]:
    """A stream range reply: bytes throughout (no decode_responses), whatever the stubs say."""
    return cast("list[_Entry]", reply or [])


def _entry_seq(fields: dict[bytes, bytes]) -> int | None:
    try:
        return int(fields[b"seq"])
    except (KeyError, ValueError):
        return None
