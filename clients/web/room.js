// The room as this page knows it, and the reducer that applies one room event to it.
//
// reduceRoom(state, event, ctx) -> {state, effects} is a pure function: it works on a
// structuredClone of `state` (never on the caller's objects), reads no clock, DOM or socket,
// and says what should happen outside the room state (a toast, leaving the room, asking for
// chat history) as `effects` for the caller to carry out, in order. The events of one game
// are reduced by that game's module (games/<game>.js), passed in as `ctx.game`.

import { CHAT_HISTORY_DEFAULT_LIMIT, Type } from "./protocol.js";

const CHAT_KEEP = 200; // messages kept per channel

export function newChat() {
  return { channel: "lobby", messages: { lobby: [], players: [], spectators: [] }, seen: new Set() };
}

// the room part of the page's state: empty, for a room not joined yet (or none). `game` is the
// room's game module (games/<game>.js), or null while the room's game is not known yet (the
// reducer starts that game's state at the room's first event).
export function initialRoomState(game) {
  return { room: null, game: game ? game.newGame() : null, votes: new Map(), chat: newChat(), rollPending: false };
}

export function findMember(list, uid) {
  return (list || []).find((p) => p.user_id === uid);
}

export function nameOf(state, uid) {
  if (!uid) return "";
  const g = state.game;
  if (g && g.names.has(uid)) return g.names.get(uid);
  const r = state.room;
  if (r) {
    for (const p of [...(r.players || []), ...(r.lobby || [])]) if (p.user_id === uid) return p.username;
    for (const s of r.spectators_data || []) if (s.user_id === uid) return s.username;
    if (r.host_id === uid) return r.host_name;
  }
  return uid;
}

export function myRole(room, me) {
  if (!room || !me) return null;
  if ((room.spectators || []).includes(me)) return "spectator";
  if (room.status !== "waiting" && findMember(room.players, me)) return "player";
  if (room.host_id === me) return "host";
  if (findMember(room.lobby, me)) return "lobby";
  if (findMember(room.players, me)) return "player";
  return null;
}

export function readableChannels(room, me) {
  if (!room) return [];
  const list = [room.status === "waiting" ? "lobby" : "players"];
  if (myRole(room, me) === "spectator") list.push("spectators");
  return list;
}

// where a member writes by default: the lobby while waiting, then their own game channel
export function defaultChannel(room, me) {
  if (!room || room.status === "waiting") return "lobby";
  return myRole(room, me) === "spectator" ? "spectators" : "players";
}

export function writable(room, me, channel) {
  const role = myRole(room, me);
  if (!room || !role) return false;
  if (channel === "lobby") return room.status === "waiting" && room.lobby_chat_enabled !== false;
  if (channel === "players") return room.status === "in_progress" && role === "player";
  return room.status === "in_progress" && role === "spectator";
}

// the get_chat_history commands for the channels `me` may read now
export function chatHistoryRequests(roomId, room, me) {
  return readableChannels(room, me).map((channel) => ({
    type: Type.GAMES_COMMAND_GET_CHAT_HISTORY,
    room_id: roomId,
    channel,
    limit: CHAT_HISTORY_DEFAULT_LIMIT,
  }));
}

// the seats in order, with names and (kept) scores, of a list of players
export function seatsFrom(g, players) {
  g.seats = players.map((p) => p.user_id);
  for (const p of players) {
    g.names.set(p.user_id, p.username);
    if (!g.scores.has(p.user_id)) g.scores.set(p.user_id, p.score || 0);
  }
}

function addChat(chat, channel, messages) {
  const list = chat.messages[channel] || (chat.messages[channel] = []);
  for (const m of messages) {
    const key = `${channel}:${m.message_id}`;
    if (chat.seen.has(key) && list.some((x) => x.message_id === m.message_id)) continue;
    chat.seen.add(key);
    list.push(m);
  }
  if (list.length > CHAT_KEEP) list.splice(0, list.length - CHAT_KEEP);
}

