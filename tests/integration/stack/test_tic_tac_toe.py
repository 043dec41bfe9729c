"""Tic-tac-toe over the real stack: a gateway and an engine on real Kafka and Redis, two
`websockets` clients. They play a whole game (nine rounds); the guest lets its first move time
out (the engine's turn timer is short here, ENGINE_TURN_TIMEOUT_SECONDS) and forfeits round 1,
and later drops its socket mid-round and comes back with `rejoin_room` + `last_seq`, getting
the events it missed. Every client sees every room event once, in seq order."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.gateway_harness import GatewayProc, Keys
from tests.support.stack import (
    Player,
    assert_once_in_order,
    is_room_event,
    room_of,
    running_stack,
)

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

GAME = "tic_tac_toe"
TURN_TIMEOUT = 4
"""Seconds per move in this test (the game's timer is the engine's turn timer)."""
TURN = "games.event.turn_changed"
MOVED = "games.event.tic_tac_toe.moved"
RESULT = "games.event.tic_tac_toe.round_result"
STATE = "games.event.tic_tac_toe.state"
OVER = "games.event.tic_tac_toe.game_over"


@pytest.fixture
async def ttt_stack(
    kafka_bootstrap: str,
    redis_url: str,
    topic_prefix: str,
    create_topics: Any,
    tmp_path: Path,
) -> AsyncIterator[tuple[GatewayProc, Keys]]:
    async with running_stack(
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=topic_prefix,
        create_topics=create_topics,
        tmp_path=tmp_path,
        gateways=1,
        engine_env={"ENGINE_TURN_TIMEOUT_SECONDS": str(TURN_TIMEOUT)},
        gateway_env=None,
    ) as (_, (gateway,), keys):
        yield gateway, keys


async def _start(host: Player, guest: Player, room_name: str) -> str:
    mark = len(host.frames)
    await host.command(
        {
            "type": "games.command.create_room",
            "game_type": GAME,
            "room_name": room_name,
            "max_players": 2,
        }
    )
    state = await host.wait(lambda f: f["type"] == "games.event.room_state", after=mark)
    room_id = str(state["room"]["room_id"])
    await guest.command(
        {"type": "games.command.join_room", "room_name": room_name, "game_type": GAME}
    )
    await host.wait(is_room_event(room_id, "games.event.lobby_joined"), after=mark)
    for target in (host.user_id, guest.user_id):
        await host.command(
            {"type": "games.command.select_player", "room_id": room_id, "target_user_id": target}
        )
    for player in (host, guest):
        await player.command({"type": "games.command.ready", "room_id": room_id})
    await host.wait(is_room_event(room_id, STATE), after=mark)
    return room_id


async def _refused(player: Player, message: dict[str, Any]) -> str:
    """Send `message` and return the code of the `system.error` answering it."""
    rid = uuid.uuid4().hex[:12]
    mark = len(player.frames)
    await player.send({**message, "request_id": rid})
    frame = await player.wait(
        lambda f: f.get("request_id") == rid and f["type"] == "system.error", after=mark
    )
    return str(frame["code"])


def _board_before(player: Player, room_id: str, seq: int) -> list[str | None]:
    """The board as `player` knew it just before room event `seq`."""
    board: list[str | None] = [None] * 9
    for frame in player.frames:
        if room_of(frame) != room_id or frame.get("seq") is None or frame["seq"] >= seq:
            continue
        if frame["type"] in (MOVED, STATE):
            board = list(frame["board"])
        elif frame["type"] == RESULT:
            board = [None] * 9
    return board


async def test_tic_tac_toe_whole_game_with_timeout_and_resume(
    ttt_stack: tuple[GatewayProc, Keys],
) -> None:
    gateway, keys = ttt_stack
    tag = uuid.uuid4().hex[:6]
    host = Player(f"h{tag}", keys.token(f"h{tag}"))
    guest = Player(f"g{tag}", keys.token(f"g{tag}"))
    await host.connect(gateway.url)
    await guest.connect(gateway.url)
    room_id = await _start(host, guest, f"Noughts {tag}")
    players = {host.user_id: host, guest.user_id: guest}

    seen = 0
    turns = 0
    resumed = False
    while True:
        event = await host.wait(
            lambda f, after=seen: (
                room_of(f) == room_id and f["type"] in (TURN, OVER) and f["seq"] > after
            ),
            within=30,
        )
        seen = event["seq"]
        if event["type"] == OVER:
            break
        turns += 1
        mover = players[event["current_turn"]]
        move = {"type": "games.command.tic_tac_toe.move", "room_id": room_id}
        if turns == 1:
            assert mover is host
            assert await _refused(guest, {**move, "position": 4}) == "not_your_turn"
            assert await _refused(host, {**move, "position": 9}) == "invalid_message"
        if turns == 2:
            # the guest's first move: a taken cell is refused, then the guest lets the timer
            # run out, which forfeits round 1
            assert mover is guest
            taken = _board_before(host, room_id, seen).index("X")
            assert await _refused(guest, {**move, "position": taken}) == "game_error"
            continue
        if turns == 4 and not resumed:
            # the guest has just opened round 2: its socket drops while the host moves
            assert mover is host
            await guest.close()
            await host.wait(is_room_event(room_id, "games.event.player_disconnected"))
            last_seq = max(guest.room_seqs(room_id))
        board = _board_before(host, room_id, seen)
        position = board.index(None)
        await mover.command({**move, "position": position})
        if turns == 4 and not resumed:
            resumed = True
            await host.wait(
                lambda f, after=seen: (
                    room_of(f) == room_id and f["type"] == TURN and f["seq"] > after
                )
            )
            await guest.connect(gateway.url)
            mark = len(guest.frames)
            await guest.command(
                {
                    "type": "games.command.rejoin_room",
                    "room_id": room_id,
                    "game_type": GAME,
                    "last_seq": last_seq,
                }
            )
            await guest.wait(is_room_event(room_id, "games.event.room_state"), after=mark)
            # the move made while the guest was away reaches it in the replay
            await guest.wait(
                lambda f, since=last_seq: (
                    room_of(f) == room_id
                    and f["type"] == MOVED
                    and f["player_id"] == host.user_id
                    and f["seq"] > since
                ),
                after=mark,
            )

    over = await guest.wait(is_room_event(room_id, OVER))
    results = [f for f in host.frames if room_of(f) == room_id and f["type"] == RESULT]
    first = results[0]
    assert (first["round"], first["winner_id"], first["by_timeout"], first["line"]) == (
        1,
        host.user_id,
        True,
        None,
    )
    assert resumed
    assert any(f["type"] == "games.event.player_rejoined" for f in host.frames)
    # every round's result is there, and the final scores are the round wins
    assert [r["round"] for r in results] == list(range(1, len(results) + 1))
    wins = results[-1]["round_wins"]
    assert {s["user_id"]: s["score"] for s in over["final_scores"]} == wins
    leaders = [user for user, won in wins.items() if won == max(wins.values())]
    assert over["winner"] == (leaders[0] if len(leaders) == 1 else None)
    assert_once_in_order(host, room_id, from_one=True)
    assert_once_in_order(guest, room_id, from_one=False)
    assert guest.room_seqs(room_id)[-1] == host.room_seqs(room_id)[-1]
    await host.close()
    await guest.close()
