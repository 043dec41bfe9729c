"""Gateway on real Kafka + Redis, real gateway processes: auth, limits, bad input, routing.

Every limit and every bad input gets its documented error or close code, and after each the
gateway still serves its other sockets. Until the engine drives them, events are produced onto
this module's events topic by the test and commands are read from its commands topic.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from websockets.exceptions import InvalidStatus

from parlour_protocol.v1 import (
    Audience,
    AudienceKind,
    CloseCode,
    EventEnvelope,
    RedisKeys,
    encode,
)
from parlour_protocol.v1.chat import DirectMessageReceived
from tests.support.gateway_harness import (
    Client,
    GatewayProc,
    Kafka,
    Keys,
    chat_event,
    create_topics,
    delete_topics,
    run_sync,
)

pytestmark = pytest.mark.timeout(120)

ISSUER, AUDIENCE = "parlour-test", "parlour"
LIMITS_ENV = {
    "ALLOWED_ORIGINS": "http://good.example, https://also.example",
    "WS_MAX_MESSAGE_SIZE": "4096",
    "WS_RATE_LIMIT_PER_SEC": "5",
    "WS_RATE_LIMIT_BURST": "10",
    "WS_RATE_LIMIT_STRIKES": "5",
    "WS_MAX_CONNECTIONS_PER_USER": "2",
    "WS_SEND_QUEUE_MAX": "8",
    "AUTH_TIMEOUT_SECONDS": "2",
    "AUTH_REAUTH_GRACE_SECONDS": "2",
    "WS_HEARTBEAT_TIMEOUT_SECONDS": "6",
    "WS_HEARTBEAT_INTERVAL_SECONDS": "2",
    "JWT_ISSUER": ISSUER,
    "JWT_AUDIENCE": AUDIENCE,
    "WS_DIRECT_MESSAGES_PER_MINUTE": "3",
}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("jwt"))


@pytest.fixture(scope="module")
def prefix(kafka_bootstrap: str) -> Iterator[str]:
    value = f"g{uuid.uuid4().hex[:8]}."
    run_sync(create_topics(kafka_bootstrap, value))
    yield value
    run_sync(delete_topics(kafka_bootstrap, value))


def _start(
    kafka_bootstrap: str,
    redis_url: str,
    prefix: str,
    keys: Keys,
    log_dir: Path,
    env: dict[str, str],
) -> GatewayProc:
    gw = GatewayProc(
        bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=prefix,
        key_prefix=prefix,
        public_key=keys.public_path,
        log_dir=log_dir,
        env=env,
    )
    gw.wait_ready()
    return gw


@pytest.fixture(scope="module")
def gw(
    kafka_bootstrap: str,
    redis_url: str,
    prefix: str,
    keys: Keys,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProc]:
    proc = _start(
        kafka_bootstrap, redis_url, prefix, keys, tmp_path_factory.mktemp("gw"), LIMITS_ENV
    )
    yield proc
    proc.terminate()


@pytest.fixture
async def kafka(kafka_bootstrap: str, prefix: str) -> Any:
    k = Kafka(kafka_bootstrap, prefix)
    await k.start()
    yield k
    await k.stop()


@pytest.fixture
def rkeys(prefix: str) -> RedisKeys:
    return RedisKeys(prefix=prefix)


def tok(keys: Keys, sub: str, **kwargs: Any) -> str:
    kwargs.setdefault("issuer", ISSUER)
    kwargs.setdefault("audience", AUDIENCE)
    return keys.token(sub, **kwargs)


async def user(gw: GatewayProc, keys: Keys, sub: str | None = None, **kw: Any) -> Client:
    client = await Client.open(gw.url, **kw)
    frame = await client.authenticate(tok(keys, sub or f"u{uuid.uuid4().hex[:8]}"))
    assert frame["type"] == "system.authenticated", frame
    return client


async def still_serving(gw: GatewayProc, keys: Keys) -> None:
    """A fresh socket authenticates and gets a heartbeat answer."""
    client = await user(gw, keys)
    await client.ping_ok()
    await client.close()


def dm_event(audience: Audience, text: str = "dm") -> EventEnvelope:
    payload = DirectMessageReceived(
        message_id=uuid.uuid4().hex,
        sender_id="s",
        sender_name="s",
        recipient_id="r",
        content=text,
        sent_at=datetime.now(UTC),
    )
    return EventEnvelope(type=payload.type, audience=audience, payload=payload)


# ------------------------------------------------------------------ connection and auth


async def test_welcome_auth_heartbeat_and_ops_endpoints(gw: GatewayProc, keys: Keys) -> None:
    client = await Client.open(gw.url)
    welcome = await client.expect("system.welcome")
    assert welcome["connection_id"]
    assert welcome["protocol_version"] == "1.0"
    assert welcome["heartbeat_interval"] == 2
    await client.send({"type": "system.authenticate", "token": tok(keys, "alice-1")})
    authd = await client.expect("system.authenticated")
    assert authd["user_id"] == "alice-1"
    assert authd["username"] == "name-alice-1"
    await client.ping_ok()
    await client.close()
    assert gw.http("/health").json()["status"] == "ok"
    ready = gw.http("/ready")
    assert ready.status_code == 200
    assert ready.json()["kafka_consumer"] is True
    metrics = gw.http("/metrics").text
    assert "parlour_gateway_connections_total" in metrics
    assert 'parlour_gateway_messages_in_total{type="system.heartbeat"}' in metrics


@pytest.mark.parametrize(
    ("label", "make"),
    [
        ("garbage", lambda k: "not-a-jwt"),
        ("expired", lambda k: tok(k, "x", expires_in=-60)),
        ("wrong issuer", lambda k: tok(k, "x", issuer="evil")),
        ("wrong audience", lambda k: tok(k, "x", audience="other")),
        ("no exp", lambda k: tok(k, "x", with_exp=False)),
        (
            "other key",
            lambda k: Keys(Path(__import__("tempfile").mkdtemp())).token(
                "x", issuer=ISSUER, audience=AUDIENCE
            ),
        ),
    ],
)
async def test_bad_token_is_refused_and_socket_stays_open(
    gw: GatewayProc, keys: Keys, label: str, make: Any
) -> None:
    client = await Client.open(gw.url)
    frame = await client.authenticate(make(keys))
    assert (frame["type"], frame.get("code")) == ("system.error", "auth_failed"), label
    assert "eyJ" not in frame["message"]
    # a retry with a good token on the same socket works
    await client.send({"type": "system.authenticate", "token": tok(keys, "retry-user")})
    assert (await client.expect("system.authenticated"))["user_id"] == "retry-user"
    await client.close()


async def test_three_failures_close_the_socket(gw: GatewayProc, keys: Keys) -> None:
    client = await Client.open(gw.url)
    await client.expect("system.welcome")
    for _ in range(3):
        await client.send({"type": "system.authenticate", "token": "bad"})
    code, _ = await client.expect_close()
    assert code == CloseCode.AUTH_FAILED
    assert [f["code"] for f in client.frames if f["type"] == "system.error"] == ["auth_failed"] * 3
    await still_serving(gw, keys)


async def test_no_auth_in_time_closes(gw: GatewayProc, keys: Keys) -> None:
    client = await Client.open(gw.url)
    started = time.monotonic()
    code, _ = await client.expect_close(within=8)
    assert code == CloseCode.AUTH_TIMEOUT
    assert 1.5 < time.monotonic() - started < 6
    await still_serving(gw, keys)


async def test_commands_before_auth_get_auth_required(gw: GatewayProc, keys: Keys) -> None:
    client = await Client.open(gw.url)
    await client.expect("system.welcome")
    await client.send({"type": "games.command.list_rooms", "request_id": "r1"})
    err = await client.expect("system.error")
    assert err["code"] == "auth_required"
    assert err["request_id"] == "r1"
    await client.ping_ok()  # heartbeats are fine before auth
    await client.close()


async def test_dev_login_is_refused_without_dev_mode(gw: GatewayProc) -> None:
    client = await Client.open(gw.url)
    await client.expect("system.welcome")
    await client.send({"type": "system.authenticate", "user_id": "7", "username": "mallory"})
    err = await client.expect("system.error")
    assert err["code"] == "auth_failed"
    await client.close()


async def test_token_expiry_asks_for_reauth_then_closes(gw: GatewayProc, keys: Keys) -> None:
    # refreshed in time: the socket lives on
    fresh = await Client.open(gw.url)
    assert (await fresh.authenticate(tok(keys, "exp-1", expires_in=2)))["type"] == (
        "system.authenticated"
    )
    reauth = await fresh.expect("system.reauth_required", within=6)
    assert reauth["deadline"]
    await fresh.send({"type": "system.authenticate", "token": tok(keys, "exp-2")})
    err = await fresh.expect("system.error")  # another user's token is refused
    assert err["code"] == "already_authenticated"
    await fresh.send({"type": "system.authenticate", "token": tok(keys, "exp-1")})
    await fresh.expect("system.authenticated")
    # not refreshed: closed after the grace
    stale = await Client.open(gw.url)
    await stale.authenticate(tok(keys, "exp-3", expires_in=1))
    await stale.expect("system.reauth_required", within=5)
    code, _ = await stale.expect_close(within=8)
    assert code == CloseCode.TOKEN_EXPIRED
    assert any(f.get("code") == "token_expired" for f in stale.frames)
    await fresh.ping_ok()
    await fresh.close()


async def test_silent_socket_is_closed_by_idle_timeout(gw: GatewayProc, keys: Keys) -> None:
    silent = await user(gw, keys)
    talker = await user(gw, keys)
    started = time.monotonic()
    for _ in range(4):  # the talker heartbeats past the silent one's timeout
        await asyncio.sleep(2)
        await talker.ping_ok()
    code, _ = await silent.expect_close(within=10)
    assert code == CloseCode.HEARTBEAT_TIMEOUT
    assert time.monotonic() - started >= 5
    await talker.ping_ok()
    await talker.close()


# ------------------------------------------------------------------ limits and bad input


async def test_origin_allow_list(gw: GatewayProc, keys: Keys) -> None:
    with pytest.raises(InvalidStatus) as info:
        await Client.open(gw.url, origin="http://evil.example")
    assert info.value.response.status_code == 403
    good = await Client.open(gw.url, origin="http://good.example")
    await good.expect("system.welcome")
    await good.close()
    other = await Client.open(gw.url, origin="HTTPS://also.example")
    await other.expect("system.welcome")
    await other.close()
    await still_serving(gw, keys)  # no Origin header at all


async def test_bad_frames_get_invalid_message_and_socket_stays(gw: GatewayProc, keys: Keys) -> None:
    client = await user(gw, keys)
    await client.send("{not json")
    err = await client.expect("system.error")
    assert (err["code"], err["reason"]) == ("invalid_message", "invalid_json")
    await client.send({"type": "games.command.fly_to_moon", "request_id": "q1"})
    err = await client.expect("system.error")
    assert (err["code"], err["reason"], err["request_id"]) == (
        "invalid_message",
        "unknown_type",
        "q1",
    )
    await client.send({"type": "games.command.create_room", "request_id": "q2", "max_players": 99})
    err = await client.expect("system.error")
    assert err["reason"] == "invalid_fields"
    assert err["request_id"] == "q2"
    paths = {f["path"] for f in err["fields"]}
    assert {"game_type", "room_name", "max_players"} <= paths
    await client.send(b"\xff\xfe binary junk")
    err = await client.expect("system.error")
    assert err["code"] == "invalid_message"
    await client.send("[1, 2, 3]")
    assert (await client.expect("system.error"))["reason"] == "invalid_json"
    await client.ping_ok()
    await client.close()


async def test_frame_size_limits(gw: GatewayProc, keys: Keys) -> None:
    client = await user(gw, keys)
    big = json.dumps({"type": "system.heartbeat", "pad": "x" * 5000})  # over 4096, under 8192
    await client.send(big)
    err = await client.expect("system.error")
    assert (err["code"], err["reason"]) == ("message_too_large", "too_large")
    await client.ping_ok()
    huge = json.dumps({"type": "system.heartbeat", "pad": "x" * 20_000})  # over the server cap
    await client.send(huge)
    code, _ = await client.expect_close()
    assert code == CloseCode.MESSAGE_TOO_BIG
    await still_serving(gw, keys)


async def test_rate_limit_errors_then_closes_a_flooder(gw: GatewayProc, keys: Keys) -> None:
    client = await user(gw, keys)
    for _ in range(12):  # burst 10 (auth took one): a few are dropped, each one answered
        await client.send({"type": "system.heartbeat"})
    answers = [
        await client.expect(lambda f: f["type"] in ("system.heartbeat_ack", "system.error"))
        for _ in range(12)
    ]
    limited = [f for f in answers if f.get("code") == "rate_limited"]
    assert 1 <= len(limited) <= 4
    await asyncio.sleep(0.5)
    await client.ping_ok()
    await asyncio.sleep(2.5)  # the bucket refills
    await client.ping_ok()
    for _ in range(60):
        await client.send({"type": "system.heartbeat"})
    code, reason = await client.expect_close()
    assert code == CloseCode.RATE_LIMITED
    assert reason
    await still_serving(gw, keys)


async def test_connections_per_user_are_capped(gw: GatewayProc, keys: Keys) -> None:
    sub = f"cap-{uuid.uuid4().hex[:6]}"
    first = await user(gw, keys, sub)
    second = await user(gw, keys, sub)
    third = await Client.open(gw.url)
    await third.expect("system.welcome")
    await third.send({"type": "system.authenticate", "token": tok(keys, sub)})
    code, reason = await third.expect_close()
    assert code == CloseCode.TOO_MANY_CONNECTIONS
    assert "5" not in reason
    assert "2" in reason
    await first.ping_ok()
    await second.close()
    # a freed slot can be used again (the closed socket left Redis)
    again = await user(gw, keys, sub)
    await again.ping_ok()
    await first.close()
    await again.close()


async def test_gateway_connection_cap(
    kafka_bootstrap: str,
    redis_url: str,
    prefix: str,
    keys: Keys,
    tmp_path: Path,
) -> None:
    small = _start(
        kafka_bootstrap,
        redis_url,
        prefix,
        keys,
        tmp_path,
        {**LIMITS_ENV, "WS_MAX_CONNECTIONS": "2"},
    )
    try:
        a = await user(small, keys)
        b = await user(small, keys)
        c = await Client.open(small.url)
        code, reason = await c.expect_close()
        assert code == CloseCode.TRY_AGAIN_LATER
        assert "cap" in reason
        await a.ping_ok()
        await b.ping_ok()
        await a.close()
        await b.close()
    finally:
        small.terminate()


async def test_slow_consumer_is_closed(gw: GatewayProc, keys: Keys, kafka: Kafka) -> None:
    sub = f"slow-{uuid.uuid4().hex[:6]}"
    # a reader that stops reading: tiny client queue and receive buffer
    slow = await user(gw, keys, sub, max_queue=1)
    watcher = await user(gw, keys)
    text = "y" * 900
    room = uuid.uuid4().hex
    sends = [
        kafka.producer.send(
            kafka.topics.events,
            encode(chat_event(room, [sub], None, text)),
            key=room.encode(),
        )
        for _ in range(4000)
    ]
    await asyncio.gather(*[await s for s in sends])
    code, _ = await slow.expect_close(within=60)
    assert code == CloseCode.SLOW_CONSUMER, code
    metrics = gw.http("/metrics").text
    closes = [
        line
        for line in metrics.splitlines()
        if line.startswith("parlour_gateway_send_queue_closes_total ")
    ]
    assert closes
    assert float(closes[0].split()[1]) >= 1
    await watcher.ping_ok()
    await watcher.close()


# ------------------------------------------------------------------ commands to Kafka


async def test_commands_carry_the_token_identity_and_room_keys(
    gw: GatewayProc, keys: Keys, kafka: Kafka, redis_client: aioredis.Redis, rkeys: RedisKeys
) -> None:
    sub = f"cmd-{uuid.uuid4().hex[:6]}"
    client = await user(gw, keys, sub)
    # create_room: the gateway mints the room id; actor from the token, not the frame
    await client.send(
        {
            "type": "games.command.create_room",
            "request_id": "c1",
            "game_type": "bigger_dice",
            "room_name": "Table 1",
            "actor": {"user_id": "admin", "username": "admin", "roles": ["admin"]},
            "user_id": "admin",
        }
    )
    ack = await client.expect("system.ack")
    env, key = await kafka.command(lambda e: e.get("request_id") == "c1")
    assert ack["request_id"] == "c1"
    assert ack["msg_id"] == env["msg_id"]
    assert env["actor"] == {"user_id": sub, "username": f"name-{sub}", "roles": ["user"]}
    assert env["room_id"]
    assert key == env["room_id"].encode() == env["key"].encode()
    assert env["connection_id"]
    assert env["gateway_id"] == gw.gateway_id
    # join by a known name: resolved to the id
    await redis_client.set(rkeys.room_name("bigger_dice", "Known Room"), "room-42")
    await client.send(
        {"type": "games.command.join_room", "request_id": "j1", "room_name": "known room"}
    )
    env, key = await kafka.command(lambda e: e.get("request_id") == "j1")
    assert env["room_id"] == "room-42"
    assert key == b"room-42"
    # by an unknown name: no room, keyed by the user
    await client.send(
        {"type": "games.command.join_as_spectator", "request_id": "j2", "room_name": "Nope"}
    )
    env, key = await kafka.command(lambda e: e.get("request_id") == "j2")
    assert env["room_id"] is None
    assert key == sub.encode()
    # room command: key = room id; list_rooms: key = user
    await client.send({"type": "games.command.ready", "room_id": "r-9", "request_id": "k1"})
    env, key = await kafka.command(lambda e: e.get("request_id") == "k1")
    assert key == b"r-9"
    await client.send({"type": "games.command.list_rooms", "request_id": "l1"})
    env, key = await kafka.command(lambda e: e.get("request_id") == "l1")
    assert key == sub.encode()
    assert env["type"] == "games.command.list_rooms"
    # no request_id: forwarded, no ack
    await client.send({"type": "games.command.bigger_dice.roll", "room_id": "r-9"})
    env, _ = await kafka.command(lambda e: e["type"] == "games.command.bigger_dice.roll")
    assert env["payload"]["room_id"] == "r-9"
    await client.ping_ok()
    assert not [f for f in client.frames if f["type"] == "system.ack" and "request_id" not in f]
    await client.close()


async def test_sync_state_reads_the_users_rooms(
    gw: GatewayProc, keys: Keys, redis_client: aioredis.Redis, rkeys: RedisKeys
) -> None:
    sub = f"sync-{uuid.uuid4().hex[:6]}"
    await redis_client.hset(rkeys.user_rooms(sub), mapping={"room-b": "player", "room-a": "host"})
    client = await user(gw, keys, sub)
    await client.send({"type": "system.sync_state"})
    snap = await client.expect("system.state_snapshot")
    assert snap["active_rooms"] == ["room-a", "room-b"]
    await client.close()


async def test_presence_and_disconnect_commands(
    gw: GatewayProc, keys: Keys, kafka: Kafka, redis_client: aioredis.Redis, rkeys: RedisKeys
) -> None:
    sub = f"pres-{uuid.uuid4().hex[:6]}"
    await redis_client.hset(
        rkeys.user_rooms(sub), mapping={"g1": "player", "g2": "spectator", "g3": "host"}
    )
    a = await user(gw, keys, sub)
    b = await user(gw, keys, sub)
    env, key = await kafka.command(
        lambda e: e["type"] == "games.command.presence_changed" and e["actor"]["user_id"] == sub
    )
    assert env["payload"]["online"] is True
    assert key == sub.encode()
    sockets = await redis_client.smembers(rkeys.user_sockets(sub))
    assert len(sockets) == 2
    sid = next(iter(sockets)).decode()
    record = await redis_client.hgetall(rkeys.socket(sub, sid))
    assert record[b"user_id"] == sub.encode()
    assert record[b"gateway_id"] == gw.gateway_id.encode()
    assert 0 < await redis_client.ttl(rkeys.socket(sub, sid)) <= 6
    assert await redis_client.sismember(rkeys.presence_online(), sub)
    await a.close()
    await b.ping_ok()
    await asyncio.sleep(0.3)
    assert await redis_client.sismember(rkeys.presence_online(), sub)  # one socket left
    await b.close()
    env, _ = await kafka.command(
        lambda e: (
            e["type"] == "games.command.presence_changed"
            and e["actor"]["user_id"] == sub
            and e["payload"]["online"] is False
        )
    )
    rooms = set()
    for _ in range(2):
        env, key = await kafka.command(
            lambda e: (
                e["type"] == "games.command.player_disconnected" and e["actor"]["user_id"] == sub
            )
        )
        rooms.add(env["room_id"])
        assert key == env["room_id"].encode()
    assert rooms == {"g1", "g3"}
    assert 0 < await redis_client.ttl(rkeys.reconnect(sub, "g1")) <= 300
    assert not await redis_client.exists(rkeys.reconnect(sub, "g2"))
    assert not await redis_client.sismember(rkeys.presence_online(), sub)
    assert not await redis_client.exists(rkeys.user_sockets(sub))


# ------------------------------------------------------------------ events to sockets


async def test_routing_by_audience(gw: GatewayProc, keys: Keys, kafka: Kafka) -> None:
    a_sub, b_sub = f"ra-{uuid.uuid4().hex[:6]}", f"rb-{uuid.uuid4().hex[:6]}"
    a1 = await user(gw, keys, a_sub)
    a2 = await user(gw, keys, a_sub)
    b = await user(gw, keys, b_sub)
    anon = await Client.open(gw.url)
    await anon.expect("system.welcome")
    # user audience: both of A's sockets, not B
    await kafka.publish(dm_event(Audience(kind=AudienceKind.USER, user_ids=[a_sub]), "to-a"))
    for c in (a1, a2):
        assert (await c.expect("chat.event.message_received"))["content"] == "to-a"
    # connection audience: only that socket
    welcome = next(f for f in b.frames if f["type"] == "system.welcome")
    await kafka.publish(
        dm_event(
            Audience(
                kind=AudienceKind.CONNECTION,
                connection_id=welcome["connection_id"],
                gateway_id=gw.gateway_id,
            ),
            "to-b-conn",
        )
    )
    assert (await b.expect("chat.event.message_received"))["content"] == "to-b-conn"
    # a connection audience for another gateway is not ours
    await kafka.publish(
        dm_event(
            Audience(
                kind=AudienceKind.CONNECTION,
                connection_id=welcome["connection_id"],
                gateway_id="elsewhere",
            ),
            "not-here",
        )
    )
    # garbage on the topic is skipped; delivery goes on
    await kafka.publish_raw(b"{garbage")
    # broadcast (lobby updates): only the sockets that asked for a room list
    for c in (a1, b):
        await c.send({"type": "games.command.list_rooms", "request_id": "lr"})
        await c.expect("system.ack")
    await kafka.publish(dm_event(Audience(kind=AudienceKind.BROADCAST), "all"))
    for c in (a1, b):
        assert (await c.expect("chat.event.message_received"))["content"] == "all"
    # room events dedup by (room, seq) per socket; only listed users get them
    room = uuid.uuid4().hex
    for seq in (1, 2, 2, 1, 3):
        await kafka.publish(chat_event(room, [a_sub], seq, f"s{seq}"))
    got = []
    while len(got) < 3:
        frame = await a1.expect("games.event.chat_message")
        got.append(frame["seq"])
    assert got == [1, 2, 3]
    await a1.ping_ok()
    assert [f["seq"] for f in a1.frames if f["type"] == "games.event.chat_message"] == [1, 2, 3]
    await b.ping_ok()
    assert "not-here" not in [f.get("content") for f in b.frames]
    await a2.ping_ok()
    assert "all" not in [f.get("content") for f in a2.frames]
    assert not [f for f in b.frames if f["type"] == "games.event.chat_message"]
    await anon.ping_ok()
    assert [f["type"] for f in anon.frames] == ["system.welcome", "system.heartbeat_ack"]
    for c in (a1, a2, b, anon):
        await c.close()


async def test_rejoin_with_last_seq_replays_the_gap_once_in_order(
    gw: GatewayProc, keys: Keys, kafka: Kafka, redis_client: aioredis.Redis, rkeys: RedisKeys
) -> None:
    sub = f"rj-{uuid.uuid4().hex[:6]}"
    room = uuid.uuid4().hex
    stream = rkeys.room_events(room)
    stored = {seq: chat_event(room, [sub, "other"], seq, f"m{seq}") for seq in range(1, 6)}
    for seq, stored_env in stored.items():
        await redis_client.xadd(stream, {"seq": str(seq), "env": encode(stored_env)})
    # an event the user was not an audience of is not replayed
    await redis_client.xadd(
        stream, {"seq": "6", "env": encode(chat_event(room, ["other"], 6, "secret"))}
    )
    for rid in (room, old_room := uuid.uuid4().hex):  # replays are for members only
        await redis_client.hset(rkeys.user_rooms(sub), rid, "player")
    client = await user(gw, keys, sub)
    await client.send(
        {"type": "games.command.rejoin_room", "room_id": room, "last_seq": 2, "request_id": "rj"}
    )
    _, key = await kafka.command(lambda e: e.get("request_id") == "rj")
    assert key == room.encode()
    # live events racing with the replay: a duplicate of a replayed one and a new one
    await kafka.publish(stored[5])  # a redelivery keeps its envelope (and time stamp)
    await kafka.publish(chat_event(room, [sub], 7, "m7"))
    got = []
    while len(got) < 4:
        got.append((await client.expect("games.event.chat_message"))["seq"])
    assert got == [3, 4, 5, 7]
    await client.ping_ok()
    assert [f["seq"] for f in client.frames if f["type"] == "games.event.chat_message"] == got
    # a gap older than the stream: no replay (the engine's room_state covers it)
    for seq in (10, 11):
        await redis_client.xadd(
            rkeys.room_events(old_room),
            {"seq": str(seq), "env": encode(chat_event(old_room, [sub], seq))},
        )
    await client.send({"type": "games.command.rejoin_room", "room_id": old_room, "last_seq": 3})
    await kafka.command(lambda e: e.get("room_id") == old_room)
    await client.ping_ok()
    assert not [f for f in client.frames if f.get("room_id") == old_room]
    await client.close()


async def test_publish_failure_answers_service_unavailable(
    kafka_bootstrap: str,
    redis_url: str,
    keys: Keys,
    tmp_path: Path,
) -> None:
    # only the events topic exists for this prefix: publishing a command cannot succeed
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from parlour_protocol.v1 import Topics

    pfx = f"n{uuid.uuid4().hex[:8]}."
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(Topics(prefix=pfx).events, 2, 1)])
        await asyncio.sleep(1)
        proc = _start(
            kafka_bootstrap,
            redis_url,
            pfx,
            keys,
            tmp_path,
            {**LIMITS_ENV, "KAFKA_PUBLISH_TIMEOUT_SECONDS": "1"},
        )
        try:
            client = await Client.open(proc.url)
            await client.authenticate(tok(keys, "nope-user"))
            await client.send({"type": "games.command.list_rooms", "request_id": "p1"})
            err = await client.expect("system.error", within=10)
            assert err["code"] == "service_unavailable"
            assert err["request_id"] == "p1"
            await client.ping_ok()
            await client.close()
        finally:
            proc.terminate()
    finally:
        await admin.delete_topics([Topics(prefix=pfx).events])
        await admin.close()


async def test_sigterm_closes_clients_with_service_restart(
    kafka_bootstrap: str,
    redis_url: str,
    prefix: str,
    keys: Keys,
    tmp_path: Path,
    redis_client: aioredis.Redis,
    rkeys: RedisKeys,
) -> None:
    proc = _start(kafka_bootstrap, redis_url, prefix, keys, tmp_path, LIMITS_ENV)
    clients = [await user(proc, keys) for _ in range(3)]
    liveness = rkeys.gateway(proc.gateway_id)
    assert await redis_client.exists(liveness)
    started = time.monotonic()
    proc.proc.send_signal(__import__("signal").SIGTERM)
    for c in clients:
        code, _ = await c.expect_close()
        assert code == CloseCode.SERVICE_RESTART
    rc = await asyncio.to_thread(proc.proc.wait, 15)
    assert rc == 0, proc.logs()[-2000:]
    assert time.monotonic() - started < 10
    assert not await redis_client.exists(liveness)  # gone at once, not at the end of its TTL
    proc.terminate()


def test_missing_key_file_fails_startup_naming_the_setting(tmp_path: Path) -> None:
    import os
    import subprocess

    from tests.support.gateway_harness import PYTHON, ROOT

    env = {**os.environ, "JWT_PUBLIC_KEY_PATH": str(tmp_path / "nope.pem")}
    env.pop("AUTH_DEV_MODE", None)
    done = subprocess.run(
        [PYTHON, "-m", "parlour_gateway"], env=env, cwd=ROOT, capture_output=True, timeout=30
    )
    assert done.returncode == 2
    assert b"JWT_PUBLIC_KEY_PATH" in done.stderr


async def test_tokens_and_chat_text_never_reach_the_logs(
    gw: GatewayProc, keys: Keys, kafka: Kafka
) -> None:
    secret_text = f"secret-chat-{uuid.uuid4().hex}"
    token = tok(keys, f"log-{uuid.uuid4().hex[:6]}")
    client = await Client.open(gw.url)
    await client.authenticate(token)
    await client.send(
        {
            "type": "games.command.send_chat",
            "room_id": "r-log",
            "channel": "lobby",
            "content": secret_text,
            "request_id": "log1",
        }
    )
    await client.expect("system.ack")
    await kafka.command(lambda e: e.get("request_id") == "log1")
    await client.send({"type": "system.authenticate", "token": token + "x"})  # a failure too
    await client.expect("system.error")
    await client.send({"type": "games.command.send_chat", "content": secret_text})  # invalid
    await client.expect("system.error")
    await client.close()
    await asyncio.sleep(0.5)
    logs = gw.logs()
    assert "command_forwarded" in logs  # the gateway does log these commands
    assert secret_text not in logs
    assert token not in logs
    assert token.split(".")[1] not in logs


# ------------------------------------------------------------------ hardening: connection limits
#
# Each test runs the hostile sequence against its own gateway process, then checks that an
# ordinary client is still served. Clients get distinct source addresses from the loopback
# range (127.0.0.0/8 all reaches 127.0.0.1 on Linux), so the per-address limits apply to the
# "attacker" alone.


_PATIENT = {"AUTH_TIMEOUT_SECONDS": "30", "WS_HEARTBEAT_TIMEOUT_SECONDS": "60"}
"""silent sockets stay open for the length of a test"""


def _from(ip: str) -> dict[str, Any]:
    return {"local_addr": (ip, 0)}


def _rss_peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


async def _refused_with_429(url: str, **kwargs: Any) -> None:
    with pytest.raises(InvalidStatus) as info:
        await Client.open(url, **kwargs)
    assert info.value.response.status_code == 429
    assert info.value.response.headers.get("Retry-After")


async def _admitted_within(url: str, within: float, **kwargs: Any) -> Client:
    """A socket the gateway accepts within `within` seconds: a 429 before then is retried."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await Client.open(url, **kwargs)
        except InvalidStatus as exc:
            status = exc.response.status_code
        assert status == 429, status
        assert time.monotonic() < deadline, f"still refused after {within}s"
        await asyncio.sleep(0.05)


