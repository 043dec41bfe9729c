"""Every message of the original system that Parlour implements has a model and a golden
fixture; every one it does not is named in docs/protocol.md. Sources: the websockets skill doc
(shared/seeds/000_*.txt) and seed-system-facts §1-§2."""

from __future__ import annotations

import json

import pytest

from parlour_protocol.v1 import (
    CLIENT_COMMANDS,
    SERVER_EVENTS,
    decode_client_message,
    decode_server_message,
    type_tag,
)
from tests.support.golden import GOLDEN_DIR, REPO_ROOT

CLIENT_TYPES = {type_tag(m) for m in CLIENT_COMMANDS}
SERVER_TYPES = {type_tag(m) for m in SERVER_EVENTS}

# original client type -> Parlour type (None: left out, documented)
ORIGINAL_COMMANDS: dict[str, str | None] = {
    "system.authenticate": "system.authenticate",
    "system.heartbeat": "system.heartbeat",
    "system.sync_state": "system.sync_state",
    "games.command.list_rooms": "games.command.list_rooms",
    "games.command.create_room": "games.command.create_room",
    "games.command.join_room": "games.command.join_room",
    "games.command.join_as_spectator": "games.command.join_as_spectator",
    "games.command.rejoin_room": "games.command.rejoin_room",
    "games.command.leave_room": "games.command.leave_room",
    "games.command.spectate": None,
    "games.command.stop_spectating": "games.command.stop_spectating",
    "games.command.player_chat": None,
    "games.command.spectator_chat": None,
    "games.command.ready": "games.command.ready",
    "games.command.set_ready": "games.command.set_ready",
    "games.command.start_game": "games.command.start_game",
    "games.command.select_player": "games.command.select_player",
    "games.command.deselect_player": "games.command.deselect_player",
    "games.command.kick_player": "games.command.kick_player",
    "games.command.kick_spectator": "games.command.kick_spectator",
    "games.command.ban_player": "games.command.ban_player",
    "games.command.unban_player": "games.command.unban_player",
    "games.command.vote_kick_disconnected": "games.command.vote_kick_disconnected",
    "games.command.designate_admin_spectator": "games.command.designate_admin_spectator",
    "games.command.mute_user": "games.command.mute_user",
    "games.command.unmute_user": "games.command.unmute_user",
    "games.command.send_chat": "games.command.send_chat",
    "games.command.get_chat_history": "games.command.get_chat_history",
    "games.command.bigger_dice.roll": "games.command.bigger_dice.roll",
    "games.command.bigger_dice.auto_roll": "games.command.bigger_dice.auto_roll",
    "games.command.bigger_dice.enable_auto_play": "games.command.bigger_dice.enable_auto_play",
    "games.command.tic_tac_toe.move": None,
    "chat.command.send_message": "chat.command.send_message",
    "chat.command.send_lobby_message": None,
    "chat.command.typing": None,
    "chat.command.mark_read": None,
}

# original event name (generic, without game prefix where it had one) -> Parlour type
ORIGINAL_EVENTS: dict[str, str | None] = {
    "system.welcome": "system.welcome",
    "system.authenticated": "system.authenticated",
    "system.heartbeat_ack": "system.heartbeat_ack",
    "system.error": "system.error",
    "system.reauth_required": "system.reauth_required",
    "system.state_snapshot": "system.state_snapshot",
    "presence.event.user_online": "presence.event.user_online",
    "presence.event.user_offline": "presence.event.user_offline",
    "room_created": "games.event.room_created",
    "room_state": "games.event.room_state",
    "room_list": "games.event.room_list",
    "rooms_updated": None,
    "room_removed": "games.event.room_removed",
    "room_creation_failed": None,
    "not_in_room": "games.event.not_in_room",
    "lobby_joined": "games.event.lobby_joined",
    "lobby_updated": None,
    "player_joined": None,
    "player_selected": "games.event.player_selected",
    "player_deselected": "games.event.player_deselected",
    "selected_players_updated": "games.event.selected_players_updated",
    "game_starting": "games.event.game_starting",
    "removed_from_game": "games.event.removed_from_game",
    "player_ready": "games.event.player_ready",
    "player_ready_changed": "games.event.player_ready_changed",
    "game_started": "games.event.game_started",
    "turn_changed": "games.event.turn_changed",
    "player_left": "games.event.player_left",
    "player_kicked": "games.event.player_kicked",
    "player_banned": "games.event.player_banned",
    "player_unbanned": "games.event.player_unbanned",
    "player_disconnected": "games.event.player_disconnected",
    "player_rejoined": "games.event.player_rejoined",
    "player_auto_enabled": "games.event.player_auto_enabled",
    "player_auto_disabled": "games.event.player_auto_disabled",
    "spectator_joined": "games.event.spectator_joined",
    "spectator_data_joined": "games.event.spectator_joined",
    "spectator_left": "games.event.spectator_left",
    "spectator_kicked": "games.event.spectator_kicked",
    "spectators_updated": None,
    "admin_spectator_designated": "games.event.admin_spectator_designated",
    "user_muted": "games.event.user_muted",
    "user_unmuted": "games.event.user_unmuted",
    "chat_message": "games.event.chat_message",
    "chat_history": "games.event.chat_history",
    "player_chat_message": None,
    "spectator_chat_message": None,
    "bigger_dice.lobby_chat": "games.event.chat_message",
    "bigger_dice.player_chat": "games.event.chat_message",
    "bigger_dice.spectator_chat": "games.event.chat_message",
    "bigger_dice.lobby_chat_history": "games.event.chat_history",
    "bigger_dice.player_chat_history": "games.event.chat_history",
    "bigger_dice.spectator_chat_history": "games.event.chat_history",
    "bigger_dice.rolled": "games.event.bigger_dice.rolled",
    "bigger_dice.round_result": "games.event.bigger_dice.round_result",
    "bigger_dice.tiebreaker_started": "games.event.bigger_dice.tiebreaker_started",
    "bigger_dice.state": "games.event.bigger_dice.state",
    "bigger_dice.game_over": "games.event.bigger_dice.game_over",
    "bigger_dice.round_complete": None,
    "bigger_dice.state_sync": None,
    "bigger_dice.your_turn": None,
    "bigger_dice.waiting_for_opponent": None,
    "game_ended": None,
    "error": "system.error",
    "user_banned": "system.error",
    "chat.event.message_received": "chat.event.message_received",
    "chat.event.lobby_message": None,
    "chat.event.message_rejected": None,
    "chat.event.typing": None,
    "chat.event.message_read": None,
}


