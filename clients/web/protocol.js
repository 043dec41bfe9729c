// Generated from parlour_protocol.v1 by scripts/protocol_docs (javascript.py): do not edit.
// Rewrite with `.venv/bin/python scripts/protocol_docs --write`; `--check` (run by the unit
// tests) fails when this file is stale.

// every type tag a browser sends (client commands) or receives (server events)
export const Type = Object.freeze({
  CHAT_COMMAND_SEND_MESSAGE: "chat.command.send_message",
  CHAT_EVENT_MESSAGE_RECEIVED: "chat.event.message_received",
  GAMES_COMMAND_BAN_PLAYER: "games.command.ban_player",
  GAMES_COMMAND_BIGGER_DICE_AUTO_ROLL: "games.command.bigger_dice.auto_roll",
  GAMES_COMMAND_BIGGER_DICE_ENABLE_AUTO_PLAY: "games.command.bigger_dice.enable_auto_play",
  GAMES_COMMAND_BIGGER_DICE_ROLL: "games.command.bigger_dice.roll",
  GAMES_COMMAND_CREATE_ROOM: "games.command.create_room",
  GAMES_COMMAND_DESELECT_PLAYER: "games.command.deselect_player",
  GAMES_COMMAND_DESIGNATE_ADMIN_SPECTATOR: "games.command.designate_admin_spectator",
  GAMES_COMMAND_GET_CHAT_HISTORY: "games.command.get_chat_history",
  GAMES_COMMAND_JOIN_AS_SPECTATOR: "games.command.join_as_spectator",
  GAMES_COMMAND_JOIN_ROOM: "games.command.join_room",
  GAMES_COMMAND_KICK_PLAYER: "games.command.kick_player",
  GAMES_COMMAND_KICK_SPECTATOR: "games.command.kick_spectator",
  GAMES_COMMAND_LEAVE_ROOM: "games.command.leave_room",
  GAMES_COMMAND_LIST_ROOMS: "games.command.list_rooms",
  GAMES_COMMAND_MUTE_USER: "games.command.mute_user",
  GAMES_COMMAND_READY: "games.command.ready",
  GAMES_COMMAND_REJOIN_ROOM: "games.command.rejoin_room",
  GAMES_COMMAND_SELECT_PLAYER: "games.command.select_player",
  GAMES_COMMAND_SEND_CHAT: "games.command.send_chat",
  GAMES_COMMAND_SET_READY: "games.command.set_ready",
  GAMES_COMMAND_START_GAME: "games.command.start_game",
  GAMES_COMMAND_STOP_SPECTATING: "games.command.stop_spectating",
  GAMES_COMMAND_UNBAN_PLAYER: "games.command.unban_player",
  GAMES_COMMAND_UNMUTE_USER: "games.command.unmute_user",
  GAMES_COMMAND_VOTE_KICK_DISCONNECTED: "games.command.vote_kick_disconnected",
  GAMES_EVENT_ADMIN_SPECTATOR_DESIGNATED: "games.event.admin_spectator_designated",
  GAMES_EVENT_BIGGER_DICE_GAME_OVER: "games.event.bigger_dice.game_over",
  GAMES_EVENT_BIGGER_DICE_ROLLED: "games.event.bigger_dice.rolled",
  GAMES_EVENT_BIGGER_DICE_ROUND_RESULT: "games.event.bigger_dice.round_result",
  GAMES_EVENT_BIGGER_DICE_STATE: "games.event.bigger_dice.state",
  GAMES_EVENT_BIGGER_DICE_TIEBREAKER_STARTED: "games.event.bigger_dice.tiebreaker_started",
  GAMES_EVENT_CHAT_HISTORY: "games.event.chat_history",
  GAMES_EVENT_CHAT_MESSAGE: "games.event.chat_message",
  GAMES_EVENT_GAME_STARTED: "games.event.game_started",
  GAMES_EVENT_GAME_STARTING: "games.event.game_starting",
  GAMES_EVENT_KICK_VOTE_RECEIVED: "games.event.kick_vote_received",
  GAMES_EVENT_LOBBY_JOINED: "games.event.lobby_joined",
  GAMES_EVENT_NOT_IN_ROOM: "games.event.not_in_room",
  GAMES_EVENT_PLAYER_AUTO_DISABLED: "games.event.player_auto_disabled",
  GAMES_EVENT_PLAYER_AUTO_ENABLED: "games.event.player_auto_enabled",
  GAMES_EVENT_PLAYER_BANNED: "games.event.player_banned",
  GAMES_EVENT_PLAYER_DESELECTED: "games.event.player_deselected",
  GAMES_EVENT_PLAYER_DISCONNECTED: "games.event.player_disconnected",
  GAMES_EVENT_PLAYER_KICKED: "games.event.player_kicked",
  GAMES_EVENT_PLAYER_LEFT: "games.event.player_left",
  GAMES_EVENT_PLAYER_READY: "games.event.player_ready",
  GAMES_EVENT_PLAYER_READY_CHANGED: "games.event.player_ready_changed",
  GAMES_EVENT_PLAYER_REJOINED: "games.event.player_rejoined",
  GAMES_EVENT_PLAYER_SELECTED: "games.event.player_selected",
  GAMES_EVENT_PLAYER_UNBANNED: "games.event.player_unbanned",
  GAMES_EVENT_REMOVED_FROM_GAME: "games.event.removed_from_game",
  GAMES_EVENT_ROOM_CREATED: "games.event.room_created",
  GAMES_EVENT_ROOM_LIST: "games.event.room_list",
  GAMES_EVENT_ROOM_REMOVED: "games.event.room_removed",
  GAMES_EVENT_ROOM_STATE: "games.event.room_state",
  GAMES_EVENT_SELECTED_PLAYERS_UPDATED: "games.event.selected_players_updated",
  GAMES_EVENT_SPECTATOR_JOINED: "games.event.spectator_joined",
  GAMES_EVENT_SPECTATOR_KICKED: "games.event.spectator_kicked",
  GAMES_EVENT_SPECTATOR_LEFT: "games.event.spectator_left",
  GAMES_EVENT_TURN_CHANGED: "games.event.turn_changed",
  GAMES_EVENT_USER_MUTED: "games.event.user_muted",
  GAMES_EVENT_USER_UNMUTED: "games.event.user_unmuted",
  PRESENCE_EVENT_USER_OFFLINE: "presence.event.user_offline",
  PRESENCE_EVENT_USER_ONLINE: "presence.event.user_online",
  SYSTEM_ACK: "system.ack",
  SYSTEM_AUTHENTICATE: "system.authenticate",
  SYSTEM_AUTHENTICATED: "system.authenticated",
  SYSTEM_ERROR: "system.error",
  SYSTEM_HEARTBEAT: "system.heartbeat",
  SYSTEM_HEARTBEAT_ACK: "system.heartbeat_ack",
  SYSTEM_REAUTH_REQUIRED: "system.reauth_required",
  SYSTEM_STATE_SNAPSHOT: "system.state_snapshot",
  SYSTEM_SYNC_STATE: "system.sync_state",
  SYSTEM_WELCOME: "system.welcome",
});

