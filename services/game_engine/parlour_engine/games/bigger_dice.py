"""Bigger Dice rules (seed facts §4, with its quirks fixed).

A round: every active roller rolls once in seat order; the highest roll scores a point
(added before `round_result`). Ties are re-rolled by the tied players only, in roll order,
without advancing the round number; after `DiceConfig.max_tiebreakers` tiebreakers the first
tied player gets the point in a reported `round_result` (`by_tiebreaker_limit`) and the win is
still checked. First to `DiceConfig.winning_score` wins. The server rolls with the injected
rng.

A player banned mid-game loses their seat: their rolls of the current round are dropped and
the round goes on without them; with one player left, that player wins.

Bounds: `active` and `rolls` hold at most the seated players; `history` keeps the newest
HISTORY_KEEP rounds (tiebreakers included), so the game state event stays small however
long a game runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from parlour_engine.rules.absence import enable_auto_play
from parlour_engine.rules.context import Ctx, Rejected, seated_unbanned
from parlour_engine.rules.plugins import GameRules
from parlour_engine.rules.state import GameState, Member, RoomState
from parlour_protocol.v1 import ErrorCode, ServerEvent
from parlour_protocol.v1.base import ClientCommand
from parlour_protocol.v1.games import bigger_dice as proto
from parlour_protocol.v1.registry import type_tag
from parlour_protocol.v1.rooms import RoomStatus

HISTORY_KEEP = 20
"""Rounds (tiebreakers included) the game state keeps for `round_history`."""


@dataclass(frozen=True)
class DiceConfig:
    """Bigger Dice's own settings, held by its plug-in (`BiggerDiceRules(config)`); the room
    machinery's settings are `RulesConfig`. None is an environment setting."""

    winning_score: int = proto.WINNING_SCORE
    """The first player with this many round wins wins the game."""
    max_tiebreakers: int = 100
    """After this many tiebreakers in one round the first tied player gets the point."""
    auto_roll_guard: int = 100
    """Most server rolls one command may chain (auto players in a row); after that the turn
    timer takes over, so the game never stalls and never loops."""


class HistoryRound(GameState):
    round_number: int
    rolls: tuple[tuple[str, int], ...]
    winner_id: str | None
    is_tiebreaker: bool
    by_tiebreaker_limit: bool = False


class DiceState(GameState):
    """Round state: `active` rollers of the current round or tiebreaker (in order), the
    `rolls` made so far in it, and the finished rounds. Bounds: `active` and `rolls` hold
    seated players only; `history` the newest HISTORY_KEEP rounds."""

    round_number: int = 1
    active: tuple[str, ...] = ()
    rolls: tuple[tuple[str, int], ...] = ()
    is_tiebreaker: bool = False
    tiebreaker_iteration: int = 0
    history: tuple[HistoryRound, ...] = ()


def _dice(state: RoomState) -> DiceState:
    game = state.game
    if isinstance(game, DiceState):
        return game
    # a lost or foreign game state is rebuilt with every player active (as the original)
    return DiceState(active=tuple(m.user_id for m in state.players))


