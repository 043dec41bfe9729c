"""Public interface of the engine's pure rules core.

The worker reads a room's state, calls `apply`, stores `Outcome.state` when `changed`, and
publishes `Outcome.emits` / arms `Outcome.timers` / stores `Outcome.chat` / serves
`Outcome.chat_read`. Nothing here does I/O or reads a clock: time and randomness are passed in,
so a recomputation with the same inputs gives the same result (`replay` is the oracle).

Which state to pass:

- `create_room`: `None` (room id = `command.room_id`, minted by the gateway; name uniqueness
  is the worker's index).
- `join_room` / `join_as_spectator` / `rejoin_room` by name: the state of the active room of
  that name and game (or `None` -> `room_not_found`); `rejoin_room` by id: that room's state.
- every other room command (protocol `ENGINE_COMMANDS` with `room_scoped`, incl. internal
  `player_disconnected` and `timer_fired`): the state of `command.room_id`, or `None`.

Non-room commands have their own pure functions: `list_rooms`, `direct_message`,
`presence_changed`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from parlour_engine.rules import _core
from parlour_engine.rules.state import RoomState
from parlour_engine.rules.types import (
    ChatAppend,
    ChatRead,
    Emit,
    Outcome,
    Rng,
    RulesConfig,
    TimerRequest,
)
from parlour_protocol.v1 import CommandEnvelope
from parlour_protocol.v1.rooms import RoomList

__all__ = [
    "ChatAppend",
    "ChatRead",
    "Emit",
    "Outcome",
    "Rng",
    "RoomState",
    "RulesConfig",
    "TimerRequest",
    "apply",
    "comparable",
    "direct_message",
    "list_rooms",
    "presence_changed",
    "replay",
]


def apply(
    state: RoomState | None,
    command: CommandEnvelope,
    rng: Rng,
    now: datetime,
    config: RulesConfig,
) -> Outcome:
    """Apply one command to one room. Never raises for bad input: a refused command gives
    `rejected=<ErrorCode>`, the input state object itself, and a `system.error` to the acting
    connection carrying the command's request_id. Room-wide emits carry consecutive seqs
    starting at `state.seq + 1`; errors and partial-audience events carry none."""
    return _core.apply(state, command, rng, now, config)


def replay(
    commands: Iterable[tuple[CommandEnvelope, datetime]] | Iterable[CommandEnvelope],
    rng: Rng | Callable[[CommandEnvelope], Rng],
    config: RulesConfig | None = None,
    state: RoomState | None = None,
) -> RoomState | None:
    """Fold `apply` over commands of ONE room, in the order the engine applied them: the
    oracle integration tests compare the store against.

    Items are `(command, now)` pairs, or bare envelopes (then `now` is each envelope's
    `timestamp`). `rng` is one generator for the whole fold, or a factory giving each
    command its own (e.g. `lambda c: random.Random(f"{seed}:{c.msg_id}")`, matching an engine
    that seeds per command). Rejected commands change nothing, as in the engine. Timestamps
    in the state (joined_at, deadlines) follow the `now` given here, so compare them only when
    the engine's clock is known; `comparable()` drops them."""
    return _core.replay(commands, rng, config or RulesConfig(), state)


def comparable(state: RoomState | None) -> dict[str, Any] | None:
    """The state as a JSON-like dict without wall-clock fields (timestamps, deadlines,
    password failure times): what an oracle comparison against a live engine can check."""
    return _core.comparable(state)


def list_rooms(
    states: Iterable[RoomState],
    user_id: str,
    game_type: str,
    now: datetime,
    *,
    cursor: str | None = None,
    next_cursor: str | None = None,
) -> RoomList:
    """One `games.event.room_list` page for `user_id` of the rooms the worker read from its
    index: waiting rooms of `game_type` for everyone, in-progress ones only for their members,
    never a room that banned the user; `cursor`/`next_cursor` are the worker's paging."""
    return _core.list_rooms(states, user_id, game_type, now, cursor=cursor, next_cursor=next_cursor)


def direct_message(command: CommandEnvelope, now: datetime) -> tuple[Emit, ...]:
    """`chat.command.send_message` -> `chat.event.message_received` to [recipient, sender]
    (USERS audience), or a `cannot_message_self` error to the sender's connection."""
    return _core.direct_message(command, now)


def presence_changed(states: Iterable[RoomState], command: CommandEnvelope) -> tuple[Emit, ...]:
    """`games.command.presence_changed` -> `presence.event.user_online/offline` to the other
    members of the user's rooms (`states`), one USERS emit, no seq."""
    return _core.presence_changed(states, command)
