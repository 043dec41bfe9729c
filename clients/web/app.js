// Parlour browser client: one page, vanilla ES module, no build step, no external resources.
// It speaks the v1 wire protocol of docs/protocol.md over one WebSocket to the gateway that
// served this page. Server and user text is only ever set with textContent, never parsed as HTML.

const GAME = "bigger_dice";
const STORE_SESSION = "parlour.session";
const STORE_ROOM = "parlour.room";
const BACKOFF_BASE_MS = 2000;
const BACKOFF_CAP_MS = 30000;
const RESYNC_MIN_GAP_MS = 2000;
const AHEAD_MAX = 500; // room events kept while a gap before them is being filled
const params = new URLSearchParams(location.search);
// dice animation timing (ms); `?anim=` shortens it (e.g. for demos and tests), never to 0
const ROLL_MS = clampInt(params.get("anim"), 1000, 50, 5000);
const HOLD_MS = Math.round(ROLL_MS / 2);

// ---------------------------------------------------------------- protocol limits (docs/protocol.md)
const ID_RE = /^[A-Za-z0-9_.:@-]{1,64}$/;
const ROOM_NAME_RE = /^[\p{L}\p{N}\p{M}_][\p{L}\p{N}\p{M}_ .,'!?#()+-]*$/u;
const CONTROL_RE = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/;
const VISIBLE_RE = /[^\s\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/;

const ERROR_TEXT = {
  auth_required: "Log in first.",
  auth_failed: "Login failed.",
  already_authenticated: "Already logged in as another user.",
  token_expired: "Your session expired; log in again.",
  invalid_message: "The server did not understand that request.",
  message_too_large: "That message is too large.",
  rate_limited: "Slow down: too many requests.",
  service_unavailable: "The server is busy; it did not take effect. Try again.",
  internal_error: "Server error; it did not take effect.",
  unknown_game: "Unknown game.",
  room_not_found: "No such room (or it no longer accepts joins).",
  room_name_taken: "A room with that name already exists.",
  room_full: "The room is full.",
  user_banned: "You are banned from this room.",
  wrong_password: "Wrong password.",
  too_many_attempts: "Too many wrong passwords; wait a little.",
  already_in_room: "You are already in this room.",
  not_in_room: "You are not in this room.",
  not_admin: "Only the host can do that.",
  game_in_progress: "The game has already started.",
  player_not_in_lobby: "That player is not waiting in the lobby.",
  already_selected: "Already selected.",
  not_selected: "Not selected for this game.",
  players_not_ready: "Not every seat is taken and ready.",
  cannot_kick_self: "You cannot kick yourself.",
  cannot_ban_self: "You cannot ban yourself.",
  not_banned: "That user is not banned.",
  spectator_not_found: "No such spectator.",
  kicked_from_room: "You were removed from the room.",
  spectators_not_allowed: "This room does not allow spectators.",
  spectator_capacity_full: "No spectator seats left.",
  not_a_spectator: "You are not a spectator here.",
  wrong_game_type: "That room plays another game.",
  game_not_in_progress: "The game is not running.",
  not_your_turn: "It is not your turn.",
  not_a_player: "You are not playing in this game.",
  already_auto_play: "The server already plays for you.",
  invalid_player: "Not a player of this game.",
  player_already_auto: "The server already plays for that player.",
  player_not_disconnected: "That player is not disconnected.",
  disconnect_already_handled: "That player is back or was already handed over.",
  disconnect_timeout_active: "Wait until their reconnect time runs out.",
  not_eligible_to_vote: "You cannot vote on this.",
  already_voted: "You already voted.",
  game_error: "The game refused that move.",
  channel_access_denied: "You cannot use that chat channel.",
  chat_disabled: "That chat is closed now.",
  cannot_message_self: "You cannot message yourself.",
};

// ---------------------------------------------------------------- state
const S = {
  ws: null,
  wantOpen: false, // false after logout: no reconnect
  conn: "offline",
  attempt: 0,
  reconnectTimer: null,
  heartbeatTimer: null,
  heartbeatSecs: 15,
  lastRx: 0,
  authed: false,
  me: null, // {user_id, username}
  reqCounter: 0,
  pending: new Map(), // request_id -> {type, label, at}
  rooms: new Map(), // room_id -> room list item
  roomsNext: null, // next_cursor of the newest room_list page (null: no more pages)
  pwDrafts: new Map(), // room_id -> password typed in the room list
  room: null, // current room (RoomSnapshot, kept current by events)
  roomId: sessionStorage.getItem(STORE_ROOM), // the room we are in, or want to rejoin
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
  game: null,
  rollPending: false,
  chat: { channel: "lobby", messages: { lobby: [], players: [], spectators: [] }, seen: new Set() },
  votes: new Map(), // target user id -> {votes, votes_required, mine}
};

function clampInt(raw, dflt, lo, hi) {
  const n = Number.parseInt(raw ?? "", 10);
  return Number.isFinite(n) ? Math.min(hi, Math.max(lo, n)) : dflt;
}

function newGame() {
  return {
    seats: [], // user ids in seat order
    names: new Map(),
    scores: new Map(),
    round: 1,
    currentRolls: [], // [uid, roll, auto]
    history: [], // {round_number, rolls: [[uid, roll, auto]], winner_id, is_tie, is_tiebreaker, by_limit, tiebreaker_players}
    tiebreak: null,
    winner: null,
    winnerName: null,
    finalScores: null,
    die: null,
    caption: "",
  };
}

// ---------------------------------------------------------------- DOM helpers (textContent only)
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "class") node.className = value;
    else if (key === "onclick") node.addEventListener("click", value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function show(id, visible) {
  $(id).hidden = !visible;
}

function toast(text, kind = "error", detail = "") {
  const box = el("div", { class: `toast toast-${kind}`, role: "alert" }, el("strong", { text }));
  if (detail) box.append(el("div", { class: "toast-detail", text: detail }));
  box.addEventListener("click", () => box.remove());
  $("toasts").append(box);
  setTimeout(() => box.remove(), kind === "error" ? 8000 : 4000);
}

function nameOf(uid) {
  if (!uid) return "";
  const g = S.game;
  if (g && g.names.has(uid)) return g.names.get(uid);
  const r = S.room;
  if (r) {
    for (const p of [...(r.players || []), ...(r.lobby || [])]) if (p.user_id === uid) return p.username;
    for (const s of r.spectators_data || []) if (s.user_id === uid) return s.username;
    if (r.host_id === uid) return r.host_name;
  }
  return uid;
}

// ---------------------------------------------------------------- session
function loadSession() {
  try {
    const raw = sessionStorage.getItem(STORE_SESSION);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

function saveSession(session) {
  if (session) sessionStorage.setItem(STORE_SESSION, JSON.stringify(session));
  else sessionStorage.removeItem(STORE_SESSION);
}

function setRoomId(roomId) {
  S.roomId = roomId;
  if (roomId) sessionStorage.setItem(STORE_ROOM, roomId);
  else sessionStorage.removeItem(STORE_ROOM);
}

// a dev-mode user id from a username: the allowed id characters, else a stable hash
export function slugUserId(username) {
  let slug = username.trim().normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase()
    .replace(/[^a-z0-9_.:@-]+/g, "-").replace(/^-+|-+$/g, "");
  if (!slug) {
    let h = 2166136261;
    for (const ch of username) h = Math.imul(h ^ ch.codePointAt(0), 16777619) >>> 0;
    slug = `u-${h.toString(36)}`;
  }
  return slug.slice(0, 64);
}

// ---------------------------------------------------------------- connection
function setConn(state, text) {
  S.conn = state;
  const badge = $("conn");
  badge.className = `conn conn-${state}`;
  badge.textContent = text || state;
  badge.dataset.state = state;
}

function wsUrl() {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
}

function connect() {
  clearTimeout(S.reconnectTimer);
  S.reconnectTimer = null;
  if (S.ws && S.ws.readyState <= WebSocket.OPEN) return;
  S.wantOpen = true;
  setConn("connecting", S.attempt ? `reconnecting (try ${S.attempt})` : "connecting");
  const ws = new WebSocket(wsUrl());
  S.ws = ws;
  ws.addEventListener("message", (ev) => {
    if (ws !== S.ws) return;
    S.lastRx = Date.now();
    let frame;
    try {
      frame = JSON.parse(ev.data);
    } catch {
      console.warn("parlour: a frame that is not JSON was ignored");
      return;
    }
    if (frame && typeof frame.type === "string") onFrame(frame);
  });
  ws.addEventListener("close", (ev) => {
    if (ws !== S.ws) return;
    onClosed(ev.code, ev.reason);
  });
}

// Close our socket and settle the page at once: between ws.close() and the browser's close
// event the socket is CLOSING and drops whatever is sent, so nothing may stay clickable.
function closeSocket(code, reason) {
  const ws = S.ws;
  if (!ws) return;
  onClosed(code, reason); // forgets S.ws first, so the later close event is ignored
  ws.close(code, reason);
}

function onClosed(code, reason) {
  S.ws = null;
  S.authed = false;
  clearInterval(S.heartbeatTimer);
  S.heartbeatTimer = null;
  S.rollPending = false;
  // a command the gateway never acknowledged may not have reached the engine: say so once
  const lost = [...S.pending.values()].filter((p) => !p.acked && !p.type.startsWith("system."));
  if (lost.length) {
    toast(`Connection lost before the server took: ${lost.map((p) => p.label).join(", ")}`, "error", "Check and retry.");
  }
  S.pending.clear();
  if (code === 4003 || code === 4004) {
    // auth failed for good or the token expired: ask for a login again
    saveSession(null);
    toast(code === 4003 ? ERROR_TEXT.auth_failed : ERROR_TEXT.token_expired, "error", reason || "");
  }
  if (!S.wantOpen || !loadSession()) {
    setConn("offline", "offline");
    render();
    return;
  }
  S.attempt += 1;
  const base = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (S.attempt - 1));
  const delay = Math.round(base * (0.75 + Math.random() * 0.5)); // +-25% jitter
  setConn("reconnecting", `offline, retry in ${Math.ceil(delay / 1000)} s`);
  S.reconnectTimer = setTimeout(connect, delay);
  render();
}

function startHeartbeat(seconds) {
  clearInterval(S.heartbeatTimer);
  S.heartbeatSecs = Math.max(1, seconds || 15);
  S.heartbeatTimer = setInterval(() => {
    if (!S.ws || S.ws.readyState !== WebSocket.OPEN) return;
    // nothing heard for three intervals: the socket is dead even if the browser has not noticed
    if (Date.now() - S.lastRx > 3 * S.heartbeatSecs * 1000) {
      closeSocket(3000, "heartbeat timeout");
      return;
    }
    sendRaw({ type: "system.heartbeat" });
  }, S.heartbeatSecs * 1000);
}

function sendRaw(message) {
  if (!S.ws || S.ws.readyState !== WebSocket.OPEN) return false;
  S.ws.send(JSON.stringify(message));
  return true;
}

// every command goes out with a request_id, so a system.error can name what failed
function send(message, label) {
  if (!S.ws || S.ws.readyState !== WebSocket.OPEN) {
    toast(`${label || message.type}: not connected`, "error", "Wait for the connection and retry.");
    return null;
  }
  const requestId = `r${++S.reqCounter}`;
  const framed = { ...message, request_id: requestId };
  S.pending.set(requestId, { type: message.type, label: label || message.type, at: Date.now() });
  if (message.type === "games.command.rejoin_room") S.rejoinsPending += 1;
  sendRaw(framed);
  return requestId;
}

function authenticate() {
  const session = loadSession();
  if (!session) return;
  const msg = { type: "system.authenticate" };
  if (session.token) msg.token = session.token;
  else {
    msg.user_id = slugUserId(session.username);
    msg.username = session.username;
  }
  send(msg, "Log in");
}

// ---------------------------------------------------------------- frames
function onFrame(f) {
  switch (f.type) {
    case "system.welcome":
      startHeartbeat(f.heartbeat_interval);
      setConn("open", "connected");
      authenticate();
      return;
    case "system.authenticated":
      return onAuthenticated(f);
    case "system.heartbeat_ack":
      return;
    case "system.ack":
      // handed to the engine; the answer comes as events (or a system.error)
      if (f.request_id && S.pending.has(f.request_id)) S.pending.get(f.request_id).acked = true;
      return;
    case "system.error":
      return onError(f);
    case "system.reauth_required":
      toast("Your login is about to expire", "info", "Log in again to stay connected.");
      return;
    case "system.state_snapshot":
      return;
    case "games.event.room_list":
      if (f.game_type !== GAME) return;
      // the first page (no cursor) starts the list afresh; a later page adds to it
      if (!f.cursor) S.rooms = new Map();
      for (const r of f.rooms) S.rooms.set(r.room_id, r);
      S.roomsNext = f.next_cursor || null;
      return render();
    case "games.event.room_created":
      if (f.game_type !== GAME) return;
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
    case "games.event.room_removed":
      S.rooms.delete(f.room_id);
      if (f.room_id === S.roomId && (f.reason === "host_left" || f.reason === "abandoned")) {
        toast("The room was closed", "info", f.reason === "host_left" ? "The host left." : "");
        leaveRoomLocally();
      }
      return render();
    case "games.event.not_in_room":
      if (f.room_id === S.roomId) {
        toast(`You are no longer in ${f.room_name}`, "info");
        leaveRoomLocally();
        send({ type: "games.command.list_rooms", game_type: GAME }, "List rooms");
      }
      return render();
    case "chat.event.message_received":
      toast(`Message from ${f.sender_name}`, "info", f.content);
      return;
    case "presence.event.user_online":
    case "presence.event.user_offline":
      return;
    default:
      if (f.type.startsWith("games.event.")) return onRoomFrame(f);
      console.info("parlour: ignored frame type", f.type);
  }
}

function onAuthenticated(f) {
  S.authed = true;
  S.attempt = 0;
  S.me = { user_id: f.user_id, username: f.username };
  setConn("open", "connected");
  S.rejoinsPending = 0; // a new socket: nothing asked on it yet
  send({ type: "games.command.list_rooms", game_type: GAME }, "List rooms");
  if (S.roomId) {
    const msg = { type: "games.command.rejoin_room", room_id: S.roomId, game_type: GAME };
    if (S.room && S.room.room_id === S.roomId && S.recvSeq !== null) msg.last_seq = S.recvSeq;
    send(msg, "Rejoin room");
  }
  render();
}

function onError(f) {
  const pending = f.request_id ? S.pending.get(f.request_id) : null;
  if (pending) S.pending.delete(f.request_id);
  const label = pending ? pending.label : "Server";
  const explain = ERROR_TEXT[f.code] || "The request failed.";
  let detail = f.message && f.message !== explain ? f.message : "";
  if (f.fields && f.fields.length) detail += ` (${f.fields.map((x) => `${x.path}: ${x.message}`).join("; ")})`;
  toast(`${label} - ${explain} [${f.code}]`, "error", detail.trim());
  if (pending && pending.type === "games.command.bigger_dice.roll") S.rollPending = false;
  if (pending && pending.type === "system.authenticate" && f.code === "auth_failed") {
    saveSession(null);
    S.wantOpen = false;
    closeSocket(1000, "login failed");
  }
  if (pending && pending.type === "games.command.rejoin_room") S.rejoinsPending = Math.max(0, S.rejoinsPending - 1);
  if (pending && pending.type === "games.command.rejoin_room" &&
      (f.code === "not_in_room" || f.code === "room_not_found" || f.code === "user_banned")) {
    leaveRoomLocally();
  }
  if (f.code === "kicked_from_room" && (!f.room_id || f.room_id === S.roomId)) leaveRoomLocally();
  render();
}

// room frames: deduplicate and order by seq, then queue (dice animations never drop an event)
function onRoomFrame(f) {
  if (f.type === "games.event.room_state") {
    const room = f.room;
    if (room.game_type !== GAME) return;
    if (S.roomId !== room.room_id) resetRoom(room.room_id);
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
  if (f.type === "games.event.bigger_dice.state" && S.skipGameState) {
    S.skipGameState = false;
    return;
  }
  if (f.type === "games.event.room_created" || f.type === "games.event.room_removed") return;
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
  const msg = { type: "games.command.rejoin_room", room_id: S.roomId, game_type: GAME };
  if (S.recvSeq !== null) msg.last_seq = S.recvSeq;
  send(msg, "Resync room");
  clearTimeout(S.resyncTimer);
  S.resyncTimer = setTimeout(() => { S.resyncTimer = null; if (S.ahead.size) resync(); }, 3 * RESYNC_MIN_GAP_MS);
}

function resetRoom(roomId) {
  setRoomId(roomId);
  S.rejoinsPending = 0;
  S.room = null;
  S.recvSeq = null;
  S.appliedSeq = 0;
  S.queue = [];
  S.ahead = new Map();
  clearTimeout(S.resyncTimer);
  S.resyncTimer = null;
  S.game = newGame();
  S.votes = new Map();
  S.rollPending = false;
  S.chat = { channel: "lobby", messages: { lobby: [], players: [], spectators: [] }, seen: new Set() };
}

function leaveRoomLocally() {
  resetRoom(null);
  S.game = null;
  render();
}

async function drain() {
  if (S.draining) return;
  S.draining = true;
  while (S.queue.length) {
    const f = S.queue.shift();
    try {
      if (f.type === "games.event.room_state") {
        applyFrame(f);
      } else {
        if (typeof f.seq === "number" && f.seq <= S.appliedSeq) continue;
        if (f.type === "games.event.bigger_dice.rolled") await animateRoll(f);
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

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function animateRoll(f) {
  S.animating = true;
  const die = $("die");
  const g = S.game;
  try {
    g.caption = `${f.player_name} is rolling...`;
    render();
    die.classList.add("rolling");
    const started = Date.now();
    while (Date.now() - started < ROLL_MS) {
      die.textContent = String(1 + Math.floor(Math.random() * 6));
      await sleep(Math.min(80, ROLL_MS));
    }
    die.classList.remove("rolling");
    g.die = f.roll;
    g.caption = `${f.player_name} rolled ${f.roll}${f.auto ? " (auto)" : ""}`;
    die.textContent = String(f.roll);
    await sleep(HOLD_MS);
  } finally {
    die.classList.remove("rolling");
    S.animating = false;
  }
}

// ---------------------------------------------------------------- applying events to the room
function findMember(list, uid) {
  return (list || []).find((p) => p.user_id === uid);
}

function dropMember(uid) {
  const r = S.room;
  r.lobby = (r.lobby || []).filter((p) => p.user_id !== uid);
  r.selected_players = (r.selected_players || []).filter((id) => id !== uid);
  if (r.status === "waiting") r.players = (r.players || []).filter((p) => p.user_id !== uid);
}

function setReady(uid, ready) {
  for (const list of [S.room.lobby, S.room.players]) {
    const m = findMember(list, uid);
    if (m) m.is_ready = ready;
  }
}

function seatsFrom(players) {
  const g = S.game;
  g.seats = players.map((p) => p.user_id);
  for (const p of players) {
    g.names.set(p.user_id, p.username);
    if (!g.scores.has(p.user_id)) g.scores.set(p.user_id, p.score || 0);
  }
}

function applyFrame(f) {
  const g = S.game || (S.game = newGame());
  if (f.type === "games.event.room_state") {
    const fresh = !S.room;
    S.room = structuredClone(f.room);
    S.appliedSeq = f.room.last_seq;
    const r = S.room;
    g.names = new Map();
    g.scores = new Map();
    seatsFrom(r.players || []);
    for (const p of r.lobby || []) g.names.set(p.user_id, p.username);
    if (r.winner_id) {
      g.winner = r.winner_id;
      g.winnerName = nameOf(r.winner_id);
    }
    if (fresh) requestChatHistory();
    return;
  }
  const r = S.room;
  if (!r) return; // events before our snapshot: the snapshot covers them
  const me = S.me?.user_id;
  switch (f.type) {
    case "games.event.lobby_joined":
      if (!findMember(r.lobby, f.player.user_id)) r.lobby = [...(r.lobby || []), f.player];
      g.names.set(f.player.user_id, f.player.username);
      break;
    case "games.event.player_selected":
      if (!r.selected_players.includes(f.player.user_id)) r.selected_players.push(f.player.user_id);
      break;
    case "games.event.player_deselected":
      r.selected_players = r.selected_players.filter((id) => id !== f.user_id);
      setReady(f.user_id, false);
      break;
    case "games.event.selected_players_updated":
      r.selected_players = [...f.selected_players];
      break;
    case "games.event.game_starting":
      r.players = f.players.map((p) => ({ ...p }));
      seatsFrom(r.players);
      toast("Every seat is taken: press Ready", "info");
      break;
    case "games.event.removed_from_game":
      // every seat went to others: the unselected leave the room
      toast("You were not picked for this game", "info", f.message);
      leaveRoomLocally();
      send({ type: "games.command.list_rooms", game_type: GAME }, "List rooms");
      return;
    case "games.event.player_ready":
      setReady(f.user_id, true);
      break;
    case "games.event.player_ready_changed":
      setReady(f.user_id, f.is_ready);
      break;
    case "games.event.game_started": {
      r.status = "in_progress";
      const old = new Map((r.players || []).map((p) => [p.user_id, p]));
      r.players = f.players.map((p) => ({ ...(old.get(p.id) || {}), user_id: p.id, username: p.name, score: 0 }));
      g.scores = new Map();
      seatsFrom(r.players);
      g.round = 1;
      g.currentRolls = [];
      g.history = [];
      r.current_turn = f.first_turn;
      S.chat.channel = defaultChannel();
      requestChatHistory();
      break;
    }
    case "games.event.turn_changed":
      r.current_turn = f.current_turn;
      r.turn_number = f.turn_number;
      r.turn_deadline = f.turn_deadline;
      S.rollPending = false; // a new turn: whatever roll was in flight has been answered
      break;
    case "games.event.player_left":
    case "games.event.player_kicked":
    case "games.event.player_banned": {
      if (f.type === "games.event.player_banned") {
        r.banned_users = [...(r.banned_users || []), { user_id: f.player_id, username: f.player_name }];
      }
      if (f.player_id === me) {
        const why = { "games.event.player_left": "You left", "games.event.player_kicked": "You were kicked", "games.event.player_banned": "You were banned" }[f.type];
        toast(`${why}: ${r.room_name}`, "info");
        leaveRoomLocally();
        send({ type: "games.command.list_rooms", game_type: GAME }, "List rooms");
        return;
      }
      dropMember(f.player_id);
      break;
    }
    case "games.event.player_unbanned":
      r.banned_users = (r.banned_users || []).filter((u) => u.user_id !== f.player_id);
      break;
    case "games.event.player_disconnected":
      r.disconnected_players = (r.disconnected_players || []).filter((d) => d.user_id !== f.user_id);
      r.disconnected_players.push({ user_id: f.user_id, username: f.username, timeout_at: f.timeout_at });
      break;
    case "games.event.player_rejoined":
      r.disconnected_players = (r.disconnected_players || []).filter((d) => d.user_id !== f.user_id);
      S.votes.delete(f.user_id);
      break;
    case "games.event.kick_vote_received": {
      const v = S.votes.get(f.target_user_id) || { mine: false };
      S.votes.set(f.target_user_id, { ...v, votes: f.votes, votes_required: f.votes_required, mine: v.mine || f.voter_id === me });
      break;
    }
    case "games.event.player_auto_enabled":
      if (!r.auto_players.includes(f.user_id)) r.auto_players.push(f.user_id);
      if (f.reason === "vote_kick") {
        r.disconnected_players = (r.disconnected_players || []).filter((d) => d.user_id !== f.user_id);
        S.votes.delete(f.user_id);
      }
      break;
    case "games.event.player_auto_disabled":
      r.auto_players = r.auto_players.filter((id) => id !== f.user_id);
      break;
    case "games.event.spectator_joined":
      r.spectators_data = (r.spectators_data || []).filter((s) => s.user_id !== f.spectator.user_id);
      r.spectators_data.push(f.spectator);
      r.spectators = r.spectators_data.map((s) => s.user_id);
      break;
    case "games.event.spectator_left":
    case "games.event.spectator_kicked":
      if (f.user_id === me) {
        toast(f.type === "games.event.spectator_kicked" ? "The host removed you" : "You stopped watching", "info");
        leaveRoomLocally();
        send({ type: "games.command.list_rooms", game_type: GAME }, "List rooms");
        return;
      }
      r.spectators_data = (r.spectators_data || []).filter((s) => s.user_id !== f.user_id);
      r.spectators = r.spectators_data.map((s) => s.user_id);
      break;
    case "games.event.admin_spectator_designated":
      r.admin_spectator_id = f.user_id;
      break;
    case "games.event.chat_message":
      addChat(f.channel, [f]);
      break;
    case "games.event.chat_history":
      S.chat.messages[f.channel] = [];
      addChat(f.channel, f.messages);
      break;
    case "games.event.user_muted":
    case "games.event.user_unmuted":
      break;
    case "games.event.bigger_dice.state":
      g.round = f.round_number;
      g.currentRolls = f.current_rolls.map(([uid, roll]) => [uid, roll, false]);
      g.scores = new Map(f.scores.map(([uid, score]) => [uid, score]));
      g.seats = f.scores.map(([uid]) => uid);
      g.tiebreak = f.is_tiebreaker ? { players: f.pending_rollers } : null;
      g.history = (f.round_history || []).map((h) => ({
        round_number: h.round_number,
        rolls: h.rolls.map((x) => [x.user_id, x.roll, false]),
        winner_id: h.winner_id,
        is_tie: h.winner_id === null,
        is_tiebreaker: h.is_tiebreaker,
      }));
      for (const h of f.round_history || []) for (const x of h.rolls) g.names.set(x.user_id, x.username);
      r.current_turn = f.current_turn;
      r.turn_deadline = f.turn_deadline;
      break;
    case "games.event.bigger_dice.rolled":
      g.names.set(f.player_id, f.player_name);
      g.currentRolls.push([f.player_id, f.roll, f.auto]);
      if (f.player_id === me) S.rollPending = false;
      break;
    case "games.event.bigger_dice.round_result": {
      const autos = new Map(g.currentRolls.map(([uid, , auto]) => [uid, auto]));
      g.history.push({
        round_number: f.round_number,
        rolls: f.rolls.map(([uid, roll]) => [uid, roll, autos.get(uid) || false]),
        winner_id: f.winner_id,
        is_tie: f.is_tie,
        is_tiebreaker: f.is_tiebreaker,
        by_limit: f.by_tiebreaker_limit,
        tiebreaker_players: f.tiebreaker_players,
      });
      g.scores = new Map(f.scores.map(([uid, score]) => [uid, score]));
      for (const p of r.players || []) if (g.scores.has(p.user_id)) p.score = g.scores.get(p.user_id);
      g.currentRolls = [];
      g.round = f.is_tie ? f.round_number : f.round_number + 1;
      if (!f.is_tie) g.tiebreak = null;
      break;
    }
    case "games.event.bigger_dice.tiebreaker_started":
      g.tiebreak = { players: f.tied_players, roll: f.tied_roll };
      break;
    case "games.event.bigger_dice.game_over":
      r.status = "finished";
      r.winner_id = f.winner;
      r.current_turn = null;
      r.turn_deadline = null;
      g.winner = f.winner;
      g.winnerName = f.winner_name;
      g.finalScores = f.final_scores.map((s) => ({ ...s }));
      for (const s of f.final_scores) g.scores.set(s.user_id, s.score);
      break;
    default:
      console.info("parlour: ignored room event", f.type);
  }
}

// ---------------------------------------------------------------- chat
function myRole() {
  const r = S.room;
  const me = S.me?.user_id;
  if (!r || !me) return null;
  if ((r.spectators || []).includes(me)) return "spectator";
  if (r.status !== "waiting" && findMember(r.players, me)) return "player";
  if (r.host_id === me) return "host";
  if (findMember(r.lobby, me)) return "lobby";
  if (findMember(r.players, me)) return "player";
  return null;
}

function readableChannels() {
  const r = S.room;
  if (!r) return [];
  const role = myRole();
  const list = [];
  if (r.status === "waiting") list.push("lobby");
  else list.push("players");
  if (role === "spectator") list.push("spectators");
  return list;
}

// where a member writes by default: the lobby while waiting, then their own game channel
function defaultChannel() {
  const r = S.room;
  if (!r || r.status === "waiting") return "lobby";
  return myRole() === "spectator" ? "spectators" : "players";
}

function writable(channel) {
  const r = S.room;
  const role = myRole();
  if (!r || !role) return false;
  if (channel === "lobby") return r.status === "waiting" && r.lobby_chat_enabled !== false;
  if (channel === "players") return r.status === "in_progress" && role === "player";
  return r.status === "in_progress" && role === "spectator";
}

function requestChatHistory() {
  if (!S.roomId) return;
  for (const channel of readableChannels()) {
    send({ type: "games.command.get_chat_history", room_id: S.roomId, channel, limit: 50 }, "Chat history");
  }
  if (!readableChannels().includes(S.chat.channel)) S.chat.channel = defaultChannel();
}

function addChat(channel, messages) {
  const list = S.chat.messages[channel] || (S.chat.messages[channel] = []);
  for (const m of messages) {
    const key = `${channel}:${m.message_id}`;
    if (S.chat.seen.has(key) && list.some((x) => x.message_id === m.message_id)) continue;
    S.chat.seen.add(key);
    list.push(m);
  }
  if (list.length > 200) list.splice(0, list.length - 200);
}

// ---------------------------------------------------------------- rendering
function render() {
  const session = loadSession();
  const loggedIn = !!session;
  show("view-login", !loggedIn);
  show("logout", loggedIn);
  $("me").textContent = S.me ? S.me.username : session ? session.username || "" : "";
  const inRoom = loggedIn && !!S.roomId;
  show("view-lobby", loggedIn && !inRoom);
  show("view-room", inRoom);
  if (loggedIn && !inRoom) renderRooms();
  if (inRoom) renderRoom();
}

function renderRooms() {
  const ul = $("rooms");
  ul.replaceChildren();
  const rooms = [...S.rooms.values()].sort((a, b) => String(a.room_name).localeCompare(String(b.room_name)));
  $("rooms-empty").hidden = rooms.length > 0;
  $("rooms-more").hidden = !S.roomsNext;
  for (const room of rooms) {
    const info = [
      room.status === "waiting" ? "waiting" : room.status.replace("_", " "),
      `${room.status === "waiting" ? room.lobby_count : room.player_count}/${room.max_players} players`,
      room.spectator_count ? `${room.spectator_count} watching` : "",
      `host ${room.host_name}`,
    ].filter(Boolean).join(" · ");
    let pw = null;
    if (room.is_password_protected) {
      // the list re-renders on every room event: keep what the user typed
      pw = el("input", { type: "password", placeholder: "password", maxlength: 128, class: "pw", autocomplete: "current-password", "aria-label": "room password" });
      pw.value = S.pwDrafts.get(room.room_id) || "";
      pw.addEventListener("input", () => S.pwDrafts.set(room.room_id, pw.value));
    }
    const password = () => (pw ? pw.value : null);
    const actions = el("div", { class: "row wrap actions" });
    if (room.can_rejoin) {
      actions.append(el("button", { text: "Rejoin", dataset: { action: "rejoin" }, onclick: () => rejoinRoom(room) }));
    } else {
      if (room.status === "waiting") {
        actions.append(el("button", { text: "Join", dataset: { action: "join" }, onclick: () => joinRoom(room, password(), false) }));
      }
      if (room.allow_spectators) {
        actions.append(el("button", { text: "Watch", class: "secondary", dataset: { action: "watch" }, onclick: () => joinRoom(room, password(), true) }));
      }
      if (pw && actions.childElementCount) actions.prepend(pw);
    }
    ul.append(
      el("li", { class: "room", dataset: { roomName: room.room_name, roomId: room.room_id } },
        el("div", { class: "room-main" },
          el("span", { class: "room-title", text: room.room_name }),
          room.is_password_protected ? el("span", { class: "badge", text: "password" }) : null,
          el("div", { class: "hint", text: info })),
        actions));
  }
}

function rejoinRoom(room) {
  resetRoom(room.room_id);
  send({ type: "games.command.rejoin_room", room_id: room.room_id, game_type: GAME }, `Rejoin ${room.room_name}`);
  render();
}

function joinRoom(room, password, asSpectator) {
  if (!ROOM_NAME_RE.test(room.room_name)) return toast("That is not a valid room name", "error");
  if (room.is_password_protected && !password) {
    toast("This room needs a password", "error", "Type it next to the room, then join.");
    return;
  }
  if (password && password.length > 128) return toast("Password too long", "error");
  const msg = {
    type: asSpectator ? "games.command.join_as_spectator" : "games.command.join_room",
    room_name: room.room_name,
    game_type: GAME,
  };
  if (password) msg.password = password;
  send(msg, `${asSpectator ? "Watch" : "Join"} ${room.room_name}`);
}

function fmtSecs(deadline) {
  if (!deadline) return "";
  const left = Math.max(0, Math.ceil((Date.parse(deadline) - Date.now()) / 1000));
  return `${left} s`;
}

function hostButton(text, type, target, extra = {}) {
  return el("button", {
    text,
    class: "small secondary",
    dataset: { action: type.split(".").pop(), target },
    onclick: () => send({ type, room_id: S.roomId, target_user_id: target, ...extra }, `${text} ${nameOf(target)}`),
  });
}

function renderRoom() {
  const r = S.room;
  const g = S.game || newGame();
  const me = S.me?.user_id;
  if (!r) {
    $("room-name").textContent = "Joining...";
    $("room-status").textContent = "";
    for (const id of ["btn-ready", "btn-unready", "btn-start", "btn-autoplay", "game-card", "gameover-card"]) show(id, false);
    return;
  }
  const role = myRole();
  const isHost = r.host_id === me;
  $("room-name").textContent = r.room_name;
  $("room-status").textContent = r.status.replace("_", " ");
  $("room-status").dataset.status = r.status;
  $("room-info").textContent = [
    `host ${r.host_name}`,
    `${r.max_players} seats`,
    r.is_password_protected ? "password" : "",
    r.allow_spectators ? "spectators allowed" : "no spectators",
    role ? `you: ${role}` : "",
  ].filter(Boolean).join(" · ");

  // lobby members
  const waiting = r.status === "waiting";
  const selected = new Set(r.selected_players || []);
  const lobbyUl = $("lobby-list");
  lobbyUl.replaceChildren();
  const members = waiting ? r.lobby || [] : r.players || [];
  $("members-title").textContent = waiting ? "Lobby" : "Players";
  for (const m of members) {
    const tags = [];
    if (m.user_id === r.host_id) tags.push("host");
    if (waiting && selected.has(m.user_id)) tags.push("selected");
    if (m.is_ready) tags.push("ready");
    if (m.user_id === me) tags.push("you");
    const li = el("li", { dataset: { userId: m.user_id } },
      el("span", { class: "name", text: m.username }),
      ...tags.map((t) => el("span", { class: `tag tag-${t}`, text: t })));
    if (isHost && waiting) {
      const controls = el("span", { class: "controls" });
      if (selected.has(m.user_id)) controls.append(hostButton("Deselect", "games.command.deselect_player", m.user_id));
      else controls.append(hostButton("Select", "games.command.select_player", m.user_id));
      if (m.user_id !== me) {
        controls.append(hostButton("Kick", "games.command.kick_player", m.user_id));
        controls.append(hostButton("Ban", "games.command.ban_player", m.user_id));
      }
      li.append(controls);
    }
    lobbyUl.append(li);
  }
  const specUl = $("spectator-list");
  specUl.replaceChildren();
  const specs = r.spectators_data || [];
  $("spectator-count").textContent = `(${specs.length})`;
  for (const s of specs) {
    const li = el("li", {}, el("span", { class: "name", text: s.username }));
    if (s.user_id === r.admin_spectator_id) li.append(el("span", { class: "tag", text: "admin" }));
    if (isHost) {
      const controls = el("span", { class: "controls" });
      if (s.user_id !== r.admin_spectator_id) {
        controls.append(hostButton("Make admin", "games.command.designate_admin_spectator", s.user_id));
      }
      controls.append(hostButton("Kick", "games.command.kick_spectator", s.user_id));
      li.append(controls);
    }
    specUl.append(li);
  }
  const banned = r.banned_users || [];
  show("banned-box", isHost && banned.length > 0);
  const banUl = $("banned-list");
  banUl.replaceChildren();
  for (const b of banned) {
    banUl.append(el("li", {}, el("span", { class: "name", text: b.username }),
      isHost ? el("span", { class: "controls" }, hostButton("Unban", "games.command.unban_player", b.user_id)) : null));
  }

  // actions
  const mine = findMember(r.lobby, me) || findMember(r.players, me);
  const amSelected = waiting && selected.has(me);
  show("btn-ready", amSelected && !(mine && mine.is_ready));
  show("btn-unready", amSelected && !!(mine && mine.is_ready));
  const everyoneReady = waiting && selected.size === r.max_players &&
    [...selected].every((uid) => (findMember(r.lobby, uid) || findMember(r.players, uid) || {}).is_ready);
  show("btn-start", isHost && everyoneReady);
  const auto = (r.auto_players || []).includes(me);
  show("btn-autoplay", r.status === "in_progress" && role === "player" && !auto);
  $("btn-leave").textContent = role === "spectator" ? "Stop watching" : "Leave room";
  show("btn-leave", r.status !== "finished");

  // game
  const inGame = r.status === "in_progress" || r.status === "finished";
  show("game-card", inGame);
  show("gameover-card", r.status === "finished" && !!g.finalScores);
  if (inGame) renderGame(r, g, me);
  if (r.status === "finished" && g.finalScores) {
    $("winner-name").textContent = g.winnerName || nameOf(g.winner);
    $("winner-name").dataset.userId = g.winner || "";
    const tbody = $("final-scores");
    tbody.replaceChildren();
    for (const s of g.finalScores) {
      tbody.append(el("tr", { dataset: { userId: s.user_id }, class: s.user_id === g.winner ? "win" : "" },
        el("td", { text: s.username }), el("td", { class: "num", text: s.score })));
    }
  }
  renderChat();
}

function renderGame(r, g, me) {
  $("round-label").textContent = `round ${g.round}${g.tiebreak ? " · tiebreaker" : ""}`;
  const disconnected = new Map((r.disconnected_players || []).map((d) => [d.user_id, d]));
  const autos = new Set(r.auto_players || []);
  const ul = $("score-list");
  ul.replaceChildren();
  const iPlay = !!findMember(r.players, me) && !autos.has(me) && !disconnected.has(me);
  for (const uid of g.seats) {
    const li = el("li", { dataset: { userId: uid }, class: uid === r.current_turn ? "turn" : "" },
      el("span", { class: "name", text: g.names.get(uid) || uid }),
      el("span", { class: "score num", text: g.scores.get(uid) ?? 0 }));
    if (uid === r.current_turn) li.append(el("span", { class: "tag tag-turn", text: "turn" }));
    if (autos.has(uid)) li.append(el("span", { class: "tag tag-auto", text: "auto" }));
    if (g.tiebreak && g.tiebreak.players.includes(uid)) li.append(el("span", { class: "tag", text: "tiebreak" }));
    const d = disconnected.get(uid);
    if (d && !autos.has(uid)) {
      const over = Date.parse(d.timeout_at) <= Date.now();
      li.append(el("span", { class: "tag tag-off", text: over ? "disconnected" : `disconnected · ${fmtSecs(d.timeout_at)}` }));
      const vote = S.votes.get(uid);
      if (vote) li.append(el("span", { class: "hint", text: ` votes ${vote.votes}/${vote.votes_required}` }));
      if (over && iPlay && uid !== me && r.status === "in_progress" && !(vote && vote.mine)) {
        li.append(el("button", {
          text: "Vote: server plays for them",
          class: "small danger",
          dataset: { action: "vote_kick", target: uid },
          onclick: () => send({ type: "games.command.vote_kick_disconnected", room_id: S.roomId, target_user_id: uid }, `Vote on ${g.names.get(uid) || uid}`),
        }));
      }
    }
    ul.append(li);
  }
  const turnInfo = $("turn-info");
  if (r.status === "in_progress" && r.current_turn) {
    const who = r.current_turn === me ? "Your turn" : `${nameOf(r.current_turn)}'s turn`;
    turnInfo.textContent = r.turn_deadline ? `${who} · ${fmtSecs(r.turn_deadline)}` : who;
    turnInfo.dataset.turn = r.current_turn;
  } else {
    turnInfo.textContent = r.status === "finished" ? "Finished" : "";
    turnInfo.dataset.turn = "";
  }
  const die = $("die");
  if (!S.animating) die.textContent = g.die ? String(g.die) : "?";
  $("die-caption").textContent = g.caption;
  const canRoll = r.status === "in_progress" && r.current_turn === me && iPlay &&
    !S.animating && S.queue.length === 0 && !S.rollPending && S.authed;
  show("btn-roll", r.status === "in_progress" && !!findMember(r.players, me));
  $("btn-roll").disabled = !canRoll;
  $("btn-roll").dataset.enabled = canRoll ? "1" : "0";

  const log = $("round-log");
  log.replaceChildren();
  for (const h of [...g.history].reverse()) {
    const rolls = h.rolls.map(([uid, roll, auto]) => `${g.names.get(uid) || uid} ${roll}${auto ? " (auto)" : ""}`).join(", ");
    let outcome;
    if (h.is_tie) outcome = `tie${h.tiebreaker_players && h.tiebreaker_players.length ? ` between ${h.tiebreaker_players.map((u) => g.names.get(u) || u).join(" & ")}` : ""}`;
    else outcome = `${g.names.get(h.winner_id) || h.winner_id} wins${h.by_limit ? " (tiebreak limit)" : ""}`;
    log.append(el("li", { value: h.round_number },
      el("span", { text: `${h.is_tiebreaker ? "Tiebreak" : "Round"} ${h.round_number}: ${rolls} — ` }),
      el("strong", { text: outcome })));
  }
}

function renderChat() {
  const channels = readableChannels();
  if (!channels.includes(S.chat.channel)) S.chat.channel = defaultChannel();
  const tabs = $("chat-tabs");
  tabs.replaceChildren();
  for (const c of channels) {
    tabs.append(el("button", {
      text: c,
      class: `tab ${c === S.chat.channel ? "active" : "secondary"}`,
      role: "tab",
      onclick: () => { S.chat.channel = c; render(); },
    }));
  }
  const log = $("chat-log");
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.replaceChildren();
  for (const m of S.chat.messages[S.chat.channel] || []) {
    log.append(el("li", { class: m.is_system ? "system" : "" },
      m.is_system ? null : el("span", { class: "who", text: `${m.username}: ` }),
      el("span", { text: m.content })));
  }
  if (atBottom) log.scrollTop = log.scrollHeight;
  const can = writable(S.chat.channel);
  $("chat-input").disabled = !can;
  $("chat-send").disabled = !can;
  $("chat-input").placeholder = can ? "Say something" : "You cannot write here now";
}

// ---------------------------------------------------------------- user actions
function bind() {
  $("login-username").addEventListener("input", () => {
    const name = $("login-username").value.trim();
    $("login-id").textContent = name ? `user id: ${slugUserId(name)}` : "";
  });
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const username = $("login-username").value.trim();
    const token = $("login-token").value.trim();
    if (!token && (!username || username.length > 64)) return toast("Enter a username (1..64 characters) or a token", "error");
    if (token.length > 8192) return toast("Token too long", "error");
    saveSession(token ? { token, username: "" } : { username });
    S.me = null;
    if (S.ws && S.ws.readyState === WebSocket.OPEN) authenticate();
    else {
      S.attempt = 0;
      connect();
    }
    render();
  });
  $("logout").addEventListener("click", () => {
    saveSession(null);
    leaveRoomLocally();
    S.wantOpen = false;
    S.me = null;
    S.rooms = new Map();
    S.roomsNext = null;
    closeSocket(1000, "logout");
    render();
  });
  $("rooms-refresh").addEventListener("click", () => send({ type: "games.command.list_rooms", game_type: GAME }, "List rooms"));
  $("rooms-more").addEventListener("click", () => {
    if (S.roomsNext) send({ type: "games.command.list_rooms", game_type: GAME, cursor: S.roomsNext }, "More rooms");
  });
  $("create-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const name = $("create-name").value.trim();
    if (!name || name.length > 48 || !ROOM_NAME_RE.test(name)) {
      return toast("Room names: 1..48 letters, digits, spaces and .,'!?#()+- (start with a letter or digit)", "error");
    }
    const password = $("create-password").value;
    if (password.length > 128) return toast("Password too long (128 at most)", "error");
    const max = clampInt($("create-max").value, 2, 2, 10);
    const msg = {
      type: "games.command.create_room",
      game_type: GAME,
      room_name: name,
      max_players: max,
      allow_spectators: $("create-spectators").checked,
    };
    if (password) msg.password = password;
    send(msg, `Create ${name}`);
  });
  const byName = (asSpectator) => {
    const name = $("byname-name").value.trim();
    if (!name || name.length > 48 || !ROOM_NAME_RE.test(name)) {
      return toast("Type the room's name (1..48 letters, digits, spaces and .,'!?#()+-)", "error");
    }
    const password = $("byname-password").value;
    joinRoom({ room_name: name, is_password_protected: false }, password || null, asSpectator);
  };
  $("byname-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    byName(false);
  });
  $("byname-watch").addEventListener("click", () => byName(true));
  $("btn-ready").addEventListener("click", () => send({ type: "games.command.set_ready", room_id: S.roomId, is_ready: true }, "Ready"));
  $("btn-unready").addEventListener("click", () => send({ type: "games.command.set_ready", room_id: S.roomId, is_ready: false }, "Not ready"));
  $("btn-start").addEventListener("click", () => send({ type: "games.command.start_game", room_id: S.roomId }, "Start game"));
  $("btn-autoplay").addEventListener("click", () => send({ type: "games.command.bigger_dice.enable_auto_play", room_id: S.roomId }, "Auto-play"));
  $("btn-roll").addEventListener("click", () => {
    if ($("btn-roll").disabled) return;
    if (send({ type: "games.command.bigger_dice.roll", room_id: S.roomId }, "Roll")) {
      S.rollPending = true;
      render();
    }
  });
  $("btn-leave").addEventListener("click", () => {
    if (!S.roomId) return;
    const spectator = myRole() === "spectator";
    send({ type: spectator ? "games.command.stop_spectating" : "games.command.leave_room", room_id: S.roomId }, spectator ? "Stop watching" : "Leave room");
    leaveRoomLocally();
    send({ type: "games.command.list_rooms", game_type: GAME }, "List rooms");
  });
  $("btn-back").addEventListener("click", () => {
    leaveRoomLocally();
    send({ type: "games.command.list_rooms", game_type: GAME }, "List rooms");
  });
  $("chat-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const content = $("chat-input").value;
    if (!content || content.length > 1000 || CONTROL_RE.test(content) || !VISIBLE_RE.test(content)) {
      return toast("Chat messages: 1..1000 characters, not blank", "error");
    }
    if (send({ type: "games.command.send_chat", room_id: S.roomId, channel: S.chat.channel, content }, "Chat")) {
      $("chat-input").value = "";
    }
  });
  // back online (or back to the tab) while waiting for a retry: try now instead
  const retryNow = () => {
    if (S.reconnectTimer && loadSession() && navigator.onLine !== false) connect();
  };
  window.addEventListener("online", retryNow);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") retryNow();
  });
  // countdowns
  setInterval(() => {
    if (S.roomId && S.room && S.room.status === "in_progress" && !S.draining) render();
  }, 500);
  // the gateway sends lobby updates (room_created, room_removed) only to sockets that asked
  // for the list within the last 15 minutes: a page left on the lobby asks again every 10
  setInterval(() => {
    if (S.authed && !S.roomId && !S.draining) send({ type: "games.command.list_rooms", game_type: GAME }, "List rooms");
  }, 600000);
  // pending requests nobody answered: forget them after a minute
  setInterval(() => {
    const cutoff = Date.now() - 60000;
    for (const [rid, p] of S.pending) if (p.at < cutoff) S.pending.delete(rid);
  }, 10000);
}

// ---------------------------------------------------------------- inspection hook (tests, support)
// A read-only summary of what the page shows, plus a way to drop the socket as a network would.
window.parlour = {
  summary() {
    const r = S.room;
    const g = S.game;
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
    };
  },
  dropConnection() {
    closeSocket(3000, "dropped");
  },
};

bind();
render();
if (loadSession()) connect();
