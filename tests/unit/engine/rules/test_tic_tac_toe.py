"""Tic-tac-toe: rounds won on every line, drawn rounds, the alternating starter, the move
timer's forfeit and its length (the game's own 60 s, capped by the engine), the end of the
game (first to 5, best of 9, a drawn game), refused moves, auto-play, the forfeit of a player
absent for ten minutes, and the replay oracle."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

import pytest
from pydantic import ValidationError

from parlour_engine.games.tic_tac_toe import LINES, TicTacToeConfig, TicTacToeRules
from parlour_engine.rules import Outcome, replay
from parlour_engine.rules.types import TimerRequest
from parlour_protocol.v1 import ErrorCode
from parlour_protocol.v1 import rooms as r
from parlour_protocol.v1.games import tic_tac_toe as ttt
from parlour_protocol.v1.internal import TimerFired, TimerKind
from parlour_protocol.v1.rooms import RoomStatus
from tests.support.rules_table import (
    FAST,
    ROOM,
    ScriptedRng,
    Table,
    of_type,
    rules_config,
    types,
)

GAME = "tic_tac_toe"
STATE = "games.event.tic_tac_toe.state"
MOVED = "games.event.tic_tac_toe.moved"
RESULT = "games.event.tic_tac_toe.round_result"
OVER = "games.event.tic_tac_toe.game_over"
TURN = "games.event.turn_changed"


def started(seed: int = 7) -> Table:
    """u1 hosts a tic-tac-toe room, u2 joins, both are seated (u1 first) and ready."""
    table = Table(seed=seed)
    table.create(game_type=GAME, max_players=2)
    table.ok("u2", r.JoinRoom(room_name="Table One", game_type=GAME))
    for user in ("u1", "u2"):
        table.ok("u1", r.SelectPlayer(room_id=ROOM, target_user_id=user))
    table.ok("u1", r.Ready(room_id=ROOM))
    out = table.ok("u2", r.Ready(room_id=ROOM))
    started_types = types(out)
    # the first turn, then the board for everyone (room list updates may follow)
    assert started_types.index(STATE) == started_types.index(TURN) + 1
    return table


def turn(table: Table) -> str:
    assert table.state is not None
    assert table.state.current_turn is not None
    return table.state.current_turn


def play(table: Table, *positions: int) -> list[ttt.RoundResult]:
    """Whoever is on turn plays each position in order; the round results met on the way."""
    results: list[ttt.RoundResult] = []
    for position in positions:
        out = table.ok(turn(table), ttt.Move(room_id=ROOM, position=position))
        results += [e for e in of_type(out, RESULT) if isinstance(e, ttt.RoundResult)]
    return results


def starter_wins(table: Table) -> None:
    """The round's starter (X) wins on the top row."""
    (result,) = play(table, 0, 3, 1, 4, 2)
    assert result.line == [0, 1, 2]


def second_wins(table: Table) -> None:
    """The round's second player (O) wins on the middle row."""
    (result,) = play(table, 0, 3, 1, 4, 8, 5)
    assert result.line == [3, 4, 5]


def drawn(table: Table) -> None:
    (result,) = play(table, 0, 1, 2, 4, 3, 5, 7, 6, 8)
    assert result.winner_id is None
    assert result.line is None


def _moves_for(line: tuple[int, int, int]) -> list[int]:
    """X takes `line`; O plays two cells that neither complete a line nor block it."""
    others = [p for p in range(9) if p not in line]
    for a in others:
        for b in others:
            if a < b and not any(set(ln) <= {a, b} for ln in LINES):
                return [line[0], a, line[1], b, line[2]]
    raise AssertionError(line)


@pytest.mark.parametrize("line", LINES)
def test_three_in_a_line_wins_the_round(line: tuple[int, int, int]) -> None:
    table = started()
    results = play(table, *_moves_for(line))
    assert len(results) == 1
    result = results[0]
    assert (result.round, result.winner_id, result.line, result.by_timeout) == (
        1,
        "u1",
        list(line),
        False,
    )
    assert result.round_wins == {"u1": 1, "u2": 0}
    assert [result.board[p] for p in line] == ["X", "X", "X"]


