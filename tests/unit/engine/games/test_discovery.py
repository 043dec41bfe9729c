"""Discovery of the engine's games: the modules of `parlour_engine.games`."""

from __future__ import annotations

from parlour_engine.games import discover
from parlour_engine.games.bigger_dice import BiggerDiceRules, DiceConfig


def test_the_package_scan_finds_bigger_dice() -> None:
    registry = discover()
    assert registry.names == {"bigger_dice"}
    plugin = registry.get("bigger_dice")
    assert isinstance(plugin, BiggerDiceRules)
    assert plugin.config == DiceConfig()
    assert registry.get("chess") is None
