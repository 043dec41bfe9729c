"""Kafka record form of events on `games.event.v1`, and the per-hop timestamps.

An event record's value is exactly the frame its sockets receive (the payload JSON); what a
gateway needs to route it is in the record headers, so a gateway never parses an event it only
filters out (every gateway reads the whole topic). `event_record` builds the record from an
`EventEnvelope`, `decode_event_record` rebuilds the envelope (tests, tools; gateways read the
headers only). A record without `p-to` is the older form: the whole envelope JSON as value.

Headers, in this order (a gateway decides an event on the first one and parses the second
only for an event it delivers; few headers, since each costs every gateway a little):

- `p-to`: `<audience kind>:<who>`. Who: the user ids joined by `,` (the kinds the engine
  resolves to users: `room`, `players`, `spectators`, `user`, `users`; ids never hold `,`
  or `/`), `<gateway_id>/<connection_id>` (kind `connection`), or the payload's
  `game_type`, possibly empty (kind `broadcast`); for these two kinds the audience's user
  ids, if any, follow as `/<ids joined by ,>` (they do not route: the user of a connection).
- `p-ev`: the rest of the envelope as `name=value` pairs joined by `&` (no value holds `&`):
  `t` type, `e` event_id, `r` room_id, `s` seq, `c` causation_id, `ts` the timestamp in
  integer microseconds since the Unix epoch (UTC), `f` a `room_state`'s
  `<room.last_seq>:<room.room_id>`, `x` a `system.error`'s code; absent fields left out.
- `p-hops`: per-hop timestamps, see below (only when the command carried them).

Per-hop timestamps (header `p-hops`, on command records and on the event records they cause):
ASCII `name=microseconds since the Unix epoch` pairs joined by `,`, in the order the hops
happen, each name at most once: `gr` gateway received the frame, `gp` gateway handed the
command to its producer, `ec` engine consumed the record (its poll returned), `ek` engine
committed the room in Redis (only for a command that changed it), `ep` engine handed the
event to its producer. A gateway that
stamps hops (GATEWAY_HOP_TIMESTAMPS) adds `gr`/`gp` to the commands it publishes, and for
events carrying `p-hops` observes `gc` (gateway consumed the record) and `fw` (frame written
to the socket) into `parlour_gateway_hop_seconds{hop="<from>-<to>"}`. Any producer of
commands (a benchmark) may start the chain with its own `gp`. Clocks of different hosts
differ: compare hops across processes only on one host, or with synchronised clocks.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

from parlour_protocol.v1.codec import decode_event_envelope, decode_server_message, encode
from parlour_protocol.v1.envelope import Audience, AudienceKind, EventEnvelope
from parlour_protocol.v1.errors import DecodeFailure, ProtocolError

H_TO = "p-to"
H_EVENT = "p-ev"
H_HOPS = "p-hops"

F_TYPE = "t"
F_EVENT_ID = "e"
F_ROOM = "r"
F_SEQ = "s"
F_CAUSE = "c"
F_TS = "ts"
F_FLOOR = "f"
F_ERROR = "x"

HOP_GATEWAY_RECEIVED = "gr"
HOP_GATEWAY_PRODUCED = "gp"
HOP_ENGINE_CONSUMED = "ec"
HOP_ENGINE_COMMITTED = "ek"
HOP_EVENT_PRODUCED = "ep"
HOP_GATEWAY_CONSUMED = "gc"
HOP_FRAME_WRITTEN = "fw"
HOPS = (
    HOP_GATEWAY_RECEIVED,
    HOP_GATEWAY_PRODUCED,
    HOP_ENGINE_CONSUMED,
    HOP_ENGINE_COMMITTED,
    HOP_EVENT_PRODUCED,
    HOP_GATEWAY_CONSUMED,
    HOP_FRAME_WRITTEN,
)
"""Every hop name, in path order."""

Headers = list[tuple[str, bytes]]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_us(moment: datetime) -> int:
    """A timezone-aware datetime as integer microseconds since the epoch (exact)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def hop(hops: str, name: str, at_us: int | None = None) -> str:
    """`hops` with one more stamp (now, unless `at_us` is given)."""
    stamp = f"{name}={time.time_ns() // 1000 if at_us is None else at_us}"
    return f"{hops},{stamp}" if hops else stamp


def parse_hops(hops: str | bytes) -> list[tuple[str, int]]:
    """[(name, microseconds)] in header order; malformed pairs are skipped."""
    text = hops.decode("ascii", "replace") if isinstance(hops, bytes) else hops
    out: list[tuple[str, int]] = []
    for pair in text.split(","):
        name, _, value = pair.partition("=")
        if value.isdigit():
            out.append((name, int(value)))
    return out


def route_value(
    kind: AudienceKind,
    user_ids: Sequence[str],
    connection_id: str | None,
    gateway_id: str | None,
    game_type: object,
) -> bytes:
    """The `p-to` header's value."""
    if kind is AudienceKind.CONNECTION:
        to = f"{gateway_id or ''}/{connection_id or ''}"
    elif kind is AudienceKind.BROADCAST:
        to = game_type if isinstance(game_type, str) else ""
    else:
        return f"{kind.value}:{','.join(user_ids)}".encode()
    if user_ids:  # informational for these kinds (e.g. the user of a connection)
        to += "/" + ",".join(user_ids)
    return f"{kind.value}:{to}".encode()


