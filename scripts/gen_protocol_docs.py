"""Generate the protocol contract from `parlour_protocol.v1`.

    .venv/bin/python scripts/gen_protocol_docs.py --write   # rewrite the generated files
    .venv/bin/python scripts/gen_protocol_docs.py --check   # exit 1 when they are stale

Writes a JSON Schema per WebSocket message and per Kafka envelope (docs/protocol/schemas/), an
AsyncAPI 3.0 document for the Kafka topics (docs/protocol/asyncapi.json) and the human-readable
docs/protocol.md. Examples come from the golden fixtures in tests/protocol/golden/. `--write` also
records new models and fields in tests/protocol/golden/_fields.json; it never drops an entry, so
a removed or renamed field keeps failing the field-snapshot test.

Output is deterministic: same models and fixtures, same bytes.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from parlour_protocol.v1 import (
    CLIENT_COMMANDS,
    ENGINE_COMMANDS,
    ERROR_MEANINGS,
    INTERNAL_COMMANDS,
    PROTOCOL_VERSION,
    SERVER_EVENTS,
    AudienceKind,
    CloseCode,
    CommandEnvelope,
    DecodeFailure,
    ErrorCode,
    EventEnvelope,
    limits,
    topics,
    type_tag,
)
from parlour_protocol.v1 import system as system_messages
from parlour_protocol.v1.base import WireModel

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "protocol" / "golden"
FIELDS_SNAPSHOT = GOLDEN / "_fields.json"
DOCS_MD = Path("docs/protocol.md")
DOCS_DIR = Path("docs/protocol")
ENVELOPE_FIXTURES = {
    CommandEnvelope: "_envelope.command.json",
    EventEnvelope: "_envelope.event.json",
}

# --------------------------------------------------------------------------------------------
# What the models cannot say about themselves: who receives an event, who answers a command.
# A message without an entry here fails the generator (and so the --check test).

ROOM_SEQ = "whole room (players, lobby, spectators) - carries `seq`"

# a game's messages not described in the tables below (a new game needs no edit here)
_GAME_COMMAND_ANSWER = "the game's events to the room, or `system.error` to the sender"
_GAME_EVENT_AUDIENCE = "defined by the game (see its module's docstrings)"

EVENT_AUDIENCE: dict[str, str] = {
    "system.welcome": "the new socket, first frame - `seq` null",
    "system.authenticated": "the authenticating socket - `seq` null",
    "system.heartbeat_ack": "the socket that sent the heartbeat - `seq` null",
    "system.error": "the socket whose command failed (audience `connection`) - `seq` null",
    "system.ack": "the socket that sent the command - `seq` null",
    "system.reauth_required": "every socket of the user whose token expired - `seq` null",
    "system.state_snapshot": "the socket that sent `system.sync_state` - `seq` null",
    "presence.event.user_online": "users who share a room with the user - `seq` null",
    "presence.event.user_offline": "users who share a room with the user - `seq` null",
    "games.event.room_created": "broadcast: sockets that listed the game's rooms - `seq` null",
    "games.event.room_state": "one user (creator, joiner, rejoiner, new spectator, every seat "
    "when selection completes) - `seq` null; `room.last_seq` says where the room stands",
    "games.event.room_list": "the requesting socket - `seq` null",
    "games.event.room_removed": "broadcast: sockets that listed the game's rooms - `seq` null",
    "games.event.not_in_room": "the rejoining socket - `seq` null",
    "games.event.lobby_joined": ROOM_SEQ,
    "games.event.player_selected": ROOM_SEQ,
    "games.event.player_deselected": ROOM_SEQ,
    "games.event.selected_players_updated": ROOM_SEQ,
    "games.event.game_starting": "each selected player and each spectator (audience `users`), "
    "followed by a fresh `room_state` - `seq` null",
    "games.event.removed_from_game": "each unselected lobby member, when every seat is taken "
    "- `seq` null",
    "games.event.player_ready": ROOM_SEQ,
    "games.event.player_ready_changed": ROOM_SEQ,
    "games.event.game_started": ROOM_SEQ,
    "games.event.turn_changed": ROOM_SEQ,
    "games.event.player_left": ROOM_SEQ + "; the leaver receives it too",
    "games.event.player_kicked": ROOM_SEQ + "; the kicked user receives it too",
    "games.event.player_banned": ROOM_SEQ + "; the banned user receives it too",
    "games.event.player_unbanned": ROOM_SEQ,
    "games.event.player_disconnected": ROOM_SEQ + "; repeated to a rejoining user for each "
    "still-pending disconnect with `seq` null",
    "games.event.player_rejoined": ROOM_SEQ,
    "games.event.kick_vote_received": ROOM_SEQ,
    "games.event.player_auto_enabled": ROOM_SEQ,
    "games.event.player_auto_disabled": ROOM_SEQ,
    "games.event.spectator_joined": ROOM_SEQ,
    "games.event.spectator_left": ROOM_SEQ + "; the leaver receives it too",
    "games.event.spectator_kicked": ROOM_SEQ + "; the kicked spectator receives it too",
    "games.event.admin_spectator_designated": ROOM_SEQ,
    "games.event.chat_message": "channel `lobby` or `players`: " + ROOM_SEQ + "; channel "
    "`spectators`: the spectators only - `seq` null",
    "games.event.chat_history": "the requesting socket; messages of users the requester "
    "muted are left out - `seq` null",
    "games.event.user_muted": "the muting user only - `seq` null",
    "games.event.user_unmuted": "the unmuting user only - `seq` null",
    "chat.event.message_received": "every socket of the recipient and of the sender - `seq` null",
    "games.event.bigger_dice.rolled": ROOM_SEQ,
    "games.event.bigger_dice.round_result": ROOM_SEQ,
    "games.event.bigger_dice.tiebreaker_started": ROOM_SEQ,
    "games.event.bigger_dice.state": "the rejoining player or joining spectator - `seq` null",
    "games.event.bigger_dice.game_over": ROOM_SEQ,
}

COMMAND_ANSWER: dict[str, str] = {
    "system.authenticate": "gateway: `system.authenticated`, or `system.error` "
    "`auth_failed`/`already_authenticated`",
    "system.heartbeat": "gateway: `system.heartbeat_ack`",
    "system.sync_state": "gateway: `system.state_snapshot`",
    "games.command.list_rooms": "`games.event.room_list`",
    "games.command.create_room": "`room_created` (broadcast), then `room_state` to the creator",
    "games.command.join_room": "`room_state` to the joiner, then `lobby_joined` to the room",
    "games.command.join_as_spectator": "`room_state` (and the game's state event when running) "
    "to the joiner, then `spectator_joined` to the room",
    "games.command.rejoin_room": "members: `room_state`, the game's state event, "
    "`player_rejoined`/`player_auto_disabled` as they apply, or the replay of the room events "
    "after `last_seq`; non-members and banned users: `not_in_room`",
    "games.command.leave_room": "`player_left` (a player of a running game: "
    "`player_disconnected`); `room_removed` first when the room closes",
    "games.command.stop_spectating": "`spectator_left`",
    "games.command.ready": "`player_ready`; when every seat is ready the game starts "
    "(`game_started`, `turn_changed`, `room_removed` reason `game_started`)",
    "games.command.set_ready": "`player_ready_changed` (`is_ready` false un-readies)",
    "games.command.start_game": "`game_started`, `turn_changed`, `room_removed`",
    "games.command.select_player": "`player_selected`; on the last seat `removed_from_game` to "
    "the unselected, `game_starting` and `room_state`",
    "games.command.deselect_player": "`player_deselected`, `selected_players_updated`",
    "games.command.kick_player": "`player_kicked`",
    "games.command.kick_spectator": "`spectator_kicked`; the spectator also gets `system.error` "
    "`kicked_from_room`",
    "games.command.ban_player": "`player_banned`",
    "games.command.unban_player": "`player_unbanned`",
    "games.command.vote_kick_disconnected": "`kick_vote_received`; when the vote passes "
    "`player_auto_enabled` (reason `vote_kick`) and the server rolls for the player",
    "games.command.designate_admin_spectator": "`admin_spectator_designated`",
    "games.command.send_chat": "`chat_message`",
    "games.command.get_chat_history": "`chat_history`",
    "games.command.mute_user": "`user_muted` to the caller",
    "games.command.unmute_user": "`user_unmuted` to the caller",
    "chat.command.send_message": "`chat.event.message_received` to recipient and sender",
    "games.command.bigger_dice.roll": "`rolled`, then `turn_changed`, or `round_result` followed "
    "by `game_over` / `turn_changed` / `tiebreaker_started` + `turn_changed`",
    "games.command.bigger_dice.auto_roll": "as `roll`, with `auto` true; ignored unless it is "
    "the target's turn and the target is auto-played",
    "games.command.bigger_dice.enable_auto_play": "`player_auto_enabled` (reason `voluntary`); "
    "the server rolls whenever it is the caller's turn",
    "games.command.player_disconnected": "published by a gateway when a user's last socket "
    "closes, once per room; a player of a running game gets `player_disconnected`",
    "games.command.presence_changed": "published by a gateway on a user's first socket open / "
    "last socket close; members of the user's rooms get `presence.event.user_online/offline`",
    "games.command.timer_fired": "published by the engine's timer loop; a turn timeout rolls for "
    "the player (`rolled` with `auto` true), a disconnect grace opens the vote",
}

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

# --------------------------------------------------------------------------------------------


def _golden(tag: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GOLDEN / f"{tag}.json").read_text())
    return data


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _attribute_docs(cls: type) -> dict[str, str]:
    """Docstrings written under class attributes (enum members), read from the source."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.targets[0].id] = " ".join(after.value.value.split())
    return docs