// the protocol version and the schema's limits (parlour_protocol.v1.limits)
export const CHAT_CONTENT_MAX_LENGTH = 1000;
export const CHAT_HISTORY_DEFAULT_LIMIT = 50;
export const CHAT_HISTORY_MAX_LIMIT = 200;
export const DEFAULT_MAX_ROOMS_PER_HOST = 5;
export const DEFAULT_MAX_ROOMS_PER_USER = 20;
export const DEFAULT_MAX_SPECTATORS = 10;
export const EVENT_MAX_BYTES = 262144;
export const ID_MAX_LENGTH = 64;
export const MAX_BANNED_PER_ROOM = 100;
export const MAX_FRAME_BYTES = 65536;
export const MAX_MUTED_PER_USER = 20;
export const MAX_PLAYERS = 10;
export const MIN_PLAYERS = 2;
export const PASSWORD_MAX_LENGTH = 128;
export const PROTOCOL_VERSION = "1.0";
export const REQUEST_ID_MAX_LENGTH = 64;
export const ROOM_LIST_PAGE_MAX = 50;
export const ROOM_NAME_MAX_LENGTH = 48;
export const ROOM_NAME_MIN_LENGTH = 1;
export const TOKEN_MAX_LENGTH = 8192;
export const USERNAME_MAX_LENGTH = 64;