def test_full_board_without_a_line_is_a_drawn_round() -> None:
    table = started()
    drawn(table)
    assert table.state is not None
    assert {m.user_id: m.score for m in table.state.players} == {"u1": 0, "u2": 0}
    assert table.state.status is RoomStatus.IN_PROGRESS


def test_events_of_a_move_and_of_a_round() -> None:
    table = started()
    out = table.ok("u1", ttt.Move(room_id=ROOM, position=4))
    assert types(out) == [MOVED, TURN]
    moved = of_type(out, MOVED)[0]
    assert isinstance(moved, ttt.Moved)
    assert (moved.player_id, moved.position, moved.mark) == ("u1", 4, "X")
    assert moved.board == [None, None, None, None, "X", None, None, None, None]
    play(table, 0, 3, 1)
    out = table.ok("u1", ttt.Move(room_id=ROOM, position=5))
    assert types(out) == [MOVED, RESULT, TURN]


def test_the_player_who_did_not_start_starts_the_next_round_with_x() -> None:
    table = started()
    starters = []
    for _ in range(4):
        starters.append(turn(table))
        drawn(table)
    assert starters == ["u1", "u2", "u1", "u2"]
    snapshot = ttt.TicTacToeState.model_validate(
        table.config.games.get(GAME).snapshot_for(table.state, "u1").model_dump()  # type: ignore[union-attr,arg-type]
    )
    assert snapshot.round == 5
    assert snapshot.marks == {"u1": "X", "u2": "O"}
    assert snapshot.current_turn == "u1"
    assert snapshot.board == [None] * 9


def test_a_timed_out_move_forfeits_the_round() -> None:
    table = started()
    play(table, 4)  # u1 X, now u2 is on turn
    out = table.fire_turn()
    assert types(out) == [RESULT, TURN]
    result = of_type(out, RESULT)[0]
    assert isinstance(result, ttt.RoundResult)
    assert (result.winner_id, result.line, result.by_timeout) == ("u1", None, True)
    assert result.round_wins == {"u1": 1, "u2": 0}
    assert result.board[4] == "X"
    assert turn(table) == "u2"  # round 2, u2 starts


def test_a_stale_turn_timer_has_no_effect() -> None:
    table = started()
    assert table.state is not None
    stale = str(table.state.turn_number)
    play(table, 4)
    out = table.send(
        "system", TimerFired(room_id=ROOM, kind=TimerKind.TURN, token=stale), system=True
    )
    assert not out.changed
    assert types(out) == []


def test_first_to_five_round_wins_takes_the_game() -> None:
    table = started()
    # u1 starts rounds 1, 3, 5, 7 and u2 rounds 2, 4, 6: the starter always wins, except u1
    # also wins round 2 by the second player's line -> u1 reaches 5 in round 7
    starter_wins(table)  # r1 u1
    second_wins(table)  # r2 u1 (second)
    starter_wins(table)  # r3 u1
    starter_wins(table)  # r4 u2
    starter_wins(table)  # r5 u1
    starter_wins(table)  # r6 u2
    out = table.ok(turn(table), ttt.Move(room_id=ROOM, position=0))
    assert not of_type(out, OVER)
    out_last = None
    for position in (3, 1, 4, 2):
        out_last = table.ok(turn(table), ttt.Move(room_id=ROOM, position=position))
    assert out_last is not None
    assert types(out_last) == [MOVED, RESULT, OVER]
    over = of_type(out_last, OVER)[0]
    assert isinstance(over, ttt.GameOver)
    assert (over.winner, over.winner_name) == ("u1", "name-u1")
    assert [(f.user_id, f.score) for f in over.final_scores] == [("u1", 5), ("u2", 2)]
    st = table.state
    assert st is not None
    assert (st.status, st.winner_id, st.current_turn) == (RoomStatus.FINISHED, "u1", None)
    table.err("u2", ttt.Move(room_id=ROOM, position=5), ErrorCode.GAME_NOT_IN_PROGRESS)


