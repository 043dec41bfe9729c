"""What clients see of a room: snapshots, list items and names (never the password hash)."""

from __future__ import annotations

from parlour_engine.rules.state import Member, RoomState
from parlour_protocol.v1.rooms import (
    DisconnectInfo,
    PlayerInfo,
    RoomListItem,
    RoomRole,
    RoomSnapshot,
    RoomStatus,
    SpectatorInfo,
    UserRef,
)


def player_info(member: Member) -> PlayerInfo:
    return PlayerInfo(
        user_id=member.user_id,
        username=member.username,
        score=member.score,
        is_ready=member.is_ready,
        joined_at=member.joined_at,
    )


def snapshot(state: RoomState) -> RoomSnapshot:
    """The room as `games.event.room_state` carries it; `last_seq` = the room's seq now."""
    return RoomSnapshot(
        room_id=state.room_id,
        room_name=state.room_name,
        game_type=state.game_type,
        status=state.status,
        host_id=state.host_id,
        host_name=state.host_name,
        players=[player_info(m) for m in state.players],
        lobby=[player_info(m) for m in state.lobby],
        selected_players=list(state.selected),
        banned_users=[UserRef(user_id=b.user_id, username=b.username) for b in state.banned],
        spectators=[s.user_id for s in state.spectators],
        spectators_data=[
            SpectatorInfo(user_id=s.user_id, username=s.username, joined_at=s.joined_at)
            for s in state.spectators
        ],
        auto_players=[a.user_id for a in state.auto_players],
        disconnected_players=[
            DisconnectInfo(user_id=d.user_id, username=d.username, timeout_at=d.timeout_at)
            for d in state.disconnects
        ],
        current_turn=state.current_turn,
        turn_number=state.turn_number,
        turn_deadline=state.turn_deadline,
        winner_id=state.winner_id,
        is_password_protected=state.password_hash is not None,
        max_players=state.max_players,
        allow_spectators=state.allow_spectators,
        max_spectators=state.max_spectators,
        admin_spectator_id=state.admin_spectator_id,
        lobby_chat_enabled=state.lobby_chat_enabled,
        created_at=state.created_at,
        started_at=state.started_at,
        finished_at=state.finished_at,
        last_seq=state.seq,
    )


def role_of(state: RoomState, user_id: str) -> RoomRole | None:
    """The user's place in the room for `rejoin_role`; the host always counts (they may
    rejoin a room they were removed from)."""
    if state.host_id == user_id:
        return RoomRole.HOST
    if state.player(user_id) is not None:
        return RoomRole.PLAYER
    if state.lobby_member(user_id) is not None:
        return RoomRole.LOBBY
    if state.spectator(user_id) is not None:
        return RoomRole.SPECTATOR
    return None


def list_item(state: RoomState, user_id: str) -> RoomListItem | None:
    """The room as `user_id`'s room list shows it, or None when it must not be listed."""
    if state.is_banned(user_id):
        return None
    role = role_of(state, user_id)
    if state.status is RoomStatus.WAITING:
        pass
    elif state.status is RoomStatus.IN_PROGRESS:
        if role is None:
            return None
    else:
        return None
    in_game = state.status is RoomStatus.IN_PROGRESS
    return RoomListItem(
        room_id=state.room_id,
        room_name=state.room_name,
        game_type=state.game_type,
        host_id=state.host_id,
        host_name=state.host_name,
        status=state.status,
        player_count=len(state.players) if in_game else len(state.lobby),
        lobby_count=len(state.lobby),
        spectator_count=len(state.spectators),
        max_players=state.max_players,
        is_password_protected=state.password_hash is not None,
        allow_spectators=state.allow_spectators,
        can_rejoin=role is not None,
        rejoin_role=role,
        created_at=state.created_at,
    )


def listable(state: RoomState, user_id: str, game_type: str) -> bool:
    """Whether `user_id`'s room list of `game_type` shows the room (as `list_item`)."""
    return state.game_type == game_type and list_item(state, user_id) is not None


def known_username(state: RoomState, user_id: str) -> str:
    """The name the room knows `user_id` by (seated, lobby, spectating or banned), else the
    id itself."""
    for m in (*state.players, *state.lobby):
        if m.user_id == user_id:
            return m.username
    for s in state.spectators:
        if s.user_id == user_id:
            return s.username
    for b in state.banned:
        if b.user_id == user_id:
            return b.username
    return user_id
