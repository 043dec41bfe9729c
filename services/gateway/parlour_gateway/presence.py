"""Presence in Redis: socket records with a TTL, the user's socket set, the online set.

A user is online while any of their sockets is alive on any gateway. A socket whose record
expired (its gateway crashed) is dead: every script below drops dead members before counting,
so the online->offline transition is seen by exactly one caller, which then publishes it.
A live gateway's periodic refresh (`touch_many`) re-creates the records of its open sockets
that expired anyway (a Redis restart or a stall longer than the TTL).

Note: the scripts touch the user's keys (`{uid}`-tagged), `presence:online` and the untagged
`socket:<sid>` records, all passed through KEYS; that is valid on one Redis, not across
Redis Cluster slots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from parlour_protocol.v1 import RedisKeys
from parlour_protocol.v1.keys import RECONNECT_TTL_SECONDS

# KEYS: user_sockets, online, socket, member sockets...; ARGV: sid, max, ttl, uid, username,
# gateway, now, member sids...  -> -1 over the cap, else 1 when the user just came online
_REGISTER = """
local n = #KEYS - 3
for i = 1, n do
  if redis.call('EXISTS', KEYS[3 + i]) == 0 then redis.call('SREM', KEYS[1], ARGV[7 + i]) end
end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return -1 end
redis.call('HSET', KEYS[3], 'user_id', ARGV[4], 'username', ARGV[5], 'gateway_id', ARGV[6],
  'connected_at', ARGV[7], 'last_seen', ARGV[7])
redis.call('EXPIRE', KEYS[3], ARGV[3])
redis.call('SADD', KEYS[1], ARGV[1])
return redis.call('SADD', KEYS[2], ARGV[4])
"""

# KEYS: user_sockets, online, socket (may be ''), member sockets...; ARGV: sid, uid, members...
# -> 1 when this call took the user offline
_UNREGISTER = """
local n = #KEYS - 3
if ARGV[1] ~= '' then
  redis.call('DEL', KEYS[3])
  redis.call('SREM', KEYS[1], ARGV[1])
end
for i = 1, n do
  if redis.call('EXISTS', KEYS[3 + i]) == 0 then redis.call('SREM', KEYS[1], ARGV[2 + i]) end
end
if redis.call('SCARD', KEYS[1]) == 0 then
  return redis.call('SREM', KEYS[2], ARGV[2])
end
return 0
"""


# KEYS: socket, user_sockets, online; ARGV: ttl, now, active (1|0), sid, uid, username,
# gateway -> bit 1: the record had expired and was re-created; bit 2: the user was back in
# presence:online (another gateway had taken them offline)
# A record that expired while its socket stayed open (a Redis outage, a stall longer than the
# TTL) is written again with the socket set and online entries, or another gateway's sweeper
# would take an active user offline.
_TOUCH = """
local flags = 0
if redis.call('EXPIRE', KEYS[1], ARGV[1]) == 1 then
  if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'last_seen', ARGV[2]) end
