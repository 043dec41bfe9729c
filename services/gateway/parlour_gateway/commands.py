"""Turning a validated client command into a CommandEnvelope: pure, no I/O.

The actor always comes from the verified identity, never from the frame. Kafka key = the
room id when the command names a room (by id, by a resolved name, or the id the gateway mints
for create_room), else the user id.

Retries are safe: a command with a request_id gets a msg_id derived from (user, connection,
request_id), and a create_room its room id from that msg_id, so a client that re-sends a command
whose publish was not confirmed (`service_unavailable`) gets the same msg_id on the same room
key and the engine applies it at most once. The connection is part of the name so a client whose
request-id counter restarts after a reconnect is never deduplicated against its old socket.
"""

from __future__ import annotations

import uuid

from parlour_gateway.auth import Identity
from parlour_protocol.v1 import Actor, ClientCommand, CommandEnvelope
from parlour_protocol.v1.rooms import CreateRoom, JoinAsSpectator, JoinRoom, RejoinRoom

COMMAND_ID_NAMESPACE = uuid.UUID("5b0c5f0e-7d1a-4a63-9f43-2f6f1d0c6a51")
"""uuid5 namespace of gateway-derived command msg_ids and create_room room ids."""


def command_msg_id(user_id: str, connection_id: str | None, request_id: str | None) -> uuid.UUID:
    """The idempotency key of a client command: deterministic when the client named it with a
    request_id on a known connection (so a retry is deduplicated), else random."""
    if request_id is None or connection_id is None:
        return uuid.uuid4()
    return uuid.uuid5(COMMAND_ID_NAMESPACE, f"{user_id}:{connection_id}:{request_id}")


def name_lookup(command: ClientCommand) -> tuple[str, str] | None:
    """(game_type, room_name) to resolve to a room id before publishing, if any."""
    if isinstance(command, JoinRoom | JoinAsSpectator):
        return command.game_type, command.room_name
    if isinstance(command, RejoinRoom) and command.room_id is None and command.room_name:
        return command.game_type, command.room_name
    return None


def room_id_of(command: ClientCommand) -> str | None:
    """The room a command names by id (room commands, rejoin by id)."""
    room_id = getattr(command, "room_id", None)
    return room_id if isinstance(room_id, str) else None


def build_envelope(
    command: ClientCommand,
    identity: Identity,
    *,
    connection_id: str | None,
    gateway_id: str,
    resolved_room_id: str | None = None,
) -> CommandEnvelope:
    msg_id = command_msg_id(identity.user_id, connection_id, command.request_id)
    room_id = room_id_of(command) or resolved_room_id
    if isinstance(command, CreateRoom):
        room_id = str(uuid.uuid5(COMMAND_ID_NAMESPACE, f"room:{msg_id}"))
    return CommandEnvelope(
        msg_id=msg_id,
        type=command.type,
        key=room_id or identity.user_id,
        room_id=room_id,
        actor=Actor(user_id=identity.user_id, username=identity.username, roles=identity.roles),
        connection_id=connection_id,
        gateway_id=gateway_id,
        request_id=command.request_id,
        payload=command,
    )