async def test_handshakes_per_address_are_limited_and_xff_is_only_believed_from_proxies(
    kafka_bootstrap: str, redis_url: str, prefix: str, keys: Keys, tmp_path: Path
) -> None:
    proc = _start(
        kafka_bootstrap,
        redis_url,
        prefix,
        keys,
        tmp_path,
        {
            **LIMITS_ENV,
            "WS_IP_HANDSHAKE_BURST": "4",
            "WS_IP_HANDSHAKES_PER_SEC": "0.01",
            "WS_TRUSTED_PROXIES": "127.0.0.9",
        },
    )
    try:
        # a client (not a proxy) that forges a new X-Forwarded-For on every handshake; from
        # 127.0.0.1, which uvicorn's own proxy-header handling would have believed
        for n in range(4):
            forged = {"additional_headers": {"X-Forwarded-For": f"198.51.100.{n}"}}
            c = await Client.open(proc.url, **forged)
            await c.expect("system.welcome")
            await c.close()
        forged = {"additional_headers": {"X-Forwarded-For": "198.51.100.99"}}
        await _refused_with_429(proc.url, **forged)
        # behind the trusted proxy (127.0.0.9) the forwarded address is the one counted
        behind = {"additional_headers": {"X-Forwarded-For": "1.2.3.4, 203.0.113.5"}}
        for _ in range(4):
            c = await Client.open(proc.url, **_from("127.0.0.9"), **behind)
            await c.expect("system.welcome")
            await c.close()
        await _refused_with_429(proc.url, **_from("127.0.0.9"), **behind)
        metrics = proc.http("/metrics").text
        assert 'parlour_gateway_connections_total{outcome="ip_handshake_rate"} 2.0' in metrics
        # ordinary clients: another address, another forwarded client of the proxy
        await still_serving_from(proc, keys, **_from("127.0.0.3"))
        other = {"additional_headers": {"X-Forwarded-For": "203.0.113.6"}}
        await still_serving_from(proc, keys, **_from("127.0.0.9"), **other)
        # a refusal is not an error of the server (one log line per hostile handshake)
        assert "without completing handshake" not in proc.logs()
    finally:
        proc.terminate()


