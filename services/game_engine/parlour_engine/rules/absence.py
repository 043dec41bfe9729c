"""Absence rules: disconnects and their grace time, the vote that hands a gone player's turns
to the server, voluntary auto-play, the forfeit of a player who stays away too long (for a
game that sets `absence_forfeit_seconds`), coming back, and the timers that end idle and
finished rooms.

A game plugin calls `enable_auto_play` from here; this module never imports the dispatcher,
so a plugin does not either.
"""

from __future__ import annotations

from datetime import timedelta

from parlour_engine.rules.context import Ctx, Handlers, Rejected, seated_unbanned, turn_token
from parlour_engine.rules.state import AutoPlayer, Banned, Disconnect, RoomState
from parlour_engine.rules.types import TimerRequest
from parlour_protocol.v1 import ErrorCode, internal
from parlour_protocol.v1 import rooms as room_msgs
from parlour_protocol.v1.limits import MAX_BANNED_PER_ROOM
from parlour_protocol.v1.rooms import RemovalReason, RoomStatus

HANDLERS = Handlers()

FINISHED_TOKEN = "finished"
"""Token of a finished room's expiry timer (a room finishes once)."""


def idle_token(state: RoomState) -> str:
    """Token of an idle room's expiry timer: one per time the whole lobby went."""
    return f"idle:{state.idle_number}"


def all_absent(st: RoomState) -> bool:
    """Nobody who keeps the room is here: a waiting room whose lobby members are all gone, or
    a running game whose seated players are all disconnected (left or dropped, and not back).
    Spectators alone keep no room. Such a room is removed as abandoned after
    `idle_room_seconds` unless someone comes back; a running game whose players all walked
    away would otherwise play on by turn timeouts for as long as the game lasts."""
    if st.status is RoomStatus.WAITING:
        absent = set(st.absent)
        return bool(st.lobby) and all(m.user_id in absent for m in st.lobby)
    if st.status is RoomStatus.IN_PROGRESS:
        away = {d.user_id for d in st.disconnects}
        return bool(st.players) and all(m.user_id in away for m in st.players)
    return False


def came_back(ctx: Ctx, *, clear_disconnect: bool) -> None:
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


def enable_auto_play(ctx: Ctx) -> None:
    """The caller hands their own turns to the server until they rejoin. The plugin then
    plays for them if it is their turn."""
    st = ctx.state
    uid = ctx.actor_id
    if st.status is not RoomStatus.IN_PROGRESS:
        raise Rejected(ErrorCode.GAME_NOT_IN_PROGRESS)
    player = st.player(uid)
    if player is None:
        raise Rejected(ErrorCode.NOT_A_PLAYER)
    if st.auto_player(uid) is not None:
        raise Rejected(ErrorCode.ALREADY_AUTO_PLAY)
    st.auto_players = (*st.auto_players, AutoPlayer(user_id=uid, reason="voluntary"))
    ctx.room(
        room_msgs.PlayerAutoEnabled(
            room_id=st.room_id, user_id=uid, username=player.username, reason="voluntary"
        )
    )


@HANDLERS.on(internal.PlayerDisconnectedCommand)
def _player_disconnected(ctx: Ctx, payload: internal.PlayerDisconnectedCommand) -> None:
    mark_disconnected(ctx, ctx.actor_id)


