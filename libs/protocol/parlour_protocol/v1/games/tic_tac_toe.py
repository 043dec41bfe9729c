"""Tic-tac-toe: two players, best of 9 rounds, first to 5 round wins takes the game. The
player who did not start a round starts the next one, and the starter plays X. A move not made
before the turn deadline forfeits the round to the other player."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from parlour_protocol.v1.base import (
    WHOLE_ROOM,
    RoomCommand,
    RoomId,
    ServerEvent,
    UserId,
    Username,
    WireModel,
)
from parlour_protocol.v1.registry import GameSpec

GAME_NAME = "tic_tac_toe"
ROUNDS = 9
"""Most rounds a game lasts."""
WINNING_ROUNDS = 5
"""Round wins that end the game at once."""

Mark = Literal["X", "O"]
Position = Annotated[int, Field(ge=0, le=8)]
"""A cell, row by row: 0 1 2 / 3 4 5 / 6 7 8."""
Board = Annotated[
    list[Mark | None],
    Field(min_length=9, max_length=9, description="the 9 cells row by row; null = free"),
]

# --- client -> server ---------------------------------------------------------------------


class Move(RoomCommand):
    """Put your mark on a free cell when it is your turn. A position outside 0..8 is refused
    by the gateway (`invalid_message`); an occupied cell by the engine (`game_error`)."""

    type: Literal["games.command.tic_tac_toe.move"] = "games.command.tic_tac_toe.move"
    doc_answer: ClassVar[str] = (
        "`moved`, then `turn_changed`, or `round_result` followed by `game_over` or "
        "`turn_changed`; refused with `system.error` `not_your_turn`, `game_error` (occupied "
        "cell), `not_a_player` or `game_not_in_progress`"
    )
    position: Position


# --- server -> client ---------------------------------------------------------------------


class TicTacToeState(ServerEvent):
    """The game's state: sent to the room when the game starts (with `seq`) and to a
    (re)joining player or joining spectator (`seq` null)."""

    type: Literal["games.event.tic_tac_toe.state"] = "games.event.tic_tac_toe.state"
    doc_audience: ClassVar[str] = (
        "the whole room at the start (`seq` set); the rejoining player or joining spectator "
        "(`seq` null)"
    )
    room_id: RoomId
    board: Board
    marks: dict[UserId, Mark] = Field(description="each player's mark in this round")
    round: int = Field(ge=1, le=ROUNDS)
    round_wins: dict[UserId, int] = Field(description="rounds each player has won")
    current_turn: UserId | None
    turn_deadline: datetime | None = Field(
        default=None, description="when `current_turn` forfeits the round"
    )


class Moved(ServerEvent):
    """A mark was placed; `board` is the board after it."""

    type: Literal["games.event.tic_tac_toe.moved"] = "games.event.tic_tac_toe.moved"
    doc_audience: ClassVar[str] = WHOLE_ROOM
    room_id: RoomId
    player_id: UserId
    position: Position
    mark: Mark
    board: Board


class RoundResult(ServerEvent):
    """End of a round: `winner_id` null is a drawn round (full board, no line). `line` is the
    winning row, column or diagonal; null for a draw or a round won `by_timeout` (the other
    player missed the move deadline). `round_wins` already include this round."""

    type: Literal["games.event.tic_tac_toe.round_result"] = "games.event.tic_tac_toe.round_result"
    doc_audience: ClassVar[str] = WHOLE_ROOM
    room_id: RoomId
    round: int = Field(ge=1, le=ROUNDS)
    winner_id: UserId | None
    line: list[Position] | None = Field(min_length=3, max_length=3)
    by_timeout: bool
    board: Board
    round_wins: dict[UserId, int]


class FinalScore(WireModel):
    user_id: UserId
    username: Username
    score: int = Field(ge=0, description="rounds won")


class GameOver(ServerEvent):
    """The same fields as Bigger Dice's `game_over`, with `score` = rounds won. `winner` and
    `winner_name` are null when the game is a draw (9 rounds, equal round wins).
    `final_scores` lists both players in seat order."""

    type: Literal["games.event.tic_tac_toe.game_over"] = "games.event.tic_tac_toe.game_over"
    doc_audience: ClassVar[str] = WHOLE_ROOM
    room_id: RoomId
    winner: UserId | None
    winner_name: Username | None
    final_scores: list[FinalScore]


GAME = GameSpec(
    name=GAME_NAME,
    title="Tic-tac-toe",
    commands=(Move,),
    events=(TicTacToeState, Moved, RoundResult, GameOver),
    min_players=2,
    max_players=2,
)
