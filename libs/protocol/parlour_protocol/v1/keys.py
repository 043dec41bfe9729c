"""The Redis key layout shared by the gateway (presence, replay reads) and the engine (state).

Keys of one room share the hash tag `{room:<id>}` so one Lua script can change them atomically,
also on Redis Cluster. Keys of one user share `{<user_id>}` (their rooms, sockets and socket
records). Keys that index across rooms or users (names, lists, timers, the online set) are
single keys written by single-key commands after the room's commit or the user's script;
every multi-key command and script stays within one hash slot
(tests/unit/architecture/test_cluster_slots.py checks it).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

REPLAY_MAX_EVENTS = 500
REPLAY_MAX_AGE_SECONDS = 600
RECONNECT_TTL_SECONDS = 300
CHAT_HISTORY_KEEP = 200
CHAT_HISTORY_TTL_SECONDS = 7 * 24 * 3600


def fold_room_name(room_name: str) -> str:
    """The form under which room names are unique and compared: Unicode NFKC + casefold (the
    Unicode "NFKC_Casefold" caseless match), so look-alikes are one name: other cases,
    fullwidth letters (U+FF34 for T), ligatures (U+FB01 for fi). Casefolding can
    un-normalise a string, hence the second NFKC."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", room_name).casefold())


@dataclass(frozen=True)
class RedisKeys:
    """Builds every key; `prefix` (REDIS_KEY_PREFIX) lets tests share one Redis."""

    prefix: str = ""

    fold_room_name = staticmethod(fold_room_name)
    """`fold_room_name`, at hand wherever the keys are."""

    # --- one room (engine writes; gateway reads the replay stream) ---
    def room_tag(self, room_id: str) -> str:
        return f"{self.prefix}{{room:{room_id}}}"

    def room_state(self, room_id: str) -> str:
        """String: the room's state as JSON (engine-internal shape), with its version."""
        return f"{self.room_tag(room_id)}:state"

    def room_events(self, room_id: str) -> str:
        """Stream: the room's replay log / outbox; entry fields `seq` and `env` (an
        EventEnvelope as JSON), newest REPLAY_MAX_EVENTS kept for REPLAY_MAX_AGE_SECONDS."""
        return f"{self.room_tag(room_id)}:events"

    def room_applied(self, room_id: str) -> str:
        """Hash: command msg_id -> the events that command produced (idempotency record)."""
        return f"{self.room_tag(room_id)}:applied"

    def room_applied_order(self, room_id: str) -> str:
        """List: msg_ids of `room_applied`, oldest first; the engine drops the oldest records
        past its keep limit (a redelivery only ever concerns recent commands)."""
        return f"{self.room_tag(room_id)}:applied_order"

    def room_chat(self, room_id: str, channel: str) -> str:
        """List: newest CHAT_HISTORY_KEEP messages of a channel, newest first."""
        return f"{self.room_tag(room_id)}:chat:{channel}"

    # --- indexes across rooms (engine writes, gateway reads) ---
    def room_name(self, game_type: str, room_name: str) -> str:
        """String: room id of the active room with this name (names compare by
        `fold_room_name`)."""
        return f"{self.prefix}roomname:{game_type}:{fold_room_name(room_name)}"

    def rooms_by_game(self, game_type: str) -> str:
        """Set: ids of the active rooms of a game."""
        return f"{self.prefix}rooms:{game_type}"

    def rooms_waiting(self, game_type: str) -> str:
        """Sorted set, every score 0: the waiting (listable) rooms of a game as members
        `<created_at epoch ms, 13 digits>|<room_id>`, so lexicographic order is creation order
        and a member is a stable paging cursor (`ZRANGE ... BYLEX`). One key per game, so a
        page is one read on Redis Cluster too; rebuilt from `rooms_by_game` once when
        `rooms_waiting_indexed` is missing (rooms created before the index existed)."""
        return f"{self.prefix}lobby:{game_type}"

    def rooms_waiting_indexed(self, game_type: str) -> str:
        """String: set once `rooms_waiting` of the game was rebuilt from `rooms_by_game`."""
        return f"{self.prefix}lobby:{game_type}:indexed"

    def user_rooms(self, user_id: str) -> str:
        """Hash: room id -> the user's role there (host/player/lobby/spectator)."""
        return f"{self.prefix}user:{{{user_id}}}:rooms"

    def user_direct_applied(self, user_id: str, msg_id: str) -> str:
        """String with TTL: the engine's idempotency record of a direct message the user sent
        (command msg_id); a redelivery of that command publishes nothing new."""
        return f"{self.prefix}user:{{{user_id}}}:dm:{msg_id}"

    def timers(self) -> str:
        """Sorted set: member `<room_id>|<kind>|<token>`, score = due time in epoch ms."""
        return f"{self.prefix}timers"

    # --- presence (gateway writes) ---
    def socket(self, user_id: str, socket_id: str) -> str:
        """Hash: user_id, username, gateway_id, connected_at, last_seen; TTL refreshed by
        heartbeats so a crashed gateway's sockets expire. Under the user's hash tag, so one
        script sees a user's socket set and all of their records on Redis Cluster too."""
        return f"{self.prefix}user:{{{user_id}}}:socket:{socket_id}"

    def user_sockets(self, user_id: str) -> str:
        """Set: the user's socket ids on every gateway."""
        return f"{self.prefix}user:{{{user_id}}}:sockets"

    def presence_online(self) -> str:
        """Set: user ids with at least one live socket. One key for every user (the sweeper
        walks it), so no script touches it: it is written after the user's own script, by
        idempotent SADD/SREM, and reconciled by the gateways' refresh and sweeper."""
        return f"{self.prefix}presence:online"

    def reconnect(self, user_id: str, room_id: str) -> str:
        """Hash with RECONNECT_TTL_SECONDS TTL: where a dropped user was, for a quick rejoin."""
        return f"{self.prefix}reconnect:{user_id}:{room_id}"

    def gateway(self, gateway_id: str) -> str:
        """String with TTL: a live gateway's heartbeat."""
        return f"{self.prefix}gateway:{gateway_id}"
