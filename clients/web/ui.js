// The page: rendering the state (login, room list, room, chat) and the user's actions on it.
// It reads the page's state and acts only through the `ctx` main.js gives it; the game card
// is drawn by the game's own module (games/<game>.js).

import * as protocol from "./protocol.js";
import {
  CHAT_CONTENT_MAX_LENGTH,
  CHAT_CONTENT_RE,
  ErrorCode,
  MAX_PLAYERS,
  MIN_PLAYERS,
  PASSWORD_MAX_LENGTH,
  ROOM_NAME_MAX_LENGTH,
  ROOM_NAME_RE,
  TOKEN_MAX_LENGTH,
  Type,
  USERNAME_MAX_LENGTH,
} from "./protocol.js";
import { $, el, show, toast } from "./dom.js";
import { defaultChannel, findMember, myRole, nameOf, readableChannels, writable } from "./room.js";
import { loadSession, slugUserId } from "./session.js";

// what a user reads for each system.error code (tests/unit/gateway/test_webclient.py checks
// every code of protocol.js has one)
export const ERROR_TEXT = {
  [ErrorCode.AUTH_REQUIRED]: "Log in first.",
  [ErrorCode.AUTH_FAILED]: "Login failed.",
  [ErrorCode.ALREADY_AUTHENTICATED]: "Already logged in as another user.",
  [ErrorCode.TOKEN_EXPIRED]: "Your session expired; log in again.",
  [ErrorCode.INVALID_MESSAGE]: "The server did not understand that request.",
  [ErrorCode.MESSAGE_TOO_LARGE]: "That message is too large.",
  [ErrorCode.RATE_LIMITED]: "Slow down: too many requests.",
  [ErrorCode.SERVICE_UNAVAILABLE]: "The server is busy; it did not take effect. Try again.",
  [ErrorCode.INTERNAL_ERROR]: "Server error; it did not take effect.",
  [ErrorCode.LIMIT_REACHED]: "A limit was reached; it did not take effect.",
  [ErrorCode.UNKNOWN_GAME]: "Unknown game.",
  [ErrorCode.ROOM_NOT_FOUND]: "No such room (or it no longer accepts joins).",
  [ErrorCode.ROOM_NAME_TAKEN]: "A room with that name already exists.",
  [ErrorCode.ROOM_FULL]: "The room is full.",
  [ErrorCode.TOO_MANY_ROOMS]: "You host too many rooms; leave or finish one first.",
  [ErrorCode.USER_BANNED]: "You are banned from this room.",
  [ErrorCode.WRONG_PASSWORD]: "Wrong password.",
  [ErrorCode.TOO_MANY_ATTEMPTS]: "Too many wrong passwords; wait a little.",
  [ErrorCode.ALREADY_IN_ROOM]: "You are already in this room.",
  [ErrorCode.NOT_IN_ROOM]: "You are not in this room.",
  [ErrorCode.NOT_ADMIN]: "Only the host can do that.",
  [ErrorCode.GAME_IN_PROGRESS]: "The game has already started.",
  [ErrorCode.PLAYER_NOT_IN_LOBBY]: "That player is not waiting in the lobby.",
  [ErrorCode.ALREADY_SELECTED]: "Already selected.",
  [ErrorCode.NOT_SELECTED]: "Not selected for this game.",
  [ErrorCode.PLAYERS_NOT_READY]: "Not every seat is taken and ready.",
  [ErrorCode.CANNOT_KICK_SELF]: "You cannot kick yourself.",
  [ErrorCode.CANNOT_BAN_SELF]: "You cannot ban yourself.",
  [ErrorCode.NOT_BANNED]: "That user is not banned.",
  [ErrorCode.SPECTATOR_NOT_FOUND]: "No such spectator.",
  [ErrorCode.KICKED_FROM_ROOM]: "You were removed from the room.",
  [ErrorCode.SPECTATORS_NOT_ALLOWED]: "This room does not allow spectators.",
  [ErrorCode.SPECTATOR_CAPACITY_FULL]: "No spectator seats left.",
  [ErrorCode.NOT_A_SPECTATOR]: "You are not a spectator here.",
  [ErrorCode.WRONG_GAME_TYPE]: "That room plays another game.",
  [ErrorCode.GAME_NOT_IN_PROGRESS]: "The game is not running.",
  [ErrorCode.NOT_YOUR_TURN]: "It is not your turn.",
  [ErrorCode.NOT_A_PLAYER]: "You are not playing in this game.",
  [ErrorCode.ALREADY_AUTO_PLAY]: "The server already plays for you.",
  [ErrorCode.INVALID_PLAYER]: "Not a player of this game.",
  [ErrorCode.PLAYER_ALREADY_AUTO]: "The server already plays for that player.",
  [ErrorCode.PLAYER_NOT_DISCONNECTED]: "That player is not disconnected.",
  [ErrorCode.DISCONNECT_ALREADY_HANDLED]: "That player is back or was already handed over.",
  [ErrorCode.DISCONNECT_TIMEOUT_ACTIVE]: "Wait until their reconnect time runs out.",
  [ErrorCode.NOT_ELIGIBLE_TO_VOTE]: "You cannot vote on this.",
  [ErrorCode.ALREADY_VOTED]: "You already voted.",
  [ErrorCode.GAME_ERROR]: "The game refused that move.",
  [ErrorCode.CHANNEL_ACCESS_DENIED]: "You cannot use that chat channel.",
  [ErrorCode.CHAT_DISABLED]: "That chat is closed now.",
  [ErrorCode.CANNOT_MESSAGE_SELF]: "You cannot message yourself.",
};