def _doc(model: type[BaseModel]) -> str:
    return " ".join((model.__doc__ or "").split())


def _mode(model: type[BaseModel]) -> str:
    # commands: what a decoder accepts; events: what the server sends (incl. computed fields)
    return "serialization" if model in SERVER_EVENTS else "validation"


def _message_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(mode=_mode(model))  # type: ignore[arg-type]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


# --- markdown rendering of field types -------------------------------------------------------


def _type_str(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in prop:
        return " \\| ".join(_type_str(option) for option in prop["anyOf"])
    if "const" in prop:
        return f'`"{prop["const"]}"`'
    if "enum" in prop:
        return " \\| ".join(f"`{value}`" for value in prop["enum"])
    kind = prop.get("type")
    if kind == "array":
        if "prefixItems" in prop:
            return "[" + ", ".join(_type_str(item) for item in prop["prefixItems"]) + "]"
        return f"list[{_type_str(prop.get('items', {}))}]"
    if kind == "integer" and ("minimum" in prop or "maximum" in prop):
        return f"integer {prop.get('minimum', '')}..{prop.get('maximum', '')}"
    if kind == "string" and prop.get("format") == "date-time":
        return "timestamp"
    if kind == "string" and prop.get("format") == "uuid":
        return "uuid"
    return str(kind or "any")


def _constraints(prop: dict[str, Any]) -> str:
    parts: list[str] = []
    options = prop.get("anyOf", [prop])
    for option in options:
        if "minLength" in option or "maxLength" in option:
            parts.append(f"length {option.get('minLength', 0)}..{option.get('maxLength', '')}")
        if "minimum" in option or "maximum" in option:
            parts.append(f"range {option.get('minimum', '')}..{option.get('maximum', '')}")
        if "pattern" in option:
            parts.append(f"pattern `{option['pattern']}`")
        if option.get("type") == "array" and "items" in option:
            parts.extend(_constraints(option["items"]).split("; ") if option["items"] else [])
    return "; ".join(part for part in parts if part).replace("|", "\\|")


def _field_rows(schema: dict[str, Any]) -> list[str]:
    required = set(schema.get("required", []))
    rows = ["| field | type | required | default | limits | notes |", "|---|---|---|---|---|---|"]
    for name, prop in schema.get("properties", {}).items():
        default = "" if "default" not in prop else f"`{json.dumps(prop['default'])}`"
        notes = " ".join(str(prop.get("description", "")).split())
        if prop.get("readOnly"):
            notes = ("sent by the server, ignored on input. " + notes).strip()
        # `type` has a default in Python but is the discriminator: always required on the wire
        is_required = name in required or name == "type"
        rows.append(
            f"| `{name}` | {_type_str(prop)} | {'yes' if is_required else 'no'} | "
            f"{default} | {_constraints(prop)} | {notes} |"
        )
    return rows


def _message_section(model: type[BaseModel], direction: str, extra: str) -> list[str]:
    tag = type_tag(model)  # type: ignore[arg-type]
    schema = model.model_json_schema(mode=_mode(model))  # type: ignore[arg-type]
    lines = [f"#### `{tag}`", "", f"*{direction}* - `{model.__module__}.{model.__name__}`", ""]
    if _doc(model):
        lines += [_doc(model), ""]
    lines += [extra, "", *_field_rows(schema), "", "```json"]
    lines.append(json.dumps(_golden(tag), ensure_ascii=False))
    lines += ["```", ""]
    return lines


def _shared_shapes(models: list[type[BaseModel]]) -> list[str]:
    defs: dict[str, dict[str, Any]] = {}
    for model in models:
        defs.update(model.model_json_schema(mode=_mode(model)).get("$defs", {}))  # type: ignore[arg-type]
    lines: list[str] = []
    for name in sorted(defs):
        schema = defs[name]
        lines += [f"#### {name}", ""]
        if schema.get("description"):
            lines += [" ".join(schema["description"].split()), ""]
        if "enum" in schema:
            lines += ["One of: " + ", ".join(f"`{value}`" for value in schema["enum"]), ""]
        else:
            lines += [*_field_rows(schema), ""]
    return lines


def _render_markdown() -> str:
    out: list[str] = []
    add = out.extend
    add(
        [
            "# Parlour wire protocol v1",
            "",
            "<!-- Generated by scripts/gen_protocol_docs.py from parlour_protocol.v1 and the "
            "golden fixtures in tests/protocol/golden/. Do not edit by hand: run "
            "`.venv/bin/python scripts/gen_protocol_docs.py --write`. -->",
            "",
            f"Protocol version **{PROTOCOL_VERSION}** (module `parlour_protocol.v1`, sent as "
            "`system.welcome.protocol_version`). Machine-readable: a JSON Schema per message in "
            "[`docs/protocol/schemas/`](protocol/schemas/), the Kafka contract as AsyncAPI 3.0 in "
            "[`docs/protocol/asyncapi.json`](protocol/asyncapi.json).",
            "",
            "## Overview",
            "",
            "Browsers talk JSON over one WebSocket to a gateway. The gateway answers connection "
            "commands (`system.*`) itself and turns every other command into a `CommandEnvelope` "
            f"on Kafka `{topics.COMMANDS}`; the engine applies it to the room in Redis and "
            f"publishes `EventEnvelope`s on `{topics.EVENTS}`; every gateway delivers each event "
            "to the sockets of the user ids the engine resolved. The payload of an event envelope "
            "is exactly the frame the socket receives.",
            "",
            "## Conventions",
            "",
            "- **Frames**: one JSON object per WebSocket text frame, at most "
            f"{limits.MAX_FRAME_BYTES} bytes (gateway setting `WS_MAX_MESSAGE_SIZE`). Every "
            "message has a `type` string; unions are discriminated on it. Field names are "
            "snake_case.",
            "- **Unknown fields are ignored** (forward compatibility). In particular identity is "
            "never read from a message body: a `user_id` in any command is dropped; the gateway "
            "takes the user from the verified token. The one exception is "
            "`system.authenticate.user_id/username`, honoured only by a gateway in development "
            "mode (`AUTH_DEV_MODE=true`).",
            '- **Ids** are strings (`user_id`s as issued in the token\'s `sub`, e.g. `"1042"`; '
            "room ids are UUIDs), 1..64 characters of `A-Z a-z 0-9 _ . : @ -`. Compare them as "
            "strings; numbers are rejected.",
            "- **Timestamps** are RFC 3339 in UTC with a `Z` suffix "
            '(`"2026-03-14T18:02:11.250000Z"`).',
            "- **`request_id`** (optional, 1..64 characters) may be sent on any client command; "
            "it is echoed on the `system.error` the command causes and on the `system.ack` when "
            "the gateway handed it to the engine, so a client can match answers to requests.",
            "- **`seq`**: every event whose audience is the whole room carries the room's next "
            "sequence number (1, 2, 3, ... per room, in the envelope and in the frame). Events "
            "for part of a room or for one user carry `seq: null` and consume nothing. "
            "`room_state.room.last_seq` is the room's newest seq when the snapshot was taken. A "
            "client that reconnects sends `games.command.rejoin_room {room_id, last_seq}` and "
            "gets the missed room events replayed (or a fresh `room_state` when they are older "
            "than the replay window: the last 500 events / 10 minutes). Gateways drop a "
            "`(room_id, seq)` they already delivered, so a client never sees a duplicate.",
            "- **Handshake refusals**: before the upgrade a gateway may answer HTTP 403 (the "
            "`Origin` is not allowed) or HTTP 429 with `Retry-After` (too many handshakes, or "
            "too many sockets awaiting authentication, from one address). A browser sees only a "
            "failed connection (close 1006): reconnect with a growing, jittered delay.",
            "- **Exactly once**: a command takes effect once or the client gets a "
            "`system.error` saying it did not. Bad input never closes the socket (except the "
            "close codes below).",
            "- **Limits** are part of the schema: room names "
            f"{limits.ROOM_NAME_MIN_LENGTH}..{limits.ROOM_NAME_MAX_LENGTH} characters "
            "(letters of any script, digits, `_`, then also space and `.,'!?#()+-`; surrounding "
            f"spaces are stripped), passwords <= {limits.PASSWORD_MAX_LENGTH} (empty = none), "
            f"chat text 1..{limits.CHAT_CONTENT_MAX_LENGTH} characters with at least one visible "
            "character and no control characters but tab/CR/LF, chat history "
            f"`limit` 1..{limits.CHAT_HISTORY_MAX_LIMIT} (default "
            f"{limits.CHAT_HISTORY_DEFAULT_LIMIT}), players per room "
            f"{limits.MIN_PLAYERS}..{limits.MAX_PLAYERS}, tokens <= {limits.TOKEN_MAX_LENGTH}, "
            "dice 1..6.",
            "",
            "### Decoding failures",
            "",
            "Every decoder (`decode_client_message`, `decode_server_message`, "
            "`decode_command_envelope`, `decode_event_envelope`) raises one exception, "
            "`ProtocolError`, whose `code` is one of:",
            "",
            "| reason | meaning | `system.error.code` |",
            "|---|---|---|",
        ]
    )
    reasons = {
        DecodeFailure.INVALID_JSON: "not UTF-8 JSON, not an object, or nested too deeply",
        DecodeFailure.UNKNOWN_TYPE: "no `type`, or a `type` this direction does not know",
        DecodeFailure.INVALID_FIELDS: "fields missing or invalid; `fields` lists "
        "`{path, message}` per field (dotted paths, e.g. `room.players.0.user_id`)",
        DecodeFailure.TOO_LARGE: "the frame exceeds the size limit (checked before parsing)",
    }
    for reason in DecodeFailure:
        too_large = reason is DecodeFailure.TOO_LARGE
        code = ErrorCode.MESSAGE_TOO_LARGE if too_large else ErrorCode.INVALID_MESSAGE
        add([f"| `{reason.value}` | {reasons[reason]} | `{code}` |"])
    add(
        [
            "",
            "The gateway answers such a frame with `system.error {code, reason, fields, "
            "request_id}` (the `request_id` is recovered from the raw frame when possible) and "
            "keeps the socket open.",
            "",
            "## Versioning",
            "",
            "- Inside `v1` only additive changes: new messages, new optional fields, new enum "
            "values a client must tolerate (unknown `type`s and unknown error codes should be "
            "ignored or shown generically). Never a rename, a removal, or a new required field "
            "on an existing message.",
            "- A breaking change is a new module `parlour_protocol.v2`, served side by side with "
            "v1 for a deprecation window; Kafka topics carry the version in their name "
            "(`games.command.v1`).",
            "- Guards: `tests/protocol/golden/<type>.json` pins the wire form of every message "
            "(each must decode and re-encode to the same JSON; a message without a fixture fails "
            "the tests) and `tests/protocol/golden/_fields.json` records every model's fields "
            "(removing or renaming one, or making an optional one required, fails the tests).",
            "",
            "## Kafka",
            "",
            "| topic | producer -> consumer | key | partitions |",
            "|---|---|---|---|",
            f"| `{topics.COMMANDS}` | gateways, engine timers -> engine | room_id; the actor's "
            f"user_id when no room | {topics.PARTITIONS[topics.COMMANDS]} |",
            f"| `{topics.EVENTS}` | engine -> every gateway | room_id; the recipient's user_id "
            f"when no room | {topics.PARTITIONS[topics.EVENTS]} |",
            f"| `{topics.COMMANDS_DLQ}` | engine (commands that kept failing) | as the command | "
            f"{topics.PARTITIONS[topics.COMMANDS_DLQ]} |",
            "",
            "Names take an optional prefix (`KAFKA_TOPIC_PREFIX`, `Topics(prefix)`). "
            "`CommandEnvelope.msg_id` is the idempotency key; `EventEnvelope.causation_id` names "
            "the command. The envelope's `type` (and an event envelope's `seq`) always equals "
            "its payload's; the "
            "`Audience` is resolved by the engine to explicit `user_ids` for every kind but "
            "`connection` and `broadcast`:",
            "",
        ]
    )
    for kind in AudienceKind:
        doc = _attribute_docs(AudienceKind).get(kind.name, "")
        add([f"- `{kind.value}`" + (f": {doc}" if doc else "")])
    add(
        [
            "",
            "**Direct chat** travels on the same two topics (commands keyed by the sender's user "
            "id, events by the recipient's): one envelope, one idempotency and dead-letter path, "
            "one consumer per gateway. Its volume is small next to game traffic and it needs no "
            "ordering across users, so separate `chat.commands` / `chat.events` topics (as in the "
            "original system) would add a consumer and a failure path for nothing.",
            "",
            "Envelope examples:",
            "",
            "```json",
            json.dumps(json.loads((GOLDEN / ENVELOPE_FIXTURES[CommandEnvelope]).read_text())),
            "```",
            "",
            "```json",
            json.dumps(json.loads((GOLDEN / ENVELOPE_FIXTURES[EventEnvelope]).read_text())),
            "```",
            "",
        ]
    )
    add(["## Client -> server commands", ""])
    groups: list[tuple[str, list[type[BaseModel]]]] = [
        ("Connection (answered by the gateway)", list(system_messages.CLIENT_COMMANDS)),
        ("Rooms, lobby, chat and games (handled by the engine)", list(ENGINE_COMMANDS)),
    ]
    for title, models in groups:
        add([f"### {title}", ""])
        for model in models:
            if model in INTERNAL_COMMANDS:
                continue
            key = (
                "Kafka key: `room_id`."
                if getattr(model, "room_scoped", False)
                else "Kafka key: the sender's user id."
            )
            if model in system_messages.CLIENT_COMMANDS:
                key = "Not forwarded to Kafka."
            answer = COMMAND_ANSWER.get(type_tag(model), _GAME_COMMAND_ANSWER)  # type: ignore[arg-type]
            add(_message_section(model, "client -> server", f"Answer: {answer}. {key}"))
    add(["## Internal commands (Kafka only, never accepted from a socket)", ""])
    for model in INTERNAL_COMMANDS:
        answer = COMMAND_ANSWER.get(type_tag(model), _GAME_COMMAND_ANSWER)
        add(_message_section(model, "service -> engine", answer[0].upper() + answer[1:] + "."))
    add(["## Server -> client events", ""])
    for model in SERVER_EVENTS:
        audience = EVENT_AUDIENCE.get(type_tag(model), _GAME_EVENT_AUDIENCE)
        add(_message_section(model, "server -> client", f"Audience: {audience}."))
    add(["## Shared shapes and enums", ""])
    add(_shared_shapes([*CLIENT_COMMANDS, *INTERNAL_COMMANDS, *SERVER_EVENTS]))
    add(
        [
            "## Error codes",
            "",
            "`system.error.code`; clients must treat an unknown code as a generic failure.",
            "",
            "| code | meaning |",
            "|---|---|",
        ]
    )
    for code in ErrorCode:
        add([f"| `{code.value}` | {ERROR_MEANINGS[code]} |"])
    add(["", "## WebSocket close codes", "", "| code | name | meaning |", "|---|---|---|"])
    close_docs = _attribute_docs(CloseCode)
    for close in CloseCode:
        add([f"| {close.value} | `{close.name}` | {close_docs.get(close.name, '')} |"])
    add(
        [
            "",
            "## Differences from the original system",
            "",
            "The original gateway's code is followed for names and shapes. These mismatches of "
            "the original are fixed:",
            "",
            "| original | Parlour |",
            "|---|---|",
            *[f"| {before} | {after} |" for before, after in FIXED],
            "",
            "Deliberately left out, renamed or merged:",
            "",
            "| original | why |",
            "|---|---|",
            *[f"| {what} | {why} |" for what, why in LEFT_OUT],
            "",
        ]
    )
    return "\n".join(out)


# --- AsyncAPI -----------------------------------------------------------------------------------


def _asyncapi() -> dict[str, Any]:
    ref = "#/components/schemas/{model}"
    _, top = models_json_schema(
        [(CommandEnvelope, "validation"), (EventEnvelope, "validation")], ref_template=ref
    )
    schemas = dict(sorted(top["$defs"].items()))
    kafka = {"bindingVersion": "0.5.0"}

    def message(name: str, model: type[BaseModel], key: str, summary: str) -> dict[str, Any]:
        fixture = json.loads((GOLDEN / ENVELOPE_FIXTURES[model]).read_text())
        return {
            "name": name,
            "title": model.__name__,
            "summary": summary,
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
            "bindings": {"kafka": {"key": {"type": "string", "description": key}, **kafka}},
            "examples": [{"name": "roll", "payload": fixture, "headers": {}}],
        }

    command_key = "room_id; the actor's user_id when the command names no room"
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Parlour engine bus",
            "version": PROTOCOL_VERSION,
            "description": "Commands from gateways (and engine timers) to the game engine, and "
            "events from the engine to every gateway. Generated by "
            "scripts/gen_protocol_docs.py; see docs/protocol.md.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "development broker (`make infra-up`); topic names may carry "
                "the KAFKA_TOPIC_PREFIX",
            }
        },
        "channels": {
            "commands": {
                "address": topics.COMMANDS,
                "messages": {"command": {"$ref": "#/components/messages/command"}},
                "bindings": {"kafka": {"partitions": topics.PARTITIONS[topics.COMMANDS], **kafka}},
            },
            "events": {
                "address": topics.EVENTS,
                "messages": {"event": {"$ref": "#/components/messages/event"}},
                "bindings": {"kafka": {"partitions": topics.PARTITIONS[topics.EVENTS], **kafka}},
            },
            "commandsDeadLetter": {
                "address": topics.COMMANDS_DLQ,
                "description": "Commands that kept failing after a bounded number of tries, "
                "with their original key and bytes.",
                "messages": {"command": {"$ref": "#/components/messages/command"}},
                "bindings": {
                    "kafka": {"partitions": topics.PARTITIONS[topics.COMMANDS_DLQ], **kafka}
                },
            },
        },
        "operations": {
            "publishCommand": {
                "action": "send",
                "summary": "A gateway forwards a validated client command; the engine's timer "
                "loop publishes internal commands.",
                "channel": {"$ref": "#/channels/commands"},
                "messages": [{"$ref": "#/channels/commands/messages/command"}],
            },
            "consumeCommand": {
                "action": "receive",
                "summary": "The engine (group parlour-engine) applies each command once.",
                "channel": {"$ref": "#/channels/commands"},
                "messages": [{"$ref": "#/channels/commands/messages/command"}],
            },
            "publishEvent": {
                "action": "send",
                "summary": "The engine publishes the events a command produced.",
                "channel": {"$ref": "#/channels/events"},
                "messages": [{"$ref": "#/channels/events/messages/event"}],
            },
            "consumeEvent": {
                "action": "receive",
                "summary": "Every gateway reads every event (from latest) and delivers it to "
                "its local sockets of the audience.",
                "channel": {"$ref": "#/channels/events"},
                "messages": [{"$ref": "#/channels/events/messages/event"}],
            },
            "deadLetterCommand": {
                "action": "send",
                "summary": "The engine parks a command that keeps failing.",
                "channel": {"$ref": "#/channels/commandsDeadLetter"},
                "messages": [{"$ref": "#/channels/commandsDeadLetter/messages/command"}],
            },
        },
        "components": {
            "messages": {
                "command": message("command", CommandEnvelope, command_key, "A command"),
                "event": message(
                    "event",
                    EventEnvelope,
                    "room_id; the recipient's user_id when the event names no room",
                    "An event",
                ),
            },
            "schemas": schemas,
        },
    }


