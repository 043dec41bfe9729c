"""Presence in Redis: socket records with a TTL, the user's socket set, the online set.

A user is online while any of their sockets is alive on any gateway. A socket whose record
expired (its gateway crashed) is dead: every script below drops dead members before counting.
A live gateway's periodic refresh (`touch_many`) re-creates the records of its open sockets
that expired anyway (a Redis restart or a stall longer than the TTL).

Cluster-safe: each script touches one user's keys only (`user_sockets` and the socket records,
all tagged `{<user_id>}`, so one hash slot). The global `presence:online` set is written
after the script, on its own: SADD after a register (its reply 1 = the user just came online),
SREM after the user's last socket went (its reply 1 = this call took the user offline, so one
caller sees that transition), then a re-check of the user's socket set undoes an SREM that
raced a register on another gateway. What is left over (a crash between the two steps) the
refresh (SADD back, `back_online`) and the sweeper (users whose sockets are all dead) put right.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from parlour_protocol.v1 import RedisKeys
from parlour_protocol.v1.keys import RECONNECT_TTL_SECONDS
from parlour_runtime.redis_client import AnyRedis, run_scripts

# KEYS: user_sockets, socket, member sockets...; ARGV: sid, max, ttl, uid, username, gateway,
# now, member sids...  -> -1 over the cap, else the number of live sockets before this one
REGISTER_LUA = """
local n = #KEYS - 2
for i = 1, n do
  if redis.call('EXISTS', KEYS[2 + i]) == 0 then redis.call('SREM', KEYS[1], ARGV[7 + i]) end
end
local live = redis.call('SCARD', KEYS[1])
if live >= tonumber(ARGV[2]) then return -1 end
redis.call('HSET', KEYS[2], 'user_id', ARGV[4], 'username', ARGV[5], 'gateway_id', ARGV[6],
  'connected_at', ARGV[7], 'last_seen', ARGV[7])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[1], ARGV[1])
return live
"""

# KEYS: user_sockets, socket (a placeholder when ARGV[1] is ''), member sockets...;
# ARGV: sid, members... -> 1 when the user has no live socket left
UNREGISTER_LUA = """
local n = #KEYS - 2
if ARGV[1] ~= '' then
  redis.call('DEL', KEYS[2])
  redis.call('SREM', KEYS[1], ARGV[1])
end
for i = 1, n do
  if redis.call('EXISTS', KEYS[2 + i]) == 0 then redis.call('SREM', KEYS[1], ARGV[1 + i]) end
end
if redis.call('SCARD', KEYS[1]) == 0 then return 1 end
return 0
"""


# KEYS: socket, user_sockets; ARGV: ttl, now, active (1|0), sid, uid, username, gateway
# -> 1 when the record had expired and was re-created, else 0
# A record that expired while its socket stayed open (a Redis outage, a stall longer than the
# TTL) is written again with its socket set entry, or another gateway's sweeper would take an
# active user offline.
TOUCH_LUA = """
if redis.call('EXPIRE', KEYS[1], ARGV[1]) == 1 then
  if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'last_seen', ARGV[2]) end
  redis.call('SADD', KEYS[2], ARGV[4])
  return 0
end
redis.call('HSET', KEYS[1], 'user_id', ARGV[5], 'username', ARGV[6], 'gateway_id', ARGV[7],
  'connected_at', ARGV[2], 'last_seen', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[4])
return 1
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
    def __init__(self, redis: AnyRedis, keys: RedisKeys, gateway_id: str, ttl: int) -> None:
        self._redis = redis
        self._keys = keys
        self._gateway_id = gateway_id
        self._ttl = ttl
        self._register = redis.register_script(REGISTER_LUA)
        self._unregister = redis.register_script(UNREGISTER_LUA)
        self._touch = redis.register_script(TOUCH_LUA)

    async def _members(self, user_id: str, exclude: str = "") -> list[str]:
        raw = await self._redis.smembers(self._keys.user_sockets(user_id))
        members = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in raw)
        return [m for m in members if m != exclude]

    async def register(self, info: SocketInfo, max_sockets: int, now: float) -> bool | None:
        """Record a live socket. None when the user is at the cap; True when the user just
        came online (this call put them in presence:online)."""
        members = await self._members(info.user_id, exclude=info.socket_id)
        keys = [
            self._keys.user_sockets(info.user_id),
            self._keys.socket(info.user_id, info.socket_id),
            *(self._keys.socket(info.user_id, m) for m in members),
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
        if int(await self._register(keys=keys, args=args)) < 0:
            return None
        return int(await self._redis.sadd(self._keys.presence_online(), info.user_id)) == 1

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
                for user_id, members in pairs:
                    for sid in members:
                        pipe.exists(self._keys.socket(user_id, sid))
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
            self._keys.socket(user_id, socket_id or "-"),
            *(self._keys.socket(user_id, m) for m in members),
        ]
        if int(await self._unregister(keys=keys, args=[socket_id, *members])) != 1:
            return False
        online = self._keys.presence_online()
        if int(await self._redis.srem(online, user_id)) != 1:
            return False  # another caller took the user offline (or they were not online)
        if int(await self._redis.scard(self._keys.user_sockets(user_id))) > 0:
            # a register on another gateway raced this one: the user stays online
            await self._redis.sadd(online, user_id)
            return False
        return True

    async def touch_many(
        self,
        sockets: list[tuple[SocketInfo, bool]],
        now: float,
        still_open: Callable[[str], bool] = lambda _sid: True,
    ) -> Refreshed:
        """Keep open sockets' records alive, re-creating any that expired (with the user's
        socket set and online entries); `last_seen` moves for those that sent frames. Two
        pipelines for the batch (the scripts, then the online set). A socket that closed
        while the pipeline ran (`still_open` false afterwards) is dropped again, so the
        refresh never resurrects a closed socket."""
        if not sockets:
            return Refreshed([], [])
        results = await run_scripts(
            self._redis,
            self._touch,
            [
                (
                    [
                        self._keys.socket(info.user_id, info.socket_id),
                        self._keys.user_sockets(info.user_id),
                    ],
                    [
                        self._ttl,
                        f"{now:.3f}",
                        1 if active else 0,
                        info.socket_id,
                        info.user_id,
                        info.username,
                        self._gateway_id,
                    ],
                )
                for info, active in sockets
            ],
        )
        for result in results:
            if isinstance(result, Exception):
                raise result
        async with self._redis.pipeline(transaction=False) as pipe:
            for info, _ in sockets:
                pipe.sadd(self._keys.presence_online(), info.user_id)
            added = await pipe.execute()
        refreshed = Refreshed([], [])
        seen_back: set[str] = set()
        for (info, _), result, was_added in zip(sockets, results, added, strict=True):
            if not still_open(info.socket_id):
                await self.unregister(info.user_id, info.socket_id)
                continue
            if int(result) == 1:
                refreshed.recreated.append(info.socket_id)
            if int(was_added) == 1 and info.user_id not in seen_back:
                seen_back.add(info.user_id)
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

    async def forget_gateway(self) -> None:
        """A clean stop: the liveness key goes at once instead of at the end of its TTL."""
        await self._redis.delete(self._keys.gateway(self._gateway_id))
