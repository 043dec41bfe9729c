"""Discovery of the engine's games: this package's modules and the `parlour.engine_games`
entry points (faked here: `entry_points` as the discovery module sees it), the same two ways
the protocol finds a game's messages."""

from __future__ import annotations

from dataclasses import replace
from importlib.metadata import EntryPoint
from typing import Any

import pytest

import parlour_engine.games as games
from parlour_engine.app import create_engine
from parlour_engine.games import ENTRY_POINT_GROUP, discover
from parlour_engine.games.bigger_dice import BiggerDiceRules, DiceConfig
from parlour_engine.rules.context import Ctx
from parlour_engine.rules.state import GameState, RoomState
from parlour_engine.settings import EngineSettings
from parlour_protocol.v1 import ServerEvent
from parlour_protocol.v1.base import ClientCommand
from parlour_protocol.v1.games import bigger_dice as dice
from parlour_protocol.v1.registry import type_tag
from parlour_runtime import load
from tests.support.rules_table import FAST, ROOM, Table


class CardsState(GameState):
    hands: int = 0


class CardsRules:
    """A third-party game's engine side, as an installed distribution would expose it. It
    claims Bigger Dice's roll command type, so a real protocol command reaches it."""

    name = "cards"
    state_model = CardsState
    command_types = frozenset({type_tag(dice.Roll)})

    def start(self, ctx: Ctx) -> None:
        ctx.state.game = CardsState()

    def handle(self, ctx: Ctx, command: ClientCommand) -> None:
        game = ctx.state.game
        assert isinstance(game, CardsState)
        ctx.state.game = game.model_copy(update={"hands": game.hands + 1})

    def on_turn_timeout(self, ctx: Ctx) -> None: ...

    def on_auto_play(self, ctx: Ctx) -> None: ...

    def on_player_removed(self, ctx: Ctx, user_id: str) -> None: ...

    def snapshot_for(self, state: RoomState, user_id: str) -> ServerEvent | None:
        return None


CARDS = CardsRules()
NOT_A_GAME = object()


class TimedCards(CardsRules):
    """A plug-in with a forfeit time but no `on_forfeit`: refused at discovery."""

    absence_forfeit_seconds = 60


class ZeroTimer(CardsRules):
    turn_timeout_seconds = 0


TIMED_CARDS = TimedCards()
ZERO_TIMER = ZeroTimer()


def _installed(monkeypatch: pytest.MonkeyPatch, **targets: str) -> None:
    """Pretend distributions expose `name = module:attribute` under the engine's group."""
    points = [EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in targets.items()]

    def fake(*, group: str, **_: Any) -> list[EntryPoint]:
        return points if group == ENTRY_POINT_GROUP else []

    monkeypatch.setattr(games, "entry_points", fake)


def test_the_package_scan_finds_the_shipped_games() -> None:
    registry = discover()
    assert registry.names == {"bigger_dice", "tic_tac_toe"}
    plugin = registry.get("bigger_dice")
    assert isinstance(plugin, BiggerDiceRules)
    assert plugin.config == DiceConfig()
    assert registry.get("chess") is None


def test_an_installed_game_is_found_through_its_entry_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _installed(monkeypatch, cards=f"{__name__}:CARDS")
    registry = discover()
    assert registry.names == {"bigger_dice", "tic_tac_toe", "cards"}
    assert registry.get("cards") is CARDS


def test_the_rules_play_a_game_found_only_through_its_entry_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _installed(monkeypatch, cards=f"{__name__}:CARDS")
    table = Table(config=replace(FAST, games=discover()))
    table.lobby_of(2)
    assert table.state is not None
    # a room of the installed game (the protocol side would come from `parlour.games`)
    table.state = table.state.model_copy(update={"game_type": "cards", "game": CardsState()})
    table.send("u1", dice.Roll(room_id=ROOM))
    table.send("u2", dice.Roll(room_id=ROOM))
    assert table.state.game == CardsState(hands=2)
    # its state comes back typed from the stored JSON through the same registry
    stored = table.state.model_dump_json()
    assert RoomState.load(stored, table.config.games).game == CardsState(hands=2)


def test_an_entry_point_reusing_a_shipped_name_fails_at_discovery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _installed(monkeypatch, dice="parlour_engine.games.bigger_dice:RULES")
    with pytest.raises(ValueError, match="'bigger_dice' is registered twice"):
        discover()


def test_an_entry_point_that_is_not_a_plugin_fails_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _installed(monkeypatch, broken=f"{__name__}:NOT_A_GAME")
    with pytest.raises(TypeError, match="entry point 'broken' is not a GameRules plug-in"):
        discover()


def test_the_engine_refuses_to_start_with_a_game_the_protocol_lacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `cards` has engine rules but no `parlour.games` GameSpec: its commands would never parse
    _installed(monkeypatch, cards=f"{__name__}:CARDS")
    with pytest.raises(ValueError, match=r"without a protocol GameSpec .*'cards'"):
        create_engine(load(EngineSettings))


@pytest.mark.parametrize(
    ("target", "error", "match"),
    [
        ("TIMED_CARDS", TypeError, "sets absence_forfeit_seconds but has no on_forfeit"),
        ("ZERO_TIMER", ValueError, "turn_timeout_seconds must be a whole number of seconds"),
    ],
)
def test_a_plugins_optional_timing_members_are_checked_at_discovery(
    monkeypatch: pytest.MonkeyPatch, target: str, error: type[Exception], match: str
) -> None:
    _installed(monkeypatch, cards=f"{__name__}:{target}")
    with pytest.raises(error, match=match):
        discover()


def test_a_plugin_without_timing_members_keeps_the_engines_timer() -> None:
    config = replace(FAST, games=FAST.games.replacing(CARDS))
    assert config.turn_timeout_for("cards") == FAST.turn_timeout_seconds
    assert config.absence_forfeit_for("cards") is None
