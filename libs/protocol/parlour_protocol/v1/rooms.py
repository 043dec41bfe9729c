"""Rooms, lobby, spectators, moderation and ready phase: generic to every game.

Room-wide events carry `seq`; events to one user (`room_state`, `room_list`, `not_in_room`,
`user_muted`, ...) carry `seq: null`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints, computed_field, model_validator

from parlour_protocol.v1 import limits
from parlour_protocol.v1.base import (
    WHOLE_ROOM,
    ClientCommand,
    GameType,
    Password,
    RoomCommand,
    RoomId,
    RoomName,
    ServerEvent,
    TargetedRoomCommand,
    UserId,
    Username,
    WireModel,
)


class RoomStatus(StrEnum):
    WAITING = "waiting"
    IN_PROGRESS = "in_progress"
    FINISHED = "finished"
    ABANDONED = "abandoned"


class RoomRole(StrEnum):
    """The caller's place in a room, as `room_list.rejoin_role` reports it."""

    HOST = "host"
    PLAYER = "player"
    LOBBY = "lobby"
    SPECTATOR = "spectator"


class RemovalReason(StrEnum):
    HOST_LEFT = "host_left"
    ABANDONED = "abandoned"
    GAME_STARTED = "game_started"
    GAME_FINISHED = "game_finished"


# --- shared shapes ------------------------------------------------------------------------


class PlayerInfo(WireModel):
    """A lobby member or player."""

    user_id: UserId
    username: Username
    score: int = Field(default=0, ge=0)
    is_ready: bool = False
    joined_at: datetime | None = None


class UserRef(WireModel):
    user_id: UserId
    username: Username


class SpectatorInfo(WireModel):
    user_id: UserId
    username: Username
    joined_at: datetime | None = None


class DisconnectInfo(WireModel):
    """A player whose connection dropped during a game."""

    user_id: UserId
    username: Username
    timeout_at: datetime = Field(description="end of the reconnect grace; then others may vote")


class RoomSnapshot(WireModel):
    """The whole visible state of a room. The password (hash) is never part of it."""

    room_id: RoomId
    room_name: str
    game_type: GameType
    status: RoomStatus
    host_id: UserId
    host_name: Username
    players: list[PlayerInfo] = Field(default_factory=list)
    lobby: list[PlayerInfo] = Field(default_factory=list)
    selected_players: list[UserId] = Field(
        default_factory=list, description="lobby members the host picked for a seat, in order"
    )
    banned_users: list[UserRef] = Field(default_factory=list)
    spectators: list[UserId] = Field(default_factory=list, description="spectator ids")
    spectators_data: list[SpectatorInfo] = Field(
        default_factory=list, description="the same spectators with names and join times"
    )
    auto_players: list[UserId] = Field(default_factory=list)
    disconnected_players: list[DisconnectInfo] = Field(default_factory=list)
    current_turn: UserId | None = None
    turn_number: int = Field(default=0, ge=0)
    turn_deadline: datetime | None = None
    winner_id: UserId | None = None
    is_password_protected: bool = False
    max_players: int = Field(ge=limits.MIN_PLAYERS, le=limits.MAX_PLAYERS)
    allow_spectators: bool = True
    max_spectators: int = Field(default=limits.DEFAULT_MAX_SPECTATORS, ge=0)
    admin_spectator_id: UserId | None = Field(
        default=None, description="a spectator the host designated (informational)"
    )
    lobby_chat_enabled: bool = True
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_seq: int = Field(
        default=0, ge=0, description="the room's newest seq when this snapshot was taken"
    )


class RoomListItem(WireModel):
    room_id: RoomId
    room_name: str
    game_type: GameType
    host_id: UserId
    host_name: Username
    status: RoomStatus
    player_count: int = Field(ge=0, description="current number of players (in_progress) or lobby")
    lobby_count: int = Field(ge=0)
    spectator_count: int = Field(ge=0)
    max_players: int = Field(ge=limits.MIN_PLAYERS, le=limits.MAX_PLAYERS)
    is_password_protected: bool
    allow_spectators: bool
    can_rejoin: bool = Field(description="the caller is a member and can rejoin_room")
    rejoin_role: RoomRole | None = Field(default=None, description="the caller's role there")
    created_at: datetime


# --- client -> server ---------------------------------------------------------------------


RoomListCursor = Annotated[
    str,
    StringConstraints(
        max_length=limits.ID_MAX_LENGTH + 14, pattern=r"^[0-9]{13}\|[A-Za-z0-9_.:@-]*$"
    ),
]
"""Opaque to clients: pass back a `room_list.next_cursor` unchanged."""