def _documented_as_left_out(name: str) -> bool:
    markdown = (REPO_ROOT / "docs" / "protocol.md").read_text()
    section = markdown.split("## Differences from the original system", 1)[1]
    short = name.rsplit(".", 1)[-1]
    return (
        name in section
        or f"`{short}`" in section
        or ("tic-tac-toe" in section and ("tic_tac_toe" in name))
    )


@pytest.mark.parametrize(("original", "ours"), ORIGINAL_COMMANDS.items())
def test_original_command_is_implemented_or_documented(original: str, ours: str | None) -> None:
    if ours is None:
        assert _documented_as_left_out(original), original
    else:
        assert ours in CLIENT_TYPES
        assert (GOLDEN_DIR / f"{ours}.json").exists()


@pytest.mark.parametrize(("original", "ours"), ORIGINAL_EVENTS.items())
def test_original_event_is_implemented_or_documented(original: str, ours: str | None) -> None:
    if ours is None:
        assert _documented_as_left_out(original), original
    else:
        assert ours in SERVER_TYPES
        assert (GOLDEN_DIR / f"{ours}.json").exists()


# frames exactly as the seed doc shows them (ids as strings, as the gateway code demands)
SEED_CLIENT_FRAMES = [
    {"type": "system.authenticate", "token": "jwt_token_here"},
    {"type": "system.heartbeat"},
    {
        "type": "games.command.create_room",
        "game_type": "bigger_dice",
        "room_name": "My Room",
        "password": None,
    },
    {"type": "games.command.join_room", "room_name": "My Room", "password": None},
    {"type": "games.command.leave_room", "room_id": "3f6c1a9e-8b2d-4e57-9a41-0c7d2f5b8e13"},
    {"type": "games.command.bigger_dice.roll", "room_id": "3f6c1a9e-8b2d-4e57-9a41-0c7d2f5b8e13"},
    {"type": "chat.command.send_message", "recipient_id": "123", "content": "Hello!"},
]
SEED_SERVER_FRAMES = [
    {"type": "system.welcome", "connection_id": "c7b1d2e4", "timestamp": "2026-03-14T18:02:11Z"},
    {"type": "system.authenticated", "user_id": "123", "username": "player1", "roles": ["user"]},
    {"type": "system.error", "code": "auth_failed", "message": "Invalid token"},
    {
        "type": "games.event.room_created",
        "room_id": "3f6c1a9e-8b2d-4e57-9a41-0c7d2f5b8e13",
        "room_name": "My Room",
        "game_type": "bigger_dice",
        "host_id": "123",
        "host_name": "player1",
        "is_password_protected": False,
        "max_players": 2,
        "allow_spectators": True,
    },
]


@pytest.mark.parametrize("frame", SEED_CLIENT_FRAMES, ids=lambda f: f["type"])
def test_seed_doc_client_frames_decode(frame: dict[str, object]) -> None:
    assert decode_client_message(json.dumps(frame)).type == frame["type"]


@pytest.mark.parametrize("frame", SEED_SERVER_FRAMES, ids=lambda f: f["type"])
def test_seed_doc_server_frames_decode(frame: dict[str, object]) -> None:
    assert decode_server_message(json.dumps(frame)).type == frame["type"]