@pytest.mark.parametrize(
    ("u1_wins", "winner"),
    [(4, "u1"), (3, "u2"), (2, None)],
)
def test_best_of_nine_ends_after_nine_rounds(u1_wins: int, winner: str | None) -> None:
    """Nine rounds: u1 wins `u1_wins` rounds, u2 as many or 4 when u1 wins 3, the rest draw."""
    u2_wins = {4: 3, 3: 4, 2: 2}[u1_wins]
    plan = ["u1"] * u1_wins + ["u2"] * u2_wins
    plan += [None] * (9 - len(plan))
    table = started()
    over = None
    for want in plan:
        starter = turn(table)
        if want is None:
            drawn(table)
        elif want == starter:
            starter_wins(table)
        else:
            second_wins(table)
        last = table.outcomes[-1]
        over = of_type(last, OVER)
    assert over
    game_over = over[0]
    assert isinstance(game_over, ttt.GameOver)
    assert game_over.winner == winner
    assert game_over.winner_name == (f"name-{winner}" if winner else None)
    assert table.state is not None
    assert table.state.winner_id == winner
    assert table.state.status is RoomStatus.FINISHED


@pytest.mark.parametrize(
    ("user", "position", "code"),
    [
        ("u2", 0, ErrorCode.NOT_YOUR_TURN),
        ("u1", 4, ErrorCode.GAME_ERROR),  # taken
        ("u9", 0, ErrorCode.NOT_A_PLAYER),
    ],
)
def test_refused_moves(user: str, position: int, code: ErrorCode) -> None:
    table = started()
    play(table, 4, 0)  # u1 on turn again
    table.err(user, ttt.Move(room_id=ROOM, position=position), code)


def test_position_out_of_range_is_not_a_move() -> None:
    with pytest.raises(ValidationError):
        ttt.Move(room_id=ROOM, position=9)
    with pytest.raises(ValidationError):
        ttt.Move(room_id=ROOM, position=-1)


def test_a_move_in_the_lobby_is_refused() -> None:
    table = Table()
    table.create(game_type=GAME, max_players=2)
    table.err("u1", ttt.Move(room_id=ROOM, position=0), ErrorCode.GAME_NOT_IN_PROGRESS)


def test_a_voted_out_player_moves_at_random_on_their_turn() -> None:
    table = started()
    table.disconnect("u2")
    table.advance(FAST.disconnect_grace_seconds + 1)
    table.rng = ScriptedRng([0])  # type: ignore[assignment]
    table.ok("u1", r.VoteKickDisconnected(room_id=ROOM, target_user_id="u2"))
    out = table.ok("u1", ttt.Move(room_id=ROOM, position=4))
    moves = [e for e in of_type(out, MOVED) if isinstance(e, ttt.Moved)]
    # the first free cell (index 0 of the free cells) for u2, then u1's turn again
    assert [(m.player_id, m.position) for m in moves] == [("u1", 4), ("u2", 0)]
    assert turn(table) == "u1"


def test_a_banned_player_loses_the_game() -> None:
    table = started()
    play(table, 4)
    table.ok("u1", r.BanPlayer(room_id=ROOM, target_user_id="u2"))
    st = table.state
    assert st is not None
    assert (st.status, st.winner_id) == (RoomStatus.FINISHED, "u1")


def test_rejoin_gets_the_snapshot() -> None:
    table = started()
    play(table, 4, 0)
    out = table.ok("u2", r.RejoinRoom(room_id=ROOM, game_type=GAME))
    (snapshot,) = of_type(out, STATE)
    assert isinstance(snapshot, ttt.TicTacToeState)
    assert snapshot.seq is None
    assert snapshot.board == ["O", None, None, None, "X", None, None, None, None]
    assert snapshot.current_turn == "u1"
    assert snapshot.turn_deadline is not None


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_whole_games_replay_to_the_same_state(seed: int) -> None:
    table = started(seed)
    pick = random.Random(seed)
    for _ in range(200):
        st = table.state
        assert st is not None
        if st.status is not RoomStatus.IN_PROGRESS:
            break
        if pick.random() < 0.1:
            table.advance(FAST.turn_timeout_for(GAME) + 1)
            table.fire_turn()
            continue
        board = table.config.games.get(GAME).snapshot_for(st, "u1").board  # type: ignore[union-attr]
        free = [i for i, cell in enumerate(board) if cell is None]
        table.ok(turn(table), ttt.Move(room_id=ROOM, position=pick.choice(free)))
    assert table.state is not None
    assert table.state.status is RoomStatus.FINISHED
    assert replay(table.log, random.Random(seed), FAST) == table.state


