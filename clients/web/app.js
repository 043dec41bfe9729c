// Parlour browser client: one page, native ES modules, no build step, no external resources.
// It speaks the v1 wire protocol of docs/protocol.md over one WebSocket to the gateway that
// served this page. This module wires the others together: the socket (connection.js), the
// room reducer (room.js), the page (ui.js) and the game (games/<game>.js); it orders the
// room's events by seq before the reducer sees them. protocol.js is generated from the
// protocol library: the wire constants come from there, never from a copy.

import { CloseCode, ErrorCode, Type } from "./protocol.js";
import { CLIENT_DROPPED, Connection } from "./connection.js";
import { toast } from "./dom.js";
import * as biggerDice from "./games/bigger_dice.js";
import * as ticTacToe from "./games/tic_tac_toe.js";
import { chatHistoryRequests, defaultChannel, initialRoomState, readableChannels, reduceRoom } from "./room.js";
import { loadRoomId, loadSession, saveRoomId, saveSession, slugUserId } from "./session.js";
import { ERROR_TEXT, clampInt, createUi, gameRegistry, setConnBadge } from "./ui.js";

// the games this page can show: game type -> its module (games/<game>.js: reducer + renderer).
// A new game adds its module and one line here; the page offers only the games the protocol
// (protocol.js) knows.
const GAMES = gameRegistry([
  biggerDice,
  ticTacToe,
]);
const DEFAULT_GAME = biggerDice.GAME_TYPE;

// the game whose rooms the lobby lists and creates, and the game of the room we are in (per
// tab, like the room: a reload keeps them)
const STORE_LOBBY_GAME = "parlour.lobby_game";
const STORE_ROOM_GAME = "parlour.room_game";

function loadStored(key) {
  try {
    return sessionStorage.getItem(key);
  } catch {
    return null;
  }
}

function store(key, value) {
  try {
    if (value) sessionStorage.setItem(key, value);
    else sessionStorage.removeItem(key);
  } catch {
    // storage refused (private mode, quota): the page works without it
  }
}

function knownGame(type) {
  return type && Object.hasOwn(GAMES, type) ? type : null;
}

const RESYNC_MIN_GAP_MS = 2000;
const AHEAD_MAX = 500; // room events kept while a gap before them is being filled
const params = new URLSearchParams(location.search);
// dice animation timing (ms); `?anim=` shortens it (e.g. for demos and tests), never to 0
const ROLL_MS = clampInt(params.get("anim"), 1000, 50, 5000);
const TIMING = { rollMs: ROLL_MS, holdMs: Math.round(ROLL_MS / 2) };

// ---- the page's state: what the connection told us, the room list, and the room
const S = {
  conn: "offline",
  authed: false,
  me: null, // {user_id, username}
  rooms: new Map(), // room_id -> room list item
  roomsNext: null, // next_cursor of the newest room_list page (null: no more pages)
  pwDrafts: new Map(), // room_id -> password typed in the room list
  roomId: loadRoomId(), // the room we are in, or want to rejoin
  lobbyGame: knownGame(loadStored(STORE_LOBBY_GAME)) || DEFAULT_GAME, // the game the lobby lists and creates
  roomGame: knownGame(loadStored(STORE_ROOM_GAME)), // the game type of roomId's room, once known
  // the room (room.js): room (RoomSnapshot, kept current by events), game, votes, chat, rollPending
  ...initialRoomState(null),
  // the room's event stream, ordered here before the reducer sees it
  recvSeq: null, // newest room seq received (queued) for roomId
  ahead: new Map(), // seq -> room event that arrived after a gap
  stats: { duplicates: 0, gaps: 0, resyncs: 0, errors: 0, rewinds: 0 }, // dropped dups, gaps, resyncs, apply faults, seq restarts
  rejoinsPending: 0, // rejoin_room sent on this socket whose room_state has not come yet
  resyncTimer: null,
  skipGameState: false, // the game snapshot after a stale room_state is stale too
  appliedSeq: 0, // newest room seq applied to S.room
  lastResync: 0,
  queue: [], // room frames waiting to be applied, in arrival order
  draining: false,
  animating: false,
};

