"""Gateway hardening against real processes (two gateways and one engine on real Kafka and
Redis, `websockets` clients): presence records that expired under an open socket come back,
and each hostile sequence leaves an ordinary game playable."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis.asyncio as aioredis
from engine_harness import EngineProcess
from gateway_harness import GatewayProc, Keys
from test_gateway_fullstack import (
    Player,
    _is_room_event,
    _play_turns,
    _start_game,
    stack,
)

from parlour_gateway.presence import Presence, SocketInfo
from parlour_protocol.v1 import RedisKeys

__all__ = ["stack"]  # the fixture, shared with the full-stack tests

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

Stack = tuple[EngineProcess, GatewayProc, GatewayProc, Keys]


async def _socket_answers(player: Player) -> None:
    mark = len(player.frames)
    await player.send({"type": "system.heartbeat"})
    await player.wait(lambda f: f["type"] == "system.heartbeat_ack", after=mark, within=5)


async def _ordinary_game_finishes(keys: Keys, gw_a: GatewayProc, gw_b: GatewayProc) -> None:
    tag = uuid.uuid4().hex[:6]
    host = Player(f"oh{tag}", keys.token(f"oh{tag}"))
    guest = Player(f"og{tag}", keys.token(f"og{tag}"))
    await host.connect(gw_a.url)
    await guest.connect(gw_b.url)
    room_id = await _start_game(host, guest, f"Ordinary {tag}")
    _, over = await _play_turns(room_id, {host.user_id: host, guest.user_id: guest}, host)
    assert over
    await guest.wait(_is_room_event(room_id, "games.event.bigger_dice.game_over"))
    await host.close()
    await guest.close()


async def test_presence_refresh_recreates_expired_records(
    redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    """The socket record, the user's socket set and the online entry are gone while the
    socket is open (a Redis restart, a stall past the TTL): the next refresh writes them
    again, so another gateway's sweep does not take the user offline."""
    rkeys = RedisKeys(prefix=topic_prefix)
    here = Presence(redis_client, rkeys, "gw-here", ttl=30)
    elsewhere = Presence(redis_client, rkeys, "gw-else", ttl=30)
    info = SocketInfo(f"s{uuid.uuid4().hex[:8]}", f"u{uuid.uuid4().hex[:8]}", "Ann")
    assert await here.register(info, 5, time.time()) is True
    try:
        # only the record expired: the set still lists the socket, so a sweep would drop it
        await redis_client.delete(rkeys.socket(info.socket_id))
        assert await here.touch_many([(info, False)], time.time()) == [info.socket_id]
        assert await elsewhere.sweep() == []
        # everything gone
        await redis_client.delete(rkeys.socket(info.socket_id), rkeys.user_sockets(info.user_id))
        await redis_client.srem(rkeys.presence_online(), info.user_id)
        assert await here.touch_many([(info, True)], time.time()) == [info.socket_id]
        assert await elsewhere.sweep() == []
        assert info.user_id in await elsewhere.online_users()
        record = await redis_client.hgetall(rkeys.socket(info.socket_id))
        assert record[b"user_id"] == info.user_id.encode()
        assert record[b"gateway_id"] == b"gw-here"
        assert 0 < await redis_client.ttl(rkeys.socket(info.socket_id)) <= 30
        assert await redis_client.smembers(rkeys.user_sockets(info.user_id)) == {
            info.socket_id.encode()
        }
        # a live record is only refreshed, not counted as re-created
        assert await here.touch_many([(info, True)], time.time()) == []
        # a socket that closed while the refresh ran is not brought back
        assert await here.touch_many([(info, True)], time.time(), lambda _sid: False) == []
        assert not await redis_client.exists(rkeys.socket(info.socket_id))
        assert info.user_id not in await elsewhere.online_users()
    finally:
        await here.unregister(info.user_id, info.socket_id)


async def test_gateway_recreates_presence_of_an_open_socket(
    stack: Stack, redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    """The same through a real gateway's heartbeat loop (every 2 s in this stack)."""
    _, gw1, gw2, keys = stack
    rkeys = RedisKeys(prefix=topic_prefix)
    tag = uuid.uuid4().hex[:6]
    player = Player(f"p{tag}", keys.token(f"p{tag}"))
    await player.connect(gw1.url)
    [sid] = await redis_client.smembers(rkeys.user_sockets(player.user_id))
    socket_key = rkeys.socket(sid.decode())
    await redis_client.delete(socket_key, rkeys.user_sockets(player.user_id))
    await redis_client.srem(rkeys.presence_online(), player.user_id)
    deadline = time.monotonic() + 10
    while not (
        await redis_client.exists(socket_key)
        and await redis_client.sismember(rkeys.presence_online(), player.user_id)
        and await redis_client.sismember(rkeys.user_sockets(player.user_id), sid)
    ):
        assert time.monotonic() < deadline, "the gateway did not re-create the presence"
        await asyncio.sleep(0.1)
    await _socket_answers(player)
    await player.close()
    await _ordinary_game_finishes(keys, gw1, gw2)