# --- files ---------------------------------------------------------------------------------


def render() -> dict[Path, str]:
    """Every generated file (path relative to the repository root) and its content."""
    files: dict[Path, str] = {DOCS_MD: _render_markdown()}
    for folder, models in (
        ("client", CLIENT_COMMANDS),
        ("internal", INTERNAL_COMMANDS),
        ("server", SERVER_EVENTS),
    ):
        for model in models:
            path = DOCS_DIR / "schemas" / folder / f"{type_tag(model)}.json"
            files[path] = _dump(_message_schema(model))
    for envelope in (CommandEnvelope, EventEnvelope):
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            **envelope.model_json_schema(),
        }
        files[DOCS_DIR / "schemas" / "kafka" / f"{envelope.__name__}.json"] = _dump(schema)
    files[DOCS_DIR / "asyncapi.json"] = _dump(_asyncapi())
    return files


def _models() -> Iterator[type[WireModel]]:
    stack: list[type[WireModel]] = [WireModel]
    seen: set[type[WireModel]] = set()
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub not in seen and sub.__module__.startswith("parlour_protocol.v1"):
                seen.add(sub)
                stack.append(sub)
    yield from sorted(seen, key=_model_key)


def _model_key(model: type[BaseModel]) -> str:
    return f"{model.__module__.removeprefix('parlour_protocol.v1.')}:{model.__qualname__}"


