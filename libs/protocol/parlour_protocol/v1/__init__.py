"""Protocol v1: the public surface. Import message models from their modules
(`system`, `rooms`, `chat`, `games.<name>`); import the rest from here."""

from __future__ import annotations

from parlour_protocol.v1.base import ClientCommand, RoomCommand, ServerEvent, utc_now
from parlour_protocol.v1.close_codes import CloseCode
from parlour_protocol.v1.codec import (
    decode_client_message,
    decode_command_envelope,
    decode_event_envelope,
    decode_server_message,
    encode,
)
from parlour_protocol.v1.envelope import (
    SYSTEM_ACTOR,
    Actor,
    Audience,
    AudienceKind,
    CommandEnvelope,
    EventEnvelope,
)
from parlour_protocol.v1.errors import (
    ERROR_MEANINGS,
    DecodeFailure,
    ErrorCode,
    FieldProblem,
    ProtocolError,
)
from parlour_protocol.v1.keys import RedisKeys
from parlour_protocol.v1.limits import PROTOCOL_VERSION
from parlour_protocol.v1.messages import (
    CLIENT_COMMANDS,
    ENGINE_COMMANDS,
    INTERNAL_COMMANDS,
    SERVER_EVENTS,
)
from parlour_protocol.v1.registry import GAMES, GameSpec, type_tag
from parlour_protocol.v1.topics import Topics

__all__ = [
    "CLIENT_COMMANDS",
    "ENGINE_COMMANDS",
    "ERROR_MEANINGS",
    "GAMES",
    "INTERNAL_COMMANDS",
    "PROTOCOL_VERSION",
    "SERVER_EVENTS",
    "SYSTEM_ACTOR",
    "Actor",
    "Audience",
    "AudienceKind",
    "ClientCommand",
    "CloseCode",
    "CommandEnvelope",
    "DecodeFailure",
    "ErrorCode",
    "EventEnvelope",
    "FieldProblem",
    "GameSpec",
    "ProtocolError",
    "RedisKeys",
    "RoomCommand",
    "ServerEvent",
    "Topics",
    "decode_client_message",
    "decode_command_envelope",
    "decode_event_envelope",
    "decode_server_message",
    "encode",
    "type_tag",
    "utc_now",
]
