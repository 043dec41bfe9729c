"""Resume order on a fresh socket: rooms the user is in at authentication hold their live
events until the client's rejoin replay, a room_state, or the hold timeout opens them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from parlour_gateway.auth import Identity
from parlour_gateway.connection import Connection, Outgoing
from parlour_gateway.routing import Hub
from parlour_protocol.v1 import Audience, AudienceKind, EventEnvelope
from parlour_protocol.v1.chat import DirectMessageReceived
from parlour_protocol.v1.rooms import RoomSnapshot, RoomStateEvent, RoomStatus

ROOM = Audience(kind=AudienceKind.ROOM, user_ids=["a"])


def _authed(hub: Hub, held: list[str]) -> Connection:
    conn = Connection(uuid.uuid4().hex, 64)
    hub.add(conn)
    conn.identity = Identity(user_id="a", username="a")
    conn.hold_rooms(held)
    hub.bind(conn)
    return conn


def _event(room_id: str, seq: int | None) -> EventEnvelope:
    payload = DirectMessageReceived(
        message_id=uuid.uuid4().hex,
        sender_id="s",
        sender_name="s",
        recipient_id="r",
        content=f"seq {seq}",
        sent_at=datetime.now(UTC),
        seq=seq,
    )
    return EventEnvelope(
        type=payload.type, room_id=room_id, seq=seq, audience=ROOM, payload=payload
    )


def _room_state(room_id: str, last_seq: int) -> EventEnvelope:
    payload = RoomStateEvent(
        room=RoomSnapshot(
            room_id=room_id,
            room_name="t",
            game_type="bigger_dice",
            status=RoomStatus.WAITING,
            host_id="a",
            host_name="a",
            max_players=2,
            created_at=datetime.now(UTC),
            last_seq=last_seq,
        )
    )
    return EventEnvelope(
        type=payload.type,
        room_id=room_id,
        payload=payload,
        audience=Audience(kind=AudienceKind.USER, user_ids=["a"]),
    )


def _seqs(conn: Connection) -> list[object]:
    out = []
    while not conn.queue.empty():
        out.append(json.loads(conn.queue.get_nowait().text).get("seq"))
    return out


def test_live_event_between_auth_and_rejoin_follows_the_replay() -> None:
    hub = Hub("gw")
    a = _authed(hub, ["r1"])
    hub.dispatch(_event("r1", 7))  # live, before the client's rejoin_room arrives
    assert _seqs(a) == []
    a.begin_hold("r1", last_seq=4)  # rejoin_room {last_seq: 4}
    hub.dispatch(_event("r1", 8))
    for seq in (5, 6, 7):
        a.deliver_replayed("r1", seq, Outgoing(json.dumps({"seq": seq})))
    a.end_hold("r1")
    assert _seqs(a) == [5, 6, 7, 8]
    assert not a.holding("r1")
    assert a.auth_holds == 0
    hub.dispatch(_event("r1", 9))
    assert _seqs(a) == [9]


def test_rooms_not_held_at_auth_flow_at_once() -> None:
    hub = Hub("gw")
    a = _authed(hub, ["r1"])
    hub.dispatch(_event("r2", 1))
    assert _seqs(a) == [1]


def test_room_state_opens_a_held_room_first() -> None:
    hub = Hub("gw")
    a = _authed(hub, ["r1"])
    hub.dispatch(_event("r1", 3))  # covered by the snapshot
    hub.dispatch(_event("r1", 4))
    hub.dispatch(_room_state("r1", 3))
    assert _seqs(a) == [None, 4]  # room_state (no seq), then the newer held event
    assert not a.holding("r1")


def test_hold_timeout_releases_in_order() -> None:
    hub = Hub("gw")
    a = _authed(hub, ["r1", "r2"])
    hub.dispatch(_event("r1", 1))
    hub.dispatch(_event("r2", 5))
    hub.dispatch(_event("r1", 2))
    hub.dispatch(_event("r1", 2))  # a redelivery
    assert a.release_auth_holds() == 3
    assert sorted(_seqs(a)) == [1, 2, 5]
    assert a.auth_holds == 0
    assert not a.holding("r1")
    assert not a.holding("r2")


def test_timeout_leaves_a_running_replay_alone() -> None:
    hub = Hub("gw")
    a = _authed(hub, ["r1", "r2"])
    a.begin_hold("r1", last_seq=0)
    hub.dispatch(_event("r1", 2))
    a.release_auth_holds()
    assert a.holding("r1")
    assert not a.holding("r2")
    a.deliver_replayed("r1", 1, Outgoing(json.dumps({"seq": 1})))
    a.end_hold("r1")
    assert _seqs(a) == [1, 2]
