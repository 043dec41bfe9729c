"""Implementation behind `rules.api`: command dispatch and the generic room, lobby, absence
and chat rules. Game specifics live in `parlour_engine.games.<name>`."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from parlour_engine.games import GameRules, game_rules
from parlour_engine.rules.context import (
    Ctx,
    Rejected,
    derive_id,
    reply_audience,
    seated_unbanned,
    turn_token,
)
from parlour_engine.rules.password import hash_password, verify_password
from parlour_engine.rules.state import AutoPlayer, Banned, Disconnect, Member, RoomState, Spectator
from parlour_engine.rules.types import (
    ChatAppend,
    ChatRead,
    Emit,
    Outcome,
    Rng,
    RulesConfig,
    TimerRequest,
)
from parlour_engine.rules.views import list_item, player_info, snapshot
from parlour_protocol.v1 import (
    ERROR_MEANINGS,
    GAMES,
    Audience,
    AudienceKind,
    CommandEnvelope,
    ErrorCode,
    internal,
)
from parlour_protocol.v1 import chat as chat_msgs
from parlour_protocol.v1 import rooms as room_msgs
from parlour_protocol.v1.base import RoomCommand
from parlour_protocol.v1.limits import MAX_BANNED_PER_ROOM, MAX_MUTED_PER_USER
from parlour_protocol.v1.rooms import RemovalReason, RoomStatus
from parlour_protocol.v1.system import Error, UserOffline, UserOnline

# --- entry points -------------------------------------------------------------------------


def apply(
    state: RoomState | None,
    command: CommandEnvelope,
    rng: Rng,
    now: datetime,
    config: RulesConfig,
) -> Outcome:
    payload = command.payload
    internal_cmd = isinstance(payload, internal.PlayerDisconnectedCommand | internal.TimerFired)
    ctx: Ctx | None = None
    try:
        if isinstance(payload, room_msgs.CreateRoom):
            return _create_room(state, command, payload, rng, now, config)
        handler = _HANDLERS.get(type(payload))
        game: GameRules | None = None
        if handler is None and state is not None:
            game = game_rules(state.game_type)
            if game is None or payload.type not in game.command_types:
                if payload.type.startswith("games.command.") and payload.type.count(".") >= 3:
                    raise Rejected(ErrorCode.WRONG_GAME_TYPE)
                raise Rejected(ErrorCode.INVALID_MESSAGE, "not a room command")
        elif handler is None:
            if isinstance(payload, RoomCommand) or payload.type.count(".") >= 3:
                raise Rejected(ErrorCode.ROOM_NOT_FOUND)
            raise Rejected(ErrorCode.INVALID_MESSAGE, "not a room command")
        if state is None:
            raise Rejected(ErrorCode.ROOM_NOT_FOUND)
        if isinstance(payload, RoomCommand) and payload.room_id != state.room_id:
            raise Rejected(ErrorCode.ROOM_NOT_FOUND)
        if isinstance(payload, room_msgs.RejoinRoom) and payload.room_id not in (
            None,
            state.room_id,
        ):
            raise Rejected(ErrorCode.ROOM_NOT_FOUND)
        ctx = Ctx(state.model_copy(), command, rng, now, config)
        if not internal_cmd and not isinstance(payload, room_msgs.LeaveRoom):
            _came_back(ctx, clear_disconnect=not isinstance(payload, room_msgs.RejoinRoom))
        if handler is not None:
            handler(ctx, payload)
        else:
            assert game is not None
            game.handle(ctx, payload)
    except Rejected as rejection:
        if isinstance(rejection, _WrongPassword) and ctx is not None and state is not None:
            # the failed attempt is recorded (and nothing else: the handler stopped there)
            ctx.state.version = state.version + 1
            return _rejected(state, command, now, rejection, new_state=ctx.state)
        if internal_cmd:
            return Outcome(state=state, rejected=rejection.code)
        return _rejected(state, command, now, rejection)
    except Exception as fault:  # noqa: BLE001 - reported, not swallowed (see below)
        # A fault in the rules themselves: the command must not take effect, its sender is
        # told so, and the worker logs `notes` (the rules do no logging). Other commands and
        # rooms are unaffected.
        note = f"rules_fault:{type(fault).__name__}:{fault}"[:300]
        if internal_cmd:
            return Outcome(state=state, rejected=ErrorCode.INTERNAL_ERROR, notes=(note,))
        outcome = _rejected(state, command, now, Rejected(ErrorCode.INTERNAL_ERROR))
        return Outcome(
            state=state, emits=outcome.emits, rejected=ErrorCode.INTERNAL_ERROR, notes=(note,)
        )
    assert state is not None
    assert ctx is not None
    return _finish(state, ctx)


def _finish(before: RoomState, ctx: Ctx) -> Outcome:
    st = ctx.state
    if not ctx.removed and not st.players and not st.lobby and before.is_occupied():
        # the last lobby member was kicked or banned while the host was not in the lobby
        _remove_room(ctx, RemovalReason.ABANDONED)
    _bound_by_membership(st)
    if not ctx.removed and _all_absent(st) and not _all_absent(before):
        # the last present member went (disconnected, or left the absent ones behind)
        st.idle_number += 1
        due = ctx.now + timedelta(seconds=ctx.config.idle_room_secs)
        ctx.timers.append(TimerRequest(internal.TimerKind.ROOM_EXPIRY, _idle_token(st), due))
    if before.status is not RoomStatus.FINISHED and st.status is RoomStatus.FINISHED:
        ctx.timers.append(
            TimerRequest(
                internal.TimerKind.ROOM_EXPIRY,
                _FINISHED_TOKEN,
                (st.finished_at or ctx.now) + timedelta(seconds=ctx.config.finished_room_secs),
            )
        )
    if ctx.removed:
        return Outcome(
            state=None,
            emits=tuple(ctx.emits),
            chat=tuple(ctx.chat),
            changed=True,
        )
    changed = not ctx.read_only or ctx.touched or st.seq != before.seq
    if changed:
        st.version = before.version + 1
    # a chain of server rolls arms one timer per turn; only the turn still current matters
    current = turn_token(st) if st.status is RoomStatus.IN_PROGRESS else None
    timers = tuple(
        t for t in ctx.timers if t.kind is not internal.TimerKind.TURN or t.token == current
    )
    return Outcome(
        state=st if changed else before,
        emits=tuple(ctx.emits),
        timers=timers,
        chat=tuple(ctx.chat),
        chat_read=ctx.chat_read,
        changed=changed,
    )


def _bound_by_membership(st: RoomState) -> None:
    """Per-user records live only as long as their user's place in the room: a leaver's
    mutes go with them, and only lobby members of a waiting room can be absent."""
    members = set(st.member_ids())
    if any(uid not in members for uid in st.mutes):
        st.mutes = {uid: targets for uid, targets in st.mutes.items() if uid in members}
    if st.absent:
        lobby = {m.user_id for m in st.lobby} if st.status is RoomStatus.WAITING else set()
        if any(uid not in lobby for uid in st.absent):
            st.absent = tuple(uid for uid in st.absent if uid in lobby)


def _came_back(ctx: Ctx, *, clear_disconnect: bool) -> None:
    """Any command of a user shows they are here: they are no longer absent, and a pending
    disconnect of theirs ends as a rejoin would end it (`player_rejoined`), so nobody can
    vote out a player who is playing. Runs before the handler; a rejected command discards
    it with everything else."""
    st = ctx.state
    uid = ctx.actor_id
    if uid in st.absent:
        st.absent = tuple(a for a in st.absent if a != uid)
        ctx.touched = True
    record = st.disconnect(uid)
    if clear_disconnect and record is not None and st.status is RoomStatus.IN_PROGRESS:
        st.disconnects = tuple(d for d in st.disconnects if d.user_id != uid)
        ctx.room(
            room_msgs.PlayerRejoined(room_id=st.room_id, user_id=uid, username=record.username)
        )


_FINISHED_TOKEN = "finished"
"""Token of a finished room's expiry timer (a room finishes once)."""