class ListRooms(ClientCommand):
    """One page of the rooms the caller may see: without `cursor`, the first page, which
    starts with the caller's own rooms (any they are a member of, running games included),
    then the waiting rooms of others, oldest first; with the `next_cursor` of a page, the
    page after it. A page may hold fewer than `limit` rooms (rooms the caller may not see
    are skipped); only a null `next_cursor` means the end. Walking the cursors lists every
    room that stays listed during the walk exactly once."""

    type: Literal["games.command.list_rooms"] = "games.command.list_rooms"
    doc_answer: ClassVar[str] = "`games.event.room_list`"
    game_type: GameType = "bigger_dice"
    cursor: RoomListCursor | None = Field(
        default=None, description="`next_cursor` of the previous page; none = first page"
    )
    limit: int = Field(
        default=limits.ROOM_LIST_PAGE_MAX,
        ge=1,
        le=limits.ROOM_LIST_PAGE_MAX,
        description="most rooms in the page",
    )


class CreateRoom(ClientCommand):
    """Create a room; the creator becomes host and first lobby member."""

    type: Literal["games.command.create_room"] = "games.command.create_room"
    doc_answer: ClassVar[str] = "`room_created` (broadcast), then `room_state` to the creator"
    game_type: GameType
    room_name: RoomName
    password: Password = None
    max_players: int = Field(default=2, ge=limits.MIN_PLAYERS, le=limits.MAX_PLAYERS)
    allow_spectators: bool = True


class JoinRoom(ClientCommand):
    """Join a waiting room's lobby by name."""

    type: Literal["games.command.join_room"] = "games.command.join_room"
    doc_answer: ClassVar[str] = "`room_state` to the joiner, then `lobby_joined` to the room"
    room_name: RoomName
    game_type: GameType = "bigger_dice"
    password: Password = None


class JoinAsSpectator(ClientCommand):
    type: Literal["games.command.join_as_spectator"] = "games.command.join_as_spectator"
    doc_answer: ClassVar[str] = (
        "`room_state` (and the game's state event when running) "
        "to the joiner, then `spectator_joined` to the room"
    )
    room_name: RoomName
    game_type: GameType = "bigger_dice"
    password: Password = None


class RejoinRoom(ClientCommand):
    """Come back to a room by id (preferred) or name. With `last_seq` the gateway replays the
    room events after it, or sends a fresh `room_state` when they are no longer kept."""

    type: Literal["games.command.rejoin_room"] = "games.command.rejoin_room"
    doc_answer: ClassVar[str] = (
        "members: `room_state`, the game's state event, "
        "`player_rejoined`/`player_auto_disabled` as they apply, or the replay of the room events "
        "after `last_seq`; non-members and banned users: `not_in_room`"
    )
    room_id: RoomId | None = None
    room_name: RoomName | None = None
    game_type: GameType = "bigger_dice"
    last_seq: int | None = Field(
        default=None, ge=0, description="the newest room `seq` the client has applied"
    )

    @model_validator(mode="after")
    def _needs_id_or_name(self) -> RejoinRoom:
        if self.room_id is None and self.room_name is None:
            raise ValueError("room_id or room_name is required")
        return self


class LeaveRoom(RoomCommand):
    """Leave the room. A player leaving a running game counts as a disconnect."""

    type: Literal["games.command.leave_room"] = "games.command.leave_room"
    doc_answer: ClassVar[str] = (
        "`player_left` (a player of a running game: "
        "`player_disconnected`); `room_removed` first when the room closes"
    )


class StopSpectating(RoomCommand):
    type: Literal["games.command.stop_spectating"] = "games.command.stop_spectating"
    doc_answer: ClassVar[str] = "`spectator_left`"


class Ready(RoomCommand):
    """A selected player declares ready; the game starts when every seat is ready."""

    type: Literal["games.command.ready"] = "games.command.ready"
    doc_answer: ClassVar[str] = (
        "`player_ready`; when every seat is ready the game starts "
        "(`game_started`, `turn_changed`, `room_removed` reason `game_started`)"
    )


class SetReady(RoomCommand):
    type: Literal["games.command.set_ready"] = "games.command.set_ready"
    doc_answer: ClassVar[str] = "`player_ready_changed` (`is_ready` false un-readies)"
    is_ready: bool


