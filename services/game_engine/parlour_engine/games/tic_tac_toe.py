"""Tic-tac-toe rules.

Two players, at most `proto.ROUNDS` (9) rounds; a round is won by three marks in a row,
column or diagonal, and is drawn when the board fills without one. The first player to
`proto.WINNING_ROUNDS` (5) round wins takes the game at once; after the last round the player
with more round wins wins, and equal round wins make the game a draw (`winner_id` None,
`game_over.winner` null). A player's round wins are their `Member.score`.

Seat 0 starts round 1; the player who did not start a round starts the next one. The starter
plays X.

The move timer is the room machinery's turn timer (`ctx.set_turn`), set to this game's own
`TicTacToeConfig.move_timeout_seconds` (60 s; the engine may cap it, see
`RulesConfig.turn_timeout_for`): a player who does not move before the deadline forfeits the
round to the other player (`round_result.by_timeout`).
Forfeiting, not a random move, so a player who walks away loses rounds instead of having the
server play for them. The server does play, a random free cell drawn with the injected rng,
for a player whose turns were handed to it (vote-kicked after a disconnect).

A player banned mid-game loses their seat and the other player wins the game. A player who
stays disconnected `TicTacToeConfig.absence_forfeit_seconds` (10 minutes) forfeits the game:
the other player wins (`game_over`, no reason field: the room saw `player_disconnected` for
the loser and no `player_rejoined` since).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from parlour_engine.rules.context import Ctx, Rejected, seated_unbanned
from parlour_engine.rules.plugins import GameRules
from parlour_engine.rules.state import GameState, RoomState
from parlour_protocol.v1 import ErrorCode, ServerEvent
from parlour_protocol.v1.base import ClientCommand
from parlour_protocol.v1.games import tic_tac_toe as proto
from parlour_protocol.v1.registry import type_tag
from parlour_protocol.v1.rooms import RoomStatus

Mark = Literal["X", "O"]
Cell = Literal["X", "O"] | None

LINES: tuple[tuple[int, int, int], ...] = (
    (0, 1, 2),
    (3, 4, 5),
    (6, 7, 8),
    (0, 3, 6),
    (1, 4, 7),
    (2, 5, 8),
    (0, 4, 8),
    (2, 4, 6),
)
"""Every winning line: rows, columns, diagonals."""

AUTO_MOVE_GUARD = 2 * proto.ROUNDS * 9
"""Most server moves one command may chain; more than a whole game's moves, so it only stops
a loop that would otherwise never end."""

_EMPTY: tuple[Cell, ...] = (None,) * 9


class BoardState(GameState):
    """The round being played: its number, who started it (and plays X), and the board.
    Bounds: 9 cells, `round` at most `proto.ROUNDS`."""

    round: int = 1
    starter: str = ""
    board: tuple[Cell, ...] = _EMPTY


def _board(state: RoomState) -> BoardState:
    game = state.game
    if isinstance(game, BoardState):
        return game
    # a lost or foreign game state restarts the round with seat 0 starting
    return BoardState(starter=state.players[0].user_id if state.players else "")


def _other(st: RoomState, uid: str) -> str | None:
    return next((m.user_id for m in st.players if m.user_id != uid), None)


def _mark_of(game: BoardState, uid: str) -> Mark:
    return "X" if uid == game.starter else "O"


def _winning_line(board: tuple[Cell, ...]) -> tuple[int, int, int] | None:
    for line in LINES:
        a, b, c = line
        if board[a] is not None and board[a] == board[b] == board[c]:
            return line
    return None


@dataclass(frozen=True)
class TicTacToeConfig:
    """Tic-tac-toe's own settings, held by its plug-in (`TicTacToeRules(config)`)."""

    move_timeout_seconds: int = 60
    """The move timer: a move not made within this forfeits the round."""
    absence_forfeit_seconds: int | None = 600
    """A player disconnected this long (one disconnect, not voted out) forfeits the game;
    None: never."""