async def still_serving_from(gw: GatewayProc, keys: Keys, **kwargs: Any) -> None:
    client = await user(gw, keys, **kwargs)
    await client.ping_ok()
    await client.close()


async def test_unauthenticated_sockets_per_address_are_limited(
    kafka_bootstrap: str, redis_url: str, prefix: str, keys: Keys, tmp_path: Path
) -> None:
    proc = _start(
        kafka_bootstrap,
        redis_url,
        prefix,
        keys,
        tmp_path,
        {**LIMITS_ENV, **_PATIENT, "WS_IP_MAX_UNAUTHENTICATED": "3"},
    )
    try:
        idle = [await Client.open(proc.url, **_from("127.0.0.4")) for _ in range(3)]
        for c in idle:
            await c.expect("system.welcome")
        await _refused_with_429(proc.url, **_from("127.0.0.4"))
        # an authenticated socket no longer counts: its place is free again
        await idle[0].send(
            {"type": "system.authenticate", "token": tok(keys, f"ip-{uuid.uuid4().hex[:6]}")}
        )
        await idle[0].expect("system.authenticated")
        fourth = await Client.open(proc.url, **_from("127.0.0.4"))
        await fourth.expect("system.welcome")
        await _refused_with_429(proc.url, **_from("127.0.0.4"))
        # ... and so does a closed one, once the gateway has cleaned it up (the client's
        # close can complete before the gateway's socket clean-up has run)
        await idle[1].close()
        fifth = await _admitted_within(proc.url, 5.0, **_from("127.0.0.4"))
        await fifth.expect("system.welcome")
        await idle[0].ping_ok()
        await still_serving_from(proc, keys, **_from("127.0.0.5"))
        for c in [*idle, fourth, fifth]:
            await c.close()
        # ten handshakes of one address at the same moment: still three sockets at most
        burst = await asyncio.gather(
            *(_welcomed(proc.url, **_from("127.0.0.6")) for _ in range(10))
        )
        opened = [c for c in burst if c is not None]
        assert len(opened) == 3
        for c in opened:
            await c.close()
    finally:
        proc.terminate()