class StartGame(RoomCommand):
    """Host starts the game; every seat must be selected and ready."""

    type: Literal["games.command.start_game"] = "games.command.start_game"
    doc_answer: ClassVar[str] = "`game_started`, `turn_changed`, `room_removed`"


class SelectPlayer(TargetedRoomCommand):
    type: Literal["games.command.select_player"] = "games.command.select_player"
    doc_answer: ClassVar[str] = (
        "`player_selected`; on the last seat `removed_from_game` to "
        "the unselected, `game_starting` and `room_state`"
    )


class DeselectPlayer(TargetedRoomCommand):
    type: Literal["games.command.deselect_player"] = "games.command.deselect_player"
    doc_answer: ClassVar[str] = "`player_deselected`, `selected_players_updated`"


class KickPlayer(TargetedRoomCommand):
    type: Literal["games.command.kick_player"] = "games.command.kick_player"
    doc_answer: ClassVar[str] = "`player_kicked`"


class KickSpectator(TargetedRoomCommand):
    type: Literal["games.command.kick_spectator"] = "games.command.kick_spectator"
    doc_answer: ClassVar[str] = (
        "`spectator_kicked`; the spectator also gets `system.error` `kicked_from_room`"
    )


class BanPlayer(TargetedRoomCommand):
    type: Literal["games.command.ban_player"] = "games.command.ban_player"
    doc_answer: ClassVar[str] = "`player_banned`"


class UnbanPlayer(TargetedRoomCommand):
    type: Literal["games.command.unban_player"] = "games.command.unban_player"
    doc_answer: ClassVar[str] = "`player_unbanned`"


class VoteKickDisconnected(TargetedRoomCommand):
    """Vote to hand a disconnected player's turns to the server after their grace ran out."""

    type: Literal["games.command.vote_kick_disconnected"] = "games.command.vote_kick_disconnected"
    doc_answer: ClassVar[str] = (
        "`kick_vote_received`; when the vote passes "
        "`player_auto_enabled` (reason `vote_kick`) and the server rolls for the player"
    )


class DesignateAdminSpectator(TargetedRoomCommand):
    type: Literal["games.command.designate_admin_spectator"] = (
        "games.command.designate_admin_spectator"
    )
    doc_answer: ClassVar[str] = "`admin_spectator_designated`"


# --- server -> client ---------------------------------------------------------------------


class RoomCreated(ServerEvent):
    """Broadcast to the sockets that listed this game's rooms, so their lists update live."""

    type: Literal["games.event.room_created"] = "games.event.room_created"
    doc_audience: ClassVar[str] = "broadcast: sockets that listed the game's rooms - `seq` null"
    room_id: RoomId
    room_name: str
    game_type: GameType
    host_id: UserId
    host_name: Username
    is_password_protected: bool
    max_players: int = Field(ge=limits.MIN_PLAYERS, le=limits.MAX_PLAYERS)
    allow_spectators: bool

    @computed_field  # type: ignore[prop-decorator]
    @property
    def player_count(self) -> int:
        """The original wire's name for the configured seats (= `max_players`); sent for
        clients written against it, ignored on input."""
        return self.max_players


class RoomStateEvent(ServerEvent):
    """A full snapshot, to one user (create, join, rejoin, spectate, game starting)."""

    type: Literal["games.event.room_state"] = "games.event.room_state"
    doc_audience: ClassVar[str] = (
        "one user (creator, joiner, rejoiner, new spectator, every seat "
        "when selection completes) - `seq` null; `room.last_seq` says where the room stands"
    )
    room: RoomSnapshot


class RoomList(ServerEvent):
    """One page of rooms (see `list_rooms`), at most `ROOM_LIST_PAGE_MAX`."""

    type: Literal["games.event.room_list"] = "games.event.room_list"
    doc_audience: ClassVar[str] = "the requesting socket - `seq` null"
    game_type: GameType
    rooms: list[RoomListItem]
    cursor: RoomListCursor | None = Field(
        default=None, description="the `cursor` this page was asked for (null: first page)"
    )
    next_cursor: RoomListCursor | None = Field(
        default=None, description="ask `list_rooms` with it for the next page; null: last page"
    )


class RoomRemoved(ServerEvent):
    """Broadcast: the room is gone from lobby lists."""

    type: Literal["games.event.room_removed"] = "games.event.room_removed"
    doc_audience: ClassVar[str] = "broadcast: sockets that listed the game's rooms - `seq` null"
    room_id: RoomId
    room_name: str
    game_type: GameType
    reason: RemovalReason


