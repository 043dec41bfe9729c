"""The game plug-in contract: what a game adds to the engine (`GameRules`).

The generic room/lobby logic in this package calls a plug-in at these points only: the game
starts, a game command arrives, a turn timer fires, a player's turns were handed to the
server, and a (re)joining user needs the game's state. Plug-ins live in
`parlour_engine.games` (one module per game, each defining `RULES`) and depend on this
contract, never the other way round.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from parlour_engine.rules.context import Ctx
    from parlour_engine.rules.state import GameState, RoomState
    from parlour_protocol.v1 import ServerEvent
    from parlour_protocol.v1.base import ClientCommand


class GameRules(Protocol):
    """What a game adds to the engine. Methods raise `rules.context.Rejected` to refuse."""

    # read-only members, so a plugin's plain class attributes (with narrower types) satisfy them
    @property
    def name(self) -> str:
        """The protocol game name (`parlour_protocol.v1.GAMES` key)."""

    @property
    def state_model(self) -> type[GameState]:
        """The game's frozen state model, kept in `RoomState.game`."""

    @property
    def command_types(self) -> frozenset[str]:
        """Wire `type`s of the game's commands."""

    def start(self, ctx: Ctx) -> None:
        """`ctx.state.players` is seated and the status is in_progress: initialise the game
        state and emit its opening events (e.g. the first `turn_changed`)."""

    def handle(self, ctx: Ctx, command: ClientCommand) -> None:
        """Apply one of the game's own commands."""

    def on_turn_timeout(self, ctx: Ctx) -> None:
        """The current turn's deadline passed: play for `ctx.state.current_turn`."""

    def on_auto_play(self, ctx: Ctx) -> None:
        """Someone's turns were just handed to the server: play if it is their turn."""

    def on_player_removed(self, ctx: Ctx, user_id: str) -> None:
        """`user_id` lost their seat mid-game (the host banned them): `ctx.state.players` no
        longer holds them. Go on without them, or end the game when too few are left."""

    def snapshot_for(self, state: RoomState, user_id: str) -> ServerEvent | None:
        """The game's state for a (re)joining player or spectator, or None."""


def game_rules(name: str) -> GameRules | None:
    """The plug-in for game `name`, or None when the engine has no rules for it.

    The one place the rules reach the plug-ins: today it asks the `parlour_engine.games`
    package scan; the second-game issue (13) has the engine's wiring build the registry once
    and pass it in, and this import goes.
    """
    from parlour_engine.games import game_rules as lookup

    return lookup(name)
