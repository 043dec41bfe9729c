"""`replay` is the oracle: folding `apply` over a room's commands gives the state the engine
stored step by step; same inputs, same outputs (ids, seqs, rolls)."""

from __future__ import annotations

import random
import time

import pytest

from parlour_engine.rules import RoomState, apply, replay
from parlour_protocol.v1 import ErrorCode
from parlour_protocol.v1 import rooms as r
from parlour_protocol.v1.chat import ChatChannel, SendChat
from tests.support.rules_table import FAST, ROOM, Table


@pytest.mark.parametrize("n", [2, 4, 10])
def test_replay_rebuilds_the_state(n: int) -> None:
    table = Table(seed=11)
    table.start(n)
    table.ok("u1", SendChat(room_id=ROOM, channel=ChatChannel.PLAYERS, content="gl hf"))
    table.disconnect("u2")
    table.err("u99", r.LeaveRoom(room_id=ROOM), ErrorCode.NOT_IN_ROOM)
    table.play_out()
    rebuilt = replay(table.log, random.Random(11), FAST)
    assert rebuilt == table.state
    # bare envelopes use their own timestamps (the harness stamps each with its `now`)
    assert replay([c for c, _ in table.log], random.Random(11), FAST) == table.state


def test_recomputation_is_identical() -> None:
    a, b = Table(seed=5), Table(seed=5)
    for t in (a, b):
        t.start(3)
        t.ok("u1", SendChat(room_id=ROOM, channel=ChatChannel.PLAYERS, content="x"))
        t.play_out()
    assert [o.emits for o in a.outcomes] == [o.emits for o in b.outcomes]
    assert [o.timers for o in a.outcomes] == [o.timers for o in b.outcomes]
    assert a.state == b.state


def test_replay_skips_rejections_like_the_engine() -> None:
    table = Table()
    table.lobby_of(2)
    table.send("u2", r.StartGame(room_id=ROOM))
    assert replay(table.log, random.Random(7), FAST) == table.state


def test_state_json_is_the_store_format() -> None:
    table = Table()
    table.start(3)
    for _ in range(7):
        table.roll()
    assert table.state is not None
    raw = table.state.model_dump_json()
    assert "password" not in raw or '"password_hash":null' in raw
    again = RoomState.load(raw, FAST.games)
    assert again == table.state
    assert type(again.game).__name__ == "DiceState"


def test_apply_is_fast_enough() -> None:
    """A roll in a 10-player game late in the game (long round history) stays well under the
    engine's per-command budget (5,000 commands/s per process, I/O included)."""
    table = Table(seed=3)
    table.start(10)
    for _ in range(300):
        table.roll()
    assert table.state is not None
    state = table.state
    who = state.current_turn
    assert who is not None
    from parlour_protocol.v1.games.bigger_dice import Roll

    envelope = table.envelope(who, Roll(room_id=ROOM))
    rng = random.Random(1)
    runs = 300
    started = time.perf_counter()
    for _ in range(runs):
        apply(state, envelope, rng, table.now, FAST)
    per_command = (time.perf_counter() - started) / runs
    print(f"apply(roll, 10 players, 300 rolls of history): {per_command * 1e6:.0f} us")
    assert per_command < 0.002


def test_replay_with_a_per_command_rng_and_comparable_ignores_the_clock() -> None:
    from datetime import timedelta

    from parlour_engine.rules import comparable

    def rng_for(command: object) -> random.Random:
        return random.Random(f"42:{command.msg_id}")  # type: ignore[attr-defined]

    table = Table()
    table.start(3)
    for _ in range(12):
        assert table.state is not None
        who = table.state.current_turn
        assert who is not None
        from parlour_protocol.v1.games.bigger_dice import Roll

        envelope = table.envelope(who, Roll(room_id=ROOM))
        out = apply(table.state, envelope, rng_for(envelope), table.now, FAST)
        table.log.append((envelope, table.now))
        table.state = out.state
        table.advance(1)
    # replayed with another clock: same game, different wall-clock fields
    shifted = [(c, now + timedelta(hours=1)) for c, now in table.log]
    setup = Table()
    setup.start(3)
    rebuilt = replay(shifted[len(setup.log) :], rng_for, FAST, state=setup.state)
    assert rebuilt is not None
    assert rebuilt != table.state
    assert comparable(rebuilt) == comparable(table.state)