const conn = new Connection({
  frame: onFrame,
  status(state, text) {
    S.conn = state;
    setConnBadge(state, text);
  },
  closed(code, reason, lost) {
    S.authed = false;
    S.rollPending = false;
    if (lost.length) {
      toast(`Connection lost before the server took: ${lost.map((p) => p.label).join(", ")}`, "error", "Check and retry.");
    }
    if (code === CloseCode.AUTH_FAILED || code === CloseCode.TOKEN_EXPIRED) {
      // auth failed for good or the token expired: ask for a login again
      saveSession(null);
      toast(code === CloseCode.AUTH_FAILED ? ERROR_TEXT[ErrorCode.AUTH_FAILED] : ERROR_TEXT[ErrorCode.TOKEN_EXPIRED], "error", reason || "");
    }
  },
  canReconnect: () => !!loadSession(),
  changed: () => render(),
});

// the module of the room's game (before the room's snapshot: the lobby's game)
function roomGame() {
  return GAMES[S.roomGame] || GAMES[S.lobbyGame] || GAMES[DEFAULT_GAME];
}

function setRoomGame(type) {
  S.roomGame = type;
  store(STORE_ROOM_GAME, type);
}

// the lobby's game changed: list its rooms instead
function setLobbyGame(type) {
  if (!knownGame(type) || type === S.lobbyGame) return;
  S.lobbyGame = type;
  store(STORE_LOBBY_GAME, type);
  S.rooms = new Map();
  S.roomsNext = null;
  if (S.authed) listRooms();
  render();
}

// the moves of every game: a refused one is no longer in flight
const MOVE_COMMANDS = new Set([
  Type.GAMES_COMMAND_BIGGER_DICE_ROLL,
  ...Object.values(GAMES).map((g) => g.MOVE_COMMAND).filter(Boolean),
]);

function send(message, label) {
  if (!conn.isOpen) {
    toast(`${label || message.type}: not connected`, "error", "Wait for the connection and retry.");
    return null;
  }
  const requestId = conn.send(message, label);
  if (message.type === Type.GAMES_COMMAND_REJOIN_ROOM) S.rejoinsPending += 1;
  return requestId;
}

function listRooms(cursor) {
  const msg = { type: Type.GAMES_COMMAND_LIST_ROOMS, game_type: S.lobbyGame };
  if (cursor) msg.cursor = cursor;
  send(msg, cursor ? "More rooms" : "List rooms");
}

function authenticate() {
  const session = loadSession();
  if (!session) return;
  const msg = { type: Type.SYSTEM_AUTHENTICATE };
  if (session.token) msg.token = session.token;
  else {
    msg.user_id = slugUserId(session.username);
    msg.username = session.username;
  }
  send(msg, "Log in");
}

// ---- frames
function onFrame(f) {
  switch (f.type) {
    case Type.SYSTEM_WELCOME:
      conn.startHeartbeat(f.heartbeat_interval);
      S.conn = "open";
      setConnBadge("open", "connected");
      authenticate();
      return;
    case Type.SYSTEM_AUTHENTICATED:
      return onAuthenticated(f);
    case Type.SYSTEM_HEARTBEAT_ACK:
      return;
    case Type.SYSTEM_ACK:
      conn.acked(f.request_id);
      return;
    case Type.SYSTEM_ERROR:
      return onError(f);
    case Type.SYSTEM_REAUTH_REQUIRED:
      toast("Your login is about to expire", "info", "Log in again to stay connected.");
      return;
    case Type.SYSTEM_STATE_SNAPSHOT:
      return;
    case Type.GAMES_EVENT_ROOM_LIST:
      if (f.game_type !== S.lobbyGame) return;
      // the first page (no cursor) starts the list afresh; a later page adds to it
      if (!f.cursor) S.rooms = new Map();
      for (const r of f.rooms) S.rooms.set(r.room_id, r);
      S.roomsNext = f.next_cursor || null;
      return render();
    case Type.GAMES_EVENT_ROOM_CREATED:
      if (f.game_type !== S.lobbyGame) return;
      S.rooms.set(f.room_id, {
        ...f,
        status: "waiting",
        player_count: 0,
        lobby_count: 1,
        spectator_count: 0,
        can_rejoin: f.host_id === S.me?.user_id,
        rejoin_role: f.host_id === S.me?.user_id ? "host" : null,
      });
      return render();
    case Type.GAMES_EVENT_ROOM_REMOVED:
      S.rooms.delete(f.room_id);
      if (f.room_id === S.roomId && (f.reason === "host_left" || f.reason === "abandoned")) {
        toast("The room was closed", "info", f.reason === "host_left" ? "The host left." : "");
        leaveRoomLocally();
      }
      return render();
    case Type.GAMES_EVENT_NOT_IN_ROOM:
      if (f.room_id === S.roomId) {
        toast(`You are no longer in ${f.room_name}`, "info");
        leaveRoomLocally();
        listRooms();
      }
      return render();
    case Type.CHAT_EVENT_MESSAGE_RECEIVED:
      toast(`Message from ${f.sender_name}`, "info", f.content);
      return;
    case Type.PRESENCE_EVENT_USER_ONLINE:
    case Type.PRESENCE_EVENT_USER_OFFLINE:
      return;
    default:
      if (f.type.startsWith("games.event.")) return onRoomFrame(f);
      console.info("parlour: ignored frame type", f.type);
  }
}

