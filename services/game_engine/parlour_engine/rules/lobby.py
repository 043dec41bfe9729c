"""Lobby rules of one waiting room: the host's seat selection and moderation (kick, ban,
unban, admin spectator), the ready phase, and the start of the game.

(Not to be confused with `parlour_engine.lobby`, the worker's reads across rooms: the room
list index and the per-user room caps.)
"""

from __future__ import annotations

from parlour_engine.rules.context import Ctx, Handlers, Rejected
from parlour_engine.rules.rooms import remove_spectator
from parlour_engine.rules.state import Banned, Member, RoomState
from parlour_engine.rules.views import known_username, player_info, snapshot
from parlour_protocol.v1 import ERROR_MEANINGS, ErrorCode
from parlour_protocol.v1 import rooms as room_msgs
from parlour_protocol.v1.limits import MAX_BANNED_PER_ROOM
from parlour_protocol.v1.rooms import RemovalReason, RoomStatus
from parlour_protocol.v1.system import Error

HANDLERS = Handlers()


def _require_host(ctx: Ctx) -> None:
    if ctx.actor_id != ctx.state.host_id:
        raise Rejected(ErrorCode.NOT_ADMIN)


def _require_waiting(ctx: Ctx) -> None:
    if ctx.state.status is not RoomStatus.WAITING:
        raise Rejected(ErrorCode.GAME_IN_PROGRESS)


# --- seat selection -----------------------------------------------------------------------


@HANDLERS.on(room_msgs.SelectPlayer)
def _select_player(ctx: Ctx, payload: room_msgs.SelectPlayer) -> None:
    _require_host(ctx)
    _require_waiting(ctx)
    st = ctx.state
    target = st.lobby_member(payload.target_user_id)
    if target is None or st.is_banned(target.user_id):
        raise Rejected(ErrorCode.PLAYER_NOT_IN_LOBBY)
    if target.user_id in st.selected:
        raise Rejected(ErrorCode.ALREADY_SELECTED)
    if len(st.selected) >= st.max_players:
        raise Rejected(ErrorCode.ROOM_FULL, "Every seat is already selected.")
    st.selected = (*st.selected, target.user_id)
    ctx.room(room_msgs.PlayerSelected(room_id=st.room_id, player=player_info(target)))
    if len(st.selected) == st.max_players:
        _seats_filled(ctx)


def _seats_filled(ctx: Ctx) -> None:
    """Every seat is selected: the unselected leave the lobby and the ready phase begins."""
    st = ctx.state
    removed = [m for m in st.lobby if m.user_id not in st.selected]
    st.lobby = tuple(m for m in st.lobby if m.user_id in st.selected)
    for member in removed:
        ctx.user(
            member.user_id,
            room_msgs.RemovedFromGame(
                room_id=st.room_id,
                reason="not_selected",
                message="Every seat was filled by other players.",
            ),
        )
    seated = [*st.selected, *(s.user_id for s in st.spectators)]
    ctx.users(
        seated,
        room_msgs.GameStarting(
            room_id=st.room_id, players=[player_info(m) for m in _selected_members(st)]
        ),
    )
    ctx.users(seated, room_msgs.RoomStateEvent(room=snapshot(st)))
    _start_if_ready(ctx)


def _selected_members(st: RoomState) -> list[Member]:
    by_id = {m.user_id: m for m in st.lobby}
    return [by_id[uid] for uid in st.selected if uid in by_id]


def _all_ready(st: RoomState) -> bool:
    members = _selected_members(st)
    return len(members) == st.max_players and all(m.is_ready for m in members)


def _start_if_ready(ctx: Ctx) -> None:
    if _all_ready(ctx.state):
        _start_game_now(ctx)