# --- the game's own move timer ---------------------------------------------------------------


def test_the_move_timer_is_the_games_own_sixty_seconds() -> None:
    table = started()
    st = table.state
    assert st is not None
    assert st.turn_deadline is not None
    assert st.turn_deadline == table.now + timedelta(seconds=60)
    (timer,) = [t for t in table.outcomes[-1].timers if t.kind is TimerKind.TURN]
    assert timer.due == st.turn_deadline
    # Bigger Dice keeps the engine's turn timer
    dice = Table()
    dice.start(2)
    assert dice.state is not None
    assert dice.state.turn_deadline is not None
    assert dice.state.turn_deadline == dice.now + timedelta(seconds=FAST.turn_timeout_seconds)


@pytest.mark.parametrize(
    ("cap", "ttt_seconds", "dice_seconds"),
    [(None, 60, 30), (4, 4, 4), (45, 45, 30), (90, 60, 30)],
)
def test_the_engine_cap_shortens_every_games_timer(
    cap: int | None, ttt_seconds: int, dice_seconds: int
) -> None:
    config = rules_config(scrypt_n=16, turn_timeout_cap_seconds=cap)
    assert config.turn_timeout_for(GAME) == ttt_seconds
    assert config.turn_timeout_for("bigger_dice") == dice_seconds
    assert config.turn_timeout_for("no_such_game") == min(30, cap or 30)
    table = Table(config=config)
    table.create(game_type=GAME, max_players=2)
    table.ok("u2", r.JoinRoom(room_name="Table One", game_type=GAME))
    for user in ("u1", "u2"):
        table.ok("u1", r.SelectPlayer(room_id=ROOM, target_user_id=user))
    table.ok("u1", r.Ready(room_id=ROOM))
    table.ok("u2", r.Ready(room_id=ROOM))
    assert table.state is not None
    assert table.state.turn_deadline == table.now + timedelta(seconds=ttt_seconds)


# --- forfeit after ten minutes of absence ------------------------------------------------------

FORFEIT = TicTacToeConfig().absence_forfeit_seconds


def _forfeit_timer(out: Outcome) -> TimerRequest:
    (timer,) = [t for t in out.timers if t.token.startswith("forfeit:")]
    assert timer.kind is TimerKind.DISCONNECT_GRACE
    return timer


def _fire(table: Table, timer: TimerRequest) -> Outcome:
    return table.send(
        "system", TimerFired(room_id=ROOM, kind=timer.kind, token=timer.token), system=True
    )


def test_the_forfeit_window_is_ten_minutes() -> None:
    assert FORFEIT == 600
    table = started()
    out = table.disconnect("u2")
    timer = _forfeit_timer(out)
    assert timer.due == table.now + timedelta(seconds=600)
    st = table.state
    assert st is not None
    record = st.disconnect("u2")
    assert record is not None
    assert record.forfeit_at == timer.due