async def _welcomed(url: str, **kwargs: Any) -> Client | None:
    """A socket that got its welcome, or None when the gateway refused it (429 or 1013)."""
    try:
        client = await Client.open(url, **kwargs)
    except InvalidStatus as exc:
        status = exc.response.status_code
    else:
        status = 101
    if status != 101:
        assert status == 429
        return None
    frame = await client.next()
    if frame["type"] == "system.welcome":
        return client
    code, _ = await client.expect_close()
    assert code == CloseCode.TRY_AGAIN_LATER
    return None


async def test_unauthenticated_sockets_never_take_authenticated_places(
    kafka_bootstrap: str, redis_url: str, prefix: str, keys: Keys, tmp_path: Path
) -> None:
    proc = _start(
        kafka_bootstrap,
        redis_url,
        prefix,
        keys,
        tmp_path,
        {**LIMITS_ENV, **_PATIENT, "WS_MAX_CONNECTIONS": "2", "WS_MAX_UNAUTHENTICATED": "2"},
    )
    try:
        alice = await user(proc, keys, **_from("127.0.2.1"))
        # silent sockets up to their own cap; before, each took one of the 2 places
        idle = [await Client.open(proc.url, **_from(f"127.0.1.{n}")) for n in (1, 2)]
        for c in idle:
            await c.expect("system.welcome")
        late = await Client.open(proc.url, **_from("127.0.1.3"))
        code, reason = await late.expect_close()
        assert code == CloseCode.TRY_AGAIN_LATER
        assert "authentication" in reason
        await alice.ping_ok()
        # a freed unauthenticated place lets the next user in, to the second place
        await idle[0].close()
        bob = await _user_when_admitted(proc, keys, "127.0.2.2")
        # places full: a handshake is turned away, and so is a socket that was waiting
        # unauthenticated when it authenticates
        carol = await Client.open(proc.url, **_from("127.0.2.3"))
        code, reason = await carol.expect_close()
        assert code == CloseCode.TRY_AGAIN_LATER
        assert "cap of 2 connections" in reason
        await idle[1].send({"type": "system.authenticate", "token": tok(keys, "cap-dave")})
        code, reason = await idle[1].expect_close()
        assert code == CloseCode.TRY_AGAIN_LATER
        assert "cap of 2 connections" in reason
        await alice.ping_ok()
        await bob.ping_ok()
        await alice.close()
        again = await _user_when_admitted(proc, keys, "127.0.2.4")
        await again.ping_ok()
        await bob.close()
        await again.close()
    finally:
        proc.terminate()


