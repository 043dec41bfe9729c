"""Engine-side game plug-ins and their discovery.

A game's engine side is an object satisfying `parlour_engine.rules.plugins.GameRules`,
found in one of two ways (the same two as the protocol's `parlour_protocol.v1.registry`):

- a module of this package defining `RULES` (a game shipped with Parlour);
- an installed distribution exposing the object under the entry-point group
  `parlour.engine_games` (a third-party game). Its protocol side is a `GameSpec` under
  `parlour.games`: two groups, because the gateway loads the protocol side only and must not
  import engine code.

`discover()` is called once by the engine's wiring (`app.create_engine`), which passes the
registry to the rules as `RulesConfig.games`; the rules never import this package.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, cast

from parlour_engine.rules.plugins import GameRegistry, check_optional_members

if TYPE_CHECKING:
    from parlour_engine.rules.plugins import GameRules

ENTRY_POINT_GROUP = "parlour.engine_games"
"""The entry-point group an installed game's engine plug-in (a `GameRules` object) is under."""

_CONTRACT = ("name", "state_model", "command_types", "start", "handle", "snapshot_for")


def _checked(rules: object, source: str) -> GameRules:
    missing = [member for member in _CONTRACT if not hasattr(rules, member)]
    if missing:
        raise TypeError(f"{source} is not a GameRules plug-in: it lacks {', '.join(missing)}")
    check_optional_members(rules, source)
    return cast("GameRules", rules)


def discover() -> GameRegistry:
    """Every engine game: this package's modules (by name), then the `parlour.engine_games`
    entry points. A name registered twice, or an object that is not a plug-in, raises at
    start-up with the module or entry point that brought it."""
    found: list[GameRules] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        rules = getattr(module, "RULES", None)
        if rules is not None:
            found.append(_checked(rules, f"{module.__name__}.RULES"))
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        found.append(_checked(entry_point.load(), f"entry point {entry_point.name!r}"))
    return GameRegistry.of(found)
