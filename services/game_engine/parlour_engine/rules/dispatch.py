"""The rules' entry point: `apply` one command to one room, through the handler table the
rules modules register in (`rooms`, `lobby`, `absence`, `chat`) or the room's game plugin.

This module imports the handler modules; none of them imports it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from parlour_engine.rules import absence, chat, lobby, rooms
from parlour_engine.rules.absence import FINISHED_TOKEN, all_absent, came_back, idle_token
from parlour_engine.rules.context import Ctx, Handler, Handlers, Rejected, refusal, turn_token
from parlour_engine.rules.plugins import GameRules
from parlour_engine.rules.rooms import WrongPassword, create_room
from parlour_engine.rules.state import RoomState
from parlour_engine.rules.types import Outcome, Rng, RulesConfig, TimerRequest
from parlour_protocol.v1 import CommandEnvelope, ErrorCode, internal
from parlour_protocol.v1 import rooms as room_msgs
from parlour_protocol.v1.base import RoomCommand
from parlour_protocol.v1.rooms import RemovalReason, RoomStatus

HANDLERS: dict[type[Any], Handler] = Handlers.merge(
    rooms.HANDLERS, lobby.HANDLERS, absence.HANDLERS, chat.HANDLERS
)
"""Payload type -> handler of every generic room command; a game's own commands go to its
plugin instead. `create_room` is not here: it has no room to apply to."""


def apply(
    state: RoomState | None,
    command: CommandEnvelope,
    rng: Rng,
    now: datetime,
    config: RulesConfig,
) -> Outcome:
    """Apply one command to one room. Never raises for bad input: a refused command gives
    `rejected=<ErrorCode>`, the input state object itself, and a `system.error` to the acting
    connection carrying the command's request_id. Room-wide emits carry consecutive seqs
    starting at `state.seq + 1`; errors and partial-audience events carry none.

    Which state to pass:

    - `create_room`: `None` (room id = `command.room_id`, minted by the gateway; name
      uniqueness is the worker's index).
    - `join_room` / `join_as_spectator` / `rejoin_room` by name: the state of the active room
      of that name and game (or `None` -> `room_not_found`); `rejoin_room` by id: that room's
      state.
    - every other room command (protocol `ENGINE_COMMANDS` with `room_scoped`, incl. internal
      `player_disconnected` and `timer_fired`): the state of `command.room_id`, or `None`.

    Non-room commands have their own pure functions: `queries.list_rooms`,
    `chat.direct_message`, `queries.presence_changed`."""
    payload = command.payload
    internal_cmd = isinstance(payload, internal.PlayerDisconnectedCommand | internal.TimerFired)
    ctx: Ctx | None = None
    try:
        if isinstance(payload, room_msgs.CreateRoom):
            return create_room(state, command, payload, rng, now, config)
        handler = HANDLERS.get(type(payload))
        game: GameRules | None = None
        if handler is None and state is not None:
            game = config.games.get(state.game_type)
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
            came_back(ctx, clear_disconnect=not isinstance(payload, room_msgs.RejoinRoom))
        if handler is not None:
            handler(ctx, payload)
        else:
            assert game is not None
            game.handle(ctx, payload)
    except Rejected as rejection:
        if isinstance(rejection, WrongPassword) and ctx is not None and state is not None:
            # the failed attempt is recorded (and nothing else: the handler stopped there)
            ctx.state.version = state.version + 1
            return refusal(state, command, now, rejection, new_state=ctx.state)
        if internal_cmd:
            return Outcome(state=state, rejected=rejection.code)
        return refusal(state, command, now, rejection)
    except Exception as fault:  # noqa: BLE001 - reported, not swallowed (see below)
        # A fault in the rules themselves: the command must not take effect, its sender is
        # told so, and the worker logs `notes` (the rules do no logging). Other commands and
        # rooms are unaffected.
        note = f"rules_fault:{type(fault).__name__}:{fault}"[:300]
        if internal_cmd:
            return Outcome(state=state, rejected=ErrorCode.INTERNAL_ERROR, notes=(note,))
        outcome = refusal(state, command, now, Rejected(ErrorCode.INTERNAL_ERROR))
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
        ctx.remove_room(RemovalReason.ABANDONED)
    _bound_by_membership(st)
    if not ctx.removed and all_absent(st) and not all_absent(before):
        # the last present member went (disconnected, or left the absent ones behind)
        st.idle_number += 1
        due = ctx.now + timedelta(seconds=ctx.config.idle_room_seconds)
        ctx.timers.append(TimerRequest(internal.TimerKind.ROOM_EXPIRY, idle_token(st), due))
    if before.status is not RoomStatus.FINISHED and st.status is RoomStatus.FINISHED:
        ctx.timers.append(
            TimerRequest(
                internal.TimerKind.ROOM_EXPIRY,
                FINISHED_TOKEN,
                (st.finished_at or ctx.now) + timedelta(seconds=ctx.config.finished_room_seconds),
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