def fields_snapshot() -> dict[str, dict[str, Any]]:
    """Every protocol model's `type` tag (messages) and fields: required, optional or computed."""
    snapshot: dict[str, dict[str, Any]] = {}
    for model in _models():
        fields: dict[str, str] = {
            name: "required" if info.is_required() else "optional"
            for name, info in model.model_fields.items()
        }
        fields.update({name: "computed" for name in model.model_computed_fields})
        type_field = model.model_fields.get("type")
        tag = type_field.default if type_field is not None else None
        snapshot[_model_key(model)] = {
            "type": tag if isinstance(tag, str) else None,
            "fields": fields,
        }
    return snapshot


def breaking_changes(
    recorded: dict[str, dict[str, Any]], current: dict[str, dict[str, Any]]
) -> list[str]:
    """What `current` breaks against `recorded`: a model or field removed or renamed, a
    message `type` changed, an optional field made required."""
    problems: list[str] = []
    for key, entry in recorded.items():
        if key not in current:
            problems.append(f"model {key} was removed or renamed")
            continue
        if entry["type"] != current[key]["type"]:
            problems.append(f"{key}: type {entry['type']!r} became {current[key]['type']!r}")
        for name, kind in entry["fields"].items():
            now = current[key]["fields"].get(name)
            if now is None:
                problems.append(f"{key}.{name} was removed or renamed")
            elif kind != "required" and now == "required":
                problems.append(f"{key}.{name} was {kind} and is now required")
    return problems