class TicTacToeRules:
    """The tic-tac-toe plug-in; `config` holds the game's settings."""

    name = proto.GAME_NAME
    state_model = BoardState
    command_types = frozenset({type_tag(proto.Move)})

    def __init__(self, config: TicTacToeConfig | None = None) -> None:
        self.config = config or TicTacToeConfig()

    # optional members of the `GameRules` contract, read by the room machinery
    @property
    def turn_timeout_seconds(self) -> int:
        return self.config.move_timeout_seconds

    @property
    def absence_forfeit_seconds(self) -> int | None:
        return self.config.absence_forfeit_seconds

    def on_forfeit(self, ctx: Ctx, user_id: str) -> None:
        """`user_id` stayed away too long: the other player wins the game."""
        _game_over(ctx, _board(ctx.state), _other(ctx.state, user_id))

    def start(self, ctx: Ctx) -> None:
        st = ctx.state
        starter = st.players[0].user_id
        st.game = BoardState(starter=starter)
        ctx.set_turn(starter)
        snapshot = self.snapshot_for(st, starter)
        assert snapshot is not None
        ctx.room(snapshot)
        _auto_chain(ctx)

    def handle(self, ctx: Ctx, command: ClientCommand) -> None:
        st = ctx.state
        if st.status is not RoomStatus.IN_PROGRESS:
            raise Rejected(ErrorCode.GAME_NOT_IN_PROGRESS)
        if not isinstance(command, proto.Move):
            raise Rejected(ErrorCode.INVALID_MESSAGE, "not a tic_tac_toe command")
        if not seated_unbanned(st, ctx.actor_id):
            raise Rejected(ErrorCode.NOT_A_PLAYER)
        if st.current_turn != ctx.actor_id:
            raise Rejected(ErrorCode.NOT_YOUR_TURN)
        if _board(st).board[command.position] is not None:
            raise Rejected(ErrorCode.GAME_ERROR, "That cell is taken.")
        _move(ctx, ctx.actor_id, command.position)
        _auto_chain(ctx)

    def on_turn_timeout(self, ctx: Ctx) -> None:
        st = ctx.state
        assert st.current_turn is not None
        _end_round(ctx, _board(st), _other(st, st.current_turn), None, by_timeout=True)
        _auto_chain(ctx)

    def on_auto_play(self, ctx: Ctx) -> None:
        _auto_chain(ctx)

    def on_player_removed(self, ctx: Ctx, user_id: str) -> None:
        st = ctx.state
        if len(st.players) < 2:
            # a two-player game: the one left wins (no one left: nobody wins)
            winner = st.players[0].user_id if st.players else None
            _game_over(ctx, _board(st), winner)
            return
        _auto_chain(ctx)  # unreachable with two seats; kept for the contract's sake

    def snapshot_for(self, state: RoomState, user_id: str) -> ServerEvent | None:
        if state.game is None:
            return None
        game = _board(state)
        return proto.TicTacToeState(
            room_id=state.room_id,
            board=list(game.board),
            marks={m.user_id: _mark_of(game, m.user_id) for m in state.players},
            round=game.round,
            round_wins={m.user_id: m.score for m in state.players},
            current_turn=state.current_turn,
            turn_deadline=state.turn_deadline,
        )


def _auto_chain(ctx: Ctx) -> None:
    """Move for players the server plays for, as long as it is their turn (bounded)."""
    st = ctx.state
    for _ in range(AUTO_MOVE_GUARD):
        turn = st.current_turn
        if st.status is not RoomStatus.IN_PROGRESS or turn is None:
            return
        if st.auto_player(turn) is None:
            return
        free = [i for i, cell in enumerate(_board(st).board) if cell is None]
        _move(ctx, turn, free[ctx.rng.randint(0, len(free) - 1)])


def _move(ctx: Ctx, uid: str, position: int) -> None:
    st = ctx.state
    game = _board(st)
    mark = _mark_of(game, uid)
    board = tuple(mark if i == position else cell for i, cell in enumerate(game.board))
    game = game.model_copy(update={"board": board})
    st.game = game
    ctx.room(
        proto.Moved(
            room_id=st.room_id, player_id=uid, position=position, mark=mark, board=list(board)
        )
    )
    line = _winning_line(board)
    if line is not None:
        _end_round(ctx, game, uid, line, by_timeout=False)
    elif all(cell is not None for cell in board):
        _end_round(ctx, game, None, None, by_timeout=False)
    else:
        other = _other(st, uid)
        assert other is not None
        ctx.set_turn(other)


def _end_round(
    ctx: Ctx,
    game: BoardState,
    winner: str | None,
    line: tuple[int, int, int] | None,
    *,
    by_timeout: bool,
) -> None:
    st = ctx.state
    if winner is not None:
        st.players = tuple(
            m.model_copy(update={"score": m.score + 1}) if m.user_id == winner else m
            for m in st.players
        )
    ctx.room(
        proto.RoundResult(
            room_id=st.room_id,
            round=game.round,
            winner_id=winner,
            line=list(line) if line is not None else None,
            by_timeout=by_timeout,
            board=list(game.board),
            round_wins={m.user_id: m.score for m in st.players},
        )
    )
    best = max(m.score for m in st.players)
    if best >= proto.WINNING_ROUNDS or game.round >= proto.ROUNDS:
        leaders = [m.user_id for m in st.players if m.score == best]
        _game_over(ctx, game, leaders[0] if len(leaders) == 1 else None)
        return
    starter = _other(st, game.starter) or game.starter
    st.game = BoardState(round=game.round + 1, starter=starter)
    ctx.set_turn(starter)


def _game_over(ctx: Ctx, game: BoardState, winner: str | None) -> None:
    st = ctx.state
    st.game = game
    st.status = RoomStatus.FINISHED
    st.winner_id = winner
    st.finished_at = ctx.now
    ctx.clear_turn()
    champion = st.player(winner) if winner is not None else None
    ctx.room(
        proto.GameOver(
            room_id=st.room_id,
            winner=winner,
            winner_name=champion.username if champion is not None else None,
            final_scores=[
                proto.FinalScore(user_id=m.user_id, username=m.username, score=m.score)
                for m in st.players
            ],
        )
    )


RULES: GameRules = TicTacToeRules()  # typed, so mypy checks the plugin against GameRules
