"""Events in the record form (parlour_protocol.v1.records: value = the frame, routing in the
headers) reach exactly the sockets, with exactly the frames, that the envelope form does, and
a gateway filters them out without parsing the value."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from parlour_gateway.connection import Connection
from parlour_gateway.events import EventConsumer
from parlour_gateway.hub import Hub
from parlour_gateway.metrics import Metrics
from parlour_protocol.v1 import Audience, AudienceKind, ErrorCode, EventEnvelope, encode
from parlour_protocol.v1.records import H_HOPS, event_record
from parlour_protocol.v1.system import Error
from tests.unit.gateway.test_hub import GW, _conn, _event, _lobby_event, _room_state_for


def _pair() -> tuple[EventConsumer, Hub, Metrics]:
    hub, metrics = Hub(GW), Metrics()
    return EventConsumer(cast(Any, None), "events", hub, metrics), hub, metrics


def _texts(conn: Connection) -> list[str]:
    out = []
    while not conn.queue.empty():
        out.append(conn.queue.get_nowait().text)
    return out


def _events() -> list[EventEnvelope]:
    error = Error(code=ErrorCode.NOT_YOUR_TURN, message="wait", request_id="r1")
    return [
        _event(Audience(kind=AudienceKind.ROOM, user_ids=["a", "b", "zed"]), "r1", 1),
        _event(Audience(kind=AudienceKind.USERS, user_ids=["b", "b"])),
        _event(Audience(kind=AudienceKind.USER, user_ids=["nobody"])),
        _event(Audience(kind=AudienceKind.CONNECTION, connection_id="c-a", gateway_id=GW)),
        _event(
            Audience(
                kind=AudienceKind.CONNECTION, user_ids=["a"], connection_id="c-a", gateway_id=GW
            )
        ),
        _event(Audience(kind=AudienceKind.CONNECTION, connection_id="c-a", gateway_id="gw-2")),
        _lobby_event("bigger_dice"),
        _lobby_event("tic_tac_toe"),
        _room_state_for("a"),
        _event(Audience(kind=AudienceKind.ROOM, user_ids=["a"]), "r1", 1),  # covered: dropped
        EventEnvelope(
            type=error.type,
            audience=Audience(kind=AudienceKind.USER, user_ids=["a"]),
            payload=error,
        ),
    ]


def _world(hub: Hub) -> list[Connection]:
    a, b, c = _conn(hub, "a"), _conn(hub, "b"), _conn(hub, "c")
    hub.connections.pop(a.connection_id)
    a.connection_id = "c-a"
    hub.add(a)
    hub.subscribe_lobby(c, "bigger_dice", now=0.0)
    hub.subscribe_lobby(a, "bigger_dice", now=0.0)
    return [a, b, c]


def test_record_form_delivers_what_the_envelope_form_does() -> None:
    old, old_hub, old_metrics = _pair()
    new, new_hub, new_metrics = _pair()
    old_conns, new_conns = _world(old_hub), _world(new_hub)
    events = _events()
    counts_old = [old.handle(encode(e)) for e in events]
    counts_new = [new.handle_record(*event_record(e)) for e in events]
    assert counts_new == counts_old
    assert sum(counts_new) > 0
    for before, after in zip(old_conns, new_conns, strict=True):
        assert _texts(after) == _texts(before)
    assert new_metrics.registry.get_sample_value(
        "parlour_gateway_errors_sent_total", {"code": "not_your_turn"}
    ) == old_metrics.registry.get_sample_value(
        "parlour_gateway_errors_sent_total", {"code": "not_your_turn"}
    )


@dataclass
class _Record:
    value: bytes | None
    headers: list[tuple[str, bytes]]
    offset: int = 0


def test_a_fetched_batch_delivers_what_record_by_record_does() -> None:
    """The gateway's loop (`handle_batch`, with its inlined drop of events for no local
    user) delivers exactly what `handle_record` does one by one, the older envelope form
    (no headers) included."""
    one, one_hub, _ = _pair()
    batch, batch_hub, _ = _pair()
    one_conns, batch_conns = _world(one_hub), _world(batch_hub)
    events = _events()
    records = [_Record(*event_record(e)) for e in events]
    records.append(_Record(encode(events[0]).replace(b'"seq":1', b'"seq":2'), []))
    counts = [one.handle_record(r.value or b"", r.headers) for r in records[:-1]]
    counts.append(one.handle(records[-1].value or b""))
    assert batch.handle_batch(records) == sum(counts) > 0
    for before, after in zip(one_conns, batch_conns, strict=True):
        assert _texts(after) == _texts(before)


def test_a_filtered_record_is_never_parsed() -> None:
    consumer, hub, _ = _pair()
    _conn(hub, "a")
    _, headers = event_record(_event(Audience(kind=AudienceKind.ROOM, user_ids=["x"]), "r", 1))
    assert consumer.handle_record(b"\xff not even JSON", headers) == 0
    assert consumer.handle_batch([_Record(b"\xff not even JSON", list(headers))]) == 0


@pytest.mark.parametrize("hops", [None, b"gr=1,gp=2,ec=3,ek=4,ep=5"])
def test_hops_ride_along_to_the_writer(hops: bytes | None) -> None:
    consumer, hub, _ = _pair()
    a = _conn(hub, "a")
    value, headers = event_record(_event(Audience(kind=AudienceKind.USER, user_ids=["a"])))
    if hops is not None:
        headers.append((H_HOPS, hops))
    assert consumer.handle_record(value, headers) == 1
    out = a.queue.get_nowait()
    if hops is None:
        assert out.hops is None
    else:
        assert out.hops is not None
        assert out.hops.startswith("gr=1,gp=2,ec=3,ek=4,ep=5,gc=")
    assert out.event_ts is not None
    assert abs(out.event_ts - datetime.now(UTC).timestamp()) < 60


def test_hop_metrics_name_each_step() -> None:
    metrics = Metrics()
    metrics.observe_hops("gr=1000,gp=1500,ec=3000,bogus=4000,fw=9000")
    get = metrics.registry.get_sample_value
    assert get("parlour_gateway_hop_seconds_count", {"hop": "gr-gp"}) == 1
    assert get("parlour_gateway_hop_seconds_sum", {"hop": "gp-ec"}) == pytest.approx(0.0015)
    assert get("parlour_gateway_hop_seconds_sum", {"hop": "ec-fw"}) == pytest.approx(0.006)
    assert get("parlour_gateway_hop_seconds_sum", {"hop": "total"}) == pytest.approx(0.008)
