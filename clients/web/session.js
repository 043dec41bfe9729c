// What the tab remembers across reloads (sessionStorage: per tab, gone when it closes): the
// login (a username in development, else a token) and the room to rejoin.

const STORE_SESSION = "parlour.session";
const STORE_ROOM = "parlour.room";

export function loadSession() {
  try {
    const raw = sessionStorage.getItem(STORE_SESSION);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

export function saveSession(session) {
  if (session) sessionStorage.setItem(STORE_SESSION, JSON.stringify(session));
  else sessionStorage.removeItem(STORE_SESSION);
}

export function loadRoomId() {
  return sessionStorage.getItem(STORE_ROOM);
}

export function saveRoomId(roomId) {
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
