// The one WebSocket to the gateway that served this page: connect, reconnect with backoff,
// heartbeat, and the requests sent on it that the server has not answered yet. It knows
// nothing of rooms or the page; what it sees it reports through the hooks it was given.

import { Type } from "./protocol.js";

const BACKOFF_BASE_MS = 2000;
const BACKOFF_CAP_MS = 30000;
// a close code of this client (3000-3999: application codes), for a socket it gave up on
export const CLIENT_DROPPED = 3000;

function wsUrl() {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
}

export class Connection {
  // hooks: frame(f), status(state, text), closed(code, reason, lost) (before any reconnect
  // is planned), canReconnect() (is there a login to reconnect with?), changed()
  constructor(hooks) {
    this.hooks = hooks;
    this.ws = null;
    this.wantOpen = false; // false after logout: no reconnect
    this.attempt = 0;
    this.reconnectTimer = null;
    this.heartbeatTimer = null;
    this.heartbeatSecs = 15;
    this.lastRx = 0;
    this.reqCounter = 0;
    this.pending = new Map(); // request_id -> {type, label, at, acked}
  }

  get isOpen() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    this.wantOpen = true;
    this.hooks.status("connecting", this.attempt ? `reconnecting (try ${this.attempt})` : "connecting");
    const ws = new WebSocket(wsUrl());
    this.ws = ws;
    ws.addEventListener("message", (ev) => {
      if (ws !== this.ws) return;
      this.lastRx = Date.now();
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        console.warn("parlour: a frame that is not JSON was ignored");
        return;
      }
      if (frame && typeof frame.type === "string") this.hooks.frame(frame);
    });
    ws.addEventListener("close", (ev) => {
      if (ws !== this.ws) return;
      this.onClosed(ev.code, ev.reason);
    });
  }

  // Close our socket and settle the page at once: between ws.close() and the browser's close
  // event the socket is CLOSING and drops whatever is sent, so nothing may stay clickable.
  close(code, reason) {
    const ws = this.ws;
    if (!ws) return;
    this.onClosed(code, reason); // forgets this.ws first, so the later close event is ignored
    ws.close(code, reason);
  }

  // close for good: no reconnect until connect() is called again
  stop(code, reason) {
    this.wantOpen = false;
    this.close(code, reason);
  }

  // logged in: the next failure starts the backoff afresh
  resetBackoff() {
    this.attempt = 0;
  }

  // back online (or back to the tab) while waiting for a retry: try now instead
  retryNow() {
    if (this.reconnectTimer && this.hooks.canReconnect() && navigator.onLine !== false) this.connect();
  }

  onClosed(code, reason) {
    this.ws = null;
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
    // a command the gateway never acknowledged may not have reached the engine
    const lost = [...this.pending.values()].filter((p) => !p.acked && !p.type.startsWith("system."));
    this.pending.clear();
    this.hooks.closed(code, reason, lost);
    if (!this.wantOpen || !this.hooks.canReconnect()) {
      this.hooks.status("offline", "offline");
      this.hooks.changed();
      return;
    }
    this.attempt += 1;
    const base = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (this.attempt - 1));
    const delay = Math.round(base * (0.75 + Math.random() * 0.5)); // +-25% jitter
    this.hooks.status("reconnecting", `offline, retry in ${Math.ceil(delay / 1000)} s`);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
    this.hooks.changed();
  }

  startHeartbeat(seconds) {
    clearInterval(this.heartbeatTimer);
    this.heartbeatSecs = Math.max(1, seconds || 15);
    this.heartbeatTimer = setInterval(() => {
      if (!this.isOpen) return;
      // nothing heard for three intervals: the socket is dead even if the browser has not noticed
      if (Date.now() - this.lastRx > 3 * this.heartbeatSecs * 1000) {
        this.close(CLIENT_DROPPED, "heartbeat timeout");
        return;
      }
      this.sendRaw({ type: Type.SYSTEM_HEARTBEAT });
    }, this.heartbeatSecs * 1000);
  }

  sendRaw(message) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  // every command goes out with a request_id, so a system.error can name what failed;
  // null when the socket is not open (nothing was sent)
  send(message, label) {
    if (!this.isOpen) return null;
    const requestId = `r${++this.reqCounter}`;
    this.pending.set(requestId, { type: message.type, label: label || message.type, at: Date.now() });
    this.sendRaw({ ...message, request_id: requestId });
    return requestId;
  }

  // system.ack: handed to the engine; the answer comes as events (or a system.error)
  acked(requestId) {
    if (requestId && this.pending.has(requestId)) this.pending.get(requestId).acked = true;
  }

  // system.error: the request it answers, no longer pending (null if none or unknown)
  settle(requestId) {
    const pending = requestId ? this.pending.get(requestId) : null;
    if (pending) this.pending.delete(requestId);
    return pending || null;
  }

  // pending requests nobody answered: forget them after a while
  forgetOlderThan(ms) {
    const cutoff = Date.now() - ms;
    for (const [rid, p] of this.pending) if (p.at < cutoff) this.pending.delete(rid);
  }
}
