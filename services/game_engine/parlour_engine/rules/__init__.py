"""The engine's pure rules core: `apply(state, command, rng, now, config) -> Outcome`.

No I/O here (a test walks this package's imports): no Redis, Kafka, asyncio or clock.
"""

from __future__ import annotations

from parlour_engine.rules.api import (
    ChatAppend,
    ChatRead,
    Emit,
    Outcome,
    Rng,
    RoomState,
    RulesConfig,
    TimerRequest,
    apply,
    comparable,
    direct_message,
    list_rooms,
    presence_changed,
    replay,
)

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
