"""Value types of the rules core's interface: configuration, randomness, and what one
command produces (`Outcome`). Pure data: no I/O, no clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from parlour_engine.rules.plugins import GameRegistry, game_absence_forfeit, game_turn_timeout
from parlour_protocol.v1 import Audience, ErrorCode, ServerEvent
from parlour_protocol.v1.chat import ChatChannel, ChatMessageItem
from parlour_protocol.v1.internal import TimerKind

if TYPE_CHECKING:
    from parlour_engine.rules.state import RoomState


class Rng(Protocol):
    """The only source of randomness the rules use: `secrets.SystemRandom()` in production,
    `random.Random(seed)` in tests (both satisfy it)."""

    def randint(self, a: int, b: int) -> int: ...

    def randbytes(self, n: int) -> bytes: ...


@dataclass(frozen=True)
class RulesConfig:
    """Tunables of the rules; the engine's wiring builds one from its Settings at start-up.

    Holds the room machinery's settings only: a game's own settings live in its plug-in
    (e.g. `parlour_engine.games.bigger_dice.DiceConfig`), reached through `games`."""

    games: GameRegistry = field(default_factory=GameRegistry)
    """The games this engine plays. Empty by default: the wiring passes
    `parlour_engine.games.discover()` (the rules never import a game)."""
    turn_timeout_seconds: int = 30
    """The turn timer of a game that sets none of its own (`GameRules` optional member
    `turn_timeout_seconds`): what happens when it runs out is the game's (`on_turn_timeout`;
    Bigger Dice rolls for the player). Use `turn_timeout_for`, not this field."""
    turn_timeout_cap_seconds: int | None = None
    """When set, no game's turn timer is longer than this, its own included. The wiring sets
    it from `ENGINE_TURN_TIMEOUT_SECONDS` when that is set explicitly, so one engine setting
    shortens every game's timer (tests, load runs)."""
    disconnect_grace_seconds: int = 30
    """How long a disconnected player has before the others may vote them out."""
    max_spectators: int = 10
    max_lobby: int = 100
    """Most users one waiting room's lobby holds (`room_full` beyond); bounds the state a
    single room can grow to."""
    password_attempts: int = 5
    """Wrong passwords one user may try per room within `password_window_seconds`."""
    password_window_seconds: int = 300
    password_failure_users: int = 100
    """Most users with a recent wrong password one room remembers. While it is full, users
    without a record get `too_many_attempts` before their password is checked: refusing
    them (for at most `password_window_seconds`) keeps the number of guesses per window bounded
    by `password_failure_users * password_attempts`, which forgetting records would not."""
    chat_keep: int = 200
    """Messages kept per room channel (the worker trims the store to this)."""
    idle_room_seconds: int = 600
    """A waiting room whose lobby members are all gone (their last socket closed, and none
    came back or acted since) is removed this long after the last one went
    (`room_removed` reason `abandoned`)."""
    finished_room_seconds: int = 300
    """A finished room is removed this long after its game ended (`room_removed` reason
    `game_finished`), whether or not its players leave."""
    scrypt_n: int = 2**14
    """scrypt cost for room passwords. Stored with each hash, so lowering it (tests) never
    breaks verification of existing rooms."""

    def turn_timeout_for(self, game_type: str) -> int:
        """Seconds a turn of `game_type` lasts: the game's own timer, else
        `turn_timeout_seconds`; at most `turn_timeout_cap_seconds` when that is set."""
        game = self.games.get(game_type)
        own = game_turn_timeout(game) if game is not None else None
        seconds = own if own is not None else self.turn_timeout_seconds
        if self.turn_timeout_cap_seconds is not None:
            seconds = min(seconds, self.turn_timeout_cap_seconds)
        return seconds

    def absence_forfeit_for(self, game_type: str) -> int | None:
        """Seconds of one disconnect after which a player of `game_type` forfeits, or None
        (never; also for a game the engine does not know)."""
        game = self.games.get(game_type)
        return game_absence_forfeit(game) if game is not None else None


@dataclass(frozen=True)
class Emit:
    """One event to publish. `audience.user_ids` is already resolved (except for the
    `connection` and `broadcast` kinds). Events to the whole room (kind ROOM) carry their
    `seq` in `message.seq`: consecutive, starting at the input state's `seq + 1`."""

    audience: Audience
    message: ServerEvent

    @property
    def seq(self) -> int | None:
        return self.message.seq


@dataclass(frozen=True)
class TimerRequest:
    """Arm a deadline: at `due` the timer loop publishes `games.command.timer_fired` with this
    kind and token for the room. Timers are never cancelled: a fired timer whose token no
    longer matches the state is ignored by the rules."""

    kind: TimerKind
    token: str
    due: datetime


@dataclass(frozen=True)
class ChatAppend:
    """Store one chat message in the room's channel (capped to `RulesConfig.chat_keep`)."""

    channel: ChatChannel
    item: ChatMessageItem


@dataclass(frozen=True)
class ChatRead:
    """Read the newest `limit` messages of `channel` (oldest first), drop those whose
    `user_id` is in `hidden_user_ids` (muted by the reader), and send
    `games.event.chat_history` {room_id, channel, messages, seq null} to `audience`."""

    room_id: str
    channel: ChatChannel
    limit: int
    hidden_user_ids: frozenset[str]
    audience: Audience


@dataclass(frozen=True)
class Outcome:
    """What one command did.

    - `state`: the new state (`None` = the room is removed; delete it). On rejection this is
      the very same object that was passed in.
    - `changed`: the state must be stored (its `version` was bumped). False for a rejection
      and for read-only commands (e.g. a rejoin of a waiting room, chat history), whose
      `emits` must still be published. One rejection changes state: a wrong password records
      the failed attempt (for `too_many_attempts`), so it has `rejected=WRONG_PASSWORD` and
      `changed=True`.
    - `rejected`: the error code when the command did not take effect; `emits` then holds the
      `system.error` to the acting connection (nothing for internal commands).
    """

    state: RoomState | None
    emits: tuple[Emit, ...] = ()
    timers: tuple[TimerRequest, ...] = ()
    chat: tuple[ChatAppend, ...] = ()
    chat_read: ChatRead | None = None
    rejected: ErrorCode | None = None
    changed: bool = False
    notes: tuple[str, ...] = field(default=())
    """Short machine-readable facts for the worker's log (never chat text or passwords).
    With `rejected=INTERNAL_ERROR` it says which fault in the rules refused the command."""
