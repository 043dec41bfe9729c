"""Every error code of the original system (seed-system-facts §2e) is either an ErrorCode or
deliberately left out, and docs/protocol.md says why."""

from __future__ import annotations

import pytest

from parlour_protocol.v1 import ERROR_MEANINGS, DecodeFailure, ErrorCode, ProtocolError
from tests.support.golden import REPO_ROOT

# original code -> our code (None: left out on purpose; docs/protocol.md gives the reason)
ORIGINAL_CODES: dict[str, ErrorCode | None] = {
    # gateway-generated
    "RATE_LIMIT": ErrorCode.RATE_LIMITED,
    "INVALID_FORMAT": ErrorCode.INVALID_MESSAGE,
    "MESSAGE_ERROR": ErrorCode.AUTH_REQUIRED,  # split: auth_required / auth_failed / ...
    "game_error": ErrorCode.GAME_ERROR,
    "user_banned": ErrorCode.USER_BANNED,
    # backend-generated
    "room_not_found": ErrorCode.ROOM_NOT_FOUND,
    "wrong_password": ErrorCode.WRONG_PASSWORD,
    "already_in_room": ErrorCode.ALREADY_IN_ROOM,
    "join_failed": None,
    "not_admin": ErrorCode.NOT_ADMIN,
    "game_in_progress": ErrorCode.GAME_IN_PROGRESS,
    "insufficient_balance": None,
    "user_not_found": None,
    "player_not_in_lobby": ErrorCode.PLAYER_NOT_IN_LOBBY,
    "cannot_kick_self": ErrorCode.CANNOT_KICK_SELF,
    "cannot_ban_self": ErrorCode.CANNOT_BAN_SELF,
    "not_banned": ErrorCode.NOT_BANNED,
    "unban_failed": None,
    "spectator_not_found": ErrorCode.SPECTATOR_NOT_FOUND,
    "kicked_from_room": ErrorCode.KICKED_FROM_ROOM,
    "spectators_not_allowed": ErrorCode.SPECTATORS_NOT_ALLOWED,
    "spectator_capacity_full": ErrorCode.SPECTATOR_CAPACITY_FULL,
    "not_in_lobby": None,
    "not_a_spectator": ErrorCode.NOT_A_SPECTATOR,
    "game_not_in_progress": ErrorCode.GAME_NOT_IN_PROGRESS,
    "not_your_turn": ErrorCode.NOT_YOUR_TURN,
    "wrong_game_type": ErrorCode.WRONG_GAME_TYPE,
    "not_a_player": ErrorCode.NOT_A_PLAYER,
    "already_auto_play": ErrorCode.ALREADY_AUTO_PLAY,
    "invalid_player": ErrorCode.INVALID_PLAYER,
    "player_already_auto": ErrorCode.PLAYER_ALREADY_AUTO,
    "player_not_disconnected": ErrorCode.PLAYER_NOT_DISCONNECTED,
    "disconnect_already_handled": ErrorCode.DISCONNECT_ALREADY_HANDLED,
    "disconnect_timeout_active": ErrorCode.DISCONNECT_TIMEOUT_ACTIVE,
    "not_eligible_to_vote": ErrorCode.NOT_ELIGIBLE_TO_VOTE,
    "channel_access_denied": ErrorCode.CHANNEL_ACCESS_DENIED,
    # doc-only
    "auth_failed": ErrorCode.AUTH_FAILED,
    "room_full": ErrorCode.ROOM_FULL,
    "game_not_started": ErrorCode.GAME_NOT_IN_PROGRESS,
    "banned": ErrorCode.USER_BANNED,
    "not_host": ErrorCode.NOT_ADMIN,
    "already_selected": ErrorCode.ALREADY_SELECTED,
    "muted": None,
}


def test_every_code_has_a_meaning() -> None:
    assert set(ERROR_MEANINGS) == set(ErrorCode)
    assert all(meaning.strip() for meaning in ERROR_MEANINGS.values())


def test_codes_are_lower_snake_case() -> None:
    for code in ErrorCode:
        assert code.value == code.name.lower()


@pytest.mark.parametrize(("original", "ours"), ORIGINAL_CODES.items())
def test_original_code_is_kept_or_its_omission_documented(
    original: str, ours: ErrorCode | None
) -> None:
    markdown = (REPO_ROOT / "docs" / "protocol.md").read_text()
    if ours is None or ours.value != original:
        # renamed, merged or left out: the differences section names it
        section = markdown.split("## Differences from the original system", 1)[1]
        assert f"`{original}`" in section
    if ours is not None:
        assert f"| `{ours.value}` |" in markdown


def test_decode_failures_map_to_error_codes() -> None:
    for failure in DecodeFailure:
        error = ProtocolError(failure, "x")
        expected = (
            ErrorCode.MESSAGE_TOO_LARGE
            if failure is DecodeFailure.TOO_LARGE
            else ErrorCode.INVALID_MESSAGE
        )
        assert error.error_code is expected