class BiggerDiceRules:
    """The Bigger Dice plug-in; `config` holds the game's settings."""

    name = proto.GAME_NAME
    state_model = DiceState
    command_types = frozenset(
        type_tag(c) for c in (proto.Roll, proto.AutoRoll, proto.EnableAutoPlay)
    )

    def __init__(self, config: DiceConfig | None = None) -> None:
        self.config = config or DiceConfig()

    def start(self, ctx: Ctx) -> None:
        st = ctx.state
        st.game = DiceState(active=tuple(m.user_id for m in st.players))
        ctx.set_turn(st.players[0].user_id)
        _auto_chain(ctx, self.config)

    def handle(self, ctx: Ctx, command: ClientCommand) -> None:
        st = ctx.state
        if isinstance(command, proto.EnableAutoPlay):
            enable_auto_play(ctx)
            _auto_chain(ctx, self.config)
            return
        if st.status is not RoomStatus.IN_PROGRESS:
            raise Rejected(ErrorCode.GAME_NOT_IN_PROGRESS)
        if isinstance(command, proto.Roll):
            if not seated_unbanned(st, ctx.actor_id):
                raise Rejected(ErrorCode.NOT_A_PLAYER)
            if st.current_turn != ctx.actor_id:
                raise Rejected(ErrorCode.NOT_YOUR_TURN)
            _roll(ctx, self.config, ctx.actor_id, auto=False)
            _auto_chain(ctx, self.config)
        elif isinstance(command, proto.AutoRoll):
            target = command.target_user_id
            if not st.is_member(ctx.actor_id):
                raise Rejected(ErrorCode.NOT_IN_ROOM)
            # only for a seated, unbanned player whose turns the server plays by their choice
            # (vote-kicked players are banned: the server's own chain plays for them)
            if not seated_unbanned(st, target):
                raise Rejected(ErrorCode.INVALID_PLAYER, "The target is not a player.")
            if st.current_turn != target:
                raise Rejected(ErrorCode.NOT_YOUR_TURN, "It is not the target's turn.")
            if st.auto_player(target) is None:
                raise Rejected(ErrorCode.GAME_ERROR, "The target is not played by the server.")
            _roll(ctx, self.config, target, auto=True)
            _auto_chain(ctx, self.config)
        else:
            raise Rejected(ErrorCode.INVALID_MESSAGE, "not a bigger_dice command")

    def on_turn_timeout(self, ctx: Ctx) -> None:
        assert ctx.state.current_turn is not None
        _roll(ctx, self.config, ctx.state.current_turn, auto=True)
        _auto_chain(ctx, self.config)

    def on_auto_play(self, ctx: Ctx) -> None:
        _auto_chain(ctx, self.config)

    def on_player_removed(self, ctx: Ctx, user_id: str) -> None:
        st = ctx.state
        dice = _dice(st)
        active = tuple(u for u in dice.active if u != user_id)
        rolls = tuple((u, r) for u, r in dice.rolls if u != user_id)
        dice = dice.model_copy(update={"active": active, "rolls": rolls})
        st.game = dice
        if len(st.players) < 2:
            if st.players:
                _game_over(ctx, dice, st.players[0])
            return
        if len(rolls) >= len(active):
            # they were the last to roll in this round: it ends with the rolls made
            _end_of_round(ctx, self.config, dice, rolls)
        elif st.current_turn == user_id:
            ctx.set_turn(active[len(rolls)])
        _auto_chain(ctx, self.config)

    def snapshot_for(self, state: RoomState, user_id: str) -> ServerEvent | None:
        if state.game is None:
            return None
        dice = _dice(state)
        names = {m.user_id: m.username for m in state.players}
        return proto.GameStateEvent(
            room_id=state.room_id,
            round_number=dice.round_number,
            current_rolls=list(dice.rolls),
            pending_rollers=list(dice.active[len(dice.rolls) :]),
            is_tiebreaker=dice.is_tiebreaker,
            scores=[(m.user_id, m.score) for m in state.players],
            current_turn=state.current_turn,
            turn_deadline=state.turn_deadline,
            round_history=[
                proto.RoundHistoryItem(
                    round_number=h.round_number,
                    rolls=[
                        proto.RoundRoll(user_id=uid, username=names.get(uid, uid), roll=roll)
                        for uid, roll in h.rolls
                    ],
                    winner_id=h.winner_id,
                    winner_name=names.get(h.winner_id, h.winner_id) if h.winner_id else None,
                    is_tiebreaker=h.is_tiebreaker,
                )
                for h in dice.history
            ],
        )


def _auto_chain(ctx: Ctx, config: DiceConfig) -> None:
    """Roll for auto-played players as long as it is their turn (bounded; the turn timer
    takes over after the guard)."""
    st = ctx.state
    for _ in range(config.auto_roll_guard):
        turn = st.current_turn
        if st.status is not RoomStatus.IN_PROGRESS or turn is None:
            return
        if st.auto_player(turn) is None:
            return
        _roll(ctx, config, turn, auto=True)


