// Bigger Dice: its part of the room state, the reducer of its events, the dice animation and
// the game card. The room reducer (room.js) hands it every `games.event.bigger_dice.*` event.

import { Type } from "../protocol.js";
import { $, el, show } from "../dom.js";

export const GAME_TYPE = "bigger_dice";
const EVENT_PREFIX = `games.event.${GAME_TYPE}.`;

// the snapshot of the game that follows a room_state (stale when that room_state was)
export const STATE_EVENT = Type.GAMES_EVENT_BIGGER_DICE_STATE;

export function handles(type) {
  return type.startsWith(EVENT_PREFIX);
}

export function newGame() {
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

// game_started: a fresh scoreboard (the room reducer has set the seats)
export function started(g) {
  g.round = 1;
  g.currentRolls = [];
  g.history = [];
}

// one bigger_dice event applied to `s` (the room reducer's own copy of the room state)
export function reduce(s, f, me) {
  const r = s.room;
  const g = s.game;
  switch (f.type) {
    case Type.GAMES_EVENT_BIGGER_DICE_STATE:
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
    case Type.GAMES_EVENT_BIGGER_DICE_ROLLED:
      g.names.set(f.player_id, f.player_name);
      g.currentRolls.push([f.player_id, f.roll, f.auto]);
      if (f.player_id === me) s.rollPending = false;
      break;
    case Type.GAMES_EVENT_BIGGER_DICE_ROUND_RESULT: {
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
    case Type.GAMES_EVENT_BIGGER_DICE_TIEBREAKER_STARTED:
      g.tiebreak = { players: f.tied_players, roll: f.tied_roll };
      break;
    case Type.GAMES_EVENT_BIGGER_DICE_GAME_OVER:
      r.status = "finished";
      r.winner_id = f.winner;
      r.current_turn = null;
      r.turn_deadline = null;
      g.winner = f.winner;
      g.winnerName = f.winner_name;
      g.finalScores = f.final_scores.map((x) => ({ ...x }));
      for (const x of f.final_scores) g.scores.set(x.user_id, x.score);
      break;
    default:
      break;
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Before a `rolled` event is applied: the die tumbles for `timing.rollMs`, then shows the roll
// for `timing.holdMs`. `view.patchGame(changes)` sets the die and caption of the game state;
// `view.setAnimating(bool)` holds the roll button while the die moves.
export async function animate(f, view, timing) {
  if (f.type !== Type.GAMES_EVENT_BIGGER_DICE_ROLLED) return;
  view.setAnimating(true);
  const die = $("die");
  try {
    view.patchGame({ caption: `${f.player_name} is rolling...` });
    die.classList.add("rolling");
    const started = Date.now();
    while (Date.now() - started < timing.rollMs) {
      die.textContent = String(1 + Math.floor(Math.random() * 6));
      await sleep(Math.min(80, timing.rollMs));
    }
    die.classList.remove("rolling");
    die.textContent = String(f.roll);
    view.patchGame({ die: f.roll, caption: `${f.player_name} rolled ${f.roll}${f.auto ? " (auto)" : ""}` }, false);
    await sleep(timing.holdMs);
  } finally {
    die.classList.remove("rolling");
    view.setAnimating(false);
  }
}

function fmtSecs(deadline) {
  if (!deadline) return "";
  const left = Math.max(0, Math.ceil((Date.parse(deadline) - Date.now()) / 1000));
  return `${left} s`;
}

// The game card. `view`: room, game, me, votes, nameOf(uid), canMove (no event waiting, no
// move in flight, signed in), send(message, label).
export function render(view) {
  const { room: r, game: g, me } = view;
  $("round-label").textContent = `round ${g.round}${g.tiebreak ? " · tiebreaker" : ""}`;
  const disconnected = new Map((r.disconnected_players || []).map((d) => [d.user_id, d]));
  const autos = new Set(r.auto_players || []);
  const ul = $("score-list");
  ul.replaceChildren();
  const plays = (r.players || []).some((p) => p.user_id === me);
  const iPlay = plays && !autos.has(me) && !disconnected.has(me);
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
      const vote = view.votes.get(uid);
      if (vote) li.append(el("span", { class: "hint", text: ` votes ${vote.votes}/${vote.votes_required}` }));
      if (over && iPlay && uid !== me && r.status === "in_progress" && !(vote && vote.mine)) {
        li.append(el("button", {
          text: "Vote: server plays for them",
          class: "small danger",
          dataset: { action: "vote_kick", target: uid },
          onclick: () => view.send({ type: Type.GAMES_COMMAND_VOTE_KICK_DISCONNECTED, room_id: r.room_id, target_user_id: uid }, `Vote on ${g.names.get(uid) || uid}`),
        }));
      }
    }
    ul.append(li);
  }
  const turnInfo = $("turn-info");
  if (r.status === "in_progress" && r.current_turn) {
    const who = r.current_turn === me ? "Your turn" : `${view.nameOf(r.current_turn)}'s turn`;
    turnInfo.textContent = r.turn_deadline ? `${who} · ${fmtSecs(r.turn_deadline)}` : who;
    turnInfo.dataset.turn = r.current_turn;
  } else {
    turnInfo.textContent = r.status === "finished" ? "Finished" : "";
    turnInfo.dataset.turn = "";
  }
  const die = $("die");
  if (!view.animating) die.textContent = g.die ? String(g.die) : "?";
  $("die-caption").textContent = g.caption;
  const canRoll = r.status === "in_progress" && r.current_turn === me && iPlay && !view.animating && view.canMove;
  show("btn-roll", r.status === "in_progress" && plays);
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

// The game's buttons. `ctx`: roomId(), send(message, label) -> request id or null,
// movePending() (a roll sent, not answered yet) and setMovePending().
export function bind(ctx) {
  $("btn-autoplay").addEventListener("click", () => ctx.send({ type: Type.GAMES_COMMAND_BIGGER_DICE_ENABLE_AUTO_PLAY, room_id: ctx.roomId() }, "Auto-play"));
  $("btn-roll").addEventListener("click", () => {
    if ($("btn-roll").disabled) return;
    if (ctx.send({ type: Type.GAMES_COMMAND_BIGGER_DICE_ROLL, room_id: ctx.roomId() }, "Roll")) ctx.setMovePending();
  });
}
