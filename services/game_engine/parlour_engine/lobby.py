"""The lobby's reads across rooms: the paged room list and the per-user room caps.

Room list. `RedisKeys.rooms_waiting(game)` is one sorted set per game with one member per
waiting room, `<created_at epoch ms, 13 digits>|<room_id>` at score 0, so the set's
lexicographic order is creation order and a member is a stable cursor: a page is one
`ZRANGE key (<cursor> + BYLEX LIMIT 0 n` plus one pipelined GET of those rooms, whatever the
number of rooms. The command handler (handler.py) writes the index after each commit
(`listing_member`), next to `rooms_by_game`. Rooms leave the index when they start or are
removed; an entry whose room is gone or no longer waiting is also dropped when a page meets
it (a room never returns to `waiting`, so that is always right), which heals an index write
lost to a crash.

Rooms created before the index existed are listed after a one-time rebuild from
`rooms_by_game`, run by the first `list_rooms` of the game on each engine until one engine
completed it and set `rooms_waiting_indexed` (the rebuild is idempotent, so engines racing
through it do no harm).

Per-user caps count the user's entries in `user_rooms` (written by the same projection). The
check runs before the command and the index is written after its commit, so the caps are
exact for one user's commands handled one after the other; the handler also serialises one
user's create/join commands inside one engine (`UserTurns`). Commands for different rooms go
to different partitions, possibly of different engines: N engines taking the same user's
concurrent creates/joins at the same moment can each pass the check, so the bound that holds
is cap + (engines - 1) in the worst race, and the gateway's per-user rate limit keeps such
races rare. The next create or join after that is refused again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from parlour_engine.rules import RoomState
from parlour_engine.rules.plugins import GameRegistry
from parlour_engine.store import text
from parlour_protocol.v1 import ErrorCode, RedisKeys
from parlour_protocol.v1.limits import ROOM_LIST_PAGE_MAX
from parlour_protocol.v1.rooms import RoomRole, RoomStatus
from parlour_runtime.redis_client import AnyRedis

LIST_SCAN_MAX = 10 * ROOM_LIST_PAGE_MAX
"""Most index entries one `list_rooms` reads. Rooms the caller may not see (banned from) are
skipped, so a page can come back short of `limit`, with a cursor to go on from."""

_START = "0" * 13 + "|"
"""A cursor before every member (created_at is after 1970): "the waiting rooms from the
start", for a first page that the caller's own rooms filled."""
_ACTIVE = frozenset({RoomStatus.WAITING, RoomStatus.IN_PROGRESS})
_MIGRATE_CHUNK = 500

Listable = Callable[[RoomState], bool]


def listing_member(room_id: str, created_at: datetime) -> str:
    """The room's member in `rooms_waiting` (and the cursor of a page ending with it)."""
    return f"{int(created_at.timestamp() * 1000):013d}|{room_id}"


def _room_id_of(member: str) -> str:
    return member.partition("|")[2]


@dataclass(frozen=True)
class Page:
    """The rooms of one `room_list` (before the rules turn them into list items)."""

    states: list[RoomState]
    next_cursor: str | None


@dataclass(frozen=True)
class Refusal:
    code: ErrorCode
    message: str


