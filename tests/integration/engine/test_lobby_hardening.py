"""Hardening: the room list is paged from an index and per-user room caps hold.

The lobby-level tests drive `parlour_engine.lobby.Lobby` against the real Redis (paging,
skipping, the one-time rebuild for rooms older than the index); the engine tests drive real
engine processes through real Kafka: thousands of waiting rooms walked page by page, the
host cap and the member cap with their error codes, each followed by an ordinary game.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from parlour_engine import rules
from parlour_engine.games import discover
from parlour_engine.lobby import Lobby, listing_member
from parlour_engine.rules import RoomState
from parlour_engine.rules.state import Banned, Member
from parlour_engine.rules.views import listable
from parlour_protocol.v1 import Actor, CommandEnvelope, EventEnvelope, RedisKeys, encode
from parlour_protocol.v1.limits import (
    DEFAULT_MAX_ROOMS_PER_HOST,
    DEFAULT_MAX_ROOMS_PER_USER,
    EVENT_MAX_BYTES,
    ROOM_LIST_PAGE_MAX,
)
from parlour_protocol.v1.rooms import (
    BanPlayer,
    CreateRoom,
    JoinAsSpectator,
    JoinRoom,
    LeaveRoom,
    ListRooms,
    RoomList,
    RoomStatus,
)
from tests.support.engine_harness import (
    Bus,
    EngineProcess,
    actor,
    play_game,
    running_engine,
    start_game,
)

GAME = "bigger_dice"
T0 = datetime(2026, 1, 1, tzinfo=UTC)

# --- the index, against the real Redis ---------------------------------------------------


def _room(n: int, *, created: datetime, host: str | None = None) -> RoomState:
    host = host or f"h{n}"
    return RoomState(
        room_id=f"r{n:05d}",
        room_name=f"Room {n}",
        game_type=GAME,
        host_id=host,
        host_name=host,
        max_players=2,
        created_at=created,
        lobby=(Member(user_id=host, username=host, joined_at=created),),
    )


async def _store(redis: aioredis.Redis, keys: RedisKeys, rooms: list[RoomState]) -> None:
    """Rooms as the engine leaves them: state, `rooms_by_game`, and (waiting) the index."""
    async with redis.pipeline(transaction=False) as pipe:
        for room in rooms:
            pipe.set(keys.room_state(room.room_id), room.model_dump_json())
            pipe.sadd(keys.rooms_by_game(GAME), room.room_id)
            if room.status is RoomStatus.WAITING:
                pipe.zadd(
                    keys.rooms_waiting(GAME), {listing_member(room.room_id, room.created_at): 0}
                )
        await pipe.execute()


async def _walk(lobby: Lobby, user_id: str, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = await lobby.page(
            GAME,
            user_id,
            cursor=cursor,
            limit=limit,
            listable=lambda s: listable(s, user_id, GAME),
        )
        pages.append([s.room_id for s in page.states])
        assert len(pages[-1]) <= limit
        if page.next_cursor is None:
            return pages
        assert page.next_cursor != cursor, "the cursor must move on"
        cursor = page.next_cursor
        assert len(pages) < 1_000, "the walk does not end"


async def test_lobby_pages_walk_every_room_once_and_skip_what_the_user_may_not_see(
    redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    keys = RedisKeys(prefix=topic_prefix)
    # 300 rooms, many created in the same millisecond (one score, ties broken by room id)
    rooms = [_room(n, created=T0 + timedelta(milliseconds=n // 7)) for n in range(300)]
    banned = {rooms[i].room_id for i in (0, 5, 51, 52, 53, 299)}
    for i, room in enumerate(rooms):
        if room.room_id in banned:
            rooms[i] = room.model_copy(update={"banned": (Banned(user_id="me", username="me"),)})
    started = rooms[100].model_copy(update={"status": RoomStatus.IN_PROGRESS})
    rooms[100] = started
    mine = rooms[200].model_copy(
        update={"lobby": (*rooms[200].lobby, Member(user_id="me", username="me", joined_at=T0))}
    )
    rooms[200] = mine
    await _store(redis_client, keys, rooms)
    # the in-progress room is still in the index (its removal was lost): skipped and dropped
    await redis_client.zadd(
        keys.rooms_waiting(GAME), {listing_member(started.room_id, started.created_at): 0}
    )
    # a member's own room comes on the first page, from `user_rooms`
    await redis_client.hset(keys.user_rooms("me"), mine.room_id, "lobby")
    lobby = Lobby(redis_client, keys, games=discover())

    pages = await _walk(lobby, "me", limit=50)
    seen = [room_id for page in pages for room_id in page]
    expected = {r.room_id for r in rooms} - banned - {started.room_id}
    assert len(seen) == len(set(seen)), "a room was listed twice"
    assert set(seen) == expected
    assert mine.room_id in pages[0]
    assert not await redis_client.zscore(
        keys.rooms_waiting(GAME), listing_member(started.room_id, started.created_at)
    )
    # pages come oldest first, and a page boundary inside one millisecond loses nothing
    assert [r for page in pages[1:] for r in page] == sorted(r for page in pages[1:] for r in page)
    # a small limit and a tiny scan budget: short pages, same rooms
    tight = Lobby(redis_client, keys, games=discover(), scan_max=3)
    small = await _walk(tight, "me", limit=2)
    assert sorted(r for page in small for r in page) == sorted(seen)
    # a stranger sees the same waiting rooms, bans aside
    other = [r for page in await _walk(lobby, "stranger", limit=ROOM_LIST_PAGE_MAX) for r in page]
    assert set(other) == {r.room_id for r in rooms} - {started.room_id}


async def test_lobby_rebuilds_the_index_for_rooms_older_than_it(
    redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    keys = RedisKeys(prefix=topic_prefix)
    rooms = [_room(n, created=T0 + timedelta(seconds=n)) for n in range(120)]
    rooms[7] = rooms[7].model_copy(update={"status": RoomStatus.IN_PROGRESS})
    await _store(redis_client, keys, rooms)
    await redis_client.delete(keys.rooms_waiting(GAME))  # as before the index existed
    # an unknown game gets no keys: nothing to rebuild, no marker
    assert (
        await Lobby(redis_client, keys, games=discover()).page(
            "no_such", "u", cursor=None, limit=5, listable=lambda s: True
        )
    ).states == []
    assert not await redis_client.exists(keys.rooms_waiting_indexed("no_such"))

    pages = await _walk(Lobby(redis_client, keys, games=discover()), "u", limit=50)
    assert sorted(r for page in pages for r in page) == sorted(
        r.room_id for r in rooms if r.status is RoomStatus.WAITING
    )
    assert await redis_client.zcard(keys.rooms_waiting(GAME)) == 119
    assert await redis_client.get(keys.rooms_waiting_indexed(GAME)) == b"1"


# --- real engines ------------------------------------------------------------------------


@pytest.fixture
async def engine_env(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, create_topics, tmp_path: Path
) -> AsyncIterator[tuple[EngineProcess, Bus]]:
    async with running_engine(
        kafka_bootstrap, redis_url, topic_prefix, create_topics, tmp_path
    ) as env:
        yield env


def _envelope(payload: CreateRoom | ListRooms, who: Actor, room_id: str | None) -> CommandEnvelope:
    return CommandEnvelope(
        msg_id=uuid.uuid4(),
        type=payload.type,
        key=room_id or who.user_id,
        room_id=room_id,
        actor=who,
        connection_id=f"c-{who.user_id}",
        gateway_id="g-test",
        request_id=f"r-{uuid.uuid4().hex[:8]}",
        payload=payload,
    )


async def _create_many(bus: Bus, count: int, tag: str) -> list[str]:
    """`count` waiting rooms through the engine, produced in bulk (not one round trip each):
    hosts of DEFAULT_MAX_ROOMS_PER_HOST rooms each, so the host cap is not in the way."""
    assert bus.producer is not None
    envelopes = []
    for n in range(count):
        host = actor(n // DEFAULT_MAX_ROOMS_PER_HOST, f"h{tag}-")
        room_id = str(uuid.uuid4())
        payload = CreateRoom(game_type=GAME, room_name=f"Bulk {tag} {n}")
        envelopes.append(_envelope(payload, host, room_id))
    sends = [
        await bus.producer.send(bus.topics.commands, encode(e), key=e.key.encode())
        for e in envelopes
    ]
    await asyncio.gather(*sends)
    for envelope in envelopes:
        await bus.wait_caused(envelope, "games.event.room_state", within=180)
    return [e.room_id for e in envelopes if e.room_id is not None]


async def _list(bus: Bus, who: Actor, cursor: str | None) -> EventEnvelope:
    listing = await bus.send(ListRooms(cursor=cursor), who)
    return await bus.wait_caused(listing, "games.event.room_list")


def _handled_ms(engine: EngineProcess, msg_ids: list[str]) -> list[float]:
    """The engine's own time for these commands (its `command_handled` log lines), in the
    order of `msg_ids`."""
    took: dict[str, float] = {}
    for line in engine.log_path.read_text(errors="replace").splitlines():
        if '"command_handled"' not in line:
            continue
        entry = json.loads(line)
        if entry.get("msg_id") in msg_ids:
            took[entry["msg_id"]] = float(entry["ms"])
    return [took[m] for m in msg_ids]


async def test_thousands_of_waiting_rooms_are_listed_page_by_page(
    engine_env: tuple[EngineProcess, Bus], redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    engine, bus = engine_env
    keys = RedisKeys(prefix=topic_prefix)
    tag = uuid.uuid4().hex[:6]
    total = int(os.environ.get("LOBBY_TEST_ROOMS", "3200"))
    started = time.monotonic()
    bulk = await _create_many(bus, total, tag)
    seeded_s = time.monotonic() - started

    # the lister plays a running game (listed to them only, on their first page) and is
    # banned from one waiting room (never listed to them)
    me, rival = actor(1, f"me{tag}-"), actor(2, f"me{tag}-")
    running, _ = await start_game(bus, [me, rival], room_name=f"Running {tag}")
    banner = actor(0, f"h{tag}-")  # host of the first bulk rooms
    banned_room = await redis_client.get(keys.room_state(bulk[0]))
    assert banned_room is not None
    join = await bus.send(JoinRoom(room_name=json.loads(banned_room)["room_name"]), me)
    await bus.wait_for(
        lambda e: e.causation_id == join.msg_id and e.type == "games.event.lobby_joined"
    )
    ban = await bus.send(BanPlayer(room_id=bulk[0], target_user_id=me.user_id), banner)
    await bus.wait_caused(ban, "games.event.player_banned")

    pages: list[RoomList] = []
    sizes: list[int] = []
    msg_ids: list[str] = []
    cursor: str | None = None
    while True:
        answer = await _list(bus, me, cursor)
        msg_ids.append(str(answer.causation_id))
        page = answer.payload
        assert isinstance(page, RoomList)
        assert page.cursor == cursor
        assert len(page.rooms) <= ROOM_LIST_PAGE_MAX
        sizes.append(len(answer.model_dump_json().encode()))
        pages.append(page)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        assert len(pages) <= total, "the walk does not end"

    listed = [item.room_id for page in pages for item in page.rooms]
    assert len(listed) == len(set(listed)), "a room was listed twice"
    assert set(listed) == (set(bulk) - {bulk[0]}) | {running}
    assert running in {item.room_id for item in pages[0].rooms}
    first = next(i for i in pages[0].rooms if i.room_id == running)
    assert first.status is RoomStatus.IN_PROGRESS
    assert first.can_rejoin
    assert max(sizes) < EVENT_MAX_BYTES
    assert await redis_client.zcard(keys.rooms_waiting(GAME)) == total  # the running one left

    first_ms, *rest_ms = _handled_ms(engine, msg_ids)
    rest_ms.sort()
    everything = rules.list_rooms(
        (await Lobby(redis_client, keys, games=discover()).states(bulk)).values(),
        "stranger",
        GAME,
        T0,
    )
    print(
        f"\nlobby: {total} waiting rooms seeded through the engine in {seeded_s:.1f}s; "
        f"{len(pages)} pages of <= {ROOM_LIST_PAGE_MAX}; room_list envelope max "
        f"{max(sizes)} B, first page {sizes[0]} B (all rooms in one list would be "
        f"{len(everything.model_dump_json())} B); engine ms: first page {first_ms:.1f} "
        f"(incl. the one-time index rebuild), the other pages median "
        f"{rest_ms[len(rest_ms) // 2]:.2f}, p90 {rest_ms[len(rest_ms) * 9 // 10]:.2f}, "
        f"max {rest_ms[-1]:.2f}"
    )

    # an ordinary game on the same engine still finishes
    game = await play_game(bus, [actor(1, f"g{tag}-"), actor(2, f"g{tag}-")], room_name=f"G {tag}")
    assert game.game_over.type == "games.event.bigger_dice.game_over"


async def test_host_cap_and_member_cap(
    engine_env: tuple[EngineProcess, Bus], redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    _, bus = engine_env
    keys = RedisKeys(prefix=topic_prefix)
    tag = uuid.uuid4().hex[:6]

    # --- rooms per host: the next create gets too_many_rooms and claims no name
    host = actor(0, f"host{tag}-")
    hosted = []
    for n in range(DEFAULT_MAX_ROOMS_PER_HOST):
        room_id = str(uuid.uuid4())
        create = await bus.send(
            CreateRoom(game_type=GAME, room_name=f"Hosted {tag} {n}"), host, room_id=room_id
        )
        await bus.wait_caused(create, "games.event.room_state")
        hosted.append(room_id)
    over_id = str(uuid.uuid4())
    over = await bus.send(
        CreateRoom(game_type=GAME, room_name=f"Hosted {tag} over"), host, room_id=over_id
    )
    error = await bus.wait_caused(over, "system.error")
    assert error.payload.code == "too_many_rooms"  # type: ignore[attr-defined]
    assert "max_rooms_per_host" in error.payload.message  # type: ignore[attr-defined]
    assert await redis_client.get(keys.room_name(GAME, f"Hosted {tag} over")) is None
    assert await redis_client.get(keys.room_state(over_id)) is None
    # leaving one (the room goes) makes room for another
    leave = await bus.send(LeaveRoom(room_id=hosted[0]), host)
    await bus.wait_caused(leave, "games.event.room_removed")
    again = await bus.send(
        CreateRoom(game_type=GAME, room_name=f"Hosted {tag} over"), host, room_id=over_id
    )
    await bus.wait_caused(again, "games.event.room_state")

    await _finish_a_game(bus, f"after host cap {tag}")

    # --- rooms per member: the next join / spectate / create gets limit_reached
    hosts = [actor(n, f"mh{tag}-") for n in range(5)]
    names = []
    for n in range(DEFAULT_MAX_ROOMS_PER_USER + 1):
        name = f"Member {tag} {n}"
        create = await bus.send(
            CreateRoom(game_type=GAME, room_name=name, max_players=2),
            hosts[n // DEFAULT_MAX_ROOMS_PER_HOST],
            room_id=str(uuid.uuid4()),
        )
        await bus.wait_caused(create, "games.event.room_state")
        names.append(name)
    joiner = actor(0, f"joiner{tag}-")
    for name in names[:DEFAULT_MAX_ROOMS_PER_USER]:
        join = await bus.send(JoinRoom(room_name=name), joiner)
        await bus.wait_for(
            lambda e, j=join: e.causation_id == j.msg_id and e.type == "games.event.room_state",
            what=f"room_state for {name}",
        )
    assert await redis_client.hlen(keys.user_rooms(joiner.user_id)) == DEFAULT_MAX_ROOMS_PER_USER
    refused = [
        JoinRoom(room_name=names[-1]),
        JoinAsSpectator(room_name=names[-1]),
        CreateRoom(game_type=GAME, room_name=f"Member {tag} own"),
    ]
    for payload in refused:
        room_id = str(uuid.uuid4()) if isinstance(payload, CreateRoom) else None
        command = await bus.send(payload, joiner, room_id=room_id)
        error = await bus.wait_for(
            lambda e, c=command: e.causation_id == c.msg_id and e.type == "system.error",
            what=f"system.error for {payload.type}",
        )
        assert error.payload.code == "limit_reached", payload.type  # type: ignore[attr-defined]
        assert "max_rooms_per_user" in error.payload.message  # type: ignore[attr-defined]
    assert await redis_client.get(keys.room_name(GAME, f"Member {tag} own")) is None
    assert await redis_client.hlen(keys.user_rooms(joiner.user_id)) == DEFAULT_MAX_ROOMS_PER_USER
    # a join of a room the user is already in is not a cap question: the rules answer it
    dup = await bus.send(JoinRoom(room_name=names[0]), joiner)
    error = await bus.wait_for(lambda e: e.causation_id == dup.msg_id and e.type == "system.error")
    assert error.payload.code == "already_in_room"  # type: ignore[attr-defined]

    await _finish_a_game(bus, f"after member cap {tag}")


async def test_caps_hold_for_one_users_simultaneous_commands(
    engine_env: tuple[EngineProcess, Bus], redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    """Creates for different rooms land on different partitions and run concurrently in one
    engine batch: still exactly the cap succeeds (one engine handles one user's creates and
    joins one at a time)."""
    _, bus = engine_env
    assert bus.producer is not None
    keys = RedisKeys(prefix=topic_prefix)
    tag = uuid.uuid4().hex[:6]
    host = actor(0, f"burst{tag}-")
    creates = [
        _envelope(CreateRoom(game_type=GAME, room_name=f"Burst {tag} {n}"), host, str(uuid.uuid4()))
        for n in range(3 * DEFAULT_MAX_ROOMS_PER_HOST)
    ]
    sends = [
        await bus.producer.send(bus.topics.commands, encode(e), key=e.key.encode()) for e in creates
    ]
    await asyncio.gather(*sends)
    answers = [
        await bus.wait_for(
            lambda e, c=c: (
                e.causation_id == c.msg_id and e.type in ("games.event.room_state", "system.error")
            ),
            room_id=c.room_id,
            what=f"answer to {c.msg_id}",
        )
        for c in creates
    ]
    made = [a for a in answers if a.type == "games.event.room_state"]
    refused = [a.payload.code for a in answers if a.type == "system.error"]  # type: ignore[attr-defined]
    assert len(made) == DEFAULT_MAX_ROOMS_PER_HOST
    assert refused == ["too_many_rooms"] * (len(creates) - DEFAULT_MAX_ROOMS_PER_HOST)
    assert await redis_client.hlen(keys.user_rooms(host.user_id)) == DEFAULT_MAX_ROOMS_PER_HOST

    await _finish_a_game(bus, f"after burst {tag}")


async def _finish_a_game(bus: Bus, name: str) -> None:
    tag = uuid.uuid4().hex[:6]
    game = await play_game(bus, [actor(1, f"p{tag}-"), actor(2, f"p{tag}-")], room_name=name)
    assert game.game_over.type == "games.event.bigger_dice.game_over"


# --- the browser client --------------------------------------------------------------------


async def test_browser_lists_more_rooms_page_by_page(
    browser_stack: Any,
    chromium: Any,
) -> None:
    """The web client shows the first page and fetches the next ones with 'More rooms'."""
    from playwright.async_api import expect

    from tests.support.browser import STEP_MS, User, login

    tag = uuid.uuid4().hex[:6]
    count = ROOM_LIST_PAGE_MAX + 7
    await _create_many(browser_stack.bus, count, tag)
    dora = await User.open(chromium, f"dora{tag}")
    await login(dora, browser_stack)
    rows = dora.page.locator("#rooms li")
    await expect(rows).to_have_count(ROOM_LIST_PAGE_MAX, timeout=STEP_MS)
    more = dora.page.locator("#rooms-more")
    await expect(more).to_be_visible(timeout=STEP_MS)
    await more.click()
    await expect(rows).to_have_count(count, timeout=STEP_MS)
    await expect(more).to_be_hidden(timeout=STEP_MS)
    # a refresh starts again from the first page
    await dora.page.click("#rooms-refresh")
    await expect(rows).to_have_count(ROOM_LIST_PAGE_MAX, timeout=STEP_MS)
    await expect(more).to_be_visible(timeout=STEP_MS)