async def _user_when_admitted(gw: GatewayProc, keys: Keys, ip: str, within: float = 10) -> Client:
    """An ordinary user, retrying while the gateway answers 1013 (a place freed by a socket
    that just closed is free once the gateway has seen the close)."""
    deadline = time.monotonic() + within
    while True:
        client = await Client.open(gw.url, **_from(ip))
        frame = await client.authenticate(tok(keys, f"u{uuid.uuid4().hex[:8]}"))
        if frame["type"] == "system.authenticated":
            return client
        code, _ = await client.expect_close()
        assert code == CloseCode.TRY_AGAIN_LATER, code
        if time.monotonic() > deadline:
            raise TimeoutError("never admitted")


async def test_a_client_that_stops_reading_pins_at_most_the_byte_bound(
    kafka_bootstrap: str, redis_url: str, prefix: str, keys: Keys, tmp_path: Path
) -> None:
    proc = _start(
        kafka_bootstrap,
        redis_url,
        prefix,
        keys,
        tmp_path,
        # the frame-count bound out of the way: only the byte bound (1 MiB) can act
        {
            **LIMITS_ENV,
            **_PATIENT,
            "WS_SEND_QUEUE_MAX": "1000000",
            "WS_SEND_QUEUE_MAX_BYTES": "1048576",
        },
    )
    kafka = Kafka(kafka_bootstrap, prefix)
    await kafka.start(read_commands=False)
    try:
        sub = f"big-{uuid.uuid4().hex[:6]}"
        slow = await user(proc, keys, sub, max_queue=1)
        watcher = await user(proc, keys)
        await watcher.ping_ok()
        peak_before = _rss_peak_kib(proc.proc.pid)
        room = uuid.uuid4().hex
        events = 40_000  # ~45 MB of frames for one socket, far beyond the kernel's buffers
        for start in range(0, events, 2000):
            sends = [
                await kafka.producer.send(
                    kafka.topics.events,
                    encode(chat_event(room, [sub], None, "z" * 1000)),
                    key=room.encode(),
                )
                for _ in range(start, start + 2000)
            ]
            await asyncio.gather(*sends)
        # the close frame waits behind megabytes the client never reads, and the gateway
        # drops the TCP connection after WS_CLOSE_TIMEOUT_SECONDS: the gateway's own account
        # (metric and log) is the evidence of the 4031
        code, _ = await slow.expect_close(within=60)
        assert code in (CloseCode.SLOW_CONSUMER, None), code
        assert _metric(proc, "parlour_gateway_send_queue_closes_total") == 1
        assert '"code": 4031' in proc.logs()
        # the watcher gets an event addressed to it after the flood
        await kafka.publish(chat_event(room, [watcher_id(watcher)], None, "after"))
        got = await watcher.expect(lambda f: f.get("content") == "after", within=30)
        assert got["room_id"] == room
        grown_mib = (_rss_peak_kib(proc.proc.pid) - peak_before) / 1024
        # the queue held at most 1 MiB; what remains is Kafka fetch buffers and the
        # allocator. Without the byte bound the queue alone pins tens of MiB here.
        print(f"gateway peak RSS grew by {grown_mib:.1f} MiB")
        assert grown_mib < 24, f"gateway peak RSS grew by {grown_mib:.1f} MiB"
        await watcher.close()
    finally:
        await kafka.stop()
        proc.terminate()