function onAuthenticated(f) {
  S.authed = true;
  conn.resetBackoff();
  S.me = { user_id: f.user_id, username: f.username };
  S.conn = "open";
  setConnBadge("open", "connected");
  S.rejoinsPending = 0; // a new socket: nothing asked on it yet
  listRooms();
  if (S.roomId) {
    const msg = { type: Type.GAMES_COMMAND_REJOIN_ROOM, room_id: S.roomId, game_type: S.roomGame || S.lobbyGame };
    if (S.room && S.room.room_id === S.roomId && S.recvSeq !== null) msg.last_seq = S.recvSeq;
    send(msg, "Rejoin room");
  }
  render();
}

function onError(f) {
  const pending = conn.settle(f.request_id);
  const label = pending ? pending.label : "Server";
  const explain = ERROR_TEXT[f.code] || "The request failed.";
  let detail = f.message && f.message !== explain ? f.message : "";
  if (f.fields && f.fields.length) detail += ` (${f.fields.map((x) => `${x.path}: ${x.message}`).join("; ")})`;
  toast(`${label} - ${explain} [${f.code}]`, "error", detail.trim());
  if (pending && MOVE_COMMANDS.has(pending.type)) S.rollPending = false;
  if (pending && pending.type === Type.SYSTEM_AUTHENTICATE && f.code === ErrorCode.AUTH_FAILED) {
    saveSession(null);
    conn.stop(CloseCode.NORMAL, "login failed");
  }
  if (pending && pending.type === Type.GAMES_COMMAND_REJOIN_ROOM) S.rejoinsPending = Math.max(0, S.rejoinsPending - 1);
  if (pending && pending.type === Type.GAMES_COMMAND_REJOIN_ROOM &&
      (f.code === ErrorCode.NOT_IN_ROOM || f.code === ErrorCode.ROOM_NOT_FOUND || f.code === ErrorCode.USER_BANNED)) {
    leaveRoomLocally();
  }
  if (f.code === ErrorCode.KICKED_FROM_ROOM && (!f.room_id || f.room_id === S.roomId)) leaveRoomLocally();
  render();
}

// ---- the room's event stream: deduplicate and order by seq, then queue (a game's
// animations never drop an event)
function onRoomFrame(f) {
  if (f.type === Type.GAMES_EVENT_ROOM_STATE) {
    const room = f.room;
    if (!knownGame(room.game_type)) return; // a game this page cannot show
    if (S.roomId !== room.room_id) resetRoom(room.room_id);
    if (S.roomGame !== room.game_type) {
      // the room's game is known from now on: its own state starts afresh
      setRoomGame(room.game_type);
      S.game = null;
    }
    else if (S.room && S.recvSeq !== null && room.last_seq < S.recvSeq) {
      if (S.rejoinsPending > 0) {
        // older than events already in hand (a resync answered late): they are newer; the
        // game snapshot that follows it is just as old
        S.rejoinsPending -= 1;
        S.skipGameState = true;
        return;
      }
      // nobody asked for it: the room's seq went backwards (the server lost its newest
      // events and the gateway resynced the room). This snapshot is the room now; what is
      // queued or waiting belongs to the lost sequence.
      S.stats.rewinds += 1;
      S.queue = [];
      S.ahead = new Map();
      clearTimeout(S.resyncTimer);
      S.resyncTimer = null;
    }
    if (S.rejoinsPending > 0) S.rejoinsPending -= 1;
    S.skipGameState = false;
    S.recvSeq = room.last_seq;
    accept(f); // a snapshot covers every seq up to last_seq: waiting events may follow it
    return drain();
  }
  if (!f.room_id || f.room_id !== S.roomId) return; // another room's news
  if (f.type === roomGame().STATE_EVENT && S.skipGameState) {
    S.skipGameState = false;
    return;
  }
  if (f.type === Type.GAMES_EVENT_ROOM_CREATED || f.type === Type.GAMES_EVENT_ROOM_REMOVED) return;
  if (typeof f.seq === "number" && S.recvSeq !== null) {
    if (f.seq <= S.recvSeq || S.ahead.has(f.seq)) {
      S.stats.duplicates += 1;
      return;
    }
    if (f.seq > S.recvSeq + 1) {
      S.stats.gaps += 1;
      // a gap: keep this one for later and ask for the missing events
      if (S.ahead.size < AHEAD_MAX) S.ahead.set(f.seq, f);
      return resync();
    }
  }
  accept(f);
  drain();
}