class NotInRoom(ServerEvent):
    """Answer to a rejoin by a non-member: enough to offer "enter room"."""

    type: Literal["games.event.not_in_room"] = "games.event.not_in_room"
    doc_audience: ClassVar[str] = "the rejoining socket - `seq` null"
    room_id: RoomId
    room_name: str
    is_password_protected: bool
    status: RoomStatus
    allow_spectators: bool


class LobbyJoined(ServerEvent):
    type: Literal["games.event.lobby_joined"] = "games.event.lobby_joined"
    doc_audience: ClassVar[str] = WHOLE_ROOM
    room_id: RoomId
    room_name: str
    player: PlayerInfo


class PlayerSelected(ServerEvent):
    type: Literal["games.event.player_selected"] = "games.event.player_selected"
    doc_audience: ClassVar[str] = WHOLE_ROOM
    room_id: RoomId
    player: PlayerInfo


class PlayerDeselected(ServerEvent):
    type: Literal["games.event.player_deselected"] = "games.event.player_deselected"
    doc_audience: ClassVar[str] = WHOLE_ROOM
    room_id: RoomId
    user_id: UserId
    username: Username


class SelectedPlayersUpdated(ServerEvent):
    type: Literal["games.event.selected_players_updated"] = "games.event.selected_players_updated"
    doc_audience: ClassVar[str] = WHOLE_ROOM
    room_id: RoomId
    selected_players: list[UserId]


class GameStarting(ServerEvent):
    """Every seat is selected: the ready phase begins."""

    type: Literal["games.event.game_starting"] = "games.event.game_starting"
    doc_audience: ClassVar[str] = (
        "each selected player and each spectator (audience `users`), "
        "followed by a fresh `room_state` - `seq` null"
    )
    room_id: RoomId
    players: list[PlayerInfo]


class RemovedFromGame(ServerEvent):
    type: Literal["games.event.removed_from_game"] = "games.event.removed_from_game"
    doc_audience: ClassVar[str] = (
        "each unselected lobby member, when every seat is taken - `seq` null"
    )
    room_id: RoomId
    reason: str
    message: str


class PlayerReady(ServerEvent):
    type: Literal["games.event.player_ready"] = "games.event.player_ready"
    doc_audience: ClassVar[str] = WHOLE_ROOM
    room_id: RoomId
    user_id: UserId
    username: Username


class PlayerReadyChanged(ServerEvent):
    type: Literal["games.event.player_ready_changed"] = "games.event.player_ready_changed"
    doc_audience: ClassVar[str] = WHOLE_ROOM
    room_id: RoomId
    user_id: UserId
    username: Username
    is_ready: bool


class StartedPlayer(WireModel):
    id: UserId
    name: Username


class GameStarted(ServerEvent):
    type: Literal["games.event.game_started"] = "games.event.game_started"
    doc_audience: ClassVar[str] = WHOLE_ROOM
    room_id: RoomId
    game_type: GameType
    players: list[StartedPlayer]
    first_turn: UserId


class TurnChanged(ServerEvent):
    """Whose turn it is; `turn_deadline` is when the server plays for them."""

    type: Literal["games.event.turn_changed"] = "games.event.turn_changed"
    doc_audience: ClassVar[str] = WHOLE_ROOM
    room_id: RoomId
    current_turn: UserId
    turn_number: int = Field(ge=1, description="1 for the first turn, +1 on every change")
    turn_deadline: datetime | None = Field(
        default=None, description="when the server plays for `current_turn`"
    )


class PlayerLeft(ServerEvent):
    type: Literal["games.event.player_left"] = "games.event.player_left"
    doc_audience: ClassVar[str] = WHOLE_ROOM + "; the leaver receives it too"
    room_id: RoomId
    player_id: UserId
    player_name: Username


class PlayerKicked(ServerEvent):
    type: Literal["games.event.player_kicked"] = "games.event.player_kicked"
    doc_audience: ClassVar[str] = WHOLE_ROOM + "; the kicked user receives it too"
    room_id: RoomId
    player_id: UserId
    player_name: Username


class PlayerBanned(ServerEvent):
    type: Literal["games.event.player_banned"] = "games.event.player_banned"
    doc_audience: ClassVar[str] = WHOLE_ROOM + "; the banned user receives it too"
    room_id: RoomId
    player_id: UserId
    player_name: Username


class PlayerUnbanned(ServerEvent):
    type: Literal["games.event.player_unbanned"] = "games.event.player_unbanned"
    doc_audience: ClassVar[str] = WHOLE_ROOM
    room_id: RoomId
    player_id: UserId
    player_name: Username


