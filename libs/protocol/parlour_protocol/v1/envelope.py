"""Kafka envelopes between gateways and engines (topics in `topics.py`)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid4

from pydantic import Field, model_validator

from parlour_protocol.v1.base import Id, RequestId, UserId, Username, WireModel, utc_now
from parlour_protocol.v1.messages import EngineCommand, ServerMessage


class Actor(WireModel):
    """Who sent a command: always from the verified token (or the engine itself)."""

    user_id: UserId
    username: Username
    roles: list[str] = Field(default_factory=list)


SYSTEM_ACTOR = Actor(user_id="system", username="system", roles=["system"])


class CommandEnvelope(WireModel):
    """A command on `games.command.v1`. `msg_id` is the idempotency key: a redelivered or
    re-sent envelope with the same msg_id takes effect once. Kafka key = `key`."""

    msg_id: UUID = Field(default_factory=uuid4)
    type: str
    key: str = Field(description="room_id, or the actor's user id when no room is known")
    room_id: Id | None = None
    actor: Actor
    connection_id: Id | None = None
    gateway_id: Id | None = None
    request_id: RequestId | None = None
    timestamp: datetime = Field(default_factory=utc_now)
    payload: EngineCommand

    @model_validator(mode="after")
    def _type_matches_payload(self) -> CommandEnvelope:
        # consumers route on `type` without opening the payload: the two must agree
        if self.type != self.payload.type:
            raise ValueError(f"type {self.type!r} differs from payload.type {self.payload.type!r}")
        return self


class AudienceKind(StrEnum):
    ROOM = "room"
    """Every member of the room (players, lobby, spectators). Such events carry `seq`."""
    PLAYERS = "players"
    """The players of the running game (not the lobby, not the spectators)."""
    SPECTATORS = "spectators"
    """The room's spectators only (e.g. spectator-channel chat)."""
    USER = "user"
    """Every socket of one user (answers that concern the user, not one socket)."""
    USERS = "users"
    """Every socket of each listed user (e.g. a direct message: recipient and sender)."""
    CONNECTION = "connection"
    """One socket: `connection_id` on `gateway_id` (errors, answers to one request)."""
    BROADCAST = "broadcast"
    """Lobby-list updates: every socket, on every gateway, that sent `list_rooms` for the
    payload's `game_type` (within the last 15 minutes, and is not in a room since)."""


class Audience(WireModel):
    """Who receives an event. The engine resolves every kind except `connection` and
    `broadcast` to explicit `user_ids`, so gateways keep no membership of their own."""

    kind: AudienceKind
    user_ids: list[UserId] = Field(default_factory=list)
    connection_id: Id | None = None
    gateway_id: Id | None = None


class EventEnvelope(WireModel):
    """An event on `games.event.v1`; `payload` is exactly what the socket receives."""

    event_id: UUID = Field(default_factory=uuid4)
    type: str
    room_id: Id | None = None
    seq: int | None = Field(default=None, ge=1)
    audience: Audience
    causation_id: UUID | None = Field(default=None, description="msg_id of the command")
    timestamp: datetime = Field(default_factory=utc_now)
    payload: ServerMessage

    @model_validator(mode="after")
    def _type_matches_payload(self) -> EventEnvelope:
        # gateways route and deduplicate on `type`/`seq` without opening the payload
        if self.type != self.payload.type:
            raise ValueError(f"type {self.type!r} differs from payload.type {self.payload.type!r}")
        if self.seq != self.payload.seq:
            raise ValueError(f"seq {self.seq!r} differs from payload.seq {self.payload.seq!r}")
        return self
