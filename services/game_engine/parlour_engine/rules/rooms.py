"""Room membership rules: creating a room, joining it (as lobby member or spectator, with the
room password's attempt limits), rejoining, leaving and stopping spectating."""

from __future__ import annotations

from datetime import datetime, timedelta

from parlour_engine.rules.absence import mark_disconnected
from parlour_engine.rules.context import Ctx, Handlers, Rejected, derive_id, refusal
from parlour_engine.rules.password import hash_password, verify_password
from parlour_engine.rules.state import Member, RoomState, Spectator
from parlour_engine.rules.types import Outcome, Rng, RulesConfig
from parlour_engine.rules.views import player_info, snapshot
from parlour_protocol.v1 import GAMES, CommandEnvelope, ErrorCode
from parlour_protocol.v1 import rooms as room_msgs
from parlour_protocol.v1.rooms import RemovalReason, RoomStatus

HANDLERS = Handlers()


# --- creating and joining -----------------------------------------------------------------


def create_room(
    state: RoomState | None,
    command: CommandEnvelope,
    payload: room_msgs.CreateRoom,
    rng: Rng,
    now: datetime,
    config: RulesConfig,
) -> Outcome:
    """`create_room` is the one command without a room to apply to: the whole `Outcome` is
    built here. `state` is what the worker found under the new room's id (normally None)."""
    spec = GAMES.get(payload.game_type)
    if spec is None or config.games.get(payload.game_type) is None:
        return refusal(None, command, now, Rejected(ErrorCode.UNKNOWN_GAME))
    if not spec.min_players <= payload.max_players <= spec.max_players:
        return refusal(
            None,
            command,
            now,
            Rejected(
                ErrorCode.INVALID_MESSAGE,
                f"max_players must be {spec.min_players}..{spec.max_players}",
            ),
        )
    if state is not None:
        # the worker found a room under this id already: the id is not ours to reuse
        return refusal(state, command, now, Rejected(ErrorCode.ROOM_NAME_TAKEN))
    actor = command.actor
    room_id = command.room_id or str(derive_id(command.msg_id, "room"))
    new = RoomState(
        room_id=room_id,
        room_name=payload.room_name,
        game_type=payload.game_type,
        host_id=actor.user_id,
        host_name=actor.username,
        password_hash=(
            hash_password(payload.password, rng, config.scrypt_n) if payload.password else None
        ),
        max_players=payload.max_players,
        allow_spectators=payload.allow_spectators,
        max_spectators=config.max_spectators,
        created_at=now,
        lobby=(Member(user_id=actor.user_id, username=actor.username, joined_at=now),),
    )
    ctx = Ctx(new, command, rng, now, config)
    ctx.broadcast(
        room_msgs.RoomCreated(
            room_id=room_id,
            room_name=new.room_name,
            game_type=new.game_type,
            host_id=new.host_id,
            host_name=new.host_name,
            is_password_protected=new.password_hash is not None,
            max_players=new.max_players,
            allow_spectators=new.allow_spectators,
        )
    )
    ctx.user(actor.user_id, room_msgs.RoomStateEvent(room=snapshot(new)))
    new.version = 1
    return Outcome(state=new, emits=tuple(ctx.emits), changed=True)


class WrongPassword(Rejected):
    """A rejection whose recorded attempt must be stored: `apply` keeps the handler's state
    (only the attempt was written before the raise) instead of dropping it."""


def _check_password(ctx: Ctx, password: str | None) -> None:
    """Refuse when the user used up their attempts; record a wrong password (a rejection
    that changes state, see `Outcome`)."""
    st = ctx.state
    if st.password_hash is None:
        return
    window_start = ctx.now - timedelta(seconds=ctx.config.password_window_seconds)
    # only failures inside the window count, so older ones are dropped here
    failures: dict[str, tuple[datetime, ...]] = {}
    for user_id, times in st.password_failures.items():
        kept = tuple(t for t in times if t > window_start)
        if kept:
            failures[user_id] = kept
    recent = failures.get(ctx.actor_id, ())
    if len(recent) >= ctx.config.password_attempts:
        raise Rejected(ErrorCode.TOO_MANY_ATTEMPTS)
    if not recent and len(failures) >= ctx.config.password_failure_users:
        raise Rejected(
            ErrorCode.TOO_MANY_ATTEMPTS,
            f"{ctx.config.password_failure_users} users (password_failure_users) tried a wrong "
            "password for this room recently; try again in a few minutes.",
        )
    if password is not None and verify_password(password, st.password_hash):
        failures.pop(ctx.actor_id, None)
        st.password_failures = failures
        return
    failures[ctx.actor_id] = (*recent, ctx.now)
    st.password_failures = failures
    raise WrongPassword(ErrorCode.WRONG_PASSWORD)