class PlayerDisconnected(ServerEvent):
    """A player's last socket dropped during the game; they have until `timeout_at`."""

    type: Literal["games.event.player_disconnected"] = "games.event.player_disconnected"
    doc_audience: ClassVar[str] = (
        WHOLE_ROOM + "; repeated to a rejoining user for each "
        "still-pending disconnect with `seq` null"
    )
    room_id: RoomId
    user_id: UserId
    username: Username
    timeout_at: datetime = Field(description="end of the reconnect grace; then others may vote")


class PlayerRejoined(ServerEvent):
    type: Literal["games.event.player_rejoined"] = "games.event.player_rejoined"
    doc_audience: ClassVar[str] = WHOLE_ROOM
    room_id: RoomId
    user_id: UserId
    username: Username


class KickVoteReceived(ServerEvent):
    """A vote against a disconnected player; the vote passes at `votes_required`."""

    type: Literal["games.event.kick_vote_received"] = "games.event.kick_vote_received"
    doc_audience: ClassVar[str] = WHOLE_ROOM
    room_id: RoomId
    target_user_id: UserId
    voter_id: UserId
    votes: int = Field(ge=1)
    votes_required: int = Field(ge=1)


class PlayerAutoEnabled(ServerEvent):
    type: Literal["games.event.player_auto_enabled"] = "games.event.player_auto_enabled"
    doc_audience: ClassVar[str] = WHOLE_ROOM
    room_id: RoomId
    user_id: UserId
    username: Username
    reason: Literal["voluntary", "vote_kick"] = "voluntary"


class PlayerAutoDisabled(ServerEvent):
    type: Literal["games.event.player_auto_disabled"] = "games.event.player_auto_disabled"
    doc_audience: ClassVar[str] = WHOLE_ROOM
    room_id: RoomId
    user_id: UserId
    username: Username


class SpectatorJoined(ServerEvent):
    type: Literal["games.event.spectator_joined"] = "games.event.spectator_joined"
    doc_audience: ClassVar[str] = WHOLE_ROOM
    room_id: RoomId
    spectator: SpectatorInfo
    spectator_count: int = Field(ge=0)


class SpectatorLeft(ServerEvent):
    type: Literal["games.event.spectator_left"] = "games.event.spectator_left"
    doc_audience: ClassVar[str] = WHOLE_ROOM + "; the leaver receives it too"
    room_id: RoomId
    user_id: UserId
    username: Username
    spectator_count: int = Field(ge=0)


class SpectatorKicked(ServerEvent):
    type: Literal["games.event.spectator_kicked"] = "games.event.spectator_kicked"
    doc_audience: ClassVar[str] = WHOLE_ROOM + "; the kicked spectator receives it too"
    room_id: RoomId
    user_id: UserId
    username: Username
    spectator_count: int = Field(ge=0)


class AdminSpectatorDesignated(ServerEvent):
    type: Literal["games.event.admin_spectator_designated"] = (
        "games.event.admin_spectator_designated"
    )
    doc_audience: ClassVar[str] = WHOLE_ROOM
    room_id: RoomId
    user_id: UserId
    username: Username


CLIENT_COMMANDS: tuple[type[ClientCommand], ...] = (
    ListRooms,
    CreateRoom,
    JoinRoom,
    JoinAsSpectator,
    RejoinRoom,
    LeaveRoom,
    StopSpectating,
    Ready,
    SetReady,
    StartGame,
    SelectPlayer,
    DeselectPlayer,
    KickPlayer,
    KickSpectator,
    BanPlayer,
    UnbanPlayer,
    VoteKickDisconnected,
    DesignateAdminSpectator,
)

SERVER_EVENTS: tuple[type[ServerEvent], ...] = (
    RoomCreated,
    RoomStateEvent,
    RoomList,
    RoomRemoved,
    NotInRoom,
    LobbyJoined,
    PlayerSelected,
    PlayerDeselected,
    SelectedPlayersUpdated,
    GameStarting,
    RemovedFromGame,
    PlayerReady,
    PlayerReadyChanged,
    GameStarted,
    TurnChanged,
    PlayerLeft,
    PlayerKicked,
    PlayerBanned,
    PlayerUnbanned,
    PlayerDisconnected,
    PlayerRejoined,
    KickVoteReceived,
    PlayerAutoEnabled,
    PlayerAutoDisabled,
    SpectatorJoined,
    SpectatorLeft,
    SpectatorKicked,
    AdminSpectatorDesignated,
)