def _all_absent(st: RoomState) -> bool:
    """A waiting room whose lobby members are all gone (spectators alone keep no room)."""
    absent = set(st.absent)
    return (
        st.status is RoomStatus.WAITING
        and bool(st.lobby)
        and all(m.user_id in absent for m in st.lobby)
    )


def _idle_token(state: RoomState) -> str:
    return f"idle:{state.idle_number}"


def _rejected(
    state: RoomState | None,
    command: CommandEnvelope,
    now: datetime,
    rejection: Rejected,
    *,
    new_state: RoomState | None = None,
) -> Outcome:
    error = Error(
        code=rejection.code,
        message=rejection.message or ERROR_MEANINGS[rejection.code],
        request_id=command.request_id,
        room_id=_room_id_of(state, command),
        timestamp=now,
    )
    emit = Emit(reply_audience(command), error)
    if new_state is not None:
        return Outcome(state=new_state, emits=(emit,), rejected=rejection.code, changed=True)
    return Outcome(state=state, emits=(emit,), rejected=rejection.code)


def _room_id_of(state: RoomState | None, command: CommandEnvelope) -> str | None:
    if state is not None:
        return state.room_id
    room_id = getattr(command.payload, "room_id", None)
    return room_id if isinstance(room_id, str) else command.room_id