// The game types the protocol knows: protocol.js's game list when it has one, else the games
// its type tags name (`games.command.<game>.<move>`, `games.event.<game>.<event>`).
export function protocolGameTypes() {
  const listed = protocol.GAME_TYPES || protocol.GameType || protocol.GAMES;
  if (listed) return new Set(Array.isArray(listed) ? listed : Object.values(listed));
  const types = new Set();
  for (const tag of Object.values(Type)) {
    const m = /^games\.(?:command|event)\.([a-z0-9_]+)\.[a-z0-9_]+$/.exec(tag);
    if (m) types.add(m[1]);
  }
  return types;
}

// game type -> module, for the game modules (games/<game>.js) whose game the protocol knows
export function gameRegistry(modules) {
  const known = protocolGameTypes();
  const games = {};
  for (const mod of modules) if (known.has(mod.GAME_TYPE)) games[mod.GAME_TYPE] = mod;
  return Object.freeze(games);
}

// what the page calls a game: its module's TITLE, else its game type in words
export function gameTitle(mod) {
  if (mod.TITLE) return mod.TITLE;
  return mod.GAME_TYPE.split("_").map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join(" ");
}

export function clampInt(raw, dflt, lo, hi) {
  const n = Number.parseInt(raw ?? "", 10);
  return Number.isFinite(n) ? Math.min(hi, Math.max(lo, n)) : dflt;
}

export function setConnBadge(state, text) {
  const badge = $("conn");
  badge.className = `conn conn-${state}`;
  badge.textContent = text || state;
  badge.dataset.state = state;
}