function accept(f) {
  if (typeof f.seq === "number") S.recvSeq = f.seq;
  S.queue.push(f);
  // the events that waited for this one, in order
  for (const seq of [...S.ahead.keys()].sort((a, b) => a - b)) {
    if (seq <= S.recvSeq) S.ahead.delete(seq);
    else if (seq === S.recvSeq + 1) {
      S.queue.push(S.ahead.get(seq));
      S.ahead.delete(seq);
      S.recvSeq = seq;
    } else break;
  }
  if (S.ahead.size === 0) {
    clearTimeout(S.resyncTimer);
    S.resyncTimer = null;
  }
}

// `rejoin_room {last_seq}`: the gateway replays what this socket lacks and the engine answers
// with a fresh room_state; if the gap is still open a little later, ask again
function resync() {
  if (!S.roomId || !S.authed) return;
  const wait = S.lastResync + RESYNC_MIN_GAP_MS - Date.now();
  if (wait > 0) {
    if (!S.resyncTimer) S.resyncTimer = setTimeout(() => { S.resyncTimer = null; if (S.ahead.size) resync(); }, wait);
    return;
  }
  S.lastResync = Date.now();
  S.stats.resyncs += 1;
  const msg = { type: Type.GAMES_COMMAND_REJOIN_ROOM, room_id: S.roomId, game_type: S.roomGame || S.lobbyGame };
  if (S.recvSeq !== null) msg.last_seq = S.recvSeq;
  send(msg, "Resync room");
  clearTimeout(S.resyncTimer);
  S.resyncTimer = setTimeout(() => { S.resyncTimer = null; if (S.ahead.size) resync(); }, 3 * RESYNC_MIN_GAP_MS);
}

function resetRoom(roomId, gameType = null) {
  S.roomId = roomId;
  saveRoomId(roomId);
  setRoomGame(roomId ? knownGame(gameType) : null);
  S.rejoinsPending = 0;
  S.recvSeq = null;
  S.appliedSeq = 0;
  S.queue = [];
  S.ahead = new Map();
  clearTimeout(S.resyncTimer);
  S.resyncTimer = null;
  Object.assign(S, initialRoomState(null));
}

function leaveRoomLocally() {
  resetRoom(null);
  S.game = null;
  render();
}

function requestChatHistory() {
  if (!S.roomId) return;
  for (const msg of chatHistoryRequests(S.roomId, S.room, S.me?.user_id)) send(msg, "Chat history");
  if (!readableChannels(S.room, S.me?.user_id).includes(S.chat.channel)) setChatChannel(defaultChannel(S.room, S.me?.user_id), false);
}

function setChatChannel(channel, rerender) {
  S.chat = { ...S.chat, channel };
  if (rerender) render();
}

// one room event through the reducer, then what it asks for
function applyFrame(f) {
  const { state, effects } = reduceRoom(
    { room: S.room, game: S.game, votes: S.votes, chat: S.chat, rollPending: S.rollPending },
    f,
    { me: S.me?.user_id, game: roomGame() },
  );
  Object.assign(S, state);
  if (f.type === Type.GAMES_EVENT_ROOM_STATE) S.appliedSeq = f.room.last_seq;
  for (const effect of effects) {
    if (effect.toast) toast(...effect.toast);
    if (effect.leave) {
      leaveRoomLocally();
      listRooms();
    }
    if (effect.chatHistory) requestChatHistory();
    if (effect.ignored) console.info("parlour: ignored room event", effect.ignored);
  }
}

