"""The gateway's clients and background loops, built in the app's lifespan and passed down."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import UnknownTopicOrPartitionError
from redis.exceptions import RedisClusterException, RedisError
from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.websockets import WebSocket

from parlour_gateway import raw_records
from parlour_gateway.auth import Identity, TokenVerifier
from parlour_gateway.commands import build_envelope
from parlour_gateway.connection import CloseRequest, Connection
from parlour_gateway.events import EventConsumer
from parlour_gateway.hub import Hub
from parlour_gateway.logs import get_logger
from parlour_gateway.metrics import Metrics
from parlour_gateway.origin import origin_allowed
from parlour_gateway.presence import Presence, SocketInfo
from parlour_gateway.publisher import CommandPublisher, PublishError
from parlour_gateway.ratelimit import KeyedBuckets, Tally, client_key
from parlour_gateway.session import Session, SessionDeps
from parlour_gateway.settings import GatewaySettings
from parlour_gateway.tasks import Beat, Supervisor
from parlour_protocol.v1 import CloseCode, RedisKeys
from parlour_protocol.v1.internal import PlayerDisconnectedCommand, PresenceChanged
from parlour_protocol.v1.rooms import RoomRole
from parlour_runtime.event_loop import running_loop
from parlour_runtime.redis_client import REDIS_ERRORS, AnyRedis, redis_client

log = get_logger("parlour_gateway.gateway")

_PLAYING_ROLES = frozenset({RoomRole.PLAYER.value, RoomRole.HOST.value, RoomRole.LOBBY.value})
_CLUSTER_NODE_CONNECTIONS = 256
"""Connections per Redis Cluster node (the cluster client fails past it rather than wait)."""


class Gateway:
    def __init__(self, settings: GatewaySettings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.keys: RedisKeys = settings.keys
        self.hub = Hub(settings.gateway_id)
        key = settings.public_key
        self.verifier = (
            TokenVerifier(
                public_key=key,
                algorithms=settings.algorithms,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                max_bytes=settings.jwt_max_token_bytes,
            )
            if key is not None
            else None
        )
        self.draining = False
        self.started = False
        self._live = 0
        """sockets accepted and not yet cleaned up (presence, disconnect commands)"""
        self._authenticated = 0
        self._unauthenticated: dict[str, str] = {}
        """connection id -> client address of each open socket not yet authenticated"""
        self._handshakes = KeyedBuckets(
            settings.ws_ip_handshakes_per_sec,
            settings.ws_ip_handshake_burst,
            settings.ws_ip_table_max,
        )
        self._unauthenticated_per_ip = Tally()
        self._trusted_proxies = settings.trusted_proxies
        self.direct_messages = KeyedBuckets(
            settings.ws_direct_messages_per_minute / 60,
            settings.ws_direct_messages_per_minute,
            settings.ws_max_connections,
        )
        """per-user throttle of `chat.command.send_message` (each one is a 24 h Redis key)"""
        self._supervisor = Supervisor(self.metrics)
        self._redis: AnyRedis | None = None
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._events: EventConsumer | None = None
        self._presence: Presence | None = None
        self._publisher: CommandPublisher | None = None
        self._session_deps: SessionDeps | None = None

    # --- clients (available once started) ---
    @property
    def redis(self) -> AnyRedis:
        assert self._redis is not None, "gateway not started"
        return self._redis

    @property
    def presence(self) -> Presence:
        assert self._presence is not None, "gateway not started"
        return self._presence

    @property
    def publisher(self) -> CommandPublisher:
        assert self._publisher is not None, "gateway not started"
        return self._publisher

    async def start(self) -> None:
        s = self.settings
        # a bounded pool that waits for a free connection: a burst of logins queues up
        # instead of failing with MaxConnectionsError. A Redis Cluster client cannot wait for
        # a connection: it gets more of them per node instead (bursts spread over the nodes)
        self._redis = redis_client(
            s,
            max_connections=_CLUSTER_NODE_CONNECTIONS if s.redis_is_cluster else 128,
            blocking_timeout=None if s.redis_is_cluster else 30,
            socket_connect_timeout=5,
        )
        await self._redis.ping()
        self._presence = Presence(self._redis, self.keys, s.gateway_id, s.socket_ttl_seconds)
        security = s.kafka_client_kwargs()
        self._producer = AIOKafkaProducer(
            **security,
            bootstrap_servers=s.kafka_servers,
            enable_idempotence=True,
            acks="all",
            linger_ms=0,  # measured: lower latency and less CPU per command than 1 (commit msg)
            request_timeout_ms=int(s.kafka_publish_timeout_seconds * 1000),
            client_id=f"parlour-gateway-{s.gateway_id}",
        )
        await self._producer.start()
        self._publisher = CommandPublisher(
            self._producer, s.topics.commands, s.kafka_publish_timeout_seconds, self.metrics
        )
        try:
            partitions = await asyncio.wait_for(self._producer.partitions_for(s.topics.events), 20)
        except (TimeoutError, UnknownTopicOrPartitionError):
            await self._producer.stop()
            raise RuntimeError(
                f"events topic {s.topics.events!r} not found on {s.kafka_servers} "
                f"(KAFKA_TOPIC_PREFIX={s.kafka_topic_prefix!r}); create the topics first"
            ) from None
        raw_records.install()  # parsed records, no ConsumerRecord per event (raw_records.py)
        self._consumer = AIOKafkaConsumer(
            **security,
            bootstrap_servers=s.kafka_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            client_id=f"parlour-gateway-{s.gateway_id}",
            value_deserializer=raw_records.raw_records,
        )
        await self._consumer.start()
        self._events = EventConsumer(self._consumer, s.topics.events, self.hub, self.metrics)
        await self._events.assign(set(partitions))
        events = self._events
        stall = s.ws_task_stall_seconds
        self._supervisor.spawn("events", events.run, stall_after=stall)
        self._supervisor.spawn(
            "presence-sweeper", self._sweeper, stall_after=max(stall, 4 * s.presence_sweep_seconds)
        )
        self._supervisor.spawn(
            "gateway-heartbeat",
            self._beat,
            stall_after=max(stall, 4 * s.ws_heartbeat_interval_seconds),
        )
        self._session_deps = SessionDeps(
            settings=s,
            metrics=self.metrics,
            verifier=self.verifier,
            redis=self._redis,
            presence=self._presence,
            publisher=self._publisher,
            hub=self.hub,
            keys=self.keys,
            direct_messages=self.direct_messages,
            admit_authenticated=self.admit_authenticated,
            went_online=functools.partial(self.presence_changed, online=True),
        )
        self.started = True
        log.info(
            "gateway_started",
            gateway_id=s.gateway_id,
            events_partitions=len(partitions),
            dev_mode=s.auth_dev_mode,
            kafka_security=s.kafka_security_protocol,
            event_loop=running_loop(),
        )

    async def drain(self, within: float) -> None:
        """Stop accepting sockets and close every open one with SERVICE_RESTART, so clients
        reconnect elsewhere; wait (bounded) until each socket's cleanup ran."""
        self.draining = True
        for conn in list(self.hub.connections.values()):
            conn.request_close(CloseRequest.SHUTDOWN, CloseCode.SERVICE_RESTART, "gateway restart")
        deadline = time.monotonic() + within
        while self._live and time.monotonic() < deadline:  # noqa: ASYNC110 - bounded
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        await self._supervisor.stop()
        if self._producer is not None:
            with contextlib.suppress(Exception):  # flushing; a dead broker must not hang exit
                await asyncio.wait_for(self._producer.stop(), 5)
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._consumer.stop(), 3)
        if self._presence is not None:
            try:
                await asyncio.wait_for(self._presence.forget_gateway(), 2)
            except (RedisError, RedisClusterException, TimeoutError, OSError) as exc:
                log.warning("gateway_key_not_removed", error=type(exc).__name__)
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
        self.started = False
        log.info("gateway_stopped")

    def task_problems(self) -> dict[str, str]:
        """Background loops that are failing, dead or stalled, by name."""
        return self._supervisor.problems()

    async def readiness(self) -> dict[str, bool]:
        redis_ok = False
        if self._redis is not None:
            try:
                redis_ok = bool(await asyncio.wait_for(self._redis.ping(), 2))
            except (RedisError, RedisClusterException, TimeoutError, OSError):
                redis_ok = False
        producer_ok = self._producer is not None and self.started
        consumer_ok = self._events is not None and self._events.healthy
        return {
            "redis": redis_ok,
            "kafka_producer": producer_ok,
            "kafka_consumer": consumer_ok,
            "background_tasks": not self.task_problems(),
            "accepting": not self.draining,
        }

    # --- sockets ---
    async def serve(self, ws: WebSocket) -> None:
        s = self.settings
        client = ws.client
        forwarded_for, origin = _handshake_headers(ws)
        ip = client_key(
            client.host if client is not None else None, forwarded_for, self._trusted_proxies
        )
        if not self._handshakes.take(ip, time.monotonic()):
            await self._refuse(ws, "ip_handshake_rate", "too many handshakes from this address")
            return
        if self._unauthenticated_per_ip.get(ip) >= s.ws_ip_max_unauthenticated:
            await self._refuse(
                ws, "ip_unauthenticated", "too many unauthenticated sockets from this address"
            )
            return
        if not origin_allowed(origin, s.origins):
            self.metrics.connections_total.labels("origin_rejected").inc()
            log.info("origin_rejected")
            await ws.close(code=int(CloseCode.POLICY_VIOLATION))  # before accept: HTTP 403
            return
        await ws.accept()
        if self.draining or not self.started or self._session_deps is None:
            self.metrics.connections_total.labels("draining").inc()
            await ws.close(code=int(CloseCode.SERVICE_RESTART), reason="gateway restarting")
            return
        if self._authenticated >= s.ws_max_connections:
            self.metrics.connections_total.labels("gateway_full").inc()
            await ws.close(
                code=int(CloseCode.TRY_AGAIN_LATER),
                reason=f"gateway at its cap of {s.ws_max_connections} connections",
            )
            return
        if len(self._unauthenticated) >= s.ws_max_unauthenticated:
            self.metrics.connections_total.labels("unauthenticated_full").inc()
            await ws.close(
                code=int(CloseCode.TRY_AGAIN_LATER),
                reason=f"gateway at its cap of {s.ws_max_unauthenticated} sockets awaiting "
                "authentication",
            )
            return
        if self._unauthenticated_per_ip.get(ip) >= s.ws_ip_max_unauthenticated:
            # the 429 check above and this count are apart by the accept, which may let other
            # handshakes of the address run; from here to the tally nothing awaits, so the cap
            # is exact
            self.metrics.connections_total.labels("ip_unauthenticated").inc()
            await ws.close(
                code=int(CloseCode.TRY_AGAIN_LATER),
                reason="too many sockets awaiting authentication from this address",
            )
            return
        conn = Connection(uuid.uuid4().hex, s.ws_send_queue_max, s.ws_send_queue_max_bytes)
        self.hub.add(conn)
        self._live += 1
        self._unauthenticated[conn.connection_id] = ip
        self._unauthenticated_per_ip.add(ip)
        self.metrics.unauthenticated.inc()
        self.metrics.connections.inc()
        self.metrics.connections_total.labels("accepted").inc()
        session = Session(self._session_deps, conn, ws)
        try:
            await session.run()
        finally:
            self.hub.remove(conn)
            if not self._leave_unauthenticated(conn):
                self._authenticated -= 1
            try:
                if session.registered and conn.identity is not None:
                    await self._socket_gone(conn.identity, conn.connection_id)
            finally:
                # counted until its presence cleanup ran, so a drain waits for that too
                self.metrics.connections.dec()
                self._live -= 1

    async def _refuse(self, ws: WebSocket, outcome: str, message: str) -> None:
        """Refuse a handshake with HTTP 429 before the upgrade: no socket, no state."""
        self.metrics.connections_total.labels(outcome).inc()
        await ws.send_denial_response(
            PlainTextResponse(message, status_code=429, headers={"Retry-After": "5"})
        )

    def _leave_unauthenticated(self, conn: Connection) -> bool:
        ip = self._unauthenticated.pop(conn.connection_id, None)
        if ip is None:
            return False
        self._unauthenticated_per_ip.remove(ip)
        self.metrics.unauthenticated.dec()
        return True

    def admit_authenticated(self, conn: Connection) -> bool:
        """The socket's first authentication succeeded: it leaves the unauthenticated caps
        and takes one of the WS_MAX_CONNECTIONS places, if one is free (else it is closed)."""
        if conn.connection_id not in self._unauthenticated:
            return True  # counted already
        if self._authenticated >= self.settings.ws_max_connections:
            return False
        self._leave_unauthenticated(conn)
        self._authenticated += 1
        return True

    async def _socket_gone(self, identity: Identity, socket_id: str) -> None:
        try:
            offline = await self.presence.unregister(identity.user_id, socket_id)
        except REDIS_ERRORS as exc:
            log.warning("presence_unregister_failed", error=type(exc).__name__)
            return
        if offline:
            await self.user_went_offline(identity)

    async def user_went_offline(self, identity: Identity) -> None:
        """The user's last socket anywhere is gone: tell the engine about each room they
        play in, note where they were for a quick rejoin, and flip their presence."""
        try:
            rooms = await self.presence.user_rooms(identity.user_id)
            now = time.time()
            for room_id, role in sorted(rooms.items()):
                if role not in _PLAYING_ROLES:
                    continue
                await self.presence.mark_reconnect(
                    identity.user_id, identity.username, room_id, now
                )
                await self.publisher.publish(
                    build_envelope(
                        PlayerDisconnectedCommand(room_id=room_id),
                        identity,
                        connection_id=None,
                        gateway_id=self.settings.gateway_id,
                    )
                )
        except (RedisError, RedisClusterException, PublishError) as exc:
            log.warning("disconnect_publish_failed", error=type(exc).__name__)
        await self.presence_changed(identity, online=False)

    async def presence_changed(self, identity: Identity, *, online: bool) -> None:
        try:
            await self.publisher.publish(
                build_envelope(
                    PresenceChanged(online=online),
                    identity,
                    connection_id=None,
                    gateway_id=self.settings.gateway_id,
                )
            )
        except PublishError as exc:
            log.warning("presence_publish_failed", online=online, error=str(exc))

    # --- background ---
    async def _sweeper(self, beat: Beat) -> None:
        """Users whose sockets all died with their gateway (records expired) go offline."""
        interval = self.settings.presence_sweep_seconds
        while True:
            await asyncio.sleep(interval * random.uniform(0.8, 1.2))
            try:
                swept = await self.presence.sweep()
            except REDIS_ERRORS as exc:
                log.warning("presence_sweep_failed", error=type(exc).__name__)
                swept = []
            for user_id in swept:
                log.info("presence_swept", user_id=user_id)
                try:
                    await self.user_went_offline(
                        Identity(user_id=user_id, username=user_id, roles=[])
                    )
                except REDIS_ERRORS as exc:
                    log.warning("presence_sweep_failed", error=type(exc).__name__)
                except Exception as exc:
                    # shared Redis data (a user id no token could carry, written by an old
                    # version or by hand): raising would fail this loop on every gateway at
                    # once, and with it every gateway's /ready. The user's records are already
                    # dropped by the sweep; only their offline notice is lost, and logged.
                    log.error(
                        "presence_sweep_user_failed",
                        error=f"{type(exc).__name__}: {exc}",
                        exc_info=exc,
                    )
            beat()

    async def _beat(self, beat: Beat) -> None:
        """While this process runs, its open sockets' records stay alive (a quiet but open
        socket is still online); when it dies they expire within one socket TTL."""
        interval = self.settings.ws_heartbeat_interval_seconds
        while True:
            try:
                await self.presence.heartbeat_gateway(self.settings.socket_ttl_seconds)
                sockets: list[tuple[SocketInfo, bool]] = []
                for conn in list(self.hub.connections.values()):
                    if (who := conn.identity) is not None:
                        info = SocketInfo(conn.connection_id, who.user_id, who.username)
                        sockets.append((info, conn.active))
                        conn.active = False
                now = time.time()
                for start in range(0, len(sockets), 1000):
                    refreshed = await self.presence.touch_many(
                        sockets[start : start + 1000], now, self.hub.connections.__contains__
                    )
                    if refreshed.recreated:
                        log.warning("presence_recreated", sockets=len(refreshed.recreated))
                    for info in refreshed.back_online:  # someone had taken them offline
                        await self.presence_changed(
                            Identity(user_id=info.user_id, username=info.username, roles=[]),
                            online=True,
                        )
            except REDIS_ERRORS as exc:
                log.warning("gateway_heartbeat_failed", error=type(exc).__name__)
            beat()
            await asyncio.sleep(interval)


def _handshake_headers(ws: WebSocket) -> tuple[str | None, str | None]:
    """(X-Forwarded-For, Origin) of the handshake, read without caching the headers on `ws`:
    the protocol drops them once the socket is accepted (wsproto.py), saving their memory for
    the socket's life."""
    headers = Headers(scope=ws.scope)
    return headers.get("x-forwarded-for"), headers.get("origin")