function dropMember(r, uid) {
  r.lobby = (r.lobby || []).filter((p) => p.user_id !== uid);
  r.selected_players = (r.selected_players || []).filter((id) => id !== uid);
  if (r.status === "waiting") r.players = (r.players || []).filter((p) => p.user_id !== uid);
}

function setReady(r, uid, ready) {
  for (const list of [r.lobby, r.players]) {
    const m = findMember(list, uid);
    if (m) m.is_ready = ready;
  }
}

const LEFT_BECAUSE = {
  [Type.GAMES_EVENT_PLAYER_LEFT]: "You left",
  [Type.GAMES_EVENT_PLAYER_KICKED]: "You were kicked",
  [Type.GAMES_EVENT_PLAYER_BANNED]: "You were banned",
};

// Effects: {toast: [text, kind, detail]}, {leave: true} (this page is out of the room: forget
// it and show the room list), {chatHistory: true} (ask for the readable channels' history),
// {ignored: type}.
export function reduceRoom(prev, f, ctx) {
  const { me, game } = ctx;
  const s = structuredClone(prev);
  const effects = [];
  const g = s.game || (s.game = game.newGame());
  if (f.type === Type.GAMES_EVENT_ROOM_STATE) {
    const fresh = !s.room;
    s.room = structuredClone(f.room); // the reducer never keeps a reference to its input
    const r = s.room;
    g.names = new Map();
    g.scores = new Map();
    seatsFrom(g, r.players || []);
    for (const p of r.lobby || []) g.names.set(p.user_id, p.username);
    if (r.winner_id) {
      g.winner = r.winner_id;
      g.winnerName = nameOf(s, r.winner_id);
    }
    if (fresh) effects.push({ chatHistory: true });
    return { state: s, effects };
  }
  const r = s.room;
  if (!r) return { state: s, effects }; // events before our snapshot: the snapshot covers them
  const leave = (text, detail) => {
    effects.push({ toast: [text, "info", detail || ""] }, { leave: true });
    return { state: s, effects };
  };
  if (game.handles(f.type)) {
    game.reduce(s, f, me);
    return { state: s, effects };
  }
  switch (f.type) {
    case Type.GAMES_EVENT_LOBBY_JOINED:
      if (!findMember(r.lobby, f.player.user_id)) r.lobby = [...(r.lobby || []), f.player];
      g.names.set(f.player.user_id, f.player.username);
      break;
    case Type.GAMES_EVENT_PLAYER_SELECTED:
      if (!r.selected_players.includes(f.player.user_id)) r.selected_players.push(f.player.user_id);
      break;
    case Type.GAMES_EVENT_PLAYER_DESELECTED:
      r.selected_players = r.selected_players.filter((id) => id !== f.user_id);
      setReady(r, f.user_id, false);
      break;
    case Type.GAMES_EVENT_SELECTED_PLAYERS_UPDATED:
      r.selected_players = [...f.selected_players];
      break;
    case Type.GAMES_EVENT_GAME_STARTING:
      r.players = f.players.map((p) => ({ ...p }));
      seatsFrom(g, r.players);
      effects.push({ toast: ["Every seat is taken: press Ready", "info", ""] });
      break;
    case Type.GAMES_EVENT_REMOVED_FROM_GAME:
      // every seat went to others: the unselected leave the room
      return leave("You were not picked for this game", f.message);
    case Type.GAMES_EVENT_PLAYER_READY:
      setReady(r, f.user_id, true);
      break;
    case Type.GAMES_EVENT_PLAYER_READY_CHANGED:
      setReady(r, f.user_id, f.is_ready);
      break;
    case Type.GAMES_EVENT_GAME_STARTED: {
      r.status = "in_progress";
      const old = new Map((r.players || []).map((p) => [p.user_id, p]));
      r.players = f.players.map((p) => ({ ...(old.get(p.id) || {}), user_id: p.id, username: p.name, score: 0 }));
      g.scores = new Map();
      seatsFrom(g, r.players);
      game.started(g);
      r.current_turn = f.first_turn;
      s.chat.channel = defaultChannel(r, me);
      effects.push({ chatHistory: true });
      break;
    }
    case Type.GAMES_EVENT_TURN_CHANGED:
      r.current_turn = f.current_turn;
      r.turn_number = f.turn_number;
      r.turn_deadline = f.turn_deadline;
      s.rollPending = false; // a new turn: whatever move was in flight has been answered
      break;
    case Type.GAMES_EVENT_PLAYER_LEFT:
    case Type.GAMES_EVENT_PLAYER_KICKED:
    case Type.GAMES_EVENT_PLAYER_BANNED:
      if (f.type === Type.GAMES_EVENT_PLAYER_BANNED) {
        r.banned_users = [...(r.banned_users || []), { user_id: f.player_id, username: f.player_name }];
      }
      if (f.player_id === me) return leave(`${LEFT_BECAUSE[f.type]}: ${r.room_name}`);
      dropMember(r, f.player_id);
      break;
    case Type.GAMES_EVENT_PLAYER_UNBANNED:
      r.banned_users = (r.banned_users || []).filter((u) => u.user_id !== f.player_id);
      break;
    case Type.GAMES_EVENT_PLAYER_DISCONNECTED:
      r.disconnected_players = (r.disconnected_players || []).filter((d) => d.user_id !== f.user_id);
      r.disconnected_players.push({ user_id: f.user_id, username: f.username, timeout_at: f.timeout_at });
      break;
    case Type.GAMES_EVENT_PLAYER_REJOINED:
      r.disconnected_players = (r.disconnected_players || []).filter((d) => d.user_id !== f.user_id);
      s.votes.delete(f.user_id);
      break;
    case Type.GAMES_EVENT_KICK_VOTE_RECEIVED: {
      const v = s.votes.get(f.target_user_id) || { mine: false };
      s.votes.set(f.target_user_id, { ...v, votes: f.votes, votes_required: f.votes_required, mine: v.mine || f.voter_id === me });
      break;
    }
    case Type.GAMES_EVENT_PLAYER_AUTO_ENABLED:
      if (!r.auto_players.includes(f.user_id)) r.auto_players.push(f.user_id);
      if (f.reason === "vote_kick") {
        r.disconnected_players = (r.disconnected_players || []).filter((d) => d.user_id !== f.user_id);
        s.votes.delete(f.user_id);
      }
      break;
    case Type.GAMES_EVENT_PLAYER_AUTO_DISABLED:
      r.auto_players = r.auto_players.filter((id) => id !== f.user_id);
      break;
    case Type.GAMES_EVENT_SPECTATOR_JOINED:
      r.spectators_data = (r.spectators_data || []).filter((x) => x.user_id !== f.spectator.user_id);
      r.spectators_data.push(f.spectator);
      r.spectators = r.spectators_data.map((x) => x.user_id);
      break;
    case Type.GAMES_EVENT_SPECTATOR_LEFT:
    case Type.GAMES_EVENT_SPECTATOR_KICKED:
      if (f.user_id === me) {
        return leave(f.type === Type.GAMES_EVENT_SPECTATOR_KICKED ? "The host removed you" : "You stopped watching");
      }
      r.spectators_data = (r.spectators_data || []).filter((x) => x.user_id !== f.user_id);
      r.spectators = r.spectators_data.map((x) => x.user_id);
      break;
    case Type.GAMES_EVENT_ADMIN_SPECTATOR_DESIGNATED:
      r.admin_spectator_id = f.user_id;
      break;
    case Type.GAMES_EVENT_CHAT_MESSAGE:
      addChat(s.chat, f.channel, [f]);
      break;
    case Type.GAMES_EVENT_CHAT_HISTORY:
      s.chat.messages[f.channel] = [];
      addChat(s.chat, f.channel, f.messages);
      break;
    case Type.GAMES_EVENT_USER_MUTED:
    case Type.GAMES_EVENT_USER_UNMUTED:
      break;
    default:
      effects.push({ ignored: f.type });
  }
  return { state: s, effects };
}
