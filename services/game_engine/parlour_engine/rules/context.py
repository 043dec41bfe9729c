"""The working context of one `apply` call and the handler contract: `Ctx` (the state being
built and everything the command produces), `Rejected` (a handler's refusal), `Handlers` (the
table a rules module registers its room commands in) and the refusal answers. Handlers and
game plugins write through `Ctx` so seq numbering and audience resolution live in one place."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, TypeAlias, TypeVar
from uuid import NAMESPACE_URL, UUID, uuid5

from parlour_engine.rules.state import RoomState
from parlour_engine.rules.types import (
    ChatAppend,
    ChatRead,
    Emit,
    Outcome,
    Rng,
    RulesConfig,
    TimerRequest,
)
from parlour_protocol.v1 import (
    ERROR_MEANINGS,
    Audience,
    AudienceKind,
    CommandEnvelope,
    ErrorCode,
    ServerEvent,
)
from parlour_protocol.v1.internal import TimerKind
from parlour_protocol.v1.rooms import RemovalReason, RoomRemoved, TurnChanged
from parlour_protocol.v1.system import Error

_ID_NAMESPACE = uuid5(NAMESPACE_URL, "https://parlour.invalid/engine/rules")


class Rejected(Exception):
    """Raised by a handler before it changes anything: the command does not take effect."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(code.value)
        self.code = code
        self.message = message


class Ctx:
    """Mutable scratchpad of one command. `state` is a shallow copy of the input state; see
    `state.py` for the copy-on-write discipline."""

    def __init__(
        self,
        state: RoomState,
        command: CommandEnvelope,
        rng: Rng,
        now: datetime,
        config: RulesConfig,
    ) -> None:
        self.state = state
        self.command = command
        self.rng = rng
        self.now = now
        self.config = config
        self.emits: list[Emit] = []
        self.timers: list[TimerRequest] = []
        self.chat: list[ChatAppend] = []
        self.chat_read: ChatRead | None = None
        self.removed = False
        self.read_only = False
        """Set by handlers that answer without changing the room (a rejoin, chat history)."""
        self.touched = False
        """Set when the state changed without a room event (an absent member came back), so
        the change is stored even when the handler itself was read-only."""
        self._minted = 0

    @property
    def actor_id(self) -> str:
        return self.command.actor.user_id

    @property
    def actor_name(self) -> str:
        return self.command.actor.username

    def mint_id(self, purpose: str) -> str:
        """A new id derived from the command's msg_id, so recomputing gives the same id."""
        self._minted += 1
        return str(derive_id(self.command.msg_id, f"{purpose}:{self._minted}"))

    # --- emitting -------------------------------------------------------------------------

    def room(self, message: ServerEvent, *, also: Iterable[str] = ()) -> None:
        """To every member (players, lobby, spectators) now, plus `also` (e.g. a leaver);
        takes the room's next seq."""
        self.state.seq += 1
        user_ids = self.state.member_ids()
        for extra in also:
            if extra not in user_ids:
                user_ids.append(extra)
        self.emits.append(
            Emit(
                Audience(kind=AudienceKind.ROOM, user_ids=user_ids),
                message.model_copy(update={"seq": self.state.seq}),
            )
        )

    def users(self, user_ids: Iterable[str], message: ServerEvent) -> None:
        ids = list(dict.fromkeys(user_ids))
        if ids:
            kind = AudienceKind.USER if len(ids) == 1 else AudienceKind.USERS
            self.emits.append(Emit(Audience(kind=kind, user_ids=ids), message))

    def user(self, user_id: str, message: ServerEvent) -> None:
        self.users((user_id,), message)

    def spectators(self, message: ServerEvent) -> None:
        ids = [s.user_id for s in self.state.spectators]
        self.emits.append(Emit(Audience(kind=AudienceKind.SPECTATORS, user_ids=ids), message))

    def broadcast(self, message: ServerEvent) -> None:
        self.emits.append(Emit(Audience(kind=AudienceKind.BROADCAST), message))

    def reply(self, message: ServerEvent) -> None:
        """To the acting connection (or, lacking one, every socket of the actor)."""
        self.emits.append(Emit(reply_audience(self.command), message))

    # --- the room's end -------------------------------------------------------------------

    def remove_room(self, reason: RemovalReason) -> None:
        """The room ends with this command: `apply` deletes its state (`Outcome.state` None)
        and the room lists drop it (`room_removed`, broadcast)."""
        st = self.state
        self.removed = True
        self.broadcast(
            RoomRemoved(
                room_id=st.room_id, room_name=st.room_name, game_type=st.game_type, reason=reason
            )
        )

    # --- turns ----------------------------------------------------------------------------

    def set_turn(self, user_id: str) -> None:
        """Give the turn to `user_id`: new turn number and deadline, `turn_changed` to the
        room and a turn timer whose token is the turn number."""
        st = self.state
        st.turn_number += 1
        st.current_turn = user_id
        st.turn_deadline = self.now + timedelta(seconds=self.config.turn_timeout_for(st.game_type))
        self.room(
            TurnChanged(
                room_id=st.room_id,
                current_turn=user_id,
                turn_number=st.turn_number,
                turn_deadline=st.turn_deadline,
            )
        )
        self.timers.append(TimerRequest(TimerKind.TURN, turn_token(st), st.turn_deadline))

    def clear_turn(self) -> None:
        self.state.current_turn = None
        self.state.turn_deadline = None