def _metric(gw: GatewayProc, name: str) -> float:
    for line in gw.http("/metrics").text.splitlines():
        if line.startswith(f"{name} ") or line.startswith(f"{name}{{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {name}")


def watcher_id(client: Client) -> str:
    frame = next(f for f in client.frames if f["type"] == "system.authenticated")
    user_id: str = frame["user_id"]
    return user_id


# ------------------------------------------------------------------ hardening: DMs, tasks, secrets


def _request(request_id: str) -> Callable[[dict[str, Any]], bool]:
    """Matches the frame or command envelope that carries this request_id."""
    return lambda frame: frame.get("request_id") == request_id


async def test_direct_messages_are_throttled_per_user(
    gw: GatewayProc, keys: Keys, kafka: Kafka
) -> None:
    sub = f"dm-{uuid.uuid4().hex[:6]}"
    first, second = await user(gw, keys, sub), await user(gw, keys, sub)

    def dm(request_id: str) -> dict[str, Any]:
        return {
            "type": "chat.command.send_message",
            "recipient_id": "dm-target",
            "content": "hello",
            "request_id": request_id,
        }

    # the budget (3 a minute) is the user's, whichever socket sends
    for n, client in enumerate((first, second, first)):
        await client.send(dm(f"{sub}-{n}"))
        await client.expect(_request(f"{sub}-{n}"))
    await second.send(dm(f"{sub}-over"))
    refused = await second.expect(lambda f: f.get("request_id") == f"{sub}-over")
    assert refused["type"] == "system.error"
    assert refused["code"] == "rate_limited"
    # not forwarded: a later command on the same Kafka key (the user id) arrives, it never does
    await second.send({"type": "games.command.list_rooms", "request_id": f"{sub}-after"})
    await second.expect(lambda f: f.get("request_id") == f"{sub}-after")
    await kafka.command(lambda e: e.get("request_id") == f"{sub}-after")
    for n in range(3):
        await kafka.command(_request(f"{sub}-{n}"))
    assert not [c for c in kafka.commands if c["env"].get("request_id") == f"{sub}-over"]
    # other users keep their own budget, and the throttled sockets stay open
    other = await user(gw, keys)
    await other.send(dm("other-1"))
    ack = await other.expect(lambda f: f.get("request_id") == "other-1")
    assert ack["type"] == "system.ack"
    await first.ping_ok()
    for c in (first, second, other):
        await c.close()


