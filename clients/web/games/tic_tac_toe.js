// Tic-tac-toe: its part of the room state, the reducer of its events and its part of the game
// card (a 3x3 board of buttons). The room reducer (room.js) hands it every
// `games.event.tic_tac_toe.*` event; the shared `turn_changed` is the room reducer's.
// Two players, X and O, play rounds on a fresh board; the round wins count as the scores.

import { Type } from "../protocol.js";
import { $, el } from "../dom.js";

export const GAME_TYPE = "tic_tac_toe";
export const TITLE = "Tic-tac-toe";
export const PLAYERS = 2; // the seats of every room of this game
export const AUTO_PLAY = false; // no "let the server play for me" command
const EVENT_PREFIX = `games.event.${GAME_TYPE}.`;
const CELLS = 9;

// the snapshot of the game that follows a room_state (stale when that room_state was)
export const STATE_EVENT = Type.GAMES_EVENT_TIC_TAC_TOE_STATE;
// the move command: a refused one is no longer in flight
export const MOVE_COMMAND = Type.GAMES_COMMAND_TIC_TAC_TOE_MOVE;

export function handles(type) {
  return type.startsWith(EVENT_PREFIX);
}

function emptyBoard() {
  return Array(CELLS).fill(null);
}

export function newGame() {
  return {
    seats: [], // user ids in seat order
    names: new Map(),
    scores: new Map(), // round wins
    round: 1,
    board: emptyBoard(), // 9 x null | "X" | "O", cell 0 top left, row by row
    marks: {}, // user id -> "X" | "O"
    history: [], // {round, winner_id, line, by_timeout, board}
    lastMove: null, // {player_id, position, mark}
    caption: "",
    winner: null,
    winnerName: null,
    finalScores: null,
  };
}

// game_started: a fresh board and scoreboard (the room reducer has set the seats)
export function started(g) {
  g.round = 1;
  g.board = emptyBoard();
  g.history = [];
  g.lastMove = null;
  g.caption = "";
}

function nameIn(g, uid) {
  return g.names.get(uid) || uid;
}

function roundWins(g, r, wins) {
  g.scores = new Map(Object.entries(wins || {}));
  for (const uid of g.seats) if (!g.scores.has(uid)) g.scores.set(uid, 0);
  for (const p of r.players || []) if (g.scores.has(p.user_id)) p.score = g.scores.get(p.user_id);
}

function outcome(g, h) {
  if (!h.winner_id) return "draw";
  const mark = g.marks[h.winner_id];
  return `${nameIn(g, h.winner_id)}${mark ? ` (${mark})` : ""} wins${h.by_timeout ? " on time" : ""}`;
}

// one tic_tac_toe event applied to `s` (the room reducer's own copy of the room state)
export function reduce(s, f, me) {
  const r = s.room;
  const g = s.game;
  switch (f.type) {
    case Type.GAMES_EVENT_TIC_TAC_TOE_STATE:
      g.board = [...f.board];
      g.marks = { ...f.marks };
      g.round = f.round;
      for (const uid of Object.keys(f.marks)) if (!g.seats.includes(uid)) g.seats.push(uid);
      roundWins(g, r, f.round_wins);
      r.current_turn = f.current_turn;
      r.turn_deadline = f.turn_deadline;
      s.rollPending = false;
      break;
    case Type.GAMES_EVENT_TIC_TAC_TOE_MOVED:
      g.board = [...f.board];
      g.marks[f.player_id] = f.mark;
      g.lastMove = { player_id: f.player_id, position: f.position, mark: f.mark };
      g.caption = `${nameIn(g, f.player_id)} put ${f.mark} in cell ${f.position + 1}`;
      // my move stays in flight until the turn passes (turn_changed) or the round ends: until
      // then the board is not mine to play, though current_turn still names me
      break;
    case Type.GAMES_EVENT_TIC_TAC_TOE_ROUND_RESULT: {
      const h = {
        round: f.round,
        winner_id: f.winner_id,
        line: f.line ? [...f.line] : null,
        by_timeout: f.by_timeout,
        board: [...f.board],
      };
      g.history.push(h);
      roundWins(g, r, f.round_wins);
      g.caption = `Round ${f.round}: ${outcome(g, h)}`;
      // the next round starts on a fresh board (the finished one stays in the round log), by
      // the player who did not start this one; the starter plays X (a `moved` event says the
      // marks again anyway)
      for (const uid of Object.keys(g.marks)) g.marks[uid] = g.marks[uid] === "X" ? "O" : "X";
      g.round = f.round + 1;
      g.board = emptyBoard();
      g.lastMove = null;
      // nobody's turn until the next round's turn_changed
      r.current_turn = null;
      r.turn_deadline = null;
      s.rollPending = false;
      break;
    }
    case Type.GAMES_EVENT_TIC_TAC_TOE_GAME_OVER: {
      r.status = "finished";
      r.winner_id = f.winner;
      r.current_turn = null;
      r.turn_deadline = null;
      g.winner = f.winner;
      g.winnerName = f.winner_name;
      g.finalScores = f.final_scores.map((x) => ({ ...x }));
      for (const x of f.final_scores) g.scores.set(x.user_id, x.score);
      // the page ends on the last round's board
      const last = g.history[g.history.length - 1];
      if (last) {
        g.round = last.round;
        g.board = [...last.board];
      }
      break;
    }
    default:
      break;
  }
}

