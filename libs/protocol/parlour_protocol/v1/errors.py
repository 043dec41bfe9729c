"""Every error code the services send in `system.error`, and the decoder's ProtocolError."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ErrorCode(StrEnum):
    """Codes carried by `system.error.code`. The meaning of each is in `ERROR_MEANINGS`."""

    # connection and transport (gateway)
    AUTH_REQUIRED = "auth_required"
    AUTH_FAILED = "auth_failed"
    ALREADY_AUTHENTICATED = "already_authenticated"
    TOKEN_EXPIRED = "token_expired"
    INVALID_MESSAGE = "invalid_message"
    MESSAGE_TOO_LARGE = "message_too_large"
    RATE_LIMITED = "rate_limited"
    SERVICE_UNAVAILABLE = "service_unavailable"
    INTERNAL_ERROR = "internal_error"
    LIMIT_REACHED = "limit_reached"
    # rooms and lobby
    UNKNOWN_GAME = "unknown_game"
    ROOM_NOT_FOUND = "room_not_found"
    ROOM_NAME_TAKEN = "room_name_taken"
    ROOM_FULL = "room_full"
    TOO_MANY_ROOMS = "too_many_rooms"
    USER_BANNED = "user_banned"
    WRONG_PASSWORD = "wrong_password"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    ALREADY_IN_ROOM = "already_in_room"
    NOT_IN_ROOM = "not_in_room"
    NOT_ADMIN = "not_admin"
    GAME_IN_PROGRESS = "game_in_progress"
    PLAYER_NOT_IN_LOBBY = "player_not_in_lobby"
    ALREADY_SELECTED = "already_selected"
    NOT_SELECTED = "not_selected"
    PLAYERS_NOT_READY = "players_not_ready"
    CANNOT_KICK_SELF = "cannot_kick_self"
    CANNOT_BAN_SELF = "cannot_ban_self"
    NOT_BANNED = "not_banned"
    SPECTATOR_NOT_FOUND = "spectator_not_found"
    KICKED_FROM_ROOM = "kicked_from_room"
    SPECTATORS_NOT_ALLOWED = "spectators_not_allowed"
    SPECTATOR_CAPACITY_FULL = "spectator_capacity_full"
    NOT_A_SPECTATOR = "not_a_spectator"
    # games
    WRONG_GAME_TYPE = "wrong_game_type"
    GAME_NOT_IN_PROGRESS = "game_not_in_progress"
    NOT_YOUR_TURN = "not_your_turn"
    NOT_A_PLAYER = "not_a_player"
    ALREADY_AUTO_PLAY = "already_auto_play"
    INVALID_PLAYER = "invalid_player"
    PLAYER_ALREADY_AUTO = "player_already_auto"
    PLAYER_NOT_DISCONNECTED = "player_not_disconnected"
    DISCONNECT_ALREADY_HANDLED = "disconnect_already_handled"
    """Reserved: never sent (see its meaning); removing it would narrow the v1 schema."""
    DISCONNECT_TIMEOUT_ACTIVE = "disconnect_timeout_active"
    NOT_ELIGIBLE_TO_VOTE = "not_eligible_to_vote"
    ALREADY_VOTED = "already_voted"
    GAME_ERROR = "game_error"
    # chat
    CHANNEL_ACCESS_DENIED = "channel_access_denied"
    CHAT_DISABLED = "chat_disabled"
    CANNOT_MESSAGE_SELF = "cannot_message_self"


ERROR_MEANINGS: dict[ErrorCode, str] = {
    ErrorCode.AUTH_REQUIRED: "The socket must send system.authenticate before any other command.",
    ErrorCode.AUTH_FAILED: "The token was missing, malformed, expired, wrongly signed or had a "
    "wrong issuer/audience. The socket stays open for a retry, up to a few failures.",
    ErrorCode.ALREADY_AUTHENTICATED: "The socket is already authenticated as another user.",
    ErrorCode.TOKEN_EXPIRED: "The socket's token expired and no fresh token came within the grace.",
    ErrorCode.INVALID_MESSAGE: "The frame was not JSON, had an unknown type, or fields failed "
    "validation (`reason` says which; `fields` names the field paths). The socket stays open.",
    ErrorCode.MESSAGE_TOO_LARGE: "The frame was larger than the gateway's WS_MAX_MESSAGE_SIZE.",
    ErrorCode.RATE_LIMITED: "The connection sent faster than its token bucket allows; the "
    "command was dropped. A socket that keeps flooding is closed.",
    ErrorCode.SERVICE_UNAVAILABLE: "The command could not be confirmed (broker or store "
    "unreachable or slow): not confirmed; it takes effect at most once; re-send it with the same "
    "request_id on the same connection to be sure.",
    ErrorCode.INTERNAL_ERROR: "An unexpected server fault; the command did not take effect.",
    ErrorCode.LIMIT_REACHED: "A documented cap on a per-room, per-user or per-connection "
    "collection was reached (`message` names the cap; docs/protocol.md lists them all); the "
    "command did not take effect.",
    ErrorCode.UNKNOWN_GAME: "No game of that game_type is registered.",
    ErrorCode.ROOM_NOT_FOUND: "No active room with that id or name (or it no longer accepts "
    "joins).",
    ErrorCode.ROOM_NAME_TAKEN: "Another active room of that game already has this name.",
    ErrorCode.ROOM_FULL: "The room's lobby has no more room.",
    ErrorCode.TOO_MANY_ROOMS: "The caller already hosts the most active rooms one user may "
    "host (ENGINE_MAX_ROOMS_PER_HOST); leave or finish one first.",
    ErrorCode.USER_BANNED: "The caller is on the room's ban list.",
    ErrorCode.WRONG_PASSWORD: "The room password did not match.",
    ErrorCode.TOO_MANY_ATTEMPTS: "Too many wrong passwords for this room; wait before retrying.",
    ErrorCode.ALREADY_IN_ROOM: "The caller is already a member of the room.",
    ErrorCode.NOT_IN_ROOM: "The caller is not a member of the room.",
    ErrorCode.NOT_ADMIN: "Only the room's host may do this.",
    ErrorCode.GAME_IN_PROGRESS: "The room is not waiting; its game has started.",
    ErrorCode.PLAYER_NOT_IN_LOBBY: "The target is not an unselected lobby member.",
    ErrorCode.ALREADY_SELECTED: "The target is already selected.",
    ErrorCode.NOT_SELECTED: "The caller or target is not a selected player.",
    ErrorCode.PLAYERS_NOT_READY: "The game cannot start: seats are empty or players not ready.",
    ErrorCode.CANNOT_KICK_SELF: "The host cannot kick themselves.",
    ErrorCode.CANNOT_BAN_SELF: "The host cannot ban themselves.",
    ErrorCode.NOT_BANNED: "The target is not banned.",
    ErrorCode.SPECTATOR_NOT_FOUND: "The target is not a spectator of the room.",
    ErrorCode.KICKED_FROM_ROOM: "Sent to a spectator the host removed.",
    ErrorCode.SPECTATORS_NOT_ALLOWED: "The room does not allow spectators.",
    ErrorCode.SPECTATOR_CAPACITY_FULL: "The room's spectator seats are all taken.",
    ErrorCode.NOT_A_SPECTATOR: "The caller is not a spectator of the room.",
    ErrorCode.WRONG_GAME_TYPE: "A game command was sent to a room of another game.",
    ErrorCode.GAME_NOT_IN_PROGRESS: "The room's game is not running.",
    ErrorCode.NOT_YOUR_TURN: "It is another player's turn.",
    ErrorCode.NOT_A_PLAYER: "The caller is not a player of the running game.",
    ErrorCode.ALREADY_AUTO_PLAY: "The caller's turns are already played by the server.",
    ErrorCode.INVALID_PLAYER: "The caller or the target of a vote is not a player.",
    ErrorCode.PLAYER_ALREADY_AUTO: "The target is already played by the server.",
    ErrorCode.PLAYER_NOT_DISCONNECTED: "The target has no pending disconnect.",
    ErrorCode.DISCONNECT_ALREADY_HANDLED: "Reserved, never sent: kept so the value stays valid "
    "on the wire. A vote against a target who came back gets `player_not_disconnected`, against "
    "one already voted out `player_already_auto`.",
    ErrorCode.DISCONNECT_TIMEOUT_ACTIVE: "The target's reconnect grace has not run out yet.",
    ErrorCode.NOT_ELIGIBLE_TO_VOTE: "The caller may not vote (disconnected, auto-played or the "
    "target).",
    ErrorCode.ALREADY_VOTED: "The caller already voted against this player.",
    ErrorCode.GAME_ERROR: "A game-specific rule refused the command (`message` says why).",
    ErrorCode.CHANNEL_ACCESS_DENIED: "The caller may not read or write that chat channel now.",
    ErrorCode.CHAT_DISABLED: "Lobby chat is closed once the game starts.",
    ErrorCode.CANNOT_MESSAGE_SELF: "A direct message needs another user as recipient.",
}


class DecodeFailure(StrEnum):
    """Why a frame could not be decoded (`ProtocolError.code`, `system.error.reason`)."""

    INVALID_JSON = "invalid_json"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_FIELDS = "invalid_fields"
    TOO_LARGE = "too_large"


@dataclass(frozen=True)
class FieldProblem:
    """One field that failed validation: a dotted path and a human message."""

    path: str
    message: str


@dataclass
class ProtocolError(Exception):
    """The one exception a decoder raises for bad input."""

    code: DecodeFailure
    message: str
    fields: list[FieldProblem] = field(default_factory=list)
    message_type: str | None = None
    request_id: str | None = None

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"

    @property
    def error_code(self) -> ErrorCode:
        """The `system.error` code a client receives for this failure."""
        if self.code is DecodeFailure.TOO_LARGE:
            return ErrorCode.MESSAGE_TOO_LARGE
        return ErrorCode.INVALID_MESSAGE
