"""Every message of protocol v1, collected into discriminated unions on `type`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field

from parlour_protocol.v1 import chat, internal, rooms, system
from parlour_protocol.v1.base import ClientCommand, ServerEvent
from parlour_protocol.v1.registry import GAMES

CLIENT_COMMANDS: tuple[type[ClientCommand], ...] = (
    *system.CLIENT_COMMANDS,
    *rooms.CLIENT_COMMANDS,
    *chat.CLIENT_COMMANDS,
    *(command for game in GAMES.values() for command in game.commands),
)
"""Commands a socket may send."""

INTERNAL_COMMANDS: tuple[type[ClientCommand], ...] = internal.INTERNAL_COMMANDS
"""Commands only the services produce."""

ENGINE_COMMANDS: tuple[type[ClientCommand], ...] = (
    tuple(command for command in CLIENT_COMMANDS if command not in system.CLIENT_COMMANDS)
    + INTERNAL_COMMANDS
)
"""Commands the engine consumes from Kafka: every client command except the connection-level
ones the gateway answers itself, plus the internal ones."""

SERVER_EVENTS: tuple[type[ServerEvent], ...] = (
    *system.SERVER_EVENTS,
    *rooms.SERVER_EVENTS,
    *chat.SERVER_EVENTS,
    *(event for game in GAMES.values() for event in game.events),
)


def _union(models: tuple[type[Any], ...]) -> Any:
    return Annotated[Union[models], Field(discriminator="type")]  # noqa: UP007


if TYPE_CHECKING:
    ClientMessage = ClientCommand
    EngineCommand = ClientCommand
    ServerMessage = ServerEvent
else:
    ClientMessage = _union(CLIENT_COMMANDS)
    EngineCommand = _union(ENGINE_COMMANDS)
    ServerMessage = _union(SERVER_EVENTS)


def _check_unique(models: tuple[type[Any], ...]) -> None:
    seen: set[str] = set()
    for model in models:
        tag = model.model_fields["type"].default
        if tag in seen:
            raise ValueError(f"message type {tag!r} is defined twice")
        seen.add(tag)


_check_unique(CLIENT_COMMANDS + INTERNAL_COMMANDS)
_check_unique(SERVER_EVENTS)