@HANDLERS.on(room_msgs.JoinRoom)
def _join_room(ctx: Ctx, payload: room_msgs.JoinRoom) -> None:
    st = ctx.state
    uid = ctx.actor_id
    if st.game_type != payload.game_type or st.status is not RoomStatus.WAITING:
        # a started room is no longer joinable by name; its members come back by rejoin_room
        raise Rejected(ErrorCode.ROOM_NOT_FOUND, "Room not found or its game already started.")
    if st.is_banned(uid):
        raise Rejected(ErrorCode.USER_BANNED)
    if st.is_member(uid):
        raise Rejected(ErrorCode.ALREADY_IN_ROOM)
    if len(st.lobby) >= ctx.config.max_lobby:
        raise Rejected(ErrorCode.ROOM_FULL)
    _check_password(ctx, payload.password)
    member = Member(user_id=uid, username=ctx.actor_name, joined_at=ctx.now)
    st.lobby = (*st.lobby, member)
    ctx.user(uid, room_msgs.RoomStateEvent(room=snapshot(st)))
    ctx.room(
        room_msgs.LobbyJoined(
            room_id=st.room_id, room_name=st.room_name, player=player_info(member)
        )
    )


@HANDLERS.on(room_msgs.JoinAsSpectator)
def _join_as_spectator(ctx: Ctx, payload: room_msgs.JoinAsSpectator) -> None:
    st = ctx.state
    uid = ctx.actor_id
    if st.game_type != payload.game_type or st.status not in (
        RoomStatus.WAITING,
        RoomStatus.IN_PROGRESS,
    ):
        raise Rejected(ErrorCode.ROOM_NOT_FOUND)
    if not st.allow_spectators:
        raise Rejected(ErrorCode.SPECTATORS_NOT_ALLOWED)
    if st.is_banned(uid):
        raise Rejected(ErrorCode.USER_BANNED)
    if st.is_member(uid):
        raise Rejected(ErrorCode.ALREADY_IN_ROOM)
    if len(st.spectators) >= st.max_spectators:
        raise Rejected(ErrorCode.SPECTATOR_CAPACITY_FULL)
    _check_password(ctx, payload.password)
    spectator = Spectator(user_id=uid, username=ctx.actor_name, joined_at=ctx.now)
    st.spectators = (*st.spectators, spectator)
    ctx.user(uid, room_msgs.RoomStateEvent(room=snapshot(st)))
    game = ctx.config.games.get(st.game_type)
    if game is not None and st.game is not None:
        game_state = game.snapshot_for(st, uid)
        if game_state is not None:
            ctx.user(uid, game_state)
    ctx.room(
        room_msgs.SpectatorJoined(
            room_id=st.room_id,
            spectator=room_msgs.SpectatorInfo(
                user_id=uid, username=ctx.actor_name, joined_at=ctx.now
            ),
            spectator_count=len(st.spectators),
        )
    )