@pytest.mark.parametrize(
    ("came_back", "finished", "winner"),
    [
        (None, True, "u1"),  # away for the whole window: forfeits, the other player wins
        ("rejoin", False, None),  # came back (rejoin) before the timer
        ("move", False, None),  # came back by acting (any command of theirs)
        ("voted_out", False, None),  # voted out: the server plays them instead
    ],
)
def test_an_absent_player_forfeits_the_game(
    came_back: str | None, finished: bool, winner: str | None
) -> None:
    table = started()
    play(table, 4)  # u2 is on turn
    timer = _forfeit_timer(table.disconnect("u2"))
    if came_back == "rejoin":
        table.advance(300)
        table.ok("u2", r.RejoinRoom(room_id=ROOM, game_type=GAME))
    elif came_back == "move":
        table.advance(30)
        table.ok("u2", ttt.Move(room_id=ROOM, position=0))
    elif came_back == "voted_out":
        table.advance(FAST.disconnect_grace_seconds + 1)
        table.ok("u1", r.VoteKickDisconnected(room_id=ROOM, target_user_id="u2"))
    table.now = timer.due
    out = _fire(table, timer)
    st = table.state
    assert st is not None
    if finished:
        assert types(out)[0] == OVER  # room list updates may follow
        (over,) = of_type(out, OVER)
        assert isinstance(over, ttt.GameOver)
        assert (over.winner, over.winner_name) == ("u1", "name-u1")
        assert (st.status, st.winner_id, st.current_turn) == (RoomStatus.FINISHED, winner, None)
        assert st.disconnect("u2") is None
    else:
        assert not out.changed
        assert of_type(out, OVER) == []
        assert st.status is RoomStatus.IN_PROGRESS


def test_the_grace_timer_does_not_forfeit() -> None:
    table = started()
    out = table.disconnect("u2")
    (grace,) = [t for t in out.timers if not t.token.startswith("forfeit:")]
    assert grace.kind is TimerKind.DISCONNECT_GRACE
    table.now = grace.due
    assert not _fire(table, grace).changed
    assert table.state is not None
    assert table.state.status is RoomStatus.IN_PROGRESS


def test_a_second_disconnect_restarts_the_window() -> None:
    table = started()
    first = _forfeit_timer(table.disconnect("u2"))
    table.advance(500)
    table.ok("u2", r.RejoinRoom(room_id=ROOM, game_type=GAME))
    table.advance(60)
    second = _forfeit_timer(table.disconnect("u2"))
    assert second.token != first.token
    assert second.due == table.now + timedelta(seconds=600)
    table.now = first.due + timedelta(seconds=1)
    assert not _fire(table, first).changed  # the first disconnect's timer is stale
    table.now = second.due
    _fire(table, second)
    assert table.state is not None
    assert (table.state.status, table.state.winner_id) == (RoomStatus.FINISHED, "u1")


def test_bigger_dice_never_forfeits() -> None:
    table = Table()
    table.start(2)
    out = table.disconnect("u2")
    assert [t for t in out.timers if t.token.startswith("forfeit:")] == []
    st = table.state
    assert st is not None
    record = st.disconnect("u2")
    assert record is not None
    assert record.forfeit_at is None
    table.advance(3600)
    forged = TimerRequest(TimerKind.DISCONNECT_GRACE, f"forfeit:u2:{record.number}", table.now)
    assert not _fire(table, forged).changed
    assert table.state is not None
    assert table.state.status is RoomStatus.IN_PROGRESS


def test_a_game_without_a_forfeit_time_never_forfeits() -> None:
    never = TicTacToeRules(TicTacToeConfig(absence_forfeit_seconds=None))
    table = Table(config=replace(FAST, games=FAST.games.replacing(never)))
    table.create(game_type=GAME, max_players=2)
    table.ok("u2", r.JoinRoom(room_name="Table One", game_type=GAME))
    for user in ("u1", "u2"):
        table.ok("u1", r.SelectPlayer(room_id=ROOM, target_user_id=user))
    table.ok("u1", r.Ready(room_id=ROOM))
    table.ok("u2", r.Ready(room_id=ROOM))
    out = table.disconnect("u2")
    assert [t.kind for t in out.timers] == [TimerKind.DISCONNECT_GRACE]


def test_a_forfeited_game_replays_to_the_same_state() -> None:
    table = started(3)
    play(table, 4)  # u2 is on turn
    timer = _forfeit_timer(table.disconnect("u1"))
    table.advance(120)
    table.ok("u2", ttt.Move(room_id=ROOM, position=8))
    table.now = timer.due
    _fire(table, timer)
    assert table.state is not None
    assert (table.state.status, table.state.winner_id) == (RoomStatus.FINISHED, "u2")
    assert replay(table.log, random.Random(3), FAST) == table.state