async def test_a_bad_presence_record_neither_stops_the_sweeper_nor_fails_ready(
    kafka_bootstrap: str,
    redis_url: str,
    prefix: str,
    keys: Keys,
    tmp_path: Path,
    redis_client: aioredis.Redis,
) -> None:
    key_prefix = f"t{uuid.uuid4().hex[:8]}:"
    proc = GatewayProc(
        bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=prefix,
        key_prefix=key_prefix,
        public_key=keys.public_path,
        log_dir=tmp_path,
        env={**LIMITS_ENV, "PRESENCE_SWEEP_SECONDS": "0.3"},
    )
    try:
        await asyncio.to_thread(proc.wait_ready)
        # a user id no token could carry, left in the online set (an old version, a hand
        # edit): sweeping it raised out of the sweeper, which then stayed dead for good. It is
        # shared data, so it must not fail the loop (and /ready) of every gateway either: the
        # sweeper drops it, logs the one user it could not announce, and goes on.
        online = RedisKeys(prefix=key_prefix).presence_online()
        await redis_client.sadd(online, "not a user id!")
        deadline = time.monotonic() + 30
        while "presence_sweep_user_failed" not in proc.logs():
            assert time.monotonic() < deadline, proc.logs()[-2000:]
            await asyncio.sleep(0.1)
        assert not await redis_client.sismember(online, "not a user id!")
        ready = await asyncio.to_thread(proc.http, "/ready")
        assert ready.status_code == 200, ready.text
        # a socket whose record expired is still swept after that: the loop went on
        await redis_client.sadd(online, "ghost-user")
        await redis_client.sadd(RedisKeys(prefix=key_prefix).user_sockets("ghost-user"), "s-gone")
        deadline = time.monotonic() + 30
        while await redis_client.sismember(online, "ghost-user"):
            assert time.monotonic() < deadline, proc.logs()[-2000:]
            await asyncio.sleep(0.1)
        await still_serving(proc, keys)
    finally:
        proc.terminate()
        await redis_client.delete(RedisKeys(prefix=key_prefix).presence_online())


