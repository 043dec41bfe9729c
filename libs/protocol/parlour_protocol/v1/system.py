"""Connection-level messages: welcome, authentication, heartbeat, errors, presence."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from parlour_protocol.v1 import limits
from parlour_protocol.v1.base import (
    ClientCommand,
    Id,
    RequestId,
    ServerEvent,
    UserId,
    Username,
    WireModel,
    utc_now,
)
from parlour_protocol.v1.errors import DecodeFailure, ErrorCode

# --- client -> server ---------------------------------------------------------------------


class Authenticate(ClientCommand):
    """Bind the socket to a user. `token` is an RS256 (or allow-listed asymmetric) JWT.

    `user_id`/`username` are honoured only by a gateway running with AUTH_DEV_MODE=true (the
    original's token-less development login); every other gateway ignores them.
    """

    type: Literal["system.authenticate"] = "system.authenticate"
    doc_answer: ClassVar[str] = (
        "gateway: `system.authenticated`, or `system.error` `auth_failed`/`already_authenticated`"
    )
    token: str | None = Field(default=None, min_length=1, max_length=limits.TOKEN_MAX_LENGTH)
    user_id: UserId | None = None
    username: Username | None = None


class Heartbeat(ClientCommand):
    """Keep-alive; answered with `system.heartbeat_ack`."""

    type: Literal["system.heartbeat"] = "system.heartbeat"
    doc_answer: ClassVar[str] = "gateway: `system.heartbeat_ack`"


class SyncState(ClientCommand):
    """Ask for the rooms this user belongs to; answered with `system.state_snapshot`."""

    type: Literal["system.sync_state"] = "system.sync_state"
    doc_answer: ClassVar[str] = "gateway: `system.state_snapshot`"


# --- server -> client ---------------------------------------------------------------------


class Welcome(ServerEvent):
    """First frame on every socket."""

    type: Literal["system.welcome"] = "system.welcome"
    doc_audience: ClassVar[str] = "the new socket, first frame - `seq` null"
    connection_id: Id = Field(
        description="this socket's id, opaque to clients (the gateway sends 32 lower-case hex "
        "digits: a random UUID4 without dashes)"
    )
    timestamp: datetime = Field(default_factory=utc_now)
    protocol_version: str = limits.PROTOCOL_VERSION
    heartbeat_interval: int = Field(
        default=15,
        ge=1,
        description="seconds between client heartbeats; a socket with no data frame for "
        "WS_HEARTBEAT_TIMEOUT_SECONDS is closed (4030): WebSocket pings do not count",
    )


class Authenticated(ServerEvent):
    type: Literal["system.authenticated"] = "system.authenticated"
    doc_audience: ClassVar[str] = "the authenticating socket - `seq` null"
    user_id: UserId
    username: Username
    roles: list[str] = Field(default_factory=list)
    expires_at: datetime | None = Field(default=None, description="when the token expires")
    timestamp: datetime = Field(default_factory=utc_now)


class HeartbeatAck(ServerEvent):
    type: Literal["system.heartbeat_ack"] = "system.heartbeat_ack"
    doc_audience: ClassVar[str] = "the socket that sent the heartbeat - `seq` null"
    timestamp: datetime = Field(default_factory=utc_now)


class FieldError(WireModel):
    path: str
    message: str


class Error(ServerEvent):
    """Something the client sent did not take effect. `code` is one of `ErrorCode`;
    `request_id` echoes the command's."""

    type: Literal["system.error"] = "system.error"
    doc_audience: ClassVar[str] = (
        "the socket whose command failed (audience `connection`) - `seq` null"
    )
    code: ErrorCode
    message: str
    request_id: RequestId | None = None
    reason: DecodeFailure | None = Field(
        default=None, description="for `invalid_message`/`message_too_large`: why decoding failed"
    )
    fields: list[FieldError] | None = Field(
        default=None, description="for `invalid_fields`: each failing field path and why"
    )
    room_id: Id | None = Field(default=None, description="the room the command was about")
    timestamp: datetime = Field(default_factory=utc_now)


class Ack(ServerEvent):
    """The command with this `request_id` was handed to the engine under `msg_id`."""

    type: Literal["system.ack"] = "system.ack"
    doc_audience: ClassVar[str] = "the socket that sent the command - `seq` null"
    request_id: RequestId
    msg_id: str = Field(description="the command envelope's msg_id (its idempotency key)")


class ReauthRequired(ServerEvent):
    """The token expired; send `system.authenticate` with a fresh one before `deadline`."""

    type: Literal["system.reauth_required"] = "system.reauth_required"
    doc_audience: ClassVar[str] = "every socket of the user whose token expired - `seq` null"
    reason: str = "token_expired"
    deadline: datetime


class StateSnapshot(ServerEvent):
    """Answer to `system.sync_state`: the rooms the user is a member of."""

    type: Literal["system.state_snapshot"] = "system.state_snapshot"
    doc_audience: ClassVar[str] = "the socket that sent `system.sync_state` - `seq` null"
    active_rooms: list[Id] = Field(default_factory=list)
    timestamp: datetime = Field(default_factory=utc_now)


class UserOnline(ServerEvent):
    """A member of one of your rooms came online (first socket on any gateway)."""

    type: Literal["presence.event.user_online"] = "presence.event.user_online"
    doc_audience: ClassVar[str] = "users who share a room with the user - `seq` null"
    user_id: UserId
    username: Username
    timestamp: datetime = Field(default_factory=utc_now)


class UserOffline(ServerEvent):
    """A member of one of your rooms went offline (last socket closed or expired)."""

    type: Literal["presence.event.user_offline"] = "presence.event.user_offline"
    doc_audience: ClassVar[str] = "users who share a room with the user - `seq` null"
    user_id: UserId
    username: Username
    timestamp: datetime = Field(default_factory=utc_now)


CLIENT_COMMANDS: tuple[type[ClientCommand], ...] = (Authenticate, Heartbeat, SyncState)
SERVER_EVENTS: tuple[type[ServerEvent], ...] = (
    Welcome,
    Authenticated,
    HeartbeatAck,
    Error,
    Ack,
    ReauthRequired,
    StateSnapshot,
    UserOnline,
    UserOffline,
)