def merged_fields_snapshot(recorded: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The recorded snapshot plus what is new; nothing recorded is ever dropped or loosened."""
    merged = {key: {"type": v["type"], "fields": dict(v["fields"])} for key, v in recorded.items()}
    for key, entry in fields_snapshot().items():
        target = merged.setdefault(key, {"type": entry["type"], "fields": {}})
        for name, kind in entry["fields"].items():
            target["fields"].setdefault(name, kind)
    return dict(sorted(merged.items()))


def _stale(files: dict[Path, str]) -> list[str]:
    problems = []
    for path, content in files.items():
        full = ROOT / path
        if not full.exists() or full.read_text() != content:
            problems.append(str(path))
    schema_dir = ROOT / DOCS_DIR
    if schema_dir.exists():
        for full in sorted(schema_dir.rglob("*.json")):
            if full.relative_to(ROOT) not in files:
                problems.append(f"{full.relative_to(ROOT)} (no longer generated)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the generated files")
    mode.add_argument("--check", action="store_true", help="fail when they are stale")
    args = parser.parse_args(argv)
    files = render()
    if args.check:
        stale = _stale(files)
        for path in stale:
            print(f"stale: {path}", file=sys.stderr)
        if stale:
            print("run: .venv/bin/python scripts/gen_protocol_docs.py --write", file=sys.stderr)
        return 1 if stale else 0
    schema_dir = ROOT / DOCS_DIR
    if schema_dir.exists():
        for full in schema_dir.rglob("*.json"):
            if full.relative_to(ROOT) not in files:
                full.unlink()
    for path, content in files.items():
        (ROOT / path).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / path).write_text(content)
    recorded = json.loads(FIELDS_SNAPSHOT.read_text()) if FIELDS_SNAPSHOT.exists() else {}
    FIELDS_SNAPSHOT.write_text(_dump(merged_fields_snapshot(recorded)))
    print(f"wrote {len(files)} files and {FIELDS_SNAPSHOT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["breaking_changes", "fields_snapshot", "main", "merged_fields_snapshot", "render"]