def _game_over(ctx: Ctx, dice: DiceState, champion: Member) -> None:
    st = ctx.state
    st.game = dice
    st.status = RoomStatus.FINISHED
    st.winner_id = champion.user_id
    st.finished_at = ctx.now
    ctx.clear_turn()
    ctx.room(
        proto.GameOver(
            room_id=st.room_id,
            winner=champion.user_id,
            winner_name=champion.username,
            final_scores=[
                proto.FinalScore(user_id=m.user_id, username=m.username, score=m.score)
                for m in st.players
            ],
        )
    )


def _roll(ctx: Ctx, config: DiceConfig, uid: str, *, auto: bool) -> None:
    st = ctx.state
    dice = _dice(st)
    player = st.player(uid)
    assert player is not None
    roll = ctx.rng.randint(1, 6)
    ctx.room(
        proto.Rolled(
            room_id=st.room_id,
            player_id=uid,
            player_name=player.username,
            roll=roll,
            new_score=player.score,
            is_first_roll=not dice.is_tiebreaker,
            auto=auto,
        )
    )
    rolls = (*dice.rolls, (uid, roll))
    if len(rolls) < len(dice.active):
        st.game = dice.model_copy(update={"rolls": rolls})
        ctx.set_turn(dice.active[len(rolls)])
        return
    _end_of_round(ctx, config, dice, rolls)


def _kept(history: tuple[HistoryRound, ...], latest: HistoryRound) -> tuple[HistoryRound, ...]:
    return (*history, latest)[-HISTORY_KEEP:]


def _scores(st: RoomState) -> list[tuple[str, int]]:
    return [(m.user_id, m.score) for m in st.players]


def _end_of_round(
    ctx: Ctx, config: DiceConfig, dice: DiceState, rolls: tuple[tuple[str, int], ...]
) -> None:
    st = ctx.state
    best = max(r for _, r in rolls)
    top = [u for u, r in rolls if r == best]
    by_limit = len(top) > 1 and dice.tiebreaker_iteration >= config.max_tiebreakers
    if len(top) > 1 and not by_limit:
        st.game = dice.model_copy(
            update={
                "active": tuple(top),
                "rolls": (),
                "is_tiebreaker": True,
                "tiebreaker_iteration": dice.tiebreaker_iteration + 1,
                "history": _kept(
                    dice.history,
                    HistoryRound(
                        round_number=dice.round_number,
                        rolls=rolls,
                        winner_id=None,
                        is_tiebreaker=dice.is_tiebreaker,
                    ),
                ),
            }
        )
        ctx.room(
            proto.RoundResult(
                room_id=st.room_id,
                round_number=dice.round_number,
                rolls=list(rolls),
                winner_id=None,
                is_tie=True,
                is_tiebreaker=dice.is_tiebreaker,
                tiebreaker_players=top,
                scores=_scores(st),
            )
        )
        ctx.room(proto.TiebreakerStarted(room_id=st.room_id, tied_players=top, tied_roll=best))
        ctx.set_turn(top[0])
        return
    winner = top[0]
    st.players = tuple(
        m.model_copy(update={"score": m.score + 1}) if m.user_id == winner else m
        for m in st.players
    )
    history = _kept(
        dice.history,
        HistoryRound(
            round_number=dice.round_number,
            rolls=rolls,
            winner_id=winner,
            is_tiebreaker=dice.is_tiebreaker,
            by_tiebreaker_limit=by_limit,
        ),
    )
    ctx.room(
        proto.RoundResult(
            room_id=st.room_id,
            round_number=dice.round_number,
            rolls=list(rolls),
            winner_id=winner,
            is_tie=False,
            is_tiebreaker=dice.is_tiebreaker,
            tiebreaker_players=top if by_limit else [],
            scores=_scores(st),
            by_tiebreaker_limit=by_limit,
        )
    )
    champion = st.player(winner)
    assert champion is not None
    if champion.score >= config.winning_score:
        _game_over(ctx, dice.model_copy(update={"rolls": rolls, "history": history}), champion)
        return
    st.game = DiceState(
        round_number=dice.round_number + 1,
        active=tuple(m.user_id for m in st.players),
        history=history,
    )
    ctx.set_turn(st.players[0].user_id)


RULES: GameRules = BiggerDiceRules()  # typed, so mypy checks the plugin against GameRules
