"""The engine's pure rules core: `apply(state, command, rng, now, config) -> Outcome`.

The worker reads a room's state, calls `apply`, stores `Outcome.state` when `changed`, and
publishes `Outcome.emits` / arms `Outcome.timers` / stores `Outcome.chat` / serves
`Outcome.chat_read`. Nothing here does I/O or reads a clock (a test walks this package's
imports): time and randomness are passed in, so a recomputation with the same inputs gives
the same result (`replay` is the oracle).

Modules: `dispatch` (`apply` and the handler table), `rooms` (create, join, rejoin, leave),
`lobby` (selection, moderation, ready, start), `absence` (disconnects, votes, auto-play,
idle and finished rooms), `chat` (room chat, history, mutes, direct messages), `queries`
(room list, presence), `oracle` (`replay`, `comparable`); `context` is the handlers'
working context, `state` / `types` / `views` the data, `plugins` the game plug-in contract
(`GameRules`) and the `GameRegistry` the wiring passes in as `RulesConfig.games`.
"""

from __future__ import annotations

from parlour_engine.rules.chat import direct_message
from parlour_engine.rules.dispatch import apply
from parlour_engine.rules.oracle import comparable, replay
from parlour_engine.rules.plugins import GameRegistry, GameRules
from parlour_engine.rules.queries import list_rooms, presence_changed
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

__all__ = [
    "ChatAppend",
    "ChatRead",
    "Emit",
    "GameRegistry",
    "GameRules",
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