// what window.parlour.summary() adds for this game
export function summary(g) {
  return {
    board: [...g.board],
    marks: { ...g.marks },
    round: g.round,
    round_wins: Object.fromEntries(g.scores),
    round_results: g.history.map((h) => ({ round: h.round, winner_id: h.winner_id, by_timeout: h.by_timeout })),
  };
}

function fmtSecs(deadline) {
  if (!deadline) return "";
  const left = Math.max(0, Math.ceil((Date.parse(deadline) - Date.now()) / 1000));
  return `${left} s`;
}

// the board's buttons, made once (their focus survives every render)
let actions = null; // bind's ctx: roomId(), send(message, label), setMovePending()

function panel() {
  let node = $("ttt-panel");
  if (node) return node;
  const cells = [];
  for (let i = 0; i < CELLS; i += 1) {
    cells.push(el("button", {
      id: `ttt-cell-${i}`,
      type: "button",
      class: "ttt-cell",
      "aria-label": `Cell ${i + 1}, empty`,
      dataset: { position: String(i) },
      disabled: true,
      onclick: () => move(i),
    }));
  }
  node = el("div", { id: "ttt-panel", class: "ttt", dataset: { game: GAME_TYPE } },
    el("div", { id: "ttt-board", class: "ttt-board", role: "group", "aria-label": "Board", "data-testid": "ttt-board" }, ...cells),
    el("p", { id: "ttt-caption", class: "hint", "aria-live": "polite" }));
  $("game-panels").append(node);
  return node;
}

function move(position) {
  const cell = $(`ttt-cell-${position}`);
  if (!actions || !cell || cell.disabled) return;
  cell.disabled = true; // one move per click
  const msg = { type: Type.GAMES_COMMAND_TIC_TAC_TOE_MOVE, room_id: actions.roomId(), position };
  if (actions.send(msg, `Move to cell ${position + 1}`)) actions.setMovePending();
}