def mark_disconnected(ctx: Ctx, uid: str) -> None:
    """`uid` is gone (last socket closed, or left a running game): in a waiting room they are
    absent; a present, human player of a running game gets a grace time (`Disconnect`, a
    `player_disconnected` to the room and a grace timer). Named apart from
    `RoomState.disconnect`, which only looks the record up."""
    st = ctx.state
    if st.status is RoomStatus.WAITING:
        _mark_absent(ctx, uid)
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
    forfeit_seconds = ctx.config.absence_forfeit_for(st.game_type)
    record = Disconnect(
        user_id=uid,
        username=player.username,
        number=st.disconnect_counter,
        timeout_at=ctx.now + timedelta(seconds=ctx.config.disconnect_grace_seconds),
        forfeit_at=None
        if forfeit_seconds is None
        else ctx.now + timedelta(seconds=forfeit_seconds),
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
    if record.forfeit_at is not None:
        # the same timer kind as the grace (both are deadlines of one disconnect), told apart
        # by the token; coming back or a vote removes the record, so the timer goes stale
        ctx.timers.append(
            TimerRequest(
                internal.TimerKind.DISCONNECT_GRACE, forfeit_token(record), record.forfeit_at
            )
        )


def _mark_absent(ctx: Ctx, uid: str) -> None:
    """A lobby member of a waiting room lost their last socket. Nobody is told (a waiting
    room has no seats to lose); once the whole lobby is absent the room's idle time starts
    (see `dispatch.apply`)."""
    st = ctx.state
    if st.lobby_member(uid) is None or uid in st.absent:
        ctx.read_only = True
        return
    st.absent = (*st.absent, uid)


def grace_token(record: Disconnect) -> str:
    """The token of a disconnect's grace timer: unique per disconnect."""
    return f"{record.user_id}:{record.number}"


def forfeit_token(record: Disconnect) -> str:
    """The token of a disconnect's forfeit timer: unique per disconnect, never a grace token
    (those have no `forfeit:` prefix)."""
    return f"forfeit:{record.user_id}:{record.number}"


def _forfeit(ctx: Ctx, token: str) -> bool:
    """A forfeit timer fired: if its disconnect still stands (same record, the player still
    seated, the game running), the game's `on_forfeit` decides what the forfeit does.

    The token alone decides, not `ctx.now` against `forfeit_at`: the timer loop fires only
    once the deadline is due, and timers are never re-armed, so an engine whose clock lags
    another's would otherwise drop the forfeit for good."""
    st = ctx.state
    if st.status is not RoomStatus.IN_PROGRESS:
        return False
    record = next((d for d in st.disconnects if forfeit_token(d) == token), None)
    if record is None:
        return False
    if not seated_unbanned(st, record.user_id) or st.auto_player(record.user_id) is not None:
        return False
    game = ctx.config.games.get(st.game_type)
    on_forfeit = getattr(game, "on_forfeit", None)
    if on_forfeit is None:
        return False
    # the record goes first: the game sees a room without the pending disconnect
    st.disconnects = tuple(d for d in st.disconnects if d.user_id != record.user_id)
    on_forfeit(ctx, record.user_id)
    return True


@HANDLERS.on(internal.TimerFired)
def _timer_fired(ctx: Ctx, payload: internal.TimerFired) -> None:
    st = ctx.state
    if (
        payload.kind is internal.TimerKind.TURN
        and st.status is RoomStatus.IN_PROGRESS
        and st.current_turn is not None
        and payload.token == turn_token(st)
    ):
        game = ctx.config.games.get(st.game_type)
        if game is not None:
            game.on_turn_timeout(ctx)
            return
    if payload.kind is internal.TimerKind.DISCONNECT_GRACE and _forfeit(ctx, payload.token):
        return
    if payload.kind is internal.TimerKind.ROOM_EXPIRY:
        if st.status is RoomStatus.FINISHED and payload.token == FINISHED_TOKEN:
            ctx.remove_room(RemovalReason.GAME_FINISHED)
            return
        if payload.token == idle_token(st) and all_absent(st):
            ctx.remove_room(RemovalReason.ABANDONED)
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


@HANDLERS.on(room_msgs.VoteKickDisconnected)
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
    # strict majority: the server plays the target's turns for the rest of the game (a
    # rejoin gives control back only to a voluntary auto player) and they are banned
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
    game = ctx.config.games.get(st.game_type)
    if game is not None:
        game.on_auto_play(ctx)