def _start_game_now(ctx: Ctx) -> None:
    st = ctx.state
    game = ctx.config.games.get(st.game_type)
    if game is None:
        raise Rejected(ErrorCode.UNKNOWN_GAME)
    seated = [m.model_copy(update={"score": 0, "is_ready": True}) for m in _selected_members(st)]
    seated_ids = {m.user_id for m in seated}
    st.players = tuple(seated)
    st.lobby = tuple(m for m in st.lobby if m.user_id not in seated_ids)
    st.selected = ()
    st.status = RoomStatus.IN_PROGRESS
    st.started_at = ctx.now
    st.lobby_chat_enabled = False
    ctx.room(
        room_msgs.GameStarted(
            room_id=st.room_id,
            game_type=st.game_type,
            players=[room_msgs.StartedPlayer(id=m.user_id, name=m.username) for m in seated],
            first_turn=seated[0].user_id,
        )
    )
    game.start(ctx)
    ctx.broadcast(
        room_msgs.RoomRemoved(
            room_id=st.room_id,
            room_name=st.room_name,
            game_type=st.game_type,
            reason=RemovalReason.GAME_STARTED,
        )
    )


@HANDLERS.on(room_msgs.DeselectPlayer)
def _deselect_player(ctx: Ctx, payload: room_msgs.DeselectPlayer) -> None:
    _require_host(ctx)
    _require_waiting(ctx)
    st = ctx.state
    uid = payload.target_user_id
    if uid not in st.selected:
        raise Rejected(ErrorCode.NOT_SELECTED)
    st.selected = tuple(s for s in st.selected if s != uid)
    st.lobby = tuple(
        m.model_copy(update={"is_ready": False}) if m.user_id == uid else m for m in st.lobby
    )
    member = st.lobby_member(uid)
    ctx.room(
        room_msgs.PlayerDeselected(
            room_id=st.room_id, user_id=uid, username=member.username if member else uid
        )
    )
    ctx.room(
        room_msgs.SelectedPlayersUpdated(room_id=st.room_id, selected_players=list(st.selected))
    )


# --- moderation ---------------------------------------------------------------------------


@HANDLERS.on(room_msgs.KickPlayer)
def _kick_player(ctx: Ctx, payload: room_msgs.KickPlayer) -> None:
    _require_host(ctx)
    st = ctx.state
    uid = payload.target_user_id
    if uid == ctx.actor_id:
        raise Rejected(ErrorCode.CANNOT_KICK_SELF)
    member = st.lobby_member(uid)
    if member is None:
        raise Rejected(ErrorCode.PLAYER_NOT_IN_LOBBY)
    was_selected = uid in st.selected
    st.lobby = tuple(m for m in st.lobby if m.user_id != uid)
    st.selected = tuple(s for s in st.selected if s != uid)
    ctx.room(
        room_msgs.PlayerKicked(room_id=st.room_id, player_id=uid, player_name=member.username),
        also=(uid,),
    )
    if was_selected:
        ctx.room(
            room_msgs.SelectedPlayersUpdated(room_id=st.room_id, selected_players=list(st.selected))
        )


@HANDLERS.on(room_msgs.KickSpectator)
def _kick_spectator(ctx: Ctx, payload: room_msgs.KickSpectator) -> None:
    _require_host(ctx)
    uid = payload.target_user_id
    if uid == ctx.actor_id:
        raise Rejected(ErrorCode.CANNOT_KICK_SELF)
    if ctx.state.spectator(uid) is None:
        raise Rejected(ErrorCode.SPECTATOR_NOT_FOUND)
    remove_spectator(ctx, uid, kicked=True)
    ctx.user(
        uid,
        Error(
            code=ErrorCode.KICKED_FROM_ROOM,
            message=ERROR_MEANINGS[ErrorCode.KICKED_FROM_ROOM],
            room_id=ctx.state.room_id,
            timestamp=ctx.now,
        ),
    )