def replay(
    commands: Iterable[Any],
    rng: Rng | Callable[[CommandEnvelope], Rng],
    config: RulesConfig,
    state: RoomState | None,
) -> RoomState | None:
    for item in commands:
        if isinstance(item, tuple):
            command, now = item
        else:
            command, now = item, item.timestamp
        step_rng: Rng = rng(command) if callable(rng) else rng
        state = apply(state, command, step_rng, now, config).state
    return state


_WALL_CLOCK_FIELDS = frozenset(
    {
        "created_at",
        "started_at",
        "finished_at",
        "joined_at",
        "turn_deadline",
        "timeout_at",
        "password_failures",
        "password_hash",
    }
)


def _strip_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_times(v) for k, v in value.items() if k not in _WALL_CLOCK_FIELDS}
    if isinstance(value, list):
        return [_strip_times(v) for v in value]
    return value


def comparable(state: RoomState | None) -> dict[str, Any] | None:
    if state is None:
        return None
    result: dict[str, Any] = _strip_times(state.model_dump(mode="json"))
    return result


def list_rooms(
    states: Iterable[RoomState],
    user_id: str,
    game_type: str,
    now: datetime,
    *,
    cursor: str | None = None,
    next_cursor: str | None = None,
) -> room_msgs.RoomList:
    """One `room_list` page of the rooms the worker read from its index: those `user_id`
    may see (`list_item`), oldest first. The paging itself is the worker's (an index read)."""
    items = [
        item
        for state in states
        if state.game_type == game_type and (item := list_item(state, user_id)) is not None
    ]
    items.sort(key=lambda i: (i.created_at, i.room_id))
    return room_msgs.RoomList(
        game_type=game_type, rooms=items, cursor=cursor, next_cursor=next_cursor
    )


def direct_message(command: CommandEnvelope, now: datetime) -> tuple[Emit, ...]:
    payload = command.payload
    sender = command.actor
    if not isinstance(payload, chat_msgs.SendDirectMessage):
        return (_error_emit(command, now, ErrorCode.INVALID_MESSAGE, "not a direct message"),)
    if payload.recipient_id == sender.user_id:
        return (_error_emit(command, now, ErrorCode.CANNOT_MESSAGE_SELF),)
    content = clean_chat(payload.content)
    if not content:
        return (_error_emit(command, now, ErrorCode.INVALID_MESSAGE, "message is empty"),)
    message = chat_msgs.DirectMessageReceived(
        message_id=str(derive_id(command.msg_id, "direct_message")),
        sender_id=sender.user_id,
        sender_name=sender.username,
        recipient_id=payload.recipient_id,
        content=content,
        sent_at=now,
    )
    audience = Audience(kind=AudienceKind.USERS, user_ids=[payload.recipient_id, sender.user_id])
    return (Emit(audience, message),)


def presence_changed(states: Iterable[RoomState], command: CommandEnvelope) -> tuple[Emit, ...]:
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


PRESENCE_AUDIENCE_CHUNK = 1000
"""Most user ids one presence event's audience lists (ids are at most 64 bytes)."""


def _error_emit(
    command: CommandEnvelope, now: datetime, code: ErrorCode, message: str | None = None
) -> Emit:
    return Emit(
        reply_audience(command),
        Error(
            code=code,
            message=message or ERROR_MEANINGS[code],
            request_id=command.request_id,
            timestamp=now,
        ),
    )


# --- creating and joining -----------------------------------------------------------------


