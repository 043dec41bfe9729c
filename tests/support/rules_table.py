"""A table harness for the pure rules: builds envelopes, applies them with a seeded rng and a
controlled clock, and checks the invariants every command must keep (input state untouched,
room seqs consecutive, state JSON round-trips)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from parlour_engine.games import discover
from parlour_engine.games.bigger_dice import BiggerDiceRules, DiceConfig
from parlour_engine.rules import Outcome, RoomState, RulesConfig, apply
from parlour_protocol.v1 import Actor, AudienceKind, CommandEnvelope, ErrorCode, ServerEvent, rooms
from parlour_protocol.v1.base import ClientCommand
from parlour_protocol.v1.games import bigger_dice as dice
from parlour_protocol.v1.internal import PlayerDisconnectedCommand, TimerFired, TimerKind

ROOM = "room-1"
START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
GAMES = discover()
"""The engine's games, as its wiring discovers them."""


def rules_config(*, dice: DiceConfig | None = None, **settings: Any) -> RulesConfig:
    """A `RulesConfig` with the discovered games (as the engine builds it), Bigger Dice
    playing by `dice` when given."""
    games = GAMES if dice is None else GAMES.replacing(BiggerDiceRules(dice))
    return RulesConfig(games=games, **settings)


FAST = rules_config(scrypt_n=16)


def uid(n: int) -> str:
    return f"u{n}"