@HANDLERS.on(room_msgs.RejoinRoom)
def _rejoin_room(ctx: Ctx, payload: room_msgs.RejoinRoom) -> None:
    st = ctx.state
    uid = ctx.actor_id
    if payload.room_id is None and st.game_type != payload.game_type:
        raise Rejected(ErrorCode.ROOM_NOT_FOUND)
    if st.is_banned(uid) or (not st.is_member(uid) and st.host_id != uid):
        ctx.read_only = True
        ctx.reply(
            room_msgs.NotInRoom(
                room_id=st.room_id,
                room_name=st.room_name,
                is_password_protected=st.password_hash is not None,
                status=st.status,
                allow_spectators=st.allow_spectators,
            )
        )
        return
    if not st.is_member(uid):
        # the host may always come back, even to a room they left; they land in the lobby
        member = Member(user_id=uid, username=ctx.actor_name, joined_at=ctx.now)
        st.lobby = (*st.lobby, member)
        ctx.user(uid, room_msgs.RoomStateEvent(room=snapshot(st)))
        ctx.room(
            room_msgs.LobbyJoined(
                room_id=st.room_id, room_name=st.room_name, player=player_info(member)
            )
        )
        return
    playing = st.status is RoomStatus.IN_PROGRESS and st.player(uid) is not None
    auto = st.auto_player(uid)
    regains_control = playing and auto is not None and auto.reason == "voluntary"
    if playing:
        st.disconnects = tuple(d for d in st.disconnects if d.user_id != uid)
        if regains_control:
            st.auto_players = tuple(a for a in st.auto_players if a.user_id != uid)
    else:
        ctx.read_only = True
    ctx.user(uid, room_msgs.RoomStateEvent(room=snapshot(st)))
    game = ctx.config.games.get(st.game_type)
    if game is not None and st.game is not None:
        game_state = game.snapshot_for(st, uid)
        if game_state is not None:
            ctx.user(uid, game_state)
    if not playing:
        return
    ctx.room(room_msgs.PlayerRejoined(room_id=st.room_id, user_id=uid, username=ctx.actor_name))
    if regains_control:
        ctx.room(
            room_msgs.PlayerAutoDisabled(room_id=st.room_id, user_id=uid, username=ctx.actor_name)
        )
    for pending in st.disconnects:
        ctx.user(
            uid,
            room_msgs.PlayerDisconnected(
                room_id=st.room_id,
                user_id=pending.user_id,
                username=pending.username,
                timeout_at=pending.timeout_at,
            ),
        )


# --- leaving ------------------------------------------------------------------------------


@HANDLERS.on(room_msgs.LeaveRoom)
def _leave_room(ctx: Ctx, payload: room_msgs.LeaveRoom) -> None:
    st = ctx.state
    uid = ctx.actor_id
    if st.spectator(uid) is not None and st.player(uid) is None and not st.lobby_member(uid):
        remove_spectator(ctx, uid)
        return
    player = st.player(uid)
    if player is None and st.lobby_member(uid) is None:
        raise Rejected(ErrorCode.NOT_IN_ROOM)
    if player is not None and st.status is RoomStatus.IN_PROGRESS:
        # a player leaving a running game keeps their seat: it is a disconnect
        mark_disconnected(ctx, uid)
        return
    username = (
        player or st.lobby_member(uid) or Member(user_id=uid, username=uid, joined_at=ctx.now)
    ).username
    was_selected = uid in st.selected
    st.players = tuple(m for m in st.players if m.user_id != uid)
    st.lobby = tuple(m for m in st.lobby if m.user_id != uid)
    st.selected = tuple(s for s in st.selected if s != uid)
    st.disconnects = tuple(d for d in st.disconnects if d.user_id != uid)
    st.auto_players = tuple(a for a in st.auto_players if a.user_id != uid)
    reason: RemovalReason | None = None
    if st.host_id == uid and st.status is RoomStatus.WAITING:
        reason = RemovalReason.HOST_LEFT
    elif not st.players and not st.lobby:
        reason = (
            RemovalReason.GAME_FINISHED
            if st.status is RoomStatus.FINISHED
            else RemovalReason.ABANDONED
        )
    if reason is not None:
        ctx.remove_room(reason)
    ctx.room(
        room_msgs.PlayerLeft(room_id=st.room_id, player_id=uid, player_name=username), also=(uid,)
    )
    if was_selected and reason is None:
        ctx.room(
            room_msgs.SelectedPlayersUpdated(room_id=st.room_id, selected_players=list(st.selected))
        )


@HANDLERS.on(room_msgs.StopSpectating)
def _stop_spectating(ctx: Ctx, payload: room_msgs.StopSpectating) -> None:
    if ctx.state.spectator(ctx.actor_id) is None:
        raise Rejected(ErrorCode.NOT_A_SPECTATOR)
    remove_spectator(ctx, ctx.actor_id)


def remove_spectator(ctx: Ctx, uid: str, *, kicked: bool = False) -> None:
    """Spectator `uid` leaves (or, `kicked`, is kicked by the host); they hear it too."""
    st = ctx.state
    spectator = st.spectator(uid)
    assert spectator is not None
    st.spectators = tuple(s for s in st.spectators if s.user_id != uid)
    if st.admin_spectator_id == uid:
        st.admin_spectator_id = None
    event_type = room_msgs.SpectatorKicked if kicked else room_msgs.SpectatorLeft
    ctx.room(
        event_type(
            room_id=st.room_id,
            user_id=uid,
            username=spectator.username,
            spectator_count=len(st.spectators),
        ),
        also=(uid,),
    )