@HANDLERS.on(room_msgs.BanPlayer)
def _ban_player(ctx: Ctx, payload: room_msgs.BanPlayer) -> None:
    _require_host(ctx)
    st = ctx.state
    uid = payload.target_user_id
    if uid == ctx.actor_id:
        raise Rejected(ErrorCode.CANNOT_BAN_SELF)
    if st.is_banned(uid):
        ctx.read_only = True
        return
    if len(st.banned) >= MAX_BANNED_PER_ROOM:
        raise Rejected(
            ErrorCode.LIMIT_REACHED,
            f"The ban list holds at most {MAX_BANNED_PER_ROOM} users (MAX_BANNED_PER_ROOM); "
            "unban someone first.",
        )
    username = known_username(st, uid)
    was_selected = uid in st.selected
    seated = st.player(uid) is not None
    st.banned = (*st.banned, Banned(user_id=uid, username=username))
    st.lobby = tuple(m for m in st.lobby if m.user_id != uid)
    st.selected = tuple(s for s in st.selected if s != uid)
    st.spectators = tuple(s for s in st.spectators if s.user_id != uid)
    if st.admin_spectator_id == uid:
        st.admin_spectator_id = None
    if seated:
        # a banned player loses their seat: nobody (the server included) plays for them again
        st.players = tuple(m for m in st.players if m.user_id != uid)
        st.disconnects = tuple(d for d in st.disconnects if d.user_id != uid)
        st.auto_players = tuple(a for a in st.auto_players if a.user_id != uid)
    ctx.room(
        room_msgs.PlayerBanned(room_id=st.room_id, player_id=uid, player_name=username),
        also=(uid,),
    )
    if seated and st.status is RoomStatus.IN_PROGRESS:
        game = ctx.config.games.get(st.game_type)
        if game is not None:
            game.on_player_removed(ctx, uid)
    if was_selected:
        ctx.room(
            room_msgs.SelectedPlayersUpdated(room_id=st.room_id, selected_players=list(st.selected))
        )


@HANDLERS.on(room_msgs.UnbanPlayer)
def _unban_player(ctx: Ctx, payload: room_msgs.UnbanPlayer) -> None:
    _require_host(ctx)
    st = ctx.state
    uid = payload.target_user_id
    if not st.is_banned(uid):
        raise Rejected(ErrorCode.NOT_BANNED)
    username = known_username(st, uid)
    st.banned = tuple(b for b in st.banned if b.user_id != uid)
    ctx.room(room_msgs.PlayerUnbanned(room_id=st.room_id, player_id=uid, player_name=username))


@HANDLERS.on(room_msgs.DesignateAdminSpectator)
def _designate_admin_spectator(ctx: Ctx, payload: room_msgs.DesignateAdminSpectator) -> None:
    _require_host(ctx)
    st = ctx.state
    spectator = st.spectator(payload.target_user_id)
    if spectator is None:
        raise Rejected(ErrorCode.SPECTATOR_NOT_FOUND)
    st.admin_spectator_id = spectator.user_id
    ctx.room(
        room_msgs.AdminSpectatorDesignated(
            room_id=st.room_id, user_id=spectator.user_id, username=spectator.username
        )
    )


# --- ready and start ----------------------------------------------------------------------


def _selected_self(ctx: Ctx) -> Member:
    _require_waiting(ctx)
    st = ctx.state
    member = st.lobby_member(ctx.actor_id)
    if member is None or member.user_id not in st.selected:
        raise Rejected(ErrorCode.NOT_SELECTED)
    return member


def _set_ready_flag(st: RoomState, uid: str, ready: bool) -> None:
    st.lobby = tuple(
        m.model_copy(update={"is_ready": ready}) if m.user_id == uid else m for m in st.lobby
    )


@HANDLERS.on(room_msgs.Ready)
def _ready(ctx: Ctx, payload: room_msgs.Ready) -> None:
    member = _selected_self(ctx)
    st = ctx.state
    _set_ready_flag(st, member.user_id, True)
    ctx.room(
        room_msgs.PlayerReady(room_id=st.room_id, user_id=member.user_id, username=member.username)
    )
    _start_if_ready(ctx)


@HANDLERS.on(room_msgs.SetReady)
def _set_ready(ctx: Ctx, payload: room_msgs.SetReady) -> None:
    member = _selected_self(ctx)
    st = ctx.state
    _set_ready_flag(st, member.user_id, payload.is_ready)
    ctx.room(
        room_msgs.PlayerReadyChanged(
            room_id=st.room_id,
            user_id=member.user_id,
            username=member.username,
            is_ready=payload.is_ready,
        )
    )
    if payload.is_ready:
        _start_if_ready(ctx)


@HANDLERS.on(room_msgs.StartGame)
def _start_game(ctx: Ctx, payload: room_msgs.StartGame) -> None:
    _require_host(ctx)
    _require_waiting(ctx)
    if not _all_ready(ctx.state):
        raise Rejected(ErrorCode.PLAYERS_NOT_READY)
    _start_game_now(ctx)