// The game card. `view`: room, game, me, votes, nameOf(uid), canMove (no event waiting, no
// move in flight, signed in), resuming (a rejoin not answered yet), send(message, label).
export function render(view) {
  const { room: r, game: g, me } = view;
  panel();
  $("round-label").textContent = `round ${g.round}`;
  const disconnected = new Map((r.disconnected_players || []).map((d) => [d.user_id, d]));
  const autos = new Set(r.auto_players || []);
  const plays = (r.players || []).some((p) => p.user_id === me);
  const iPlay = plays && !autos.has(me) && !disconnected.has(me);

  // the players: mark, round wins, turn, absence (and the vote once their grace ran out)
  const ul = $("score-list");
  ul.replaceChildren();
  for (const uid of g.seats) {
    const mark = g.marks[uid];
    const li = el("li", { dataset: { userId: uid }, class: uid === r.current_turn ? "turn" : "" },
      el("span", { class: "name", text: `${view.nameOf(uid)}${mark ? ` (${mark})` : ""}` }),
      el("span", { class: "score num", text: g.scores.get(uid) ?? 0, title: "rounds won" }));
    if (uid === r.current_turn) li.append(el("span", { class: "tag tag-turn", text: "turn" }));
    if (autos.has(uid)) li.append(el("span", { class: "tag tag-auto", text: "auto" }));
    const d = disconnected.get(uid);
    if (d && !autos.has(uid)) {
      const over = Date.parse(d.timeout_at) <= Date.now();
      li.append(el("span", { class: "tag tag-off", text: over ? "disconnected" : `disconnected · ${fmtSecs(d.timeout_at)}` }));
      const vote = view.votes.get(uid);
      if (vote) li.append(el("span", { class: "hint", text: ` votes ${vote.votes}/${vote.votes_required}` }));
      if (over && iPlay && uid !== me && r.status === "in_progress" && !(vote && vote.mine)) {
        li.append(el("button", {
          text: "Vote: server plays for them",
          class: "small danger",
          dataset: { action: "vote_kick", target: uid },
          onclick: () => view.send({ type: Type.GAMES_COMMAND_VOTE_KICK_DISCONNECTED, room_id: r.room_id, target_user_id: uid }, `Vote on ${view.nameOf(uid)}`),
        }));
      }
    }
    ul.append(li);
  }

  const turnInfo = $("turn-info");
  if (r.status === "in_progress" && r.current_turn) {
    const mark = g.marks[r.current_turn];
    const who = r.current_turn === me ? `Your turn${mark ? ` (${mark})` : ""}` : `${view.nameOf(r.current_turn)}'s turn`;
    turnInfo.textContent = r.turn_deadline ? `${who} · move within ${fmtSecs(r.turn_deadline)}` : who;
    turnInfo.dataset.turn = r.current_turn;
  } else {
    turnInfo.textContent = r.status === "finished" ? "Finished" : "";
    turnInfo.dataset.turn = "";
  }

  // the board: my empty cells are buttons to press on my turn
  // (not while the page resumes the room: what it shows may be stale until the room's snapshot)
  const myTurn = r.status === "in_progress" && r.current_turn === me && iPlay && view.canMove && !view.resuming;
  const last = g.history[g.history.length - 1];
  const line = new Set(r.status === "finished" && last && last.line ? last.line : []);
  for (let i = 0; i < CELLS; i += 1) {
    const cell = $(`ttt-cell-${i}`);
    const mark = g.board[i];
    const can = myTurn && !mark;
    cell.textContent = mark || "";
    cell.setAttribute("aria-label", `Cell ${i + 1}, ${mark || "empty"}`);
    cell.dataset.mark = mark || "";
    cell.disabled = !can;
    cell.dataset.enabled = can ? "1" : "0";
    cell.classList.toggle("ttt-last", !!g.lastMove && g.lastMove.position === i);
    cell.classList.toggle("ttt-line", line.has(i));
  }
  $("ttt-board").dataset.enabled = myTurn ? "1" : "0";
  $("ttt-caption").textContent = g.caption;

  // the round results, newest first
  const log = $("round-log");
  log.replaceChildren();
  for (const h of [...g.history].reverse()) {
    const rows = [0, 3, 6].map((i) => h.board.slice(i, i + 3).map((m) => m || "·").join(" ")).join(" / ");
    log.append(el("li", { value: h.round, dataset: { round: String(h.round), winner: h.winner_id || "" } },
      el("span", { text: `Round ${h.round}: ` }),
      el("strong", { text: outcome(g, h) }),
      el("span", { class: "hint", text: ` — ${rows}` })));
  }
}

// The board's buttons act through `ctx`: roomId(), send(message, label) -> request id or null,
// setMovePending() (a move sent, not answered yet).
export function bind(ctx) {
  actions = ctx;
}
