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