// ctx: S (the page's state, read only here), games (game type -> game module), roomGame()
// (the module of the room's game), send(message, label), and the actions main.js carries
// out: login(session), logout(), rejoinRoom(room), leaveRoom(), backToRooms(),
// listRooms(cursor), setChatChannel(channel), setLobbyGame(gameType)
export function createUi(ctx) {
  const { S, send } = ctx;
  const me = () => S.me?.user_id;
  const listRooms = () => ctx.listRooms();

  function render() {
    const session = loadSession();
    const loggedIn = !!session;
    show("view-login", !loggedIn);
    show("logout", loggedIn);
    $("me").textContent = S.me ? S.me.username : session ? session.username || "" : "";
    const inRoom = loggedIn && !!S.roomId;
    show("view-lobby", loggedIn && !inRoom);
    show("view-room", inRoom);
    const shown = inRoom ? ctx.roomGame() : ctx.games[S.lobbyGame];
    $("game-title").textContent = shown ? gameTitle(shown) : "";
    if (loggedIn && !inRoom) renderRooms();
    if (inRoom) renderRoom();
  }

  function renderRooms() {
    const lobbyGame = ctx.games[S.lobbyGame];
    const select = $("create-game");
    if (select.value !== S.lobbyGame) select.value = S.lobbyGame;
    $("rooms-game").textContent = lobbyGame ? `${gameTitle(lobbyGame)} rooms` : "";
    // a game for a fixed number of players: the seats are not a choice
    const fixed = lobbyGame && lobbyGame.PLAYERS;
    const max = $("create-max");
    max.disabled = !!fixed;
    if (fixed && max.value !== String(fixed)) max.value = String(fixed);
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
        pw = el("input", { type: "password", placeholder: "password", maxlength: PASSWORD_MAX_LENGTH, class: "pw", autocomplete: "current-password", "aria-label": "room password" });
        pw.value = S.pwDrafts.get(room.room_id) || "";
        pw.addEventListener("input", () => S.pwDrafts.set(room.room_id, pw.value));
      }
      const password = () => (pw ? pw.value : null);
      const actions = el("div", { class: "row wrap actions" });
      if (room.can_rejoin) {
        actions.append(el("button", { text: "Rejoin", dataset: { action: "rejoin" }, onclick: () => ctx.rejoinRoom(room) }));
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

  function joinRoom(room, password, asSpectator) {
    if (!ROOM_NAME_RE.test(room.room_name)) return toast("That is not a valid room name", "error");
    if (room.is_password_protected && !password) {
      toast("This room needs a password", "error", "Type it next to the room, then join.");
      return;
    }
    if (password && password.length > PASSWORD_MAX_LENGTH) return toast("Password too long", "error");
    const msg = {
      type: asSpectator ? Type.GAMES_COMMAND_JOIN_AS_SPECTATOR : Type.GAMES_COMMAND_JOIN_ROOM,
      room_name: room.room_name,
      game_type: room.game_type || S.lobbyGame,
    };
    if (password) msg.password = password;
    send(msg, `${asSpectator ? "Watch" : "Join"} ${room.room_name}`);
  }

  function hostButton(text, type, target, extra = {}) {
    return el("button", {
      text,
      class: "small secondary",
      dataset: { action: type.split(".").pop(), target },
      onclick: () => send({ type, room_id: S.roomId, target_user_id: target, ...extra }, `${text} ${nameOf(S, target)}`),
    });
  }

  function renderRoom() {
    const r = S.room;
    const game = ctx.roomGame();
    const g = S.game || game.newGame();
    const uid = me();
    if (!r) {
      $("room-name").textContent = "Joining...";
      $("room-status").textContent = "";
      for (const id of ["btn-ready", "btn-unready", "btn-start", "btn-autoplay", "game-card", "gameover-card"]) show(id, false);
      return;
    }
    const role = myRole(r, uid);
    const isHost = r.host_id === uid;
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
      if (m.user_id === uid) tags.push("you");
      const li = el("li", { dataset: { userId: m.user_id } },
        el("span", { class: "name", text: m.username }),
        ...tags.map((t) => el("span", { class: `tag tag-${t}`, text: t })));
      if (isHost && waiting) {
        const controls = el("span", { class: "controls" });
        if (selected.has(m.user_id)) controls.append(hostButton("Deselect", Type.GAMES_COMMAND_DESELECT_PLAYER, m.user_id));
        else controls.append(hostButton("Select", Type.GAMES_COMMAND_SELECT_PLAYER, m.user_id));
        if (m.user_id !== uid) {
          controls.append(hostButton("Kick", Type.GAMES_COMMAND_KICK_PLAYER, m.user_id));
          controls.append(hostButton("Ban", Type.GAMES_COMMAND_BAN_PLAYER, m.user_id));
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
          controls.append(hostButton("Make admin", Type.GAMES_COMMAND_DESIGNATE_ADMIN_SPECTATOR, s.user_id));
        }
        controls.append(hostButton("Kick", Type.GAMES_COMMAND_KICK_SPECTATOR, s.user_id));
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
        isHost ? el("span", { class: "controls" }, hostButton("Unban", Type.GAMES_COMMAND_UNBAN_PLAYER, b.user_id)) : null));
    }

    // actions
    const mine = findMember(r.lobby, uid) || findMember(r.players, uid);
    const amSelected = waiting && selected.has(uid);
    show("btn-ready", amSelected && !(mine && mine.is_ready));
    show("btn-unready", amSelected && !!(mine && mine.is_ready));
    const everyoneReady = waiting && selected.size === r.max_players &&
      [...selected].every((id) => (findMember(r.lobby, id) || findMember(r.players, id) || {}).is_ready);
    show("btn-start", isHost && everyoneReady);
    const auto = (r.auto_players || []).includes(uid);
    show("btn-autoplay", r.status === "in_progress" && role === "player" && !auto && game.AUTO_PLAY !== false);
    $("btn-leave").textContent = role === "spectator" ? "Stop watching" : "Leave room";
    show("btn-leave", r.status !== "finished");

    // game
    const inGame = r.status === "in_progress" || r.status === "finished";
    show("game-card", inGame);
    // the game card's parts that belong to one game show for that game only
    for (const part of document.querySelectorAll("#game-card [data-game]")) part.hidden = part.dataset.game !== game.GAME_TYPE;
    show("gameover-card", r.status === "finished" && !!g.finalScores);
    if (inGame) {
      game.render({
        room: r,
        game: g,
        me: uid,
        votes: S.votes,
        nameOf: (id) => nameOf(S, id),
        animating: S.animating,
        canMove: S.queue.length === 0 && !S.rollPending && S.authed,
        resuming: S.rejoinsPending > 0, // a rejoin_room asked, its room_state not here yet

        send,
      });
    }
    if (r.status === "finished" && g.finalScores) {
      $("winner-name").textContent = g.winnerName || nameOf(S, g.winner);
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

  function renderChat() {
    const channels = readableChannels(S.room, me());
    if (!channels.includes(S.chat.channel)) ctx.setChatChannel(defaultChannel(S.room, me()), false);
    const tabs = $("chat-tabs");
    tabs.replaceChildren();
    for (const c of channels) {
      tabs.append(el("button", {
        text: c,
        class: `tab ${c === S.chat.channel ? "active" : "secondary"}`,
        role: "tab",
        onclick: () => ctx.setChatChannel(c, true),
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
    const can = writable(S.room, me(), S.chat.channel);
    $("chat-input").disabled = !can;
    $("chat-send").disabled = !can;
    $("chat-input").placeholder = can ? "Say something" : "You cannot write here now";
  }

  function bind() {
    $("login-username").addEventListener("input", () => {
      const name = $("login-username").value.trim();
      $("login-id").textContent = name ? `user id: ${slugUserId(name)}` : "";
    });
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const username = $("login-username").value.trim();
      const token = $("login-token").value.trim();
      if (!token && (!username || username.length > USERNAME_MAX_LENGTH)) {
        return toast(`Enter a username (1..${USERNAME_MAX_LENGTH} characters) or a token`, "error");
      }
      if (token.length > TOKEN_MAX_LENGTH) return toast("Token too long", "error");
      ctx.login(token ? { token, username: "" } : { username });
    });
    $("logout").addEventListener("click", () => ctx.logout());
    $("rooms-refresh").addEventListener("click", () => listRooms());
    const select = $("create-game");
    select.replaceChildren(...Object.values(ctx.games).map((g) => el("option", { value: g.GAME_TYPE, text: gameTitle(g) })));
    select.value = S.lobbyGame;
    select.addEventListener("change", () => ctx.setLobbyGame(select.value));
    $("rooms-more").addEventListener("click", () => {
      if (S.roomsNext) ctx.listRooms(S.roomsNext);
    });
    $("create-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const name = $("create-name").value.trim();
      if (!name || name.length > ROOM_NAME_MAX_LENGTH || !ROOM_NAME_RE.test(name)) {
        return toast(`Room names: 1..${ROOM_NAME_MAX_LENGTH} letters, digits, spaces and .,'!?#()+- (start with a letter or digit)`, "error");
      }
      const password = $("create-password").value;
      if (password.length > PASSWORD_MAX_LENGTH) return toast(`Password too long (${PASSWORD_MAX_LENGTH} at most)`, "error");
      const max = clampInt($("create-max").value, MIN_PLAYERS, MIN_PLAYERS, MAX_PLAYERS);
      const msg = {
        type: Type.GAMES_COMMAND_CREATE_ROOM,
        game_type: S.lobbyGame,
        room_name: name,
        max_players: max,
        allow_spectators: $("create-spectators").checked,
      };
      if (password) msg.password = password;
      send(msg, `Create ${name}`);
    });
    const byName = (asSpectator) => {
      const name = $("byname-name").value.trim();
      if (!name || name.length > ROOM_NAME_MAX_LENGTH || !ROOM_NAME_RE.test(name)) {
        return toast(`Type the room's name (1..${ROOM_NAME_MAX_LENGTH} letters, digits, spaces and .,'!?#()+-)`, "error");
      }
      const password = $("byname-password").value;
      joinRoom({ room_name: name, is_password_protected: false }, password || null, asSpectator);
    };
    $("byname-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      byName(false);
    });
    $("byname-watch").addEventListener("click", () => byName(true));
    $("btn-ready").addEventListener("click", () => send({ type: Type.GAMES_COMMAND_SET_READY, room_id: S.roomId, is_ready: true }, "Ready"));
    $("btn-unready").addEventListener("click", () => send({ type: Type.GAMES_COMMAND_SET_READY, room_id: S.roomId, is_ready: false }, "Not ready"));
    $("btn-start").addEventListener("click", () => send({ type: Type.GAMES_COMMAND_START_GAME, room_id: S.roomId }, "Start game"));
    $("btn-leave").addEventListener("click", () => {
      if (!S.roomId) return;
      const spectator = myRole(S.room, me()) === "spectator";
      send({ type: spectator ? Type.GAMES_COMMAND_STOP_SPECTATING : Type.GAMES_COMMAND_LEAVE_ROOM, room_id: S.roomId }, spectator ? "Stop watching" : "Leave room");
      ctx.backToRooms();
    });
    $("btn-back").addEventListener("click", () => ctx.backToRooms());
    $("chat-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const content = $("chat-input").value;
      if (!content || content.length > CHAT_CONTENT_MAX_LENGTH || !CHAT_CONTENT_RE.test(content)) {
        return toast(`Chat messages: 1..${CHAT_CONTENT_MAX_LENGTH} characters, not blank`, "error");
      }
      if (send({ type: Type.GAMES_COMMAND_SEND_CHAT, room_id: S.roomId, channel: S.chat.channel, content }, "Chat")) {
        $("chat-input").value = "";
      }
    });
  }

  return { render, bind };
}
