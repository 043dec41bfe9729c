"""The game registry: each game contributes its own commands and events.

A game is one module in `parlour_protocol.v1.games` (found by listing that package) or an
installed distribution exposing a `GameSpec` under the entry-point group `parlour.games`.
Adding a game changes nothing else in this library, the gateway or the engine's generic code.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from importlib.metadata import entry_points

from parlour_protocol.v1.base import ClientCommand, ServerEvent

ENTRY_POINT_GROUP = "parlour.games"


@dataclass(frozen=True)
class GameSpec:
    """What a game adds to the protocol.

    Command types must be `games.command.<name>.<verb>`, event types `games.event.<name>.<what>`,
    so every message of a game is recognisable by its prefix.
    """

    name: str
    title: str
    commands: tuple[type[ClientCommand], ...]
    events: tuple[type[ServerEvent], ...]
    min_players: int = 2
    max_players: int = 10

    def __post_init__(self) -> None:
        for command in self.commands:
            tag = _type_tag(command)
            if not tag.startswith(f"games.command.{self.name}."):
                raise ValueError(f"game {self.name!r}: command type {tag!r} lacks its prefix")
        for event in self.events:
            tag = _type_tag(event)
            if not tag.startswith(f"games.event.{self.name}."):
                raise ValueError(f"game {self.name!r}: event type {tag!r} lacks its prefix")


def _type_tag(model: type[ClientCommand] | type[ServerEvent]) -> str:
    default = model.model_fields["type"].default
    if not isinstance(default, str):
        raise TypeError(f"{model.__name__} needs a Literal `type` with a default")
    return default


def type_tag(model: type[ClientCommand] | type[ServerEvent]) -> str:
    """The `type` string a message model carries on the wire."""
    return _type_tag(model)


def _discover() -> dict[str, GameSpec]:
    from parlour_protocol.v1 import games as games_package

    found: dict[str, GameSpec] = {}
    for module_info in sorted(pkgutil.iter_modules(games_package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{games_package.__name__}.{module_info.name}")
        spec = getattr(module, "GAME", None)
        if isinstance(spec, GameSpec):
            found[spec.name] = spec
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        spec = entry_point.load()
        if not isinstance(spec, GameSpec):
            raise TypeError(f"entry point {entry_point.name!r} is not a GameSpec")
        if spec.name in found:
            raise ValueError(f"game {spec.name!r} is registered twice")
        found[spec.name] = spec
    return found


GAMES: dict[str, GameSpec] = _discover()
"""Every registered game by name, built once at import."""
