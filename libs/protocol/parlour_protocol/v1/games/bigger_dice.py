"""Bigger Dice: every player rolls one die per round, the highest roll scores a point, ties are
re-rolled by the tied players only, first to 10 points wins. The server rolls."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from parlour_protocol.v1.base import (
    WHOLE_ROOM,
    RoomCommand,
    RoomId,
    ServerEvent,
    TargetedRoomCommand,
    UserId,
    Username,
    WireModel,
)
from parlour_protocol.v1.registry import GameSpec

GAME_NAME = "bigger_dice"
WINNING_SCORE = 10

Die = Annotated[int, Field(ge=1, le=6)]
"""One die face."""

# --- client -> server ---------------------------------------------------------------------


class Roll(RoomCommand):
    """Roll for yourself when it is your turn. The client never sends a value."""

    type: Literal["games.command.bigger_dice.roll"] = "games.command.bigger_dice.roll"
    doc_answer: ClassVar[str] = (
        "`rolled`, then `turn_changed`, or `round_result` followed "
        "by `game_over` / `turn_changed` / `tiebreaker_started` + `turn_changed`"
    )


class AutoRoll(TargetedRoomCommand):
    """Ask the server to roll for an auto-played player whose turn is stuck."""

    type: Literal["games.command.bigger_dice.auto_roll"] = "games.command.bigger_dice.auto_roll"
    doc_answer: ClassVar[str] = (
        "as `roll`, with `auto` true, when the target is seated, on turn and played by the "
        "server; otherwise refused with `system.error` (`not_your_turn`, `game_error`, "
        "`invalid_player`, `not_in_room` or `game_not_in_progress`)"
    )


class EnableAutoPlay(RoomCommand):
    """Hand your own turns to the server until you rejoin."""

    type: Literal["games.command.bigger_dice.enable_auto_play"] = (
        "games.command.bigger_dice.enable_auto_play"
    )
    doc_answer: ClassVar[str] = (
        "`player_auto_enabled` (reason `voluntary`); "
        "the server rolls whenever it is the caller's turn"
    )


# --- server -> client ---------------------------------------------------------------------


class Rolled(ServerEvent):
    """`new_score` is the roller's score before this round's point; `auto` is true when the
    server rolled for the player (turn timer, auto-play, vote-kick)."""

    type: Literal["games.event.bigger_dice.rolled"] = "games.event.bigger_dice.rolled"
    doc_audience: ClassVar[str] = WHOLE_ROOM
    room_id: RoomId
    player_id: UserId
    player_name: Username
    roll: Die = Field(ge=1, le=6)
    new_score: int = Field(
        ge=0, description="the roller's score before this round's point (see round_result)"
    )
    is_first_roll: bool = Field(description="false when this is a tiebreaker re-roll")
    auto: bool = Field(default=False, description="the server rolled for the player")


class RoundResult(ServerEvent):
    """End of a round (or of one tiebreaker). `scores` already include this round's point.
    `by_tiebreaker_limit` marks a point awarded to the first tied player after the limit."""

    type: Literal["games.event.bigger_dice.round_result"] = "games.event.bigger_dice.round_result"
    doc_audience: ClassVar[str] = WHOLE_ROOM
    room_id: RoomId
    round_number: int = Field(ge=1)
    rolls: list[tuple[UserId, Die]] = Field(description="[player id, roll] in roll order")
    winner_id: UserId | None
    is_tie: bool
    is_tiebreaker: bool
    tiebreaker_players: list[UserId] = Field(default_factory=list)
    scores: list[tuple[UserId, int]] = Field(description="[player id, score] in seat order")
    by_tiebreaker_limit: bool = False


class TiebreakerStarted(ServerEvent):
    type: Literal["games.event.bigger_dice.tiebreaker_started"] = (
        "games.event.bigger_dice.tiebreaker_started"
    )
    doc_audience: ClassVar[str] = WHOLE_ROOM
    room_id: RoomId
    tied_players: list[UserId]
    tied_roll: Die = Field(description="the highest roll, which the tied players share")


class RoundRoll(WireModel):
    user_id: UserId
    username: Username
    roll: Die


class RoundHistoryItem(WireModel):
    round_number: int = Field(ge=1)
    rolls: list[RoundRoll]
    winner_id: UserId | None
    winner_name: Username | None
    is_tiebreaker: bool


class GameStateEvent(ServerEvent):
    """The game's state for a (re)joining player or spectator, with round history."""

    type: Literal["games.event.bigger_dice.state"] = "games.event.bigger_dice.state"
    doc_audience: ClassVar[str] = "the rejoining player or joining spectator - `seq` null"
    room_id: RoomId
    round_number: int = Field(ge=1)
    current_rolls: list[tuple[UserId, Die]] = Field(
        description="[player id, roll] of this round so far, in roll order"
    )
    pending_rollers: list[UserId] = Field(description="who still rolls this round, in order")
    is_tiebreaker: bool
    scores: list[tuple[UserId, int]] = Field(description="[player id, score] in seat order")
    current_turn: UserId | None
    turn_deadline: datetime | None = Field(
        default=None, description="when the server rolls for `current_turn`"
    )
    round_history: list[RoundHistoryItem] = Field(default_factory=list)


class FinalScore(WireModel):
    user_id: UserId
    username: Username
    score: int = Field(ge=0)


class GameOver(ServerEvent):
    """`final_scores` lists every player in seat order."""

    type: Literal["games.event.bigger_dice.game_over"] = "games.event.bigger_dice.game_over"
    doc_audience: ClassVar[str] = WHOLE_ROOM
    room_id: RoomId
    winner: UserId
    winner_name: Username
    final_scores: list[FinalScore]


GAME = GameSpec(
    name=GAME_NAME,
    title="Bigger Dice",
    commands=(Roll, AutoRoll, EnableAutoPlay),
    events=(Rolled, RoundResult, TiebreakerStarted, GameStateEvent, GameOver),
    min_players=2,
    max_players=10,
)
