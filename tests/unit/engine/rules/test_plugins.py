"""The plug-in contract's registry, and how a stored room gets its game's state model: from
the registry the caller passes, never from an import of the games."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from parlour_engine.games.bigger_dice import BiggerDiceRules, DiceConfig, DiceState
from parlour_engine.rules import GameRegistry, RoomState, RulesConfig
from parlour_protocol.v1 import ErrorCode, rooms
from tests.support.rules_table import FAST, Table

UNKNOWN = ErrorCode.UNKNOWN_GAME


def test_a_registry_is_an_immutable_lookup_by_name() -> None:
    dice = BiggerDiceRules()
    registry = GameRegistry.of([dice])
    assert registry.get("bigger_dice") is dice
    assert "bigger_dice" in registry
    assert registry.get("cards") is None
    assert list(registry) == [dice]
    assert len(registry) == 1
    with pytest.raises(TypeError):
        registry._games["cards"] = dice  # type: ignore[index]
    with pytest.raises(ValueError, match="registered twice"):
        GameRegistry.of([dice, BiggerDiceRules()])


def test_replacing_a_plugin_gives_a_new_registry() -> None:
    quick = BiggerDiceRules(DiceConfig(winning_score=1))
    registry = GameRegistry.of([BiggerDiceRules()])
    swapped = registry.replacing(quick)
    assert swapped.get("bigger_dice") is quick
    assert registry.get("bigger_dice") is not quick


def test_the_default_config_plays_no_game() -> None:
    # the rules never import a game: the wiring passes them in (`discover()`)
    assert len(RulesConfig().games) == 0
    table = Table(config=RulesConfig(scrypt_n=16))
    out = table.err("u1", rooms.CreateRoom(game_type="bigger_dice", room_name="T"), UNKNOWN)
    assert out.state is None


def test_a_stored_room_gets_its_game_state_model_from_the_registry_passed() -> None:
    table = Table()
    table.start(2)
    assert table.state is not None
    raw = table.state.model_dump_json()
    assert isinstance(RoomState.load(raw, FAST.games).game, DiceState)
    # the JSON is the store's: loading and dumping again gives the very same string
    assert RoomState.load(raw, FAST.games).model_dump_json() == raw
    with pytest.raises(ValidationError, match=r"RoomState\.load"):
        RoomState.model_validate_json(raw)
