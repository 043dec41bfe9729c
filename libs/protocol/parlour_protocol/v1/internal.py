"""Commands that only the services produce (never accepted from a socket)."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field

from parlour_protocol.v1.base import ClientCommand, RoomCommand


class PlayerDisconnectedCommand(RoomCommand):
    """Published by a gateway when a user's last socket closes, once per room they are in."""

    type: Literal["games.command.player_disconnected"] = "games.command.player_disconnected"
    doc_answer: ClassVar[str] = (
        "published by a gateway when a user's last socket "
        "closes, once per room; a player of a running game gets `player_disconnected`"
    )


class PresenceChanged(ClientCommand):
    """Published by a gateway when a user's first socket opens or last socket closes; the
    engine tells the members of the user's rooms (`presence.event.user_online/offline`)."""

    type: Literal["games.command.presence_changed"] = "games.command.presence_changed"
    doc_answer: ClassVar[str] = (
        "published by a gateway on a user's first socket open / "
        "last socket close; members of the user's rooms get `presence.event.user_online/offline`"
    )
    online: bool


class TimerKind(StrEnum):
    TURN = "turn"
    DISCONNECT_GRACE = "disconnect_grace"
    ROOM_EXPIRY = "room_expiry"
    """A waiting room's idle time or a finished room's keep time is over."""


class TimerFired(RoomCommand):
    """Published by the engine's timer loop when a deadline passes. `token` names the deadline
    it was set for, so a stale timer (the turn moved on) has no effect."""

    type: Literal["games.command.timer_fired"] = "games.command.timer_fired"
    doc_answer: ClassVar[str] = (
        "published by the engine's timer loop; a turn timeout rolls for "
        "the player (`rolled` with `auto` true), a disconnect grace opens the vote"
    )
    kind: TimerKind
    token: str = Field(
        min_length=1, max_length=200, description="names the deadline the timer was set for"
    )


INTERNAL_COMMANDS: tuple[type[ClientCommand], ...] = (
    PlayerDisconnectedCommand,
    PresenceChanged,
    TimerFired,
)
