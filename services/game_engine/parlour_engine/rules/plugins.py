"""The game plug-in contract: what a game adds to the engine (`GameRules`), and the
`GameRegistry` the rules find a room's game in.

The generic room/lobby logic in this package calls a plug-in at these points only: the game
starts, a game command arrives, a turn timer fires, a player's turns were handed to the
server, a disconnected player stayed away too long, and a (re)joining user needs the game's
state. The rules never import a game: the
engine's wiring discovers the plug-ins (`parlour_engine.games.discover`), builds one
`GameRegistry` at start-up and passes it in as `RulesConfig.games`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from parlour_engine.rules.context import Ctx
    from parlour_engine.rules.state import GameState, RoomState
    from parlour_protocol.v1 import ServerEvent
    from parlour_protocol.v1.base import ClientCommand


class GameRules(Protocol):
    """What a game adds to the engine. Methods raise `rules.context.Rejected` to refuse.

    Optional members: a plug-in may define these; the rules read them with `getattr` and a
    default (`game_turn_timeout`, `game_absence_forfeit`), so a plug-in without them keeps the
    room machinery's behaviour.

    - `turn_timeout_seconds: int | None`: the game's own turn (move) timer. None or absent:
      the engine's `RulesConfig.turn_timeout_seconds`. Either is capped by
      `RulesConfig.turn_timeout_cap_seconds` when the engine sets one (see
      `RulesConfig.turn_timeout_for`).
    - `absence_forfeit_seconds: int | None`: a seated player of a running game who stays
      disconnected this long (the same disconnect, not voted out, no rejoin or command of
      theirs in between) forfeits: the rules call `on_forfeit`. None or absent: never.
    - `on_forfeit(ctx, user_id) -> None`: required when `absence_forfeit_seconds` is set.
      `user_id` still holds their seat and the game is running: end it (the other players
      win) or go on without them.
    """

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


def game_turn_timeout(game: GameRules) -> int | None:
    """The game's own turn timer in seconds (optional member `turn_timeout_seconds`), or None
    when it keeps the engine's."""
    seconds = getattr(game, "turn_timeout_seconds", None)
    return None if seconds is None else int(seconds)


def game_absence_forfeit(game: GameRules) -> int | None:
    """After how many seconds of one disconnect a player forfeits (optional member
    `absence_forfeit_seconds`), or None: never."""
    seconds = getattr(game, "absence_forfeit_seconds", None)
    return None if seconds is None else int(seconds)


def check_optional_members(game: object, source: str) -> None:
    """Refuse, at start-up, a plug-in whose optional members do not fit together: a
    positive timer, and an `on_forfeit` wherever a forfeit time is set."""
    for member in ("turn_timeout_seconds", "absence_forfeit_seconds"):
        seconds = getattr(game, member, None)
        if seconds is not None and (not isinstance(seconds, int) or seconds < 1):
            raise ValueError(f"{source}.{member} must be a whole number of seconds >= 1 or None")
    if getattr(game, "absence_forfeit_seconds", None) is not None and not callable(
        getattr(game, "on_forfeit", None)
    ):
        raise TypeError(f"{source} sets absence_forfeit_seconds but has no on_forfeit(ctx, uid)")


@dataclass(frozen=True)
class GameRegistry:
    """The games the engine plays, by protocol game name: immutable once built.

    `GameRegistry()` is empty (every `create_room` is refused with `unknown_game`);
    the engine builds its registry with `parlour_engine.games.discover()`.
    """

    _games: Mapping[str, GameRules] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, games: Iterable[GameRules]) -> GameRegistry:
        """A registry of `games`; two plug-ins with one name are a configuration error."""
        found: dict[str, GameRules] = {}
        for game in games:
            if game.name in found:
                raise ValueError(f"game {game.name!r} is registered twice")
            found[game.name] = game
        return cls(MappingProxyType(found))

    def get(self, name: str) -> GameRules | None:
        """The plug-in for game `name`, or None when the engine has no rules for it."""
        return self._games.get(name)

    def replacing(self, game: GameRules) -> GameRegistry:
        """A copy with `game` in place of the plug-in of the same name (e.g. one built with
        another game config)."""
        return GameRegistry(MappingProxyType({**self._games, game.name: game}))

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._games)

    def __contains__(self, name: object) -> bool:
        return name in self._games

    def __iter__(self) -> Iterator[GameRules]:
        return iter(self._games.values())

    def __len__(self) -> int:
        return len(self._games)
