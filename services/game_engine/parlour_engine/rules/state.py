"""The authoritative state of one room, stored by the worker as one JSON string.

Copy-on-write discipline: every nested model is frozen and every collection is a tuple (or a
dict that is replaced, never mutated), so `apply` can work on a shallow `model_copy()` of the
input and a rejected command can hand back the untouched input object.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationInfo,
    model_validator,
)

from parlour_protocol.v1.rooms import RoomStatus

if TYPE_CHECKING:
    from parlour_engine.rules.plugins import GameRegistry

GAMES_CONTEXT = "games"
"""The validation-context key of the `GameRegistry` that types a stored game state."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Member(_Frozen):
    """A lobby member or a player (same shape; `score` matters once the game runs)."""

    user_id: str
    username: str
    score: int = 0
    is_ready: bool = False
    joined_at: datetime


class Spectator(_Frozen):
    user_id: str
    username: str
    joined_at: datetime


class Banned(_Frozen):
    user_id: str
    username: str


class AutoPlayer(_Frozen):
    """A player whose turns the server plays. `vote_kick` ones are also banned and never
    regain control; `voluntary` ones regain it when they rejoin."""

    user_id: str
    reason: Literal["voluntary", "vote_kick"]


class Disconnect(_Frozen):
    """A player's connection dropped during the game. `number` makes the grace timer's token
    (and the forfeit timer's) unique per disconnect; `votes` are the user ids that voted to
    hand their turns over (each a player, each once: at most `max_players - 1`).
    `forfeit_at`: when the player forfeits if this disconnect still stands (None: their game
    has no absence forfeit)."""

    user_id: str
    username: str
    number: int
    timeout_at: datetime
    votes: tuple[str, ...] = ()
    forfeit_at: datetime | None = None


class GameState(_Frozen):
    """Base of every game's own state model (a plug-in's `GameRules.state_model`)."""


class RoomState(BaseModel):
    """Everything the engine knows about a room. `version` counts accepted changing
    commands (optimistic concurrency in the store); `seq` is the last room-wide event seq.

    Every collection is bounded, so no client can grow a room (or an event carrying it)
    without limit:

    - `players`: at most `max_players` (protocol MAX_PLAYERS).
    - `lobby`: at most `RulesConfig.max_lobby` joiners (+ the host coming back).
    - `selected`: user ids of lobby members, at most `max_players`.
    - `spectators`: at most `max_spectators`.
    - `banned`: at most MAX_BANNED_PER_ROOM (`limit_reached` beyond).
    - `auto_players`, `disconnects`: players only, one record each.
    - `absent`: lobby members of a waiting room, one entry each.
    - `password_failures`: users with a wrong password inside `password_window_seconds`, at most
      `RulesConfig.password_failure_users` of them, each at most `password_attempts` times.
    - `mutes`: keyed by current members only (a leaver's mutes go with them), each at most
      MAX_MUTED_PER_USER targets (`limit_reached` beyond).
    - the game's own state: the plugin's docstring states its bounds.
    """

    model_config = ConfigDict(extra="forbid")

    room_id: str
    room_name: str
    game_type: str
    status: RoomStatus = RoomStatus.WAITING
    host_id: str
    host_name: str
    password_hash: str | None = None
    max_players: int
    allow_spectators: bool = True
    max_spectators: int = 10
    lobby_chat_enabled: bool = True
    admin_spectator_id: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    winner_id: str | None = None

    players: tuple[Member, ...] = ()
    lobby: tuple[Member, ...] = ()
    selected: tuple[str, ...] = ()
    spectators: tuple[Spectator, ...] = ()
    banned: tuple[Banned, ...] = ()
    auto_players: tuple[AutoPlayer, ...] = ()
    disconnects: tuple[Disconnect, ...] = ()
    disconnect_counter: int = 0
    absent: tuple[str, ...] = ()
    """Lobby members of a waiting room whose last socket closed and who have not come back
    (rejoined or acted) since. When it holds the whole lobby the room expires after
    `RulesConfig.idle_room_seconds`."""
    idle_number: int = 0
    """Counts the times everyone who keeps the room went (the whole lobby of a waiting room,
    every player of a running game; see `absence.all_absent`): the expiry timer's token, so a
    timer armed before someone came back never removes the room."""
    password_failures: dict[str, tuple[datetime, ...]] = Field(default_factory=dict)
    mutes: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    current_turn: str | None = None
    turn_number: int = 0
    turn_deadline: datetime | None = None
    game: SerializeAsAny[GameState] | None = None

    version: int = 0
    seq: int = 0

    @classmethod
    def load(cls, raw: str | bytes, games: GameRegistry) -> RoomState:
        """A stored room (its JSON string), with its game's state typed by `games`."""
        return cls.model_validate_json(raw, context={GAMES_CONTEXT: games})

    @model_validator(mode="before")
    @classmethod
    def _typed_game_state(cls, data: Any, info: ValidationInfo) -> Any:
        # the stored JSON holds the game's state as a plain object: give it its game's model,
        # found in the registry the caller passes (`load`), so the rules import no game
        if isinstance(data, dict) and isinstance(data.get("game"), dict):
            games = (info.context or {}).get(GAMES_CONTEXT)
            if games is None:
                raise ValueError("a room with a game state is loaded with RoomState.load")
            rules = games.get(str(data.get("game_type")))
            if rules is not None:
                data = {**data, "game": rules.state_model.model_validate(data["game"])}
        return data

    # --- membership queries (pure, cheap) ---------------------------------------------------

    def player(self, user_id: str) -> Member | None:
        return next((m for m in self.players if m.user_id == user_id), None)

    def lobby_member(self, user_id: str) -> Member | None:
        return next((m for m in self.lobby if m.user_id == user_id), None)

    def spectator(self, user_id: str) -> Spectator | None:
        return next((s for s in self.spectators if s.user_id == user_id), None)

    def is_banned(self, user_id: str) -> bool:
        return any(b.user_id == user_id for b in self.banned)

    def auto_player(self, user_id: str) -> AutoPlayer | None:
        return next((a for a in self.auto_players if a.user_id == user_id), None)

    def disconnect(self, user_id: str) -> Disconnect | None:
        return next((d for d in self.disconnects if d.user_id == user_id), None)

    def member_ids(self) -> list[str]:
        """Everyone who receives room-wide events: players, lobby, spectators (in that order,
        without duplicates)."""
        seen: dict[str, None] = {}
        for m in self.players:
            seen[m.user_id] = None
        for m in self.lobby:
            seen[m.user_id] = None
        for s in self.spectators:
            seen[s.user_id] = None
        return list(seen)

    def is_occupied(self) -> bool:
        """A room lives while someone is in its players or lobby (spectators alone do not
        keep it)."""
        return bool(self.players or self.lobby)

    def is_member(self, user_id: str) -> bool:
        return (
            self.player(user_id) is not None
            or self.lobby_member(user_id) is not None
            or self.spectator(user_id) is not None
        )
