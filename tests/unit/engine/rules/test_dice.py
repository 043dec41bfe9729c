"""Bigger Dice: whole games for 2..10 players, ties, the tiebreaker limit, event order."""

from __future__ import annotations

from datetime import timedelta

import pytest

from parlour_engine.games.bigger_dice import DiceConfig
from parlour_protocol.v1 import AudienceKind, ErrorCode
from parlour_protocol.v1.games import bigger_dice as dice
from parlour_protocol.v1.internal import TimerKind
from parlour_protocol.v1.rooms import RoomStatus
from tests.support.rules_table import FAST, ROOM, ScriptedRng, Table, of_type, rules_config, types

ROLLED = "games.event.bigger_dice.rolled"
RESULT = "games.event.bigger_dice.round_result"
TIEBREAK = "games.event.bigger_dice.tiebreaker_started"
OVER = "games.event.bigger_dice.game_over"
TURN = "games.event.turn_changed"


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("n", [2, 3, 4, 10])
def test_whole_game_create_to_game_over(n: int, seed: int) -> None:
    table = Table(seed=seed)
    table.start(n)
    table.play_out()
    st = table.state
    assert st is not None
    assert st.status is RoomStatus.FINISHED
    scores = {m.user_id: m.score for m in st.players}
    assert scores[st.winner_id or ""] == 10
    assert all(s < 10 for u, s in scores.items() if u != st.winner_id)
    # seqs of every room-wide event over the whole game: 1..N without gaps, and the
    # audience of each is the whole room
    seqs = [e.message.seq for _, e in table.all_emits() if e.audience.kind is AudienceKind.ROOM]
    assert seqs == list(range(1, len(seqs) + 1))
    assert st.seq == len(seqs)
    over = [e for _, e in table.all_emits() if e.message.type == OVER]
    assert len(over) == 1
    final = over[0].message.final_scores
    assert [(f.user_id, f.score) for f in final] == [(m.user_id, m.score) for m in st.players]
    # a round's points equal the scores: every round_result with a winner adds exactly one
    results = [e.message for _, e in table.all_emits() if e.message.type == RESULT]
    assert sum(1 for res in results if res.winner_id) == sum(scores.values())
    # nothing may be played once over
    table.err("u1", dice.Roll(room_id=ROOM), ErrorCode.GAME_NOT_IN_PROGRESS)


def test_events_per_roll_and_scores() -> None:
    # u1 rolls 3, u2 rolls 5: u2 wins round 1
    table = Table()
    table.start(2)
    table.rng = ScriptedRng([3, 5])  # type: ignore[assignment]
    out = table.roll("u1")
    assert types(out) == [ROLLED, TURN]
    rolled = of_type(out, ROLLED)[0]
    assert (rolled.roll, rolled.new_score, rolled.is_first_roll, rolled.auto) == (3, 0, True, False)  # type: ignore[attr-defined]
    out = table.roll("u2")
    assert types(out) == [ROLLED, RESULT, TURN]
    result = of_type(out, RESULT)[0]
    assert result.rolls == [("u1", 3), ("u2", 5)]  # type: ignore[attr-defined]
    assert result.winner_id == "u2"  # type: ignore[attr-defined]
    assert result.scores == [("u1", 0), ("u2", 1)]  # type: ignore[attr-defined]
    assert result.round_number == 1  # type: ignore[attr-defined]
    # next round starts with the first seat again, and new_score is the pre-point score
    turn = of_type(out, TURN)[0]
    assert turn.current_turn == "u1"  # type: ignore[attr-defined]
    table.rng = ScriptedRng([1, 6])  # type: ignore[assignment]
    table.roll("u1")
    out = table.roll("u2")
    assert of_type(out, ROLLED)[0].new_score == 1  # type: ignore[attr-defined]
    assert of_type(out, RESULT)[0].round_number == 2  # type: ignore[attr-defined]


def test_roll_errors() -> None:
    table = Table()
    table.lobby_of(2)
    table.err("u1", dice.Roll(room_id=ROOM), ErrorCode.GAME_NOT_IN_PROGRESS)
    table2 = Table()
    table2.start(2)
    table2.err("u2", dice.Roll(room_id=ROOM), ErrorCode.NOT_YOUR_TURN)
    table2.err("u9", dice.Roll(room_id=ROOM), ErrorCode.NOT_A_PLAYER)


def test_tie_rerolled_by_tied_players_only_round_not_advancing() -> None:
    table = Table()
    table.start(3)
    # round 1: u1 5, u2 2, u3 5 -> tie u1/u3; tiebreak: u1 4, u3 6 -> u3 wins round 1
    table.rng = ScriptedRng([5, 2, 5, 4, 6])  # type: ignore[assignment]
    table.roll("u1")
    table.roll("u2")
    out = table.roll("u3")
    assert types(out) == [ROLLED, RESULT, TIEBREAK, TURN]
    result = of_type(out, RESULT)[0]
    assert (result.winner_id, result.is_tie, result.is_tiebreaker) == (None, True, False)  # type: ignore[attr-defined]
    assert result.tiebreaker_players == ["u1", "u3"]  # type: ignore[attr-defined]
    tb = of_type(out, TIEBREAK)[0]
    assert (tb.tied_players, tb.tied_roll) == (["u1", "u3"], 5)  # type: ignore[attr-defined]
    assert of_type(out, TURN)[0].current_turn == "u1"  # type: ignore[attr-defined]
    table.err("u2", dice.Roll(room_id=ROOM), ErrorCode.NOT_YOUR_TURN)
    out = table.roll("u1")
    assert of_type(out, ROLLED)[0].is_first_roll is False  # type: ignore[attr-defined]
    assert of_type(out, TURN)[0].current_turn == "u3"  # type: ignore[attr-defined]
    out = table.roll("u3")
    result = of_type(out, RESULT)[0]
    assert (result.winner_id, result.is_tie, result.is_tiebreaker) == ("u3", False, True)  # type: ignore[attr-defined]
    assert result.round_number == 1  # type: ignore[attr-defined]
    assert result.scores == [("u1", 0), ("u2", 0), ("u3", 1)]  # type: ignore[attr-defined]
    assert table.state is not None
    snap = table.state.game
    assert snap is not None