else
  redis.call('HSET', KEYS[1], 'user_id', ARGV[5], 'username', ARGV[6], 'gateway_id', ARGV[7],
    'connected_at', ARGV[2], 'last_seen', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  flags = 1
end
redis.call('SADD', KEYS[2], ARGV[4])
if redis.call('SADD', KEYS[3], ARGV[5]) == 1 then flags = flags + 2 end
return flags
"""


@dataclass(frozen=True)
class SocketInfo:
    socket_id: str
    user_id: str
    username: str


@dataclass(frozen=True)
class Refreshed:
    """What a refresh had to write again."""

    recreated: list[str]
    """sockets whose expired records were written again"""
    back_online: list[SocketInfo]
    """one socket per user who was missing from presence:online and is back in it"""


class Presence:
    def __init__(self, redis: aioredis.Redis, keys: RedisKeys, gateway_id: str, ttl: int) -> None:
        self._redis = redis
        self._keys = keys
        self._gateway_id = gateway_id
        self._ttl = ttl
        self._register = redis.register_script(_REGISTER)
        self._unregister = redis.register_script(_UNREGISTER)
        self._touch = redis.register_script(_TOUCH)

    async def _members(self, user_id: str, exclude: str = "") -> list[str]:
        raw = await self._redis.smembers(self._keys.user_sockets(user_id))
        members = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in raw)
        return [m for m in members if m != exclude]

    async def register(self, info: SocketInfo, max_sockets: int, now: float) -> bool | None:
        """Record a live socket. None when the user is at the cap; True when the user just
        came online (first live socket anywhere)."""
        members = await self._members(info.user_id, exclude=info.socket_id)
        keys = [
            self._keys.user_sockets(info.user_id),
            self._keys.presence_online(),
            self._keys.socket(info.socket_id),
            *(self._keys.socket(m) for m in members),
        ]
        args: list[str | int] = [
            info.socket_id,
            max_sockets,
            self._ttl,
            info.user_id,
            info.username,
            self._gateway_id,
            f"{now:.3f}",
            *members,
        ]
        result = int(await self._register(keys=keys, args=args))
        if result < 0:
            return None
        return result == 1

    async def unregister(self, user_id: str, socket_id: str) -> bool:
        """Drop a socket (and any dead ones); True when the user just went offline."""
        members = await self._members(user_id, exclude=socket_id)
        return await self._drop(user_id, socket_id, members)

    async def sweep(self, batch: int = 500) -> list[str]:
        """Drop dead sockets of every online user (two pipelined reads per `batch` users; the
        script runs only for users with a dead or no socket). Returns the users this call
        took offline."""
        users = await self.online_users()
        offline: list[str] = []
        for start in range(0, len(users), batch):
            chunk = users[start : start + batch]
            async with self._redis.pipeline(transaction=False) as pipe:
                for user_id in chunk:
                    pipe.smembers(self._keys.user_sockets(user_id))
                members_of = await pipe.execute()
            pairs = [
                (user_id, sorted(m.decode() if isinstance(m, bytes) else str(m) for m in raw))
                for user_id, raw in zip(chunk, members_of, strict=True)
            ]
            async with self._redis.pipeline(transaction=False) as pipe:
                for _, members in pairs:
                    for sid in members:
                        pipe.exists(self._keys.socket(sid))
                alive = iter(await pipe.execute())
            for user_id, members in pairs:
                live = [bool(next(alive)) for _ in members]
                if members and all(live):
                    continue
                if await self._drop(user_id, "", members):
                    offline.append(user_id)
        return offline

    async def sweep_user(self, user_id: str) -> bool:
        """Drop the user's dead sockets; True when that took the user offline."""
        members = await self._members(user_id)
        return await self._drop(user_id, "", members)

    async def _drop(self, user_id: str, socket_id: str, members: list[str]) -> bool:
        keys = [
            self._keys.user_sockets(user_id),
            self._keys.presence_online(),
            self._keys.socket(socket_id) if socket_id else self._keys.socket("-"),
            *(self._keys.socket(m) for m in members),
        ]
        result = await self._unregister(keys=keys, args=[socket_id, user_id, *members])
        return int(result) == 1

    async def touch_many(
        self,
        sockets: list[tuple[SocketInfo, bool]],
        now: float,
        still_open: Callable[[str], bool] = lambda _sid: True,
    ) -> Refreshed:
        """Keep open sockets' records alive, re-creating any that expired (with the user's
        socket set and online entries); `last_seen` moves for those that sent frames. One
        pipeline for the batch. A socket that closed while the pipeline ran (`still_open`
        false afterwards) is dropped again, so the refresh never resurrects a closed socket."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for info, active in sockets:
                await self._touch(
                    keys=[
                        self._keys.socket(info.socket_id),
                        self._keys.user_sockets(info.user_id),
                        self._keys.presence_online(),
                    ],
                    args=[
                        self._ttl,
                        f"{now:.3f}",
                        1 if active else 0,
                        info.socket_id,
                        info.user_id,
                        info.username,
                        self._gateway_id,
                    ],
                    client=pipe,
                )
            results = await pipe.execute()
        refreshed = Refreshed([], [])
        for (info, _), result in zip(sockets, results, strict=True):
            if not still_open(info.socket_id):
                await self.unregister(info.user_id, info.socket_id)
                continue
            if int(result) & 1:
                refreshed.recreated.append(info.socket_id)
            if int(result) & 2:
                refreshed.back_online.append(info)
        return refreshed

    async def online_users(self) -> list[str]:
        users: list[str] = []
        async for member in self._redis.sscan_iter(self._keys.presence_online(), count=500):
            users.append(member.decode() if isinstance(member, bytes) else str(member))
        return users

    async def user_rooms(self, user_id: str) -> dict[str, str]:
        raw = await self._redis.hgetall(self._keys.user_rooms(user_id))
        return {
            (k.decode() if isinstance(k, bytes) else str(k)): (
                v.decode() if isinstance(v, bytes) else str(v)
            )
            for k, v in raw.items()
        }

    async def in_room(self, user_id: str, room_id: str) -> bool:
        """Whether the engine's `user_rooms` index lists the user in the room (any role)."""
        return bool(await self._redis.hexists(self._keys.user_rooms(user_id), room_id))

    async def mark_reconnect(self, user_id: str, username: str, room_id: str, now: float) -> None:
        key = self._keys.reconnect(user_id, room_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(
                key,
                mapping={
                    "user_id": user_id,
                    "username": username,
                    "room_id": room_id,
                    "disconnected_at": f"{now:.3f}",
                },
            )
            pipe.expire(key, RECONNECT_TTL_SECONDS)
            await pipe.execute()

    async def heartbeat_gateway(self, ttl: int) -> None:
        await self._redis.set(self._keys.gateway(self._gateway_id), "1", ex=ttl)
