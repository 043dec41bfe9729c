"""Engine-side game plug-ins. Each module here defines `RULES`, an object satisfying
`parlour_engine.rules.plugins.GameRules`, registered under its game name; a second game adds
one module and nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from parlour_engine.rules.plugins import GameRules


def _discover() -> dict[str, GameRules]:
    found: dict[str, GameRules] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        rules = getattr(module, "RULES", None)
        if rules is not None:
            found[rules.name] = rules
    return found


_REGISTRY: dict[str, GameRules] | None = None


def game_rules(name: str) -> GameRules | None:
    """The plugin for game `name`, or None when the engine has no rules for it."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _discover()
    return _REGISTRY.get(name)
