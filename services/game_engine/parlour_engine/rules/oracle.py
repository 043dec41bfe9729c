"""The rules as an oracle: `replay` folds `apply` over one room's commands, and `comparable`
gives the part of a state a comparison against a live engine can check. Integration and
failover tests compare what the engine stored against these."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from parlour_engine.rules.dispatch import apply
from parlour_engine.rules.state import RoomState
from parlour_engine.rules.types import Rng, RulesConfig
from parlour_protocol.v1 import CommandEnvelope

_WALL_CLOCK_FIELDS = frozenset(
    {
        "created_at",
        "started_at",
        "finished_at",
        "joined_at",
        "turn_deadline",
        "timeout_at",
        "password_failures",
        "password_hash",
    }
)


def replay(
    commands: Iterable[tuple[CommandEnvelope, datetime]] | Iterable[CommandEnvelope],
    rng: Rng | Callable[[CommandEnvelope], Rng],
    config: RulesConfig,
    state: RoomState | None = None,
) -> RoomState | None:
    """Fold `apply` over commands of ONE room, in the order the engine applied them: the
    oracle integration tests compare the store against.

    Items are `(command, now)` pairs, or bare envelopes (then `now` is each envelope's
    `timestamp`). `rng` is one generator for the whole fold, or a factory giving each
    command its own (e.g. `lambda c: random.Random(f"{seed}:{c.msg_id}")`, matching an engine
    that seeds per command). Rejected commands change nothing, as in the engine. Timestamps
    in the state (joined_at, deadlines) follow the `now` given here, so compare them only when
    the engine's clock is known; `comparable()` drops them. `config` must hold the
    engine's games (`config.games`) and game settings, or the fold diverges from it."""
    for item in commands:
        if isinstance(item, tuple):
            command, now = item
        else:
            command, now = item, item.timestamp
        step_rng: Rng = rng(command) if callable(rng) else rng
        state = apply(state, command, step_rng, now, config).state
    return state


def _strip_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_times(v) for k, v in value.items() if k not in _WALL_CLOCK_FIELDS}
    if isinstance(value, list):
        return [_strip_times(v) for v in value]
    return value


def comparable(state: RoomState | None) -> dict[str, Any] | None:
    """The state as a JSON-like dict without wall-clock fields (timestamps, deadlines,
    password failure times): what an oracle comparison against a live engine can check."""
    if state is None:
        return None
    result: dict[str, Any] = _strip_times(state.model_dump(mode="json"))
    return result