// what a game's animation may change while it runs (only for the room it started in)
function animationView() {
  const roomId = S.roomId;
  return {
    patchGame(changes, rerender = true) {
      if (S.roomId !== roomId || !S.game) return;
      S.game = { ...S.game, ...changes };
      if (rerender) render();
    },
    setAnimating(on) {
      S.animating = on;
    },
  };
}

async function drain() {
  if (S.draining) return;
  S.draining = true;
  while (S.queue.length) {
    const f = S.queue.shift();
    try {
      if (f.type === Type.GAMES_EVENT_ROOM_STATE) {
        applyFrame(f);
      } else {
        if (typeof f.seq === "number" && f.seq <= S.appliedSeq) continue;
        const game = roomGame();
        if (game.animate && game.handles(f.type)) await game.animate(f, animationView(), TIMING);
        applyFrame(f);
        if (typeof f.seq === "number") S.appliedSeq = f.seq;
      }
      render();
    } catch (err) {
      // the page's picture of the room is now in doubt: a fresh snapshot replaces it
      console.error("parlour: applying an event failed", f.type, err);
      S.stats.errors += 1;
      resync();
    }
  }
  S.draining = false;
}

// ---- the page
const ui = createUi({
  S,
  games: GAMES,
  roomGame,
  setLobbyGame,
  send,
  listRooms,
  setChatChannel,
  login(session) {
    saveSession(session);
    S.me = null;
    if (conn.isOpen) authenticate();
    else {
      conn.resetBackoff();
      conn.connect();
    }
    render();
  },
  logout() {
    saveSession(null);
    leaveRoomLocally();
    S.me = null;
    S.rooms = new Map();
    S.roomsNext = null;
    conn.stop(CloseCode.NORMAL, "logout");
    render();
  },
  rejoinRoom(room) {
    resetRoom(room.room_id, room.game_type || S.lobbyGame);
    send({ type: Type.GAMES_COMMAND_REJOIN_ROOM, room_id: room.room_id, game_type: room.game_type || S.lobbyGame }, `Rejoin ${room.room_name}`);
    render();
  },
  backToRooms() {
    leaveRoomLocally();
    listRooms();
  },
});

function render() {
  ui.render();
}

function bind() {
  ui.bind();
  for (const game of Object.values(GAMES)) {
    if (!game.bind) continue;
    game.bind({
      roomId: () => S.roomId,
      send,
      setMovePending() {
        S.rollPending = true;
        render();
      },
    });
  }
  // back online (or back to the tab) while waiting for a retry: try now instead
  window.addEventListener("online", () => conn.retryNow());
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") conn.retryNow();
  });
  // countdowns
  setInterval(() => {
    if (S.roomId && S.room && S.room.status === "in_progress" && !S.draining) render();
  }, 500);
  // the gateway sends lobby updates (room_created, room_removed) only to sockets that asked
  // for the list within the last 15 minutes: a page left on the lobby asks again every 10
  setInterval(() => {
    if (S.authed && !S.roomId && !S.draining) listRooms();
  }, 600000);
  setInterval(() => conn.forgetOlderThan(60000), 10000);
}

// ---- inspection hook (tests, support)
// A read-only summary of what the page shows, plus a way to drop the socket as a network would.
window.parlour = {
  summary() {
    const r = S.room;
    const g = S.game;
    const game = r ? GAMES[r.game_type] : null;
    return {
      conn: S.conn,
      authed: S.authed,
      me: S.me,
      room_id: S.roomId,
      status: r ? r.status : null,
      last_seq: S.recvSeq,
      applied_seq: S.appliedSeq,
      queued: S.queue.length,
      waiting_after_gap: S.ahead.size,
      animating: S.animating,
      stats: { ...S.stats },
      current_turn: r ? r.current_turn : null,
      scores: g ? Object.fromEntries(g.scores) : {},
      auto_players: r ? [...(r.auto_players || [])] : [],
      disconnected: r ? (r.disconnected_players || []).map((d) => d.user_id) : [],
      rounds: g ? g.history.length : 0,
      winner: g ? g.winner : null,
      final_scores: g && g.finalScores ? g.finalScores.map((s) => ({ ...s })) : null,
      game_type: r ? r.game_type : null,
      lobby_game: S.lobbyGame,
      // the game's own picture (tic-tac-toe: its board), when its module has one
      ...(g && game && game.summary ? game.summary(g) : {}),
    };
  },
  dropConnection() {
    conn.close(CLIENT_DROPPED, "dropped");
  },
};

bind();
render();
if (loadSession()) conn.connect();
