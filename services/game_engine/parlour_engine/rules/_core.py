"""Implementation behind `rules.api` (work in progress)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from parlour_engine.rules.state import RoomState
from parlour_engine.rules.types import Emit, Outcome, Rng, RulesConfig
from parlour_protocol.v1 import CommandEnvelope
from parlour_protocol.v1.rooms import RoomList


def apply(
    state: RoomState | None,
    command: CommandEnvelope,
    rng: Rng,
    now: datetime,
    config: RulesConfig,
) -> Outcome:
    raise NotImplementedError


def replay(
    commands: Iterable[object], rng: Rng, config: RulesConfig, state: RoomState | None
) -> RoomState | None:
    raise NotImplementedError


def list_rooms(
    states: Iterable[RoomState], user_id: str, game_type: str, now: datetime
) -> RoomList:
    raise NotImplementedError


def direct_message(command: CommandEnvelope, now: datetime) -> tuple[Emit, ...]:
    raise NotImplementedError


def presence_changed(states: Iterable[RoomState], command: CommandEnvelope) -> tuple[Emit, ...]:
    raise NotImplementedError
