"""What docs/protocol.md says about the original system Parlour replaces: the mismatches it
fixes and what it deliberately leaves out (not keyed by message: these are not messages)."""

from __future__ import annotations

LEFT_OUT: list[tuple[str, str]] = [
    (
        "`games.command.spectate` (by id) and its `spectator_joined {spectator_id, "
        "spectator_name}` event",
        "legacy second entry point; `join_as_spectator` checks password, ban and capacity. "
        "`spectator_joined` and `spectator_data_joined` are merged into one "
        "`games.event.spectator_joined` carrying a filled `spectator` object and the count.",
    ),
    (
        "`games.command.player_chat`, `games.command.spectator_chat`, events "
        "`player_chat_message` / `spectator_chat_message`",
        "legacy; the original backend never handled them. Use `send_chat` with a `channel`.",
    ),
    (
        "`games.event.bigger_dice.lobby_chat` / `player_chat` / `spectator_chat` and the three "
        "`..._chat_history` events",
        "merged into one `games.event.chat_message` and one `games.event.chat_history` with a "
        "`channel` field (what the original used for other games), so chat is not per game.",
    ),
    (
        "`chat.command.typing`, `chat.command.mark_read`, `chat.command.send_lobby_message`; "
        "events `chat.event.lobby_message`, `chat.event.typing`, `chat.event.message_read`, "
        "`chat.event.message_rejected`",
        "no chat-domain backend exists to reimplement (friends lists, read receipts, public "
        "lobby chat were only planned); the original gateway never delivered the last three. "
        "Direct messages (`send_message` / `message_received`) are kept.",
    ),
    (
        "payments: fee deduction on `select_player`, `bigger_dice.participation_payed`, "
        "`bigger_dice.win_prize`, `prize_cents`; error codes `insufficient_balance`, "
        "`user_not_found`",
        "out of scope (no checkout service).",
    ),
    (
        "tic-tac-toe (`games.command.tic_tac_toe.move` and its events)",
        "out of scope; a game is one module in `parlour_protocol.v1.games` and can be added "
        "later without touching anything else.",
    ),
    (
        "`rooms_updated`, `room_creation_failed`, `player_joined`, `lobby_updated`, "
        "`spectators_updated`",
        "defined in the original but never produced; live lists use `room_created` / "
        "`room_removed`, failures are `system.error`, joins are `lobby_joined`.",
    ),
    (
        "legacy Bigger Dice events `round_complete`, `state_sync`, `your_turn`, "
        "`waiting_for_opponent`, `games.event.game_ended`",
        "two-player era, never produced by the N-player backend; `round_result`, "
        "`bigger_dice.state`, `turn_changed` and `game_over` replace them.",
    ),
    (
        "game-prefixed copies of room events (`games.event.bigger_dice.room_created`, ...)",
        "room, lobby and spectator events are generic (`games.event.<name>`) for every game; "
        "only game rules events carry the game prefix.",
    ),
    (
        "`games.event.error`, `games.event.user_banned`",
        "the original gateway turned them into `system.error`; the engine sends `system.error` "
        "directly (code `user_banned` for a banned joiner).",
    ),
    (
        "`system.state_snapshot.game_states` (always `{}`), `unread_messages` (always 0); "
        "`avatar_id` on authenticate, players and chat",
        "carried no information in the original; Parlour has no avatars. An `avatar_id` sent by "
        "a client is ignored like any unknown field.",
    ),
    (
        "`room_list` items' raw `players` / `lobby` arrays",
        "replaced by `player_count` / `lobby_count` (+ `host_id`, `created_at`, which the "
        "original gateway dropped); members are in `room_state`.",
    ),
    (
        "backend-only commands `select_spectator`, `become_spectator`, `become_player`, "
        "`leave_spectate` (and error `not_in_lobby`); doc-only `get_history`, "
        "`get_game_details`",
        "no client could send them in the original; `stop_spectating` now works (it was "
        "forwarded as an unknown name).",
    ),
    (
        "error codes `join_failed`, `unban_failed`",
        "database failures of the original; an unexpected store failure here is "
        "`internal_error` and the command does not take effect.",
    ),
    (
        "error codes `RATE_LIMIT`, `INVALID_FORMAT`, `MESSAGE_ERROR`",
        "renamed to lower-case `rate_limited`, `invalid_message`; `MESSAGE_ERROR` is split "
        "into `auth_required`, `auth_failed`, `already_authenticated`, `internal_error`.",
    ),
    (
        "doc-only codes `game_not_started`, `banned`, `not_host`, `muted`",
        "the code-level names are used: `game_not_in_progress`, `user_banned`, `not_admin`; "
        "mutes are per viewer, so sending is never refused for a mute.",
    ),
]

FIXED: list[tuple[str, str]] = [
    ("`rolled.new_score` dropped, `is_first_roll` always true", "both carried"),
    ("`game_over.final_scores` cut to two players", "a list of every player in seat order"),
    ("`set_ready.is_ready` read as `ready`", "`is_ready` honoured; false un-readies"),
    ("`stop_spectating` unknown to the backend", "handled"),
    ("`kick_spectator` never forwarded", "handled; `spectator_kicked` delivered"),
    ("`spectator_joined` ids/names/count empty", "filled (`spectator` object + count)"),
    ("`bigger_dice.state.round_history` dropped", "carried"),
    ("`admin_spectator_designated` prefixed and dropped", "generic name, delivered"),
    ("`players` audience not filtered", "each audience resolved to explicit user ids"),
    ("forbidden chat / failed set_ready / designate: no reply", "`system.error` with a code"),
    ("events of a room had no order marker", "room-wide events carry `seq`; resume by `last_seq`"),
    (
        "`player_count` meant seats in `room_created` but players in `room_list`",
        "`max_players` is the seats everywhere; `room_created` also keeps `player_count` "
        "(= `max_players`) for old clients",
    ),
]
