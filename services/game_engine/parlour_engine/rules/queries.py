"""Read-only answers across rooms: the room list page and the presence fan-out. Each reads
room states the worker fetched and changes none (chat history, which reads one room's chat
under its mutes, is answered in `chat`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from parlour_engine.rules.state import RoomState
from parlour_engine.rules.types import Emit
from parlour_engine.rules.views import list_item
from parlour_protocol.v1 import Audience, AudienceKind, CommandEnvelope, internal
from parlour_protocol.v1 import rooms as room_msgs
from parlour_protocol.v1.system import UserOffline, UserOnline

PRESENCE_AUDIENCE_CHUNK = 1000
"""Most user ids one presence event's audience lists (ids are at most 64 bytes)."""


def list_rooms(
    states: Iterable[RoomState],
    user_id: str,
    game_type: str,
    now: datetime,
    *,
    cursor: str | None = None,
    next_cursor: str | None = None,
) -> room_msgs.RoomList:
    """One `games.event.room_list` page for `user_id` of the rooms the worker read from its
    index: waiting rooms of `game_type` for everyone, in-progress ones only for their members,
    never a room that banned the user (`views.list_item`), oldest first. `cursor` /
    `next_cursor` are the worker's paging (an index read)."""
    items = [
        item
        for state in states
        if state.game_type == game_type and (item := list_item(state, user_id)) is not None
    ]
    items.sort(key=lambda i: (i.created_at, i.room_id))
    return room_msgs.RoomList(
        game_type=game_type, rooms=items, cursor=cursor, next_cursor=next_cursor
    )


def presence_changed(states: Iterable[RoomState], command: CommandEnvelope) -> tuple[Emit, ...]:
    """`games.command.presence_changed` -> `presence.event.user_online/offline` to the other
    members of the user's rooms (`states`): USERS emits of at most PRESENCE_AUDIENCE_CHUNK
    ids each, no seq."""
    payload = command.payload
    if not isinstance(payload, internal.PresenceChanged):
        return ()
    user = command.actor
    others: dict[str, None] = {}
    for state in states:
        if not state.is_member(user.user_id) and state.host_id != user.user_id:
            continue
        for member in state.member_ids():
            if member != user.user_id:
                others[member] = None
    if not others:
        return ()
    event: UserOnline | UserOffline
    if payload.online:
        event = UserOnline(
            user_id=user.user_id, username=user.username, timestamp=command.timestamp
        )
    else:
        event = UserOffline(
            user_id=user.user_id, username=user.username, timestamp=command.timestamp
        )
    ids = list(others)
    # one emit per PRESENCE_AUDIENCE_CHUNK ids keeps each envelope far below EVENT_MAX_BYTES
    return tuple(
        Emit(
            Audience(kind=AudienceKind.USERS, user_ids=ids[i : i + PRESENCE_AUDIENCE_CHUNK]), event
        )
        for i in range(0, len(ids), PRESENCE_AUDIENCE_CHUNK)
    )