@pytest.mark.parametrize("limit", [0, 1, 3])
def test_tiebreaker_limit_awards_first_tied_player_in_a_reported_result(limit: int) -> None:
    table = Table(config=rules_config(scrypt_n=16, dice=DiceConfig(max_tiebreakers=limit)))
    table.start(2)
    table.rng = ScriptedRng([4, 4] * (limit + 1))  # type: ignore[assignment]
    outs = [table.roll() for _ in range(2 * (limit + 1))]
    results = [res for o in outs for res in of_type(o, RESULT)]
    assert len(results) == limit + 1
    assert all(res.is_tie for res in results[:-1])  # type: ignore[attr-defined]
    last = results[-1]
    assert last.by_tiebreaker_limit is True  # type: ignore[attr-defined]
    assert last.winner_id == "u1"  # type: ignore[attr-defined]
    assert last.tiebreaker_players == ["u1", "u2"]  # type: ignore[attr-defined]
    assert last.scores == [("u1", 1), ("u2", 0)]  # type: ignore[attr-defined]
    assert TIEBREAK not in types(outs[-1])


def test_tiebreaker_limit_point_can_win_the_game() -> None:
    table = Table(
        config=rules_config(scrypt_n=16, dice=DiceConfig(max_tiebreakers=0, winning_score=1))
    )
    table.start(2)
    table.rng = ScriptedRng([2, 2])  # type: ignore[assignment]
    table.roll()
    out = table.roll()
    assert types(out) == [ROLLED, RESULT, OVER]
    assert of_type(out, OVER)[0].winner == "u1"  # type: ignore[attr-defined]


def test_game_over_lists_every_player() -> None:
    table = Table(config=rules_config(scrypt_n=16, dice=DiceConfig(winning_score=1)))
    table.start(4)
    table.rng = ScriptedRng([1, 2, 6, 3])  # type: ignore[assignment]
    for _ in range(3):
        table.roll()
    out = table.roll()
    assert types(out) == [ROLLED, RESULT, OVER]
    over = of_type(out, OVER)[0]
    assert over.winner == "u3"  # type: ignore[attr-defined]
    assert over.winner_name == "name-u3"  # type: ignore[attr-defined]
    assert [(f.user_id, f.score) for f in over.final_scores] == [  # type: ignore[attr-defined]
        ("u1", 0),
        ("u2", 0),
        ("u3", 1),
        ("u4", 0),
    ]
    assert table.state is not None
    assert table.state.current_turn is None
    # no turn timer; the finished room's expiry instead
    assert [(t.kind, t.token, t.due) for t in out.timers] == [
        (TimerKind.ROOM_EXPIRY, "finished", table.now + timedelta(seconds=300))
    ]


def test_state_for_rejoining_player_has_round_history() -> None:
    table = Table()
    table.start(3)
    table.rng = ScriptedRng([5, 2, 5, 4, 6, 3])  # type: ignore[assignment]
    for _ in range(6):
        table.roll()
    from parlour_protocol.v1 import rooms as r

    out = table.ok("u5", r.JoinAsSpectator(room_name="Table One"))
    assert types(out)[:2] == ["games.event.room_state", "games.event.bigger_dice.state"]
    state = of_type(out, "games.event.bigger_dice.state")[0]
    assert state.round_number == 2  # type: ignore[attr-defined]
    assert state.current_rolls == [("u1", 3)]  # type: ignore[attr-defined]
    assert state.pending_rollers == ["u2", "u3"]  # type: ignore[attr-defined]
    history = state.round_history  # type: ignore[attr-defined]
    assert [(h.round_number, h.winner_id, h.is_tiebreaker) for h in history] == [
        (1, None, False),
        (1, "u3", True),
    ]
    assert [rr.roll for rr in history[0].rolls] == [5, 2, 5]


def test_turn_numbers_increase_and_timers_follow_the_turn() -> None:
    table = Table(config=FAST)
    table.start(3)
    numbers = []
    for _ in range(9):
        out = table.roll()
        for t in of_type(out, TURN):
            numbers.append(t.turn_number)  # type: ignore[attr-defined]
        assert table.state is not None
        assert [tm.token for tm in out.timers] == [str(table.state.turn_number)]
    assert numbers == list(range(2, 2 + len(numbers)))


def test_game_command_for_a_room_of_another_game_is_wrong_game_type() -> None:
    from dataclasses import replace

    from parlour_engine.rules.plugins import GameRules
    from parlour_engine.rules.state import GameState

    class OtherGame:
        name = "other_game"
        state_model = GameState
        command_types: frozenset[str] = frozenset()

    other: GameRules = OtherGame()  # type: ignore[assignment]  # only the members used here
    table = Table(config=replace(FAST, games=FAST.games.replacing(other)))
    table.lobby_of(2)
    assert table.state is not None
    table.state = table.state.model_copy(update={"game_type": "other_game"})
    table.err("u1", dice.Roll(room_id=ROOM), ErrorCode.WRONG_GAME_TYPE)
