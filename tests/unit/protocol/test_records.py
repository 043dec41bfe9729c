"""The Kafka record form of events (parlour_protocol.v1.records): value = the frame, routing
in headers, and the per-hop timestamps."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from parlour_protocol.v1 import (
    Audience,
    AudienceKind,
    ErrorCode,
    EventEnvelope,
    ProtocolError,
    decode_event_envelope,
    encode,
)
from parlour_protocol.v1.limits import ID_PATTERN
from parlour_protocol.v1.records import (
    F_ERROR,
    H_EVENT,
    H_HOPS,
    H_TO,
    decode_event_record,
    epoch_us,
    event_fields,
    event_headers,
    event_record,
    from_epoch_us,
    hop,
    parse_hops,
)
from parlour_protocol.v1.system import Error

GOLDEN = Path(__file__).parent / "golden"


def _golden_event() -> EventEnvelope:
    return decode_event_envelope((GOLDEN / "_envelope.event.json").read_bytes())


def test_the_value_is_the_frame_and_the_record_gives_the_envelope_back() -> None:
    envelope = _golden_event()
    value, headers = event_record(envelope)
    assert value == encode(envelope.payload)
    assert decode_event_record(value, headers) == envelope


def test_broadcast_with_user_ids_round_trips() -> None:
    payload = Error(code=ErrorCode.NOT_IN_ROOM, message="no")
    audience = Audience(kind=AudienceKind.BROADCAST, user_ids=["u1"])
    envelope = EventEnvelope(type=payload.type, audience=audience, payload=payload)
    assert decode_event_record(*event_record(envelope)) == envelope


@pytest.mark.parametrize("kind", list(AudienceKind))
def test_every_audience_round_trips(kind: AudienceKind) -> None:
    payload = Error(code=ErrorCode.NOT_IN_ROOM, message="no", request_id="r1")
    audience = Audience(
        kind=kind,
        user_ids=["u1", "u-2"] if kind is not AudienceKind.BROADCAST else [],
        connection_id="c1" if kind is AudienceKind.CONNECTION else None,
        gateway_id="gw.1" if kind is AudienceKind.CONNECTION else None,
    )
    envelope = EventEnvelope(
        type=payload.type, audience=audience, causation_id=uuid.uuid4(), payload=payload
    )
    value, headers = event_record(envelope)
    h = dict(headers)
    assert event_fields(h[H_EVENT])[F_ERROR] == "not_in_room"
    if kind is AudienceKind.CONNECTION:
        assert headers[0] == (H_TO, b"connection:gw.1/c1/u1,u-2")
    elif kind is AudienceKind.BROADCAST:
        assert headers[0] == (H_TO, b"broadcast:")  # an error has no game_type
    else:
        assert headers[0] == (H_TO, f"{kind.value}:u1,u-2".encode())
    assert decode_event_record(value, headers) == envelope


def test_the_older_form_still_decodes() -> None:
    envelope = _golden_event()
    assert decode_event_record(encode(envelope), ()) == envelope


def test_bad_headers_raise_protocol_error() -> None:
    envelope = _golden_event()
    value, headers = event_record(envelope)
    bad = [(k, v.replace(b"ts=", b"ts=x") if k == H_EVENT else v) for k, v in headers]
    with pytest.raises(ProtocolError):
        decode_event_record(value, bad)


def test_timestamps_are_exact_microseconds() -> None:
    moment = datetime(2026, 3, 14, 18, 2, 11, 262_001, tzinfo=UTC)
    assert from_epoch_us(epoch_us(moment)) == moment


def test_hops_append_in_order_and_parse_back() -> None:
    hops = hop("", "gr", 10)
    hops = hop(hops, "gp", 25)
    assert hops == "gr=10,gp=25"
    assert parse_hops(hop(hops, "ec").encode())[:2] == [("gr", 10), ("gp", 25)]
    assert parse_hops("gr=1,junk,gp=x,ec=3") == [("gr", 1), ("ec", 3)]
    envelope = _golden_event()
    assert dict(event_headers(envelope, hops))[H_HOPS] == b"gr=10,gp=25"


def test_ids_never_hold_the_separators() -> None:
    """`p-to` joins ids with `,` and `/`, `p-ev` pairs with `&` and `=`: the id and game type
    patterns must keep excluding them."""
    for pattern in (ID_PATTERN, r"^[a-z0-9_]+$"):
        for separator in ",/&=":
            assert re.fullmatch(pattern, f"a{separator}b") is None