class Table:
    def __init__(self, seed: int = 7, config: RulesConfig = FAST) -> None:
        self.rng = random.Random(seed)
        self.config = config
        self.now = START
        self.state: RoomState | None = None
        self.log: list[tuple[CommandEnvelope, datetime]] = []
        self.outcomes: list[Outcome] = []
        self._n = 0

    # --- commands -------------------------------------------------------------------------

    def envelope(
        self, user: str, payload: ClientCommand, *, system: bool = False
    ) -> CommandEnvelope:
        self._n += 1
        room_id = getattr(payload, "room_id", None) or ROOM
        actor = Actor(user_id=user, username=f"name-{user}", roles=["user"])
        return CommandEnvelope(
            msg_id=UUID(int=self._n),
            type=payload.type,
            key=room_id,
            room_id=room_id,
            actor=actor,
            connection_id=None if system else f"c-{user}",
            gateway_id=None if system else "gw-1",
            request_id=None if system else f"r{self._n}",
            timestamp=self.now,
            payload=payload,
        )

    def send(self, user: str, payload: ClientCommand, *, system: bool = False) -> Outcome:
        envelope = self.envelope(user, payload, system=system)
        before = self.state
        before_json = before.model_dump_json() if before is not None else None
        outcome = apply(before, envelope, self.rng, self.now, self.config)
        self.log.append((envelope, self.now))
        self.outcomes.append(outcome)
        # a fault inside the rules is reported as internal_error: never acceptable in tests
        assert outcome.rejected is not ErrorCode.INTERNAL_ERROR, outcome.notes
        # invariant: the input is never modified
        if before is not None:
            assert before.model_dump_json() == before_json
        # invariant: room seqs continue the input's, no gaps; others carry none
        base = before.seq if before is not None else 0
        seqs = [e.message.seq for e in outcome.emits if e.audience.kind is AudienceKind.ROOM]
        assert seqs == list(range(base + 1, base + 1 + len(seqs)))
        for e in outcome.emits:
            if e.audience.kind is not AudienceKind.ROOM:
                assert e.message.seq is None, e
        if outcome.rejected is not None:
            assert not seqs
            errors = [e for e in outcome.emits if e.message.type == "system.error"]
            if not system:
                assert len(errors) == 1
                assert errors[0].audience.kind is AudienceKind.CONNECTION
                assert errors[0].message.request_id == envelope.request_id
            if outcome.rejected is not ErrorCode.WRONG_PASSWORD:
                assert outcome.state is before
                assert not outcome.changed
        if outcome.state is not None:
            if seqs:
                assert outcome.state.seq == seqs[-1]
                assert outcome.changed
            if outcome.changed:
                assert outcome.state.version == (before.version if before else 0) + 1
            else:
                assert outcome.state is before
            again = RoomState.load(outcome.state.model_dump_json(), self.config.games)
            assert again == outcome.state
        self.state = outcome.state
        return outcome

    def ok(self, user: str, payload: ClientCommand, **kw: Any) -> Outcome:
        outcome = self.send(user, payload, **kw)
        assert outcome.rejected is None, outcome.emits
        return outcome

    def err(self, user: str, payload: ClientCommand, code: ErrorCode) -> Outcome:
        outcome = self.send(user, payload)
        assert outcome.rejected is code, (outcome.rejected, code)
        return outcome

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    # --- scenarios ------------------------------------------------------------------------

    def create(self, host: str = "u1", **kw: Any) -> Outcome:
        fields: dict[str, Any] = {"game_type": "bigger_dice", "room_name": "Table One"}
        fields.update(kw)
        return self.ok(host, rooms.CreateRoom(**fields))

    def join(self, user: str, password: str | None = None) -> Outcome:
        return self.ok(user, rooms.JoinRoom(room_name="Table One", password=password))

    def lobby_of(self, n: int, **kw: Any) -> None:
        """Host u1 creates a room for n players and u2..un join."""
        self.create(max_players=n, **kw)
        for i in range(2, n + 1):
            self.join(uid(i), password=kw.get("password"))

    def start(self, n: int, **kw: Any) -> Outcome:
        """A running n-player game, seats in order u1..un; returns the last ready's outcome."""
        self.lobby_of(n, **kw)
        for i in range(1, n + 1):
            self.ok("u1", rooms.SelectPlayer(room_id=ROOM, target_user_id=uid(i)))
        out = None
        for i in range(1, n + 1):
            out = self.ok(uid(i), rooms.Ready(room_id=ROOM))
        assert out is not None
        return out

    def roll(self, user: str | None = None) -> Outcome:
        assert self.state is not None
        who = user or self.state.current_turn
        assert who is not None
        return self.ok(who, dice.Roll(room_id=ROOM))

    def fire_turn(self) -> Outcome:
        assert self.state is not None
        return self.send(
            "system",
            TimerFired(room_id=ROOM, kind=TimerKind.TURN, token=str(self.state.turn_number)),
            system=True,
        )

    def disconnect(self, user: str) -> Outcome:
        return self.send(user, PlayerDisconnectedCommand(room_id=ROOM), system=True)

    def play_out(self, limit: int = 5000) -> None:
        assert self.state is not None
        for _ in range(limit):
            if self.state.status is not rooms.RoomStatus.IN_PROGRESS:
                return
            self.roll()
        raise AssertionError("game did not end")

    # --- looking at outcomes ----------------------------------------------------------------

    def all_emits(self) -> Iterator[tuple[int, Any]]:
        for i, out in enumerate(self.outcomes):
            for e in out.emits:
                yield i, e


def types(outcome: Outcome) -> list[str]:
    return [e.message.type for e in outcome.emits]


def of_type(outcome: Outcome, type_: str) -> list[ServerEvent]:
    return [e.message for e in outcome.emits if e.message.type == type_]


def emits_of(outcome: Outcome, type_: str) -> list[Any]:
    return [e for e in outcome.emits if e.message.type == type_]


class ScriptedRng:
    """Dice come from a script (then from a seeded rng); salts from the seeded rng."""

    def __init__(self, rolls: list[int], seed: int = 1) -> None:
        self.rolls = list(rolls)
        self._random = random.Random(seed)

    def randint(self, a: int, b: int) -> int:
        if self.rolls:
            return self.rolls.pop(0)
        return self._random.randint(a, b)

    def randbytes(self, n: int) -> bytes:
        return self._random.randbytes(n)
