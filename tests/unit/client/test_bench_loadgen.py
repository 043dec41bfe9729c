"""The load generator's bookkeeping (scripts/bench/loadgen.py): a finished game starts exactly
one new game in its room slot, though both players' clients report `game_over`."""

from __future__ import annotations

import asyncio

from bench.loadgen import OVER, TURN, ParlourDriver, Room, WorkerSpec


async def test_both_players_game_over_start_one_new_game() -> None:
    driver = ParlourDriver(WorkerSpec(kind="parlour", urls=[], rooms=1, tokens=[]))
    room = driver.rooms[0]
    room.room_id = "r1"
    driver.by_room_id["r1"] = room
    started: list[Room] = []

    async def next_game(slot: Room) -> None:
        started.append(slot)

    driver._next_game = next_game  # type: ignore[method-assign,assignment]
    driver._on_frame({"type": TURN, "room_id": "r1", "current_turn": "h"}, 0.0)
    for _player in ("host", "guest"):
        driver._on_frame({"type": OVER, "room_id": "r1", "seq": 40}, 0.0)
    await asyncio.gather(*driver.recreating)
    assert started == [room]
    assert room.over
    assert not room.turn_known