def seated_unbanned(st: RoomState, uid: str) -> bool:
    """Whether a command may act for or on `uid` as a player: they hold a seat and are not
    banned (a vote-kicked player keeps a seat the server plays, but is banned)."""
    return st.player(uid) is not None and not st.is_banned(uid)


def turn_token(state: RoomState) -> str:
    """The token of the current turn's timer."""
    return str(state.turn_number)


def derive_id(msg_id: UUID, purpose: str) -> UUID:
    return uuid5(_ID_NAMESPACE, f"{msg_id}:{purpose}")


def reply_audience(command: CommandEnvelope) -> Audience:
    """Who hears the answer to `command`: its connection, or every socket of its actor when
    it came from no connection (an internal command)."""
    if command.connection_id is not None:
        return Audience(
            kind=AudienceKind.CONNECTION,
            user_ids=[command.actor.user_id],
            connection_id=command.connection_id,
            gateway_id=command.gateway_id,
        )
    return Audience(kind=AudienceKind.USER, user_ids=[command.actor.user_id])


def error_emit(
    command: CommandEnvelope,
    now: datetime,
    code: ErrorCode,
    message: str | None = None,
    *,
    room_id: str | None = None,
) -> Emit:
    """A `system.error` answering `command` (its request_id) to `reply_audience(command)`;
    `message` defaults to the code's meaning in `ERROR_MEANINGS`."""
    return Emit(
        reply_audience(command),
        Error(
            code=code,
            message=message or ERROR_MEANINGS[code],
            request_id=command.request_id,
            room_id=room_id,
            timestamp=now,
        ),
    )


def refusal(
    state: RoomState | None,
    command: CommandEnvelope,
    now: datetime,
    rejection: Rejected,
    *,
    new_state: RoomState | None = None,
) -> Outcome:
    """The `Outcome` of a refused room command: the input `state` itself, unchanged, and the
    error to the sender. With `new_state` the refusal still changes the room (a wrong
    password records the attempt), so that state is stored."""
    emit = error_emit(
        command, now, rejection.code, rejection.message, room_id=_room_id_of(state, command)
    )
    if new_state is not None:
        return Outcome(state=new_state, emits=(emit,), rejected=rejection.code, changed=True)
    return Outcome(state=state, emits=(emit,), rejected=rejection.code)


def _room_id_of(state: RoomState | None, command: CommandEnvelope) -> str | None:
    if state is not None:
        return state.room_id
    room_id = getattr(command.payload, "room_id", None)
    return room_id if isinstance(room_id, str) else command.room_id


# --- the handler table ----------------------------------------------------------------------

Handler: TypeAlias = Callable[[Ctx, Any], None]
"""A room command's handler: applies the payload (the second argument) to `ctx.state`, or
raises `Rejected` before changing anything."""

_H = TypeVar("_H", bound=Handler)


class Handlers:
    """The room commands one rules module handles, each registered where its handler is
    defined (`@HANDLERS.on(room_msgs.JoinRoom)`). `dispatch` merges the modules' tables at
    import time."""

    def __init__(self) -> None:
        self._table: dict[type[Any], Handler] = {}

    def on(self, *payload_types: type[Any]) -> Callable[[_H], _H]:
        """Register the decorated function as the handler of `payload_types`."""

        def register(handler: _H) -> _H:
            for payload_type in payload_types:
                _add(self._table, payload_type, handler)
            return handler

        return register

    @staticmethod
    def merge(*tables: Handlers) -> dict[type[Any], Handler]:
        """One table of every module's handlers; a payload type registered twice is a
        mistake in the rules and fails at import time, naming the type."""
        merged: dict[type[Any], Handler] = {}
        for table in tables:
            for payload_type, handler in table._table.items():
                _add(merged, payload_type, handler)
        return merged


def _add(table: dict[type[Any], Handler], payload_type: type[Any], handler: Handler) -> None:
    if payload_type in table:
        raise ValueError(
            f"{payload_type.__name__} has two rules handlers: "
            f"{table[payload_type].__qualname__} and {handler.__qualname__}"
        )
    table[payload_type] = handler