class Lobby:
    """Reads of the room index and the user-rooms index; see the module docstring."""

    def __init__(
        self,
        redis: AnyRedis,
        keys: RedisKeys,
        *,
        games: GameRegistry,
        scan_max: int = LIST_SCAN_MAX,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._games = games
        self._scan_max = scan_max
        self._indexed: set[str] = set()  # games whose index is known complete (registered games)

    # --- reads -----------------------------------------------------------------------------

    async def states(self, room_ids: Iterable[str]) -> dict[str, RoomState]:
        """The rooms that exist among `room_ids`, freshly read (one pipelined GET: the keys
        are in different hash slots). Never the handler's cache: another engine may own them."""
        ids = list(dict.fromkeys(room_ids))
        if not ids:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for room_id in ids:
                pipe.get(self._keys.room_state(room_id))
            raw: list[bytes | None] = await pipe.execute()
        return {
            room_id: RoomState.load(r, self._games)
            for room_id, r in zip(ids, raw, strict=True)
            if r is not None
        }

    async def user_rooms(self, user_id: str) -> dict[str, str]:
        """room id -> the user's role there (`user_rooms`, bounded by the member cap)."""
        raw: dict[bytes | str, bytes | str] = await self._redis.hgetall(
            self._keys.user_rooms(user_id)
        )
        return {text(k): text(v) for k, v in raw.items()}

    # --- the room list ---------------------------------------------------------------------

    async def page(
        self,
        game_type: str,
        user_id: str,
        *,
        cursor: str | None,
        limit: int,
        listable: Listable,
    ) -> Page:
        """One page: without a cursor, the caller's own listable rooms of the game (up to
        `limit`) and then the waiting rooms of others; with one, the waiting rooms of others
        after it. `listable` is the rules' verdict on one room for this caller."""
        await self._ensure_indexed(game_type)
        own_ids = set(await self.user_rooms(user_id))
        found: list[RoomState] = []
        if cursor is None:
            own = await self.states(own_ids)
            found = sorted(
                (s for s in own.values() if s.game_type == game_type and listable(s)),
                key=lambda s: (s.created_at, s.room_id),
            )[:limit]
            if len(found) == limit:
                more = await self._any_after(game_type, _START)
                return Page(found, _START if more else None)
        others, next_cursor = await self._waiting(
            game_type, cursor or _START, limit - len(found), own_ids, listable
        )
        return Page(found + others, next_cursor)

    async def _waiting(
        self, game_type: str, after: str, want: int, skip: set[str], listable: Listable
    ) -> tuple[list[RoomState], str | None]:
        """Up to `want` listable waiting rooms after the member `after`, and the cursor to go
        on from (None: the index has nothing after this page)."""
        key = self._keys.rooms_waiting(game_type)
        found: list[RoomState] = []
        gone: list[str] = []
        scanned = 0
        last = after
        try:
            while len(found) < want and scanned < self._scan_max:
                # one more than needed, so a full page usually knows whether more follow
                chunk = min(want - len(found) + 1, self._scan_max - scanned)
                raw = cast(
                    "list[bytes | str]",
                    await self._redis.zrange(key, f"({last}", "+", bylex=True, offset=0, num=chunk),
                )
                members = [text(m) for m in raw]
                states = await self.states(_room_id_of(m) for m in members)
                for index, member in enumerate(members):
                    scanned += 1
                    last = member
                    room_id = _room_id_of(member)
                    state = states.get(room_id)
                    if state is None or state.status is not RoomStatus.WAITING:
                        gone.append(member)
                    elif room_id not in skip and listable(state):
                        found.append(state)
                        if len(found) == want:
                            more = index + 1 < len(members) or await self._any_after(
                                game_type, last
                            )
                            return found, last if more else None
                if len(members) < chunk:
                    return found, None  # the index ends here
        finally:
            if gone:
                # entries of removed or started rooms whose index write was lost
                await self._redis.zrem(key, *gone)
        # the scan budget ran out before the page was full: go on from where it stopped
        return found, (last if await self._any_after(game_type, last) else None)

    async def _any_after(self, game_type: str, after: str) -> bool:
        raw = await self._redis.zrange(
            self._keys.rooms_waiting(game_type), f"({after}", "+", bylex=True, offset=0, num=1
        )
        return bool(raw)

    async def _ensure_indexed(self, game_type: str) -> None:
        """Rebuild the game's index from `rooms_by_game` unless that was done (see the module
        docstring). A game without any room needs nothing, and gets no marker: a game name a
        client made up must not create keys."""
        if game_type in self._indexed:
            return
        keys = self._keys
        if not await self._redis.exists(keys.rooms_waiting_indexed(game_type)):
            if not await self._redis.exists(keys.rooms_by_game(game_type)):
                return
            cursor: int = 0
            while True:
                cursor, ids = await self._redis.sscan(
                    keys.rooms_by_game(game_type), cursor, count=_MIGRATE_CHUNK
                )
                states = await self.states(text(i) for i in ids)
                members = {
                    listing_member(s.room_id, s.created_at): 0
                    for s in states.values()
                    if s.status is RoomStatus.WAITING
                }
                if members:
                    await self._redis.zadd(keys.rooms_waiting(game_type), members)
                if cursor == 0:
                    break
            await self._redis.set(keys.rooms_waiting_indexed(game_type), "1")
        self._indexed.add(game_type)

    # --- caps ------------------------------------------------------------------------------

    async def refusal(
        self,
        user_id: str,
        room_id: str,
        *,
        creating: bool,
        max_rooms_per_host: int,
        max_rooms_per_user: int,
    ) -> Refusal | None:
        """Why the user may not create or join `room_id` now, or None. A room the user is
        already in is never refused here (the rules answer `already_in_room`, or it is a
        redelivery)."""
        rooms = await self.user_rooms(user_id)
        if room_id in rooms:
            return None
        if creating:
            hosted = [r for r, role in rooms.items() if role == RoomRole.HOST.value]
            if len(hosted) >= max_rooms_per_host:
                # finished rooms keep their members (and the host entry) until they leave or
                # the room is removed: only waiting and running rooms count
                states = await self.states(hosted)
                active = sum(
                    1 for s in states.values() if s.status in _ACTIVE and s.host_id == user_id
                )
                if active >= max_rooms_per_host:
                    return Refusal(
                        ErrorCode.TOO_MANY_ROOMS,
                        f"max_rooms_per_host: one user may host at most {max_rooms_per_host} "
                        "waiting or running rooms at once; leave or finish one first.",
                    )
        if len(rooms) >= max_rooms_per_user:
            return Refusal(
                ErrorCode.LIMIT_REACHED,
                f"max_rooms_per_user: one user may be in at most {max_rooms_per_user} rooms "
                "at once (any role); leave one first.",
            )
        return None


class UserTurns:
    """One lock per user with commands in flight: a user's create/join commands handled by
    this engine run one at a time from the cap check to the index write, so two of them in
    one batch (different rooms, so different key groups) cannot both pass the check. Locks
    exist only while used: the map is bounded by the commands in flight."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, user_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(user_id, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[user_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            _, users = self._locks[user_id]
            if users <= 1:
                del self._locks[user_id]
            else:
                self._locks[user_id] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