def _create_room(
    state: RoomState | None,
    command: CommandEnvelope,
    payload: room_msgs.CreateRoom,
    rng: Rng,
    now: datetime,
    config: RulesConfig,
) -> Outcome:
    spec = GAMES.get(payload.game_type)
    if spec is None or game_rules(payload.game_type) is None:
        return _rejected(None, command, now, Rejected(ErrorCode.UNKNOWN_GAME))
    if not spec.min_players <= payload.max_players <= spec.max_players:
        return _rejected(
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
        return _rejected(state, command, now, Rejected(ErrorCode.ROOM_NAME_TAKEN))
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


def _check_password(ctx: Ctx, password: str | None) -> None:
    """Refuse when the user used up their attempts; record a wrong password (a rejection
    that changes state, see `Outcome`)."""
    st = ctx.state
    if st.password_hash is None:
        return
    window_start = ctx.now - timedelta(seconds=ctx.config.password_window_secs)
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
    raise _WrongPassword(ErrorCode.WRONG_PASSWORD)


class _WrongPassword(Rejected):
    """A rejection whose recorded attempt must be stored."""


def _join_room(ctx: Ctx, payload: room_msgs.JoinRoom) -> None:
    st = ctx.state
    uid = ctx.actor_id
    if st.game_type != payload.game_type or st.status is not RoomStatus.WAITING:
        # as in the original: a started room is no longer joinable by name
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
    game = game_rules(st.game_type)
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
        # the host may always come back; they land in the lobby as in the original
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
    game = game_rules(st.game_type)
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


def _leave_room(ctx: Ctx, payload: room_msgs.LeaveRoom) -> None:
    st = ctx.state
    uid = ctx.actor_id
    if st.spectator(uid) is not None and st.player(uid) is None and not st.lobby_member(uid):
        _remove_spectator(ctx, uid)
        return
    player = st.player(uid)
    if player is None and st.lobby_member(uid) is None:
        raise Rejected(ErrorCode.NOT_IN_ROOM)
    if player is not None and st.status is RoomStatus.IN_PROGRESS:
        # a player leaving a running game keeps their seat: it is a disconnect
        _disconnect(ctx, uid)
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
        _remove_room(ctx, reason)
    ctx.room(
        room_msgs.PlayerLeft(room_id=st.room_id, player_id=uid, player_name=username), also=(uid,)
    )
    if was_selected and reason is None:
        ctx.room(
            room_msgs.SelectedPlayersUpdated(room_id=st.room_id, selected_players=list(st.selected))
        )


def _remove_room(ctx: Ctx, reason: RemovalReason) -> None:
    st = ctx.state
    ctx.removed = True
    ctx.broadcast(
        room_msgs.RoomRemoved(
            room_id=st.room_id, room_name=st.room_name, game_type=st.game_type, reason=reason
        )
    )


def _stop_spectating(ctx: Ctx, payload: room_msgs.StopSpectating) -> None:
    if ctx.state.spectator(ctx.actor_id) is None:
        raise Rejected(ErrorCode.NOT_A_SPECTATOR)
    _remove_spectator(ctx, ctx.actor_id)


def _remove_spectator(ctx: Ctx, uid: str, *, kicked: bool = False) -> None:
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


# --- lobby: selection, moderation, ready --------------------------------------------------


def _require_host(ctx: Ctx) -> None:
    if ctx.actor_id != ctx.state.host_id:
        raise Rejected(ErrorCode.NOT_ADMIN)


def _require_waiting(ctx: Ctx) -> None:
    if ctx.state.status is not RoomStatus.WAITING:
        raise Rejected(ErrorCode.GAME_IN_PROGRESS)


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
    game = game_rules(st.game_type)
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


def _kick_spectator(ctx: Ctx, payload: room_msgs.KickSpectator) -> None:
    _require_host(ctx)
    uid = payload.target_user_id
    if uid == ctx.actor_id:
        raise Rejected(ErrorCode.CANNOT_KICK_SELF)
    if ctx.state.spectator(uid) is None:
        raise Rejected(ErrorCode.SPECTATOR_NOT_FOUND)
    _remove_spectator(ctx, uid, kicked=True)
    ctx.user(
        uid,
        Error(
            code=ErrorCode.KICKED_FROM_ROOM,
            message=ERROR_MEANINGS[ErrorCode.KICKED_FROM_ROOM],
            room_id=ctx.state.room_id,
            timestamp=ctx.now,
        ),
    )


def _known_username(st: RoomState, uid: str) -> str:
    for m in (*st.players, *st.lobby):
        if m.user_id == uid:
            return m.username
    for s in st.spectators:
        if s.user_id == uid:
            return s.username
    for b in st.banned:
        if b.user_id == uid:
            return b.username
    return uid


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
    username = _known_username(st, uid)
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
        game = game_rules(st.game_type)
        if game is not None:
            game.on_player_removed(ctx, uid)
    if was_selected:
        ctx.room(
            room_msgs.SelectedPlayersUpdated(room_id=st.room_id, selected_players=list(st.selected))
        )


def _unban_player(ctx: Ctx, payload: room_msgs.UnbanPlayer) -> None:
    _require_host(ctx)
    st = ctx.state
    uid = payload.target_user_id
    if not st.is_banned(uid):
        raise Rejected(ErrorCode.NOT_BANNED)
    username = _known_username(st, uid)
    st.banned = tuple(b for b in st.banned if b.user_id != uid)
    ctx.room(room_msgs.PlayerUnbanned(room_id=st.room_id, player_id=uid, player_name=username))


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


def _ready(ctx: Ctx, payload: room_msgs.Ready) -> None:
    member = _selected_self(ctx)
    st = ctx.state
    _set_ready_flag(st, member.user_id, True)
    ctx.room(
        room_msgs.PlayerReady(room_id=st.room_id, user_id=member.user_id, username=member.username)
    )
    _start_if_ready(ctx)


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


def _start_game(ctx: Ctx, payload: room_msgs.StartGame) -> None:
    _require_host(ctx)
    _require_waiting(ctx)
    if not _all_ready(ctx.state):
        raise Rejected(ErrorCode.PLAYERS_NOT_READY)
    _start_game_now(ctx)


# --- absence: disconnects, grace, vote, auto-play -----------------------------------------


def _player_disconnected(ctx: Ctx, payload: internal.PlayerDisconnectedCommand) -> None:
    _disconnect(ctx, ctx.actor_id)


def _disconnect(ctx: Ctx, uid: str) -> None:
    st = ctx.state
    if st.status is RoomStatus.WAITING:
        _absent(ctx, uid)
        return
    player = st.player(uid)
    if (
        st.status is not RoomStatus.IN_PROGRESS
        or player is None
        or st.auto_player(uid) is not None
        or st.disconnect(uid) is not None
    ):
        # only a present, human player of a running game has anything to lose
        ctx.read_only = True
        return
    st.disconnect_counter += 1
    record = Disconnect(
        user_id=uid,
        username=player.username,
        number=st.disconnect_counter,
        timeout_at=ctx.now + timedelta(seconds=ctx.config.disconnect_grace_secs),
    )
    st.disconnects = (*st.disconnects, record)
    ctx.room(
        room_msgs.PlayerDisconnected(
            room_id=st.room_id, user_id=uid, username=player.username, timeout_at=record.timeout_at
        )
    )
    ctx.timers.append(
        TimerRequest(internal.TimerKind.DISCONNECT_GRACE, grace_token(record), record.timeout_at)
    )


def _absent(ctx: Ctx, uid: str) -> None:
    """A lobby member of a waiting room lost their last socket. Nobody is told (a waiting
    room has no seats to lose); once the whole lobby is absent the room's idle time starts
    (see `_finish`)."""
    st = ctx.state
    if st.lobby_member(uid) is None or uid in st.absent:
        ctx.read_only = True
        return
    st.absent = (*st.absent, uid)


def grace_token(record: Disconnect) -> str:
    """The token of a disconnect's grace timer: unique per disconnect."""
    return f"{record.user_id}:{record.number}"


def _timer_fired(ctx: Ctx, payload: internal.TimerFired) -> None:
    st = ctx.state
    if (
        payload.kind is internal.TimerKind.TURN
        and st.status is RoomStatus.IN_PROGRESS
        and st.current_turn is not None
        and payload.token == turn_token(st)
    ):
        game = game_rules(st.game_type)
        if game is not None:
            game.on_turn_timeout(ctx)
            return
    if payload.kind is internal.TimerKind.ROOM_EXPIRY:
        if st.status is RoomStatus.FINISHED and payload.token == _FINISHED_TOKEN:
            _remove_room(ctx, RemovalReason.GAME_FINISHED)
            return
        if payload.token == _idle_token(st) and _all_absent(st):
            _remove_room(ctx, RemovalReason.ABANDONED)
            return
    # a stale timer, or a grace end (votes compare the clock themselves): no effect
    ctx.read_only = True


def _eligible_voters(st: RoomState, target: str) -> list[str]:
    return [
        m.user_id
        for m in st.players
        if m.user_id != target
        and st.disconnect(m.user_id) is None
        and st.auto_player(m.user_id) is None
    ]


def _vote_kick(ctx: Ctx, payload: room_msgs.VoteKickDisconnected) -> None:
    st = ctx.state
    voter = ctx.actor_id
    target = payload.target_user_id
    if st.status is not RoomStatus.IN_PROGRESS:
        raise Rejected(ErrorCode.GAME_NOT_IN_PROGRESS)
    if st.player(voter) is None or st.player(target) is None:
        raise Rejected(ErrorCode.INVALID_PLAYER)
    if voter == target:
        raise Rejected(ErrorCode.CANNOT_KICK_SELF)
    if st.auto_player(target) is not None:
        raise Rejected(ErrorCode.PLAYER_ALREADY_AUTO)
    if not seated_unbanned(st, target):
        raise Rejected(ErrorCode.INVALID_PLAYER)
    record = st.disconnect(target)
    if record is None:
        raise Rejected(ErrorCode.PLAYER_NOT_DISCONNECTED)
    if ctx.now < record.timeout_at:
        raise Rejected(ErrorCode.DISCONNECT_TIMEOUT_ACTIVE)
    eligible = _eligible_voters(st, target)
    if voter not in eligible:
        raise Rejected(ErrorCode.NOT_ELIGIBLE_TO_VOTE)
    if voter in record.votes:
        raise Rejected(ErrorCode.ALREADY_VOTED)
    votes = (*record.votes, voter)
    counted = sum(1 for v in votes if v in eligible)
    required = len(eligible) // 2 + 1
    st.disconnects = tuple(
        d.model_copy(update={"votes": votes}) if d.user_id == target else d for d in st.disconnects
    )
    ctx.room(
        room_msgs.KickVoteReceived(
            room_id=st.room_id,
            target_user_id=target,
            voter_id=voter,
            votes=counted,
            votes_required=required,
        )
    )
    if counted * 2 <= len(eligible):
        return
    # strict majority: the target's turns go to the server and they are banned (original)
    st.disconnects = tuple(d for d in st.disconnects if d.user_id != target)
    st.auto_players = (*st.auto_players, AutoPlayer(user_id=target, reason="vote_kick"))
    if not st.is_banned(target) and len(st.banned) < MAX_BANNED_PER_ROOM:
        # at the cap the ban is skipped: a vote_kick auto player never regains control anyway
        st.banned = (*st.banned, Banned(user_id=target, username=record.username))
    ctx.room(
        room_msgs.PlayerAutoEnabled(
            room_id=st.room_id, user_id=target, username=record.username, reason="vote_kick"
        )
    )
    game = game_rules(st.game_type)
    if game is not None:
        game.on_auto_play(ctx)


# --- room chat ----------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_chat(content: str) -> str:
    """Strip C0/C1 control characters except newline and tab; blank content becomes ''."""
    cleaned = _CONTROL.sub("", content)
    return cleaned if cleaned.strip() else ""


def _send_chat(ctx: Ctx, payload: chat_msgs.SendChat) -> None:
    st = ctx.state
    uid = ctx.actor_id
    channel = payload.channel
    if channel is chat_msgs.ChatChannel.LOBBY:
        if not st.is_member(uid):
            raise Rejected(ErrorCode.CHANNEL_ACCESS_DENIED)
        if st.status is not RoomStatus.WAITING or not st.lobby_chat_enabled:
            raise Rejected(ErrorCode.CHAT_DISABLED)
    elif channel is chat_msgs.ChatChannel.PLAYERS:
        if st.player(uid) is None:
            raise Rejected(ErrorCode.CHANNEL_ACCESS_DENIED)
        if st.status is not RoomStatus.IN_PROGRESS:
            raise Rejected(ErrorCode.CHAT_DISABLED)
    else:
        if st.spectator(uid) is None:
            raise Rejected(ErrorCode.CHANNEL_ACCESS_DENIED)
        if st.status is not RoomStatus.IN_PROGRESS:
            raise Rejected(ErrorCode.CHAT_DISABLED)
    content = clean_chat(payload.content)
    if not content:
        raise Rejected(ErrorCode.INVALID_MESSAGE, "message is empty")
    message_id = ctx.mint_id("chat")
    item = chat_msgs.ChatMessageItem(
        message_id=message_id,
        user_id=uid,
        username=ctx.actor_name,
        content=content,
        timestamp=ctx.now,
    )
    event = chat_msgs.ChatMessage(
        room_id=st.room_id,
        channel=channel,
        message_id=message_id,
        user_id=uid,
        username=ctx.actor_name,
        content=content,
        timestamp=ctx.now,
    )
    if channel is chat_msgs.ChatChannel.SPECTATORS:
        ctx.spectators(event)
    else:
        ctx.room(event)
    # stored even when no seq moved (spectators channel), so the store records it once
    ctx.chat.append(ChatAppend(channel, item))


def can_read_channel(st: RoomState, uid: str, channel: chat_msgs.ChatChannel) -> bool:
    if channel is chat_msgs.ChatChannel.LOBBY:
        return st.is_member(uid)
    if channel is chat_msgs.ChatChannel.PLAYERS:
        return st.is_member(uid)
    return st.spectator(uid) is not None


def _get_chat_history(ctx: Ctx, payload: chat_msgs.GetChatHistory) -> None:
    st = ctx.state
    uid = ctx.actor_id
    if not can_read_channel(st, uid, payload.channel):
        raise Rejected(ErrorCode.CHANNEL_ACCESS_DENIED)
    ctx.read_only = True
    ctx.chat_read = ChatRead(
        room_id=st.room_id,
        channel=payload.channel,
        limit=payload.limit,
        hidden_user_ids=frozenset(st.mutes.get(uid, ())),
        audience=reply_audience(ctx.command),
    )


def _mute(ctx: Ctx, payload: chat_msgs.MuteUser | chat_msgs.UnmuteUser) -> None:
    st = ctx.state
    uid = ctx.actor_id
    target = payload.target_user_id
    if not st.is_member(uid):
        raise Rejected(ErrorCode.NOT_IN_ROOM)
    current = st.mutes.get(uid, ())
    muting = isinstance(payload, chat_msgs.MuteUser)
    if muting and target not in current:
        if len(current) >= MAX_MUTED_PER_USER:
            raise Rejected(
                ErrorCode.LIMIT_REACHED,
                f"One member may mute at most {MAX_MUTED_PER_USER} users per room "
                "(MAX_MUTED_PER_USER); unmute someone first.",
            )
        st.mutes = {**st.mutes, uid: (*current, target)}
    elif not muting and target in current:
        remaining = tuple(t for t in current if t != target)
        st.mutes = {k: v for k, v in st.mutes.items() if k != uid}
        if remaining:
            st.mutes[uid] = remaining
    else:
        ctx.read_only = True
    name = _known_username(st, target)
    if muting:
        ctx.user(
            uid,
            chat_msgs.UserMuted(room_id=st.room_id, target_user_id=target, target_username=name),
        )
    else:
        ctx.user(
            uid,
            chat_msgs.UserUnmuted(room_id=st.room_id, target_user_id=target, target_username=name),
        )


# --- dispatch -----------------------------------------------------------------------------

_HANDLERS: dict[type[Any], Callable[[Ctx, Any], None]] = {
    room_msgs.JoinRoom: _join_room,
    room_msgs.JoinAsSpectator: _join_as_spectator,
    room_msgs.RejoinRoom: _rejoin_room,
    room_msgs.LeaveRoom: _leave_room,
    room_msgs.StopSpectating: _stop_spectating,
    room_msgs.Ready: _ready,
    room_msgs.SetReady: _set_ready,
    room_msgs.StartGame: _start_game,
    room_msgs.SelectPlayer: _select_player,
    room_msgs.DeselectPlayer: _deselect_player,
    room_msgs.KickPlayer: _kick_player,
    room_msgs.KickSpectator: _kick_spectator,
    room_msgs.BanPlayer: _ban_player,
    room_msgs.UnbanPlayer: _unban_player,
    room_msgs.VoteKickDisconnected: _vote_kick,
    room_msgs.DesignateAdminSpectator: _designate_admin_spectator,
    chat_msgs.SendChat: _send_chat,
    chat_msgs.GetChatHistory: _get_chat_history,
    chat_msgs.MuteUser: _mute,
    chat_msgs.UnmuteUser: _mute,
    internal.PlayerDisconnectedCommand: _player_disconnected,
    internal.TimerFired: _timer_fired,
}
