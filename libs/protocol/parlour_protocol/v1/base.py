"""Base models and field types shared by every message of protocol v1."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from parlour_protocol.v1 import limits

Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=limits.ID_MAX_LENGTH, pattern=limits.ID_PATTERN),
]
"""An opaque id: room ids, user ids, connection ids, message ids."""

UserId = Id
RoomId = Id

Username = Annotated[str, StringConstraints(min_length=1, max_length=limits.USERNAME_MAX_LENGTH)]

RoomName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=limits.ROOM_NAME_MIN_LENGTH,
        max_length=limits.ROOM_NAME_MAX_LENGTH,
        pattern=limits.ROOM_NAME_PATTERN,
    ),
]


def _empty_password_is_none(value: str | None) -> str | None:
    return value or None


Password = Annotated[
    str | None,
    Field(default=None, max_length=limits.PASSWORD_MAX_LENGTH),
    AfterValidator(_empty_password_is_none),
]
"""An optional room password. An empty string means no password."""

ChatContent = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=limits.CHAT_CONTENT_MAX_LENGTH,
        pattern=limits.CHAT_CONTENT_PATTERN,
    ),
]

RequestId = Annotated[str, StringConstraints(min_length=1, max_length=limits.REQUEST_ID_MAX_LENGTH)]

GameType = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z0-9_]+$")]
"""The name a game registers under (`bigger_dice`)."""


WHOLE_ROOM = "whole room (players, lobby, spectators) - carries `seq`"
"""The `doc_audience` of an event every member of a room receives, numbered by `seq`."""


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (serialised as RFC 3339 with `Z`)."""
    return datetime.now(UTC)


class WireModel(BaseModel):
    """Base of every message: unknown fields are ignored (forward compatible), models are
    immutable once built."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)


class ClientCommand(WireModel):
    """A message a client sends. `request_id` is echoed on the `system.error` or `system.ack`
    the command causes, so a client can tie an answer to what it sent. It also names the
    command on its connection: the same request_id re-sent on the same connection (a retry
    after `service_unavailable`) takes effect at most once, so use a new one per command.

    Identity is never part of a command: the gateway takes the user from the verified token.
    """

    type: str
    request_id: RequestId | None = None

    room_scoped: ClassVar[bool] = False
    """True when the command carries `room_id` and is ordered with the room's commands."""

    doc_answer: ClassVar[str]
    """For the protocol docs: what the command causes and who receives it (for a client
    command, its answer). Every concrete command sets it; a test fails when one does not."""


class RoomCommand(ClientCommand):
    """A command about one room, named by id; Kafka key = room_id."""

    room_id: RoomId
    room_scoped: ClassVar[bool] = True


class TargetedRoomCommand(RoomCommand):
    """A room command aimed at another user of the room."""

    target_user_id: UserId


class ServerEvent(WireModel):
    """A message the server sends. `seq` is the room's event sequence number on events that
    every member of a room receives, and null on events for part of a room or one user."""

    type: str
    seq: int | None = Field(default=None, ge=1)

    doc_audience: ClassVar[str]
    """For the protocol docs: which sockets receive the event, and whether it carries `seq`.
    Every concrete event sets it (`WHOLE_ROOM` for room-wide ones); a test fails when one does
    not."""
