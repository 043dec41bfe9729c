"""Turning a validated client command into a CommandEnvelope: pure, no I/O.

The actor always comes from the verified identity, never from the frame. Kafka key = the
room id when the command names a room (by id, by a resolved name, or the id the gateway mints
for create_room), else the user id.
"""

from __future__ import annotations

import uuid

from parlour_gateway.auth import Identity
from parlour_protocol.v1 import Actor, ClientCommand, CommandEnvelope
from parlour_protocol.v1.rooms import CreateRoom, JoinAsSpectator, JoinRoom, RejoinRoom


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
    room_id = room_id_of(command) or resolved_room_id
    if isinstance(command, CreateRoom):
        room_id = str(uuid.uuid4())
    return CommandEnvelope(
        type=command.type,
        key=room_id or identity.user_id,
        room_id=room_id,
        actor=Actor(user_id=identity.user_id, username=identity.username, roles=identity.roles),
        connection_id=connection_id,
        gateway_id=gateway_id,
        request_id=command.request_id,
        payload=command,
    )