// field patterns of the schema, `\w` spelled as Unicode properties
export const CHAT_CONTENT_RE = new RegExp("^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]*[^\\s\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f][^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]*$", "u");
export const ID_RE = new RegExp("^[A-Za-z0-9_.:@-]+$", "u");
export const ROOM_NAME_RE = new RegExp("^[\\p{L}\\p{N}\\p{M}_][\\p{L}\\p{N}\\p{M}_ .,'!?#()+-]*$", "u");

// codes of system.error
export const ErrorCode = Object.freeze({
  AUTH_REQUIRED: "auth_required",
  AUTH_FAILED: "auth_failed",
  ALREADY_AUTHENTICATED: "already_authenticated",
  TOKEN_EXPIRED: "token_expired",
  INVALID_MESSAGE: "invalid_message",
  MESSAGE_TOO_LARGE: "message_too_large",
  RATE_LIMITED: "rate_limited",
  SERVICE_UNAVAILABLE: "service_unavailable",
  INTERNAL_ERROR: "internal_error",
  LIMIT_REACHED: "limit_reached",
  UNKNOWN_GAME: "unknown_game",
  ROOM_NOT_FOUND: "room_not_found",
  ROOM_NAME_TAKEN: "room_name_taken",
  ROOM_FULL: "room_full",
  TOO_MANY_ROOMS: "too_many_rooms",
  USER_BANNED: "user_banned",
  WRONG_PASSWORD: "wrong_password",
  TOO_MANY_ATTEMPTS: "too_many_attempts",
  ALREADY_IN_ROOM: "already_in_room",
  NOT_IN_ROOM: "not_in_room",
  NOT_ADMIN: "not_admin",
  GAME_IN_PROGRESS: "game_in_progress",
  PLAYER_NOT_IN_LOBBY: "player_not_in_lobby",
  ALREADY_SELECTED: "already_selected",
  NOT_SELECTED: "not_selected",
  PLAYERS_NOT_READY: "players_not_ready",
  CANNOT_KICK_SELF: "cannot_kick_self",
  CANNOT_BAN_SELF: "cannot_ban_self",
  NOT_BANNED: "not_banned",
  SPECTATOR_NOT_FOUND: "spectator_not_found",
  KICKED_FROM_ROOM: "kicked_from_room",
  SPECTATORS_NOT_ALLOWED: "spectators_not_allowed",
  SPECTATOR_CAPACITY_FULL: "spectator_capacity_full",
  NOT_A_SPECTATOR: "not_a_spectator",
  WRONG_GAME_TYPE: "wrong_game_type",
  GAME_NOT_IN_PROGRESS: "game_not_in_progress",
  NOT_YOUR_TURN: "not_your_turn",
  NOT_A_PLAYER: "not_a_player",
  ALREADY_AUTO_PLAY: "already_auto_play",
  INVALID_PLAYER: "invalid_player",
  PLAYER_ALREADY_AUTO: "player_already_auto",
  PLAYER_NOT_DISCONNECTED: "player_not_disconnected",
  DISCONNECT_ALREADY_HANDLED: "disconnect_already_handled",
  DISCONNECT_TIMEOUT_ACTIVE: "disconnect_timeout_active",
  NOT_ELIGIBLE_TO_VOTE: "not_eligible_to_vote",
  ALREADY_VOTED: "already_voted",
  GAME_ERROR: "game_error",
  CHANNEL_ACCESS_DENIED: "channel_access_denied",
  CHAT_DISABLED: "chat_disabled",
  CANNOT_MESSAGE_SELF: "cannot_message_self",
});

