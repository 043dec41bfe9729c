"""The lobby's pieces that need no Redis: index members, per-user turns, page validation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from parlour_engine.lobby import UserTurns, listing_member
from parlour_engine.rules import list_rooms
from parlour_protocol.v1.limits import ROOM_LIST_PAGE_MAX
from parlour_protocol.v1.rooms import ListRooms, RoomList


def test_listing_members_sort_by_creation_then_room_id() -> None:
    t0 = datetime(2001, 9, 9, 1, 46, 39, tzinfo=UTC)  # 999_999_999_000 ms: 12 digits
    created = [t0, t0 + timedelta(seconds=1), t0 + timedelta(days=9000), t0]
    members = [listing_member(f"r{i}", c) for i, c in enumerate(created)]
    assert sorted(members) == [members[0], members[3], members[1], members[2]]
    assert all(m.index("|") == 13 for m in members)
    # a member is a valid cursor on the wire
    assert ListRooms(cursor=members[2]).cursor == members[2]


@pytest.mark.parametrize(
    "fields",
    [
        {"limit": ROOM_LIST_PAGE_MAX + 1},
        {"limit": 0},
        {"cursor": "not a cursor"},
        {"cursor": "123|r1"},
        {"cursor": "1234567890123|r 1"},
    ],
)
def test_list_rooms_rejects_bad_pages(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ListRooms.model_validate({"type": "games.command.list_rooms", **fields})


def test_list_rooms_defaults_and_echo() -> None:
    assert ListRooms().limit == ROOM_LIST_PAGE_MAX
    page = list_rooms([], "u1", "bigger_dice", datetime.now(UTC), cursor="0" * 13 + "|")
    assert isinstance(page, RoomList)
    assert page.cursor == "0" * 13 + "|"
    assert page.next_cursor is None


async def test_user_turns_run_one_users_commands_one_at_a_time() -> None:
    turns = UserTurns()
    inside: dict[str, int] = {"a": 0, "b": 0}
    most: dict[str, int] = {"a": 0, "b": 0}
    gate = asyncio.Event()

    async def work(user: str) -> None:
        async with turns.turn(user):
            inside[user] += 1
            most[user] = max(most[user], inside[user])
            await gate.wait()
            inside[user] -= 1

    tasks = [asyncio.create_task(work(u)) for u in ("a", "a", "a", "b", "b")]
    await asyncio.sleep(0)
    assert inside == {"a": 1, "b": 1}  # different users do not wait for each other
    assert len(turns) == 2
    gate.set()
    await asyncio.gather(*tasks)
    assert most == {"a": 1, "b": 1}
    assert len(turns) == 0  # no lock outlives its commands


async def test_user_turns_release_on_error() -> None:
    turns = UserTurns()
    with pytest.raises(RuntimeError):
        async with turns.turn("a"):
            raise RuntimeError("boom")
    assert len(turns) == 0
    async with turns.turn("a"):
        pass