async def test_room_passwords_never_reach_the_logs(
    gw: GatewayProc, keys: Keys, kafka: Kafka
) -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    client = await user(gw, keys)
    commands = [
        {"type": "games.command.create_room", "room_name": f"r{secret[3:11]}", "password": secret},
        {"type": "games.command.join_room", "room_name": "some room", "password": secret},
        {"type": "games.command.join_as_spectator", "room_name": "some room", "password": secret},
    ]
    for n, command in enumerate(commands):
        await client.send({**command, "game_type": "bigger_dice", "request_id": f"pw{n}"})
        await client.expect(_request(f"pw{n}"))
    # invalid: the validation error must not echo it into the log either
    await client.send({"type": "games.command.join_room", "password": secret, "request_id": "x"})
    await client.expect("system.error")
    await kafka.command(lambda e: e.get("request_id") == "pw0")
    await client.close()
    await _logs_settled(gw)
    logs = gw.logs()
    assert "command_forwarded" in logs
    assert secret not in logs


async def _logs_settled(gw: GatewayProc) -> None:
    """The gateway logged everything about the sockets above (its log is line-buffered per
    event; a heartbeat round trip on a fresh socket orders us after them)."""
    probe = await Client.open(gw.url)
    await probe.expect("system.welcome")
    await probe.send({"type": "system.heartbeat"})
    await probe.expect("system.heartbeat_ack")
    await probe.close()


def test_dev_mode_beside_a_jwt_key_refuses_to_start(keys: Keys) -> None:
    import os
    import subprocess

    from tests.support.gateway_harness import PYTHON, ROOT

    env = {**os.environ, "AUTH_DEV_MODE": "true", "JWT_PUBLIC_KEY_PATH": str(keys.public_path)}
    done = subprocess.run(
        [PYTHON, "-m", "parlour_gateway"], env=env, cwd=ROOT, capture_output=True, timeout=30
    )
    assert done.returncode == 2
    assert b"AUTH_DEV_MODE" in done.stderr
    assert b"JWT_PUBLIC_KEY_PATH" in done.stderr


async def test_dev_mode_listens_on_loopback_only(
    kafka_bootstrap: str, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    proc = GatewayProc(
        bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=prefix,
        key_prefix=prefix,
        public_key=None,
        log_dir=tmp_path,
        env={"AUTH_DEV_MODE": "true", "WS_HOST": "", "WS_HEALTH_HOST": ""},  # i.e. not set
    )
    try:
        await asyncio.to_thread(proc.wait_ready)
        client = await Client.open(proc.url)
        await client.expect("system.welcome")
        await client.send({"type": "system.authenticate", "user_id": "dev-1"})
        await client.expect("system.authenticated")
        await client.close()
        # 127.0.0.2 is this host too: only a socket bound to every interface answers there
        for port in (proc.port, proc.health_port):
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection("127.0.0.2", port)
    finally:
        proc.terminate()
