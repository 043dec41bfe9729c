"""Resume order on a fresh socket: rooms the user is in at authentication hold their live
events until the client's rejoin replay, a room_state, or the hold timeout opens them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import cast

from parlour_gateway.auth import Identity
from parlour_gateway.connection import Connection, Outgoing
from parlour_gateway.hub import Hub
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
    assert sorted(cast("list[int]", _seqs(a))) == [1, 2, 5]
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


# ------------------------------------------------------------------ a room's seq going backwards

T = 1_800_000_000.0  # an event time (epoch seconds)


def _rewinding(hub: Hub) -> tuple[Connection, list[str]]:
    """A socket with seqs 1..100 of r1 given at time T, whose session holds a room whose
    seq went backwards (as `Session._on_rewind` does) and notes it."""
    a = _authed(hub, [])
    rewound: list[str] = []

    def on_rewind(room_id: str) -> None:
        rewound.append(room_id)
        a.hold_rooms([room_id])

    a.on_rewind = on_rewind
    for seq in range(1, 101):
        hub.dispatch(_event("r1", seq), event_ts=T)
        _seqs(a)
    assert a.close_code is None
    return a, rewound


def test_redeliveries_are_still_dropped() -> None:
    hub = Hub("gw")
    a, rewound = _rewinding(hub)
    hub.dispatch(_event("r1", 50), event_ts=T)  # re-published with its first stamp
    hub.dispatch(_event("r1", 90), event_ts=T + 1)  # near the newest, within the skew
    hub.dispatch(_event("r1", 100), event_ts=None)  # time unknown
    assert _seqs(a) == []
    assert rewound == []


def test_seq_going_backwards_resyncs_the_room_instead_of_dropping() -> None:
    """The room restarted at seq 95 (Redis lost writes): the first new event is held, the
    session asks for a fresh room_state; it opens the room, and every newer event flows."""
    hub = Hub("gw")
    a, rewound = _rewinding(hub)
    hub.dispatch(_event("r1", 96), event_ts=T + 10)  # seen before, but stamped 10 s later
    hub.dispatch(_event("r1", 97), event_ts=T + 10)
    assert rewound == ["r1"]
    assert _seqs(a) == []  # held until the fresh snapshot
    hub.dispatch(_room_state("r1", 96), event_ts=T + 11)
    assert _seqs(a) == [None, 97]  # the snapshot (covers 96), then the held newer event
    for seq in (98, 99, 100, 101):
        hub.dispatch(_event("r1", seq), event_ts=T + 12)
    assert _seqs(a) == [98, 99, 100, 101]
    assert rewound == ["r1"]


def test_an_event_far_below_stamped_later_is_a_restart() -> None:
    hub = Hub("gw")
    a, rewound = _rewinding(hub)
    hub.dispatch(_event("r1", 3), event_ts=T + 0.5)  # 97 below the newest, later
    assert rewound == ["r1"]
    assert a.holding("r1")
    assert a.release_auth_holds() == 1  # no room_state came in time: the events flow
    hub.dispatch(_event("r1", 4), event_ts=T + 1)
    assert _seqs(a) == [3, 4]


def test_a_later_room_state_with_a_lower_last_seq_restarts_the_tracker() -> None:
    hub = Hub("gw")
    a, rewound = _rewinding(hub)
    hub.dispatch(_room_state("r1", 40), event_ts=T + 5)  # e.g. someone else's rejoin answer
    hub.dispatch(_event("r1", 41), event_ts=T + 6)
    assert _seqs(a) == [None, 41]
    assert rewound == []  # the snapshot is the fresh state: nothing to ask for


def test_a_re_published_older_room_state_changes_nothing() -> None:
    hub = Hub("gw")
    a, _ = _rewinding(hub)
    hub.dispatch(_room_state("r1", 40), event_ts=T - 5)
    hub.dispatch(_event("r1", 41), event_ts=T - 4)  # its re-published events: duplicates
    assert _seqs(a) == [None]
    hub.dispatch(_event("r1", 101), event_ts=T + 1)
    assert _seqs(a) == [101]


def test_the_late_room_state_of_a_resume_is_not_a_restart() -> None:
    """The engine answered the rejoin at seq 3 while the replay sent up to 5: the answer,
    held during the replay, goes out after it and nothing is reset."""
    hub = Hub("gw")
    a = _authed(hub, [])
    a.begin_hold("r1", last_seq=2)
    hub.dispatch(_room_state("r1", 3), event_ts=T + 30)
    for seq, ts in ((3, T + 29), (4, T + 40), (5, T + 40)):
        a.deliver_replayed("r1", seq, Outgoing(json.dumps({"seq": seq})), ts=ts)
    a.end_hold("r1")
    hub.dispatch(_event("r1", 5), event_ts=T + 40)  # live copy of a replayed one
    hub.dispatch(_event("r1", 6), event_ts=T + 41)
    assert _seqs(a) == [3, 4, 5, None, 6]
