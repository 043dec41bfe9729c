"""Limits that are part of the schema: both services and clients can rely on them."""

from __future__ import annotations

PROTOCOL_VERSION = "1.0"

MAX_FRAME_BYTES = 65_536
"""Default largest WebSocket frame the gateway accepts (WS_MAX_MESSAGE_SIZE)."""

ID_MAX_LENGTH = 64
ID_PATTERN = r"^[A-Za-z0-9_.:@-]+$"
"""Ids are opaque strings (room ids are UUIDs, user ids are the token's `sub`)."""

REQUEST_ID_MAX_LENGTH = 64

USERNAME_MAX_LENGTH = 64

ROOM_NAME_MIN_LENGTH = 1
ROOM_NAME_MAX_LENGTH = 48
ROOM_NAME_PATTERN = r"^[\w][\w .,'!?#()+-]*$"
"""Letters (any script), digits, underscore first; then also space and a little punctuation."""

PASSWORD_MAX_LENGTH = 128
TOKEN_MAX_LENGTH = 8_192

CHAT_CONTENT_MAX_LENGTH = 1_000
_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
CHAT_CONTENT_PATTERN = rf"^[^{_CONTROL}]*[^\s{_CONTROL}][^{_CONTROL}]*$"
"""Chat text: at least one visible character; no control characters except tab, LF and CR."""
CHAT_HISTORY_DEFAULT_LIMIT = 50
CHAT_HISTORY_MAX_LIMIT = 200

MIN_PLAYERS = 2
MAX_PLAYERS = 10
DEFAULT_MAX_SPECTATORS = 10

# --- caps on what one user can make the server hold (system.error `limit_reached`) --------

MAX_BANNED_PER_ROOM = 100
"""Most users one room's ban list holds; a further `ban_player` gets `limit_reached`."""
MAX_MUTED_PER_USER = 20
"""Most users one member of a room may have muted in it; a further `mute_user` gets
`limit_reached`. The mute lists live in the room's state, which is read and written on every
command of the room: with every member's list full (100 lobby members, 10 spectators, the
host) they add about 150 KB to it, where 50 made it 0.5 MB."""
DEFAULT_MAX_ROOMS_PER_HOST = 5
"""Default most active (waiting or running) rooms one user may host at once
(ENGINE_MAX_ROOMS_PER_HOST); a further `create_room` gets `too_many_rooms`."""
DEFAULT_MAX_ROOMS_PER_USER = 20
"""Default most rooms one user may be a member of at once, in any role and status
(ENGINE_MAX_ROOMS_PER_USER); a further `create_room`, `join_room` or `join_as_spectator` gets
`limit_reached`. Each connect or disconnect of a user costs one engine command per room they
are in, so this also bounds that."""
EVENT_MAX_BYTES = 256 * 1024
"""Budget of one event envelope on the events topic. Every list an event carries is capped
or paged so that no event reaches it; the engine checks every event against it before it
commits a command, and a command whose events would not fit does not take effect (its
sender gets `internal_error`, the record goes to the dead-letter topic)."""
ROOM_LIST_PAGE_MAX = 50
"""Most rooms one `games.event.room_list` carries; the rest are reached with its cursor."""
