"""Local sockets and event delivery by audience. The engine resolves every audience to user
ids, so no room membership is kept here (docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from parlour_gateway.connection import Connection, Outgoing
from parlour_protocol.v1 import AudienceKind, EventEnvelope, encode
from parlour_protocol.v1.rooms import RoomStateEvent


class Hub:
    """Every socket of this gateway, and the authenticated ones by user."""

    def __init__(self, gateway_id: str) -> None:
        self.gateway_id = gateway_id
        self.connections: dict[str, Connection] = {}
        self.by_user: dict[str, set[Connection]] = {}

    def add(self, conn: Connection) -> None:
        self.connections[conn.connection_id] = conn

    def bind(self, conn: Connection) -> None:
        """Index an authenticated socket under its user."""
        assert conn.user_id is not None
        self.by_user.setdefault(conn.user_id, set()).add(conn)

    def remove(self, conn: Connection) -> None:
        self.connections.pop(conn.connection_id, None)
        if conn.user_id is not None:
            conns = self.by_user.get(conn.user_id)
            if conns is not None:
                conns.discard(conn)
                if not conns:
                    del self.by_user[conn.user_id]

    def local_sockets(self, user_id: str) -> int:
        return len(self.by_user.get(user_id, ()))

    def targets(self, envelope: EventEnvelope) -> Iterator[Connection]:
        audience = envelope.audience
        if audience.kind is AudienceKind.CONNECTION:
            if audience.gateway_id == self.gateway_id and audience.connection_id is not None:
                conn = self.connections.get(audience.connection_id)
                if conn is not None and conn.identity is not None:
                    yield conn
            return
        if audience.kind is AudienceKind.BROADCAST:
            yield from [c for c in self.connections.values() if c.identity is not None]
            return
        seen: set[str] = set()
        for user_id in audience.user_ids:
            if user_id in seen:
                continue
            seen.add(user_id)
            yield from list(self.by_user.get(user_id, ()))

    def dispatch(self, envelope: EventEnvelope, event_ts: float | None = None) -> int:
        """Deliver one event to its local sockets; the payload is encoded once for all."""
        targets: Iterable[Connection] = self.targets(envelope)
        out: Outgoing | None = None
        room_id, floor = room_of(envelope)
        delivered = 0
        for conn in targets:
            if out is None:
                out = Outgoing(encode(envelope.payload).decode(), event_ts)
            delivered += conn.deliver(room_id, envelope.seq, out, floor)
        return delivered


def room_of(envelope: EventEnvelope) -> tuple[str | None, int | None]:
    """The room an event belongs to, and the seq floor a room snapshot vouches for."""
    payload = envelope.payload
    if isinstance(payload, RoomStateEvent):
        return envelope.room_id or payload.room.room_id, payload.room.last_seq
    return envelope.room_id, None