def event_value(
    *,
    type: str,
    event_id: str,
    room_id: str | None,
    seq: int | None,
    causation_id: str | None,
    ts_us: int,
    floor: str | None = None,
    error: str | None = None,
) -> bytes:
    """The `p-ev` header's value (`floor`: `<last_seq>:<room_id>` of a room_state)."""
    fields = f"{F_TYPE}={type}&{F_EVENT_ID}={event_id}"
    if room_id is not None:
        fields += f"&{F_ROOM}={room_id}"
    if seq is not None:
        fields += f"&{F_SEQ}={seq}"
    if causation_id is not None:
        fields += f"&{F_CAUSE}={causation_id}"
    fields += f"&{F_TS}={ts_us}"
    if floor is not None:
        fields += f"&{F_FLOOR}={floor}"
    if error is not None:
        fields += f"&{F_ERROR}={error}"
    return fields.encode()


def game_type_of(payload: object) -> str | None:
    """The payload's `game_type` (lobby events), else None."""
    game_type = getattr(payload, "game_type", None)
    return game_type if isinstance(game_type, str) else None


def floor_of(payload: object) -> str | None:
    """`<last_seq>:<room_id>` of a room_state payload, else None."""
    # the type first: a missing attribute costs a pydantic model an exception
    if getattr(payload, "type", None) != "games.event.room_state":
        return None
    room = getattr(payload, "room", None)
    return None if room is None else f"{room.last_seq}:{room.room_id}"


def error_of(payload: object) -> str | None:
    """A system.error payload's code, else None."""
    if getattr(payload, "type", None) != "system.error":
        return None
    code = getattr(payload, "code", None)
    return None if code is None else str(code.value)


def event_headers(envelope: EventEnvelope, hops: str | None = None) -> Headers:
    """The routing headers of an event (see the module doc)."""
    audience = envelope.audience
    payload = envelope.payload
    headers: Headers = [
        (
            H_TO,
            route_value(
                audience.kind,
                audience.user_ids,
                audience.connection_id,
                audience.gateway_id,
                game_type_of(payload) if audience.kind is AudienceKind.BROADCAST else None,
            ),
        ),
        (
            H_EVENT,
            event_value(
                type=envelope.type,
                event_id=str(envelope.event_id),
                room_id=envelope.room_id,
                seq=envelope.seq,
                causation_id=None if envelope.causation_id is None else str(envelope.causation_id),
                ts_us=epoch_us(envelope.timestamp),
                floor=floor_of(payload),
                error=error_of(payload),
            ),
        ),
    ]
    if hops:
        headers.append((H_HOPS, hops.encode()))
    return headers


def event_fields(raw: bytes) -> dict[str, str]:
    """The `p-ev` header as a dict (names as in the module doc)."""
    return dict(pair.split("=", 1) for pair in raw.decode().split("&") if "=" in pair)


def event_record(envelope: EventEnvelope, hops: str | None = None) -> tuple[bytes, Headers]:
    """(value, headers) of the Kafka record that carries `envelope`."""
    return encode(envelope.payload), event_headers(envelope, hops)


def decode_event_record(
    value: bytes | str, headers: Sequence[tuple[str, bytes]] | Iterable[tuple[str, bytes]]
) -> EventEnvelope:
    """The envelope a record of `games.event.v1` carries (either form). Raises ProtocolError."""
    h = dict(headers)
    route = h.get(H_TO)
    if route is None:
        return decode_event_envelope(value)
    payload = decode_server_message(value)
    try:
        kind_text, _, to = route.decode().partition(":")
        kind = AudienceKind(kind_text)
        fields = event_fields(h.get(H_EVENT) or b"")
        users: list[str] = []
        gateway_id = connection_id = None
        listed = to
        if kind is AudienceKind.CONNECTION:
            gateway_id, _, rest = to.partition("/")
            connection_id, _, listed = rest.partition("/")
        elif kind is AudienceKind.BROADCAST:
            listed = to.partition("/")[2]
        if listed:
            users = listed.split(",")
        seq, cause, ts = fields.get(F_SEQ), fields.get(F_CAUSE), fields.get(F_TS)
        return EventEnvelope(
            event_id=UUID(fields[F_EVENT_ID]),
            type=fields.get(F_TYPE) or payload.type,
            room_id=fields.get(F_ROOM),
            seq=None if seq is None else int(seq),
            audience=Audience(
                kind=kind,
                user_ids=users,
                connection_id=connection_id or None,
                gateway_id=gateway_id or None,
            ),
            causation_id=None if cause is None else UUID(cause),
            timestamp=from_epoch_us(int(ts)) if ts else _EPOCH,
            payload=payload,
        )
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(DecodeFailure.INVALID_FIELDS, f"bad event headers: {exc}") from None


__all__ = [
    "F_CAUSE",
    "F_ERROR",
    "F_EVENT_ID",
    "F_FLOOR",
    "F_ROOM",
    "F_SEQ",
    "F_TS",
    "F_TYPE",
    "HOPS",
    "H_EVENT",
    "H_HOPS",
    "H_TO",
    "Headers",
    "decode_event_record",
    "epoch_us",
    "error_of",
    "event_fields",
    "event_headers",
    "event_record",
    "event_value",
    "floor_of",
    "from_epoch_us",
    "game_type_of",
    "hop",
    "parse_hops",
    "route_value",
]