// what each error code means (docs/protocol.md), by code
export const ERROR_MEANINGS = Object.freeze({
  auth_required: "The socket must send system.authenticate before any other command.",
  auth_failed: "The token was missing, malformed, expired, wrongly signed or had a wrong issuer/audience. The socket stays open for a retry, up to a few failures.",
  already_authenticated: "The socket is already authenticated as another user.",
  token_expired: "The socket's token expired and no fresh token came within the grace.",
  invalid_message: "The frame was not JSON, had an unknown type, or fields failed validation (`reason` says which; `fields` names the field paths). The socket stays open.",
  message_too_large: "The frame was larger than the gateway's WS_MAX_MESSAGE_SIZE.",
  rate_limited: "The connection sent faster than its token bucket allows; the command was dropped. A socket that keeps flooding is closed.",
  service_unavailable: "The command could not be confirmed (broker or store unreachable or slow): not confirmed; it takes effect at most once; re-send it with the same request_id on the same connection to be sure.",
  internal_error: "An unexpected server fault; the command did not take effect.",
  limit_reached: "A documented cap on a per-room, per-user or per-connection collection was reached (`message` names the cap; docs/protocol.md lists them all); the command did not take effect.",
  unknown_game: "No game of that game_type is registered.",
  room_not_found: "No active room with that id or name (or it no longer accepts joins).",
  room_name_taken: "Another active room of that game already has this name.",
  room_full: "The room's lobby has no more room.",
  too_many_rooms: "The caller already hosts the most active rooms one user may host (ENGINE_MAX_ROOMS_PER_HOST); leave or finish one first.",
  user_banned: "The caller is on the room's ban list.",
  wrong_password: "The room password did not match.",
  too_many_attempts: "Too many wrong passwords for this room; wait before retrying.",
  already_in_room: "The caller is already a member of the room.",
  not_in_room: "The caller is not a member of the room.",
  not_admin: "Only the room's host may do this.",
  game_in_progress: "The room is not waiting; its game has started.",
  player_not_in_lobby: "The target is not an unselected lobby member.",
  already_selected: "The target is already selected.",
  not_selected: "The caller or target is not a selected player.",
  players_not_ready: "The game cannot start: seats are empty or players not ready.",
  cannot_kick_self: "The host cannot kick themselves.",
  cannot_ban_self: "The host cannot ban themselves.",
  not_banned: "The target is not banned.",
  spectator_not_found: "The target is not a spectator of the room.",
  kicked_from_room: "Sent to a spectator the host removed.",
  spectators_not_allowed: "The room does not allow spectators.",
  spectator_capacity_full: "The room's spectator seats are all taken.",
  not_a_spectator: "The caller is not a spectator of the room.",
  wrong_game_type: "A game command was sent to a room of another game.",
  game_not_in_progress: "The room's game is not running.",
  not_your_turn: "It is another player's turn.",
  not_a_player: "The caller is not a player of the running game.",
  already_auto_play: "The caller's turns are already played by the server.",
  invalid_player: "The caller or the target of a vote is not a player.",
  player_already_auto: "The target is already played by the server.",
  player_not_disconnected: "The target has no pending disconnect.",
  disconnect_already_handled: "Reserved, never sent: kept so the value stays valid on the wire. A vote against a target who came back gets `player_not_disconnected`, against one already voted out `player_already_auto`.",
  disconnect_timeout_active: "The target's reconnect grace has not run out yet.",
  not_eligible_to_vote: "The caller may not vote (disconnected, auto-played or the target).",
  already_voted: "The caller already voted against this player.",
  game_error: "A game-specific rule refused the command (`message` says why).",
  channel_access_denied: "The caller may not read or write that chat channel now.",
  chat_disabled: "Lobby chat is closed once the game starts.",
  cannot_message_self: "A direct message needs another user as recipient.",
});

// WebSocket close codes of the gateway
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  AUTH_TIMEOUT: 4001,
  AUTH_FAILED: 4003,
  TOKEN_EXPIRED: 4004,
  TOO_MANY_CONNECTIONS: 4008,
  RATE_LIMITED: 4029,
  HEARTBEAT_TIMEOUT: 4030,
  SLOW_CONSUMER: 4031,
});
