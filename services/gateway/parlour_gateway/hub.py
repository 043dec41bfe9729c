"""Local sockets and event delivery by audience. The engine resolves every audience to user
ids, so no room membership is kept here (docs/architecture.md).

Lobby-list events (audience `broadcast`: room_created, room_removed) go only to the sockets
that asked for that game's room list (`list_rooms`), for `LOBBY_SUBSCRIPTION_SECONDS` or until
the socket is given a room_state (it is in a room now); each socket has at most one such
subscription, so the index is bounded by the number of sockets."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from parlour_gateway.connection import Connection, Outgoing
from parlour_protocol.v1 import AudienceKind, EventEnvelope, encode
from parlour_protocol.v1.rooms import RoomStateEvent

LOBBY_SUBSCRIPTION_SECONDS = 900.0
"""How long a `list_rooms` keeps a socket on its game's lobby updates (the browser lists
again whenever it comes back to the lobby)."""


class Hub:
    """Every socket of this gateway, the authenticated ones by user, and the lobby
    subscribers by game."""

    def __init__(self, gateway_id: str) -> None:
        self.gateway_id = gateway_id
        self.connections: dict[str, Connection] = {}
        self.by_user: dict[str, set[Connection]] = {}
        self.local_users: set[bytes] = set()
        """the keys of `by_user`, UTF-8 encoded: an event record's `p-to` header lists its
        users so, and a set of bytes decides "none of them here" without decoding it"""
        self.lobby: dict[str, dict[Connection, float]] = {}
        """game type -> subscribed socket -> monotonic time its subscription ends"""
        self._lobby_game: dict[Connection, str] = {}

    def add(self, conn: Connection) -> None:
        self.connections[conn.connection_id] = conn

    def bind(self, conn: Connection) -> None:
        """Index an authenticated socket under its user."""
        assert conn.user_id is not None
        conns = self.by_user.get(conn.user_id)
        if conns is None:
            conns = self.by_user[conn.user_id] = set()
            self.local_users.add(conn.user_id.encode())
        conns.add(conn)

    def remove(self, conn: Connection) -> None:
        self.connections.pop(conn.connection_id, None)
        self.unsubscribe_lobby(conn)
        if conn.user_id is not None:
            conns = self.by_user.get(conn.user_id)
            if conns is not None:
                conns.discard(conn)
                if not conns:
                    del self.by_user[conn.user_id]
                    self.local_users.discard(conn.user_id.encode())

    def subscribe_lobby(self, conn: Connection, game_type: str, now: float) -> None:
        """The socket asked for a game's room list: it gets that game's lobby updates (and
        no other game's) until `now + LOBBY_SUBSCRIPTION_SECONDS`."""
        self.unsubscribe_lobby(conn)
        self.lobby.setdefault(game_type, {})[conn] = now + LOBBY_SUBSCRIPTION_SECONDS
        self._lobby_game[conn] = game_type

    def unsubscribe_lobby(self, conn: Connection) -> None:
        game_type = self._lobby_game.pop(conn, None)
        if game_type is None:
            return
        subscribers = self.lobby.get(game_type)
        if subscribers is not None:
            subscribers.pop(conn, None)
            if not subscribers:
                del self.lobby[game_type]

    def _lobby_targets(self, game_type: str | None, now: float) -> list[Connection]:
        games = [game_type] if game_type is not None else list(self.lobby)
        targets: list[Connection] = []
        for game in games:
            for conn, until in list(self.lobby.get(game, {}).items()):
                if until <= now:
                    self.unsubscribe_lobby(conn)
                elif conn.identity is not None:
                    targets.append(conn)
        return targets

    def local_sockets(self, user_id: str) -> int:
        return len(self.by_user.get(user_id, ()))

    def targets(self, envelope: EventEnvelope, now: float | None = None) -> Iterator[Connection]:
        audience = envelope.audience
        if audience.kind is AudienceKind.CONNECTION:
            if audience.gateway_id == self.gateway_id and audience.connection_id is not None:
                conn = self.connections.get(audience.connection_id)
                if conn is not None and conn.identity is not None:
                    yield conn
            return
        if audience.kind is AudienceKind.BROADCAST:
            # a lobby event without a game type goes to the lobby subscribers of every game
            game_type = getattr(envelope.payload, "game_type", None)
            yield from self._lobby_targets(
                game_type if isinstance(game_type, str) else None,
                time.monotonic() if now is None else now,
            )
            return
        seen: set[str] = set()
        for user_id in audience.user_ids:
            if user_id in seen:
                continue
            seen.add(user_id)
            yield from list(self.by_user.get(user_id, ()))

    def dispatch(
        self, envelope: EventEnvelope, event_ts: float | None = None, now: float | None = None
    ) -> int:
        """Deliver one event to its local sockets; the payload is encoded once for all."""
        targets: Iterable[Connection] = self.targets(envelope, now)
        out: Outgoing | None = None
        room_id, floor = room_of(envelope)
        delivered = 0
        for conn in targets:
            if out is None:
                out = Outgoing(encode(envelope.payload).decode(), event_ts)
            delivered += conn.deliver(room_id, envelope.seq, out, floor)
            if floor is not None:  # a room snapshot: the socket is in a room, not the lobby
                self.unsubscribe_lobby(conn)
        return delivered

    def route_targets(self, kind: bytes, to: bytes, now: float | None = None) -> list[Connection]:
        """`targets` from an event record's `p-to` header (`<kind>:<to>`,
        parlour_protocol.v1.records), without the envelope."""
        if kind == b"connection":
            gateway_id, _, rest = to.decode().partition("/")
            connection_id = rest.partition("/")[0]
            if gateway_id != self.gateway_id:
                return []
            conn = self.connections.get(connection_id)
            return [conn] if conn is not None and conn.identity is not None else []
        if kind == b"broadcast":
            if not self.lobby:
                return []
            # a lobby event without a game type goes to the lobby subscribers of every game
            game_type = to.partition(b"/")[0]
            return self._lobby_targets(
                game_type.decode() if game_type else None,
                time.monotonic() if now is None else now,
            )
        if not to:
            return []
        by_user = self.by_user
        local = [u for u in to.decode().split(",") if u in by_user]
        if len(local) > 1:
            local = list(dict.fromkeys(local))
        return [conn for u in local for conn in list(by_user.get(u, ()))]

    def deliver_to(
        self,
        targets: list[Connection],
        room_id: str | None,
        seq: int | None,
        out: Outgoing,
        floor: int | None,
    ) -> int:
        """Deliver one routed event to `targets` (from `route_targets`)."""
        delivered = 0
        for conn in targets:
            delivered += conn.deliver(room_id, seq, out, floor)
            if floor is not None:  # a room snapshot: the socket is in a room, not the lobby
                self.unsubscribe_lobby(conn)
        return delivered


def room_of(envelope: EventEnvelope) -> tuple[str | None, int | None]:
    """The room an event belongs to, and the seq floor a room snapshot vouches for."""
    payload = envelope.payload
    if isinstance(payload, RoomStateEvent):
        return envelope.room_id or payload.room.room_id, payload.room.last_seq
    return envelope.room_id, None
