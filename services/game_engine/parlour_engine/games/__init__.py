"""Engine-side game plug-ins and their discovery.

A game's engine side is an object satisfying `parlour_engine.rules.plugins.GameRules`: a
module of this package defining `RULES`.

`discover()` is called once by the engine's wiring (`app.create_engine`), which passes the
registry to the rules as `RulesConfig.games`; the rules never import this package.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, cast

from parlour_engine.rules.plugins import GameRegistry

if TYPE_CHECKING:
    from parlour_engine.rules.plugins import GameRules

_CONTRACT = ("name", "state_model", "command_types", "start", "handle", "snapshot_for")


def _checked(rules: object, source: str) -> GameRules:
    missing = [member for member in _CONTRACT if not hasattr(rules, member)]
    if missing:
        raise TypeError(f"{source} is not a GameRules plug-in: it lacks {', '.join(missing)}")
    return cast("GameRules", rules)


def discover() -> GameRegistry:
    """Every engine game: this package's modules (by name). A name registered twice, or an
    object that is not a plug-in, raises at start-up with the module that brought it."""
    found: list[GameRules] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        rules = getattr(module, "RULES", None)
        if rules is not None:
            found.append(_checked(rules, f"{module.__name__}.RULES"))
    return GameRegistry.of(found)
