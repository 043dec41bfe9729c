"""Delivery by audience, per-socket seq dedup and the replay hold (in-process, no I/O)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from parlour_gateway.auth import Identity
from parlour_gateway.connection import Connection, Outgoing, SeqTracker
from parlour_gateway.events import EventConsumer
from parlour_gateway.hub import LOBBY_SUBSCRIPTION_SECONDS, Hub
from parlour_gateway.metrics import Metrics
from parlour_protocol.v1 import Audience, AudienceKind, CloseCode, EventEnvelope
from parlour_protocol.v1.chat import DirectMessageReceived
from parlour_protocol.v1.rooms import RoomCreated, RoomSnapshot, RoomStateEvent, RoomStatus

GW = "gw-1"


def _conn(hub: Hub, user: str | None, queue_max: int = 64) -> Connection:
    conn = Connection(uuid.uuid4().hex, queue_max)
    hub.add(conn)
    if user is not None:
        conn.identity = Identity(user_id=user, username=user)
        hub.bind(conn)
    return conn


def _event(audience: Audience, room_id: str | None = None, seq: int | None = None) -> EventEnvelope:
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
        type=payload.type, room_id=room_id, seq=seq, audience=audience, payload=payload
    )


def _drain(conn: Connection) -> list[dict[str, object]]:
    out = []
    while not conn.queue.empty():
        out.append(json.loads(conn.queue.get_nowait().text))
    return out


def test_user_audiences_reach_every_local_socket_of_each_listed_user() -> None:
    hub = Hub(GW)
    a1, a2, b, c = _conn(hub, "a"), _conn(hub, "a"), _conn(hub, "b"), _conn(hub, "c")
    for kind in (
        AudienceKind.USER,
        AudienceKind.USERS,
        AudienceKind.ROOM,
        AudienceKind.PLAYERS,
        AudienceKind.SPECTATORS,
    ):
        delivered = hub.dispatch(_event(Audience(kind=kind, user_ids=["a", "b", "a", "zz"])))
        assert delivered == 3
        assert [len(_drain(x)) for x in (a1, a2, b, c)] == [1, 1, 1, 0]


def test_connection_audience_needs_this_gateway() -> None:
    hub = Hub(GW)
    a, b = _conn(hub, "a"), _conn(hub, "b")
    hub.dispatch(
        _event(
            Audience(
                kind=AudienceKind.CONNECTION, connection_id=a.connection_id, gateway_id="other-gw"
            )
        )
    )
    assert _drain(a) == []
    hub.dispatch(
        _event(Audience(kind=AudienceKind.CONNECTION, connection_id=a.connection_id, gateway_id=GW))
    )
    assert len(_drain(a)) == 1
    assert _drain(b) == []


def _lobby_event(game_type: str, room_id: str = "r9") -> EventEnvelope:
    payload = RoomCreated(
        room_id=room_id,
        room_name="Table",
        game_type=game_type,
        host_id="h",
        host_name="h",
        is_password_protected=False,
        max_players=2,
        allow_spectators=True,
    )
    return EventEnvelope(
        type=payload.type, audience=Audience(kind=AudienceKind.BROADCAST), payload=payload
    )


def test_lobby_events_reach_only_sockets_that_listed_that_game() -> None:
    hub = Hub(GW)
    lister, other_game, idle, anon = (
        _conn(hub, "a"),
        _conn(hub, "b"),
        _conn(hub, "c"),
        _conn(hub, None),
    )
    hub.subscribe_lobby(lister, "bigger_dice", now=0.0)
    hub.subscribe_lobby(other_game, "tic_tac_toe", now=0.0)
    hub.subscribe_lobby(anon, "bigger_dice", now=0.0)  # not authenticated: still nothing
    assert hub.dispatch(_lobby_event("bigger_dice"), now=1.0) == 1
    assert [m["type"] for m in _drain(lister)] == ["games.event.room_created"]
    assert _drain(other_game) == _drain(idle) == _drain(anon) == []
    # listing another game moves the subscription
    hub.subscribe_lobby(lister, "tic_tac_toe", now=2.0)
    hub.dispatch(_lobby_event("bigger_dice"), now=3.0)
    assert _drain(lister) == []
    assert hub.dispatch(_lobby_event("tic_tac_toe"), now=3.0) == 2


def test_lobby_subscription_ends_after_its_time_a_room_state_or_the_socket() -> None:
    hub = Hub(GW)
    a, b, c = _conn(hub, "a"), _conn(hub, "b"), _conn(hub, "c")
    for conn in (a, b, c):
        hub.subscribe_lobby(conn, "bigger_dice", now=0.0)
    hub.dispatch(_room_state_for("b"), now=1.0)  # b joined a room
    hub.remove(c)
    assert hub.dispatch(_lobby_event("bigger_dice"), now=2.0) == 1
    assert [m["type"] for m in _drain(a)] == ["games.event.room_created"]
    assert [m["type"] for m in _drain(b)] == ["games.event.room_state"]
    assert hub.dispatch(_lobby_event("bigger_dice"), now=LOBBY_SUBSCRIPTION_SECONDS + 1) == 0
    assert hub.lobby == {}  # nothing left behind
    hub.subscribe_lobby(a, "bigger_dice", now=LOBBY_SUBSCRIPTION_SECONDS + 2)  # listed again
    assert hub.dispatch(_lobby_event("bigger_dice"), now=LOBBY_SUBSCRIPTION_SECONDS + 3) == 1


def _room_state_for(user: str) -> EventEnvelope:
    payload = RoomStateEvent(
        room=RoomSnapshot(
            room_id="r1",
            room_name="t",
            game_type="bigger_dice",
            status=RoomStatus.WAITING,
            host_id=user,
            host_name=user,
            max_players=2,
            created_at=datetime.now(UTC),
            last_seq=1,
        )
    )
    return EventEnvelope(
        type=payload.type,
        room_id="r1",
        payload=payload,
        audience=Audience(kind=AudienceKind.USER, user_ids=[user]),
    )


def test_one_encoding_shared_by_every_socket() -> None:
    hub = Hub(GW)
    a, b = _conn(hub, "a"), _conn(hub, "b")
    hub.dispatch(_event(Audience(kind=AudienceKind.USERS, user_ids=["a", "b"])))
    assert a.queue.get_nowait() is b.queue.get_nowait()


def test_duplicate_room_seqs_are_dropped_per_socket() -> None:
    hub = Hub(GW)
    a = _conn(hub, "a")
    room = Audience(kind=AudienceKind.ROOM, user_ids=["a"])
    for seq in (1, 2, 2, 1, 3):
        hub.dispatch(_event(room, "r1", seq))
    hub.dispatch(_event(room, "r2", 1))  # another room has its own seqs
    hub.dispatch(_event(room, "r1", None))  # unsequenced events always go out
    assert [m["seq"] for m in _drain(a)] == [1, 2, 3, 1, None]
    late = _conn(hub, "a")  # a new socket has seen nothing yet
    hub.dispatch(_event(room, "r1", 3))
    assert [m["seq"] for m in _drain(late)] == [3]


def test_removed_sockets_get_nothing() -> None:
    hub = Hub(GW)
    a = _conn(hub, "a")
    hub.remove(a)
    assert hub.dispatch(_event(Audience(kind=AudienceKind.USER, user_ids=["a"]))) == 0
    assert "a" not in hub.by_user
    assert hub.local_users == set()


def test_local_users_follow_the_authenticated_sockets() -> None:
    """The bytes index the event filter reads (`local_users`) holds a user while any of
    their sockets is here, UTF-8 encoded as in the records' `p-to` header."""
    hub = Hub(GW)
    first, second = _conn(hub, "zoë"), _conn(hub, "zoë")
    other = _conn(hub, "b")
    assert hub.local_users == {"zoë".encode(), b"b"}
    hub.remove(first)
    assert "zoë".encode() in hub.local_users  # another socket of hers is still here
    hub.remove(second)
    hub.remove(other)
    assert hub.local_users == set()


def test_full_queue_asks_to_close_as_slow_consumer() -> None:
    hub = Hub(GW)
    a = _conn(hub, "a", queue_max=2)
    for _ in range(3):
        hub.dispatch(_event(Audience(kind=AudienceKind.USER, user_ids=["a"])))
    assert a.close_code is CloseCode.SLOW_CONSUMER
    assert a.closing.is_set()
    assert a.queue.qsize() == 2


def test_replay_hold_gives_every_event_once_in_order() -> None:
    hub = Hub(GW)
    a = _conn(hub, "a")
    room = Audience(kind=AudienceKind.ROOM, user_ids=["a"])
    a.begin_hold("r1", last_seq=2)
    hub.dispatch(_event(room, "r1", 5))  # live, while the replay reads the stream
    hub.dispatch(_event(room, "r1", 2))  # the client already has it
    hub.dispatch(_event(room, "r1", 6))
    assert _drain(a) == []
    for seq in (3, 4, 5):
        a.deliver_replayed("r1", seq, Outgoing(json.dumps({"seq": seq})))
    a.end_hold("r1")
    assert [m["seq"] for m in _drain(a)] == [3, 4, 5, 6]
    assert not a.holding("r1")


def test_room_state_vouches_for_older_seqs() -> None:
    hub = Hub(GW)
    a = _conn(hub, "a")
    snapshot = RoomSnapshot(
        room_id="r1",
        room_name="t",
        game_type="bigger_dice",
        status=RoomStatus.WAITING,
        host_id="a",
        host_name="a",
        max_players=2,
        created_at=datetime.now(UTC),
        last_seq=7,
    )
    payload = RoomStateEvent(room=snapshot)
    hub.dispatch(
        EventEnvelope(
            type=payload.type,
            room_id="r1",
            payload=payload,
            audience=Audience(kind=AudienceKind.USER, user_ids=["a"]),
        )
    )
    room = Audience(kind=AudienceKind.ROOM, user_ids=["a"])
    hub.dispatch(_event(room, "r1", 7))  # a re-published old event
    hub.dispatch(_event(room, "r1", 8))
    assert [m["type"] for m in _drain(a)] == [
        "games.event.room_state",
        "chat.event.message_received",
    ]


def test_seq_tracker_bounds_memory() -> None:
    tracker = SeqTracker()
    for seq in range(5000, 8000, 2):  # gaps forever: a socket that joined mid-stream
        tracker.mark(seq)
    assert len(tracker.above) <= 1025
    assert tracker.seen(7998)


def test_a_delivery_fault_costs_only_its_own_event() -> None:
    """A bug that raises while one event is dispatched is counted and logged; the consumer's
    later records of the same fetch are still delivered (raising would skip them for good)."""
    hub = Hub("gw-1")
    alice = _conn(hub, "alice")
    metrics = Metrics()
    consumer = EventConsumer(None, "events", hub, metrics)
    real_dispatch = hub.dispatch
    calls = 0

    def flaky(
        envelope: EventEnvelope, event_ts: float | None = None, now: float | None = None
    ) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("bug in delivery")
        return real_dispatch(envelope, event_ts, now)

    hub.dispatch = flaky  # type: ignore[method-assign]
    to_alice = Audience(kind=AudienceKind.USER, user_ids=["alice"])
    assert consumer.handle(_event(to_alice).model_dump_json().encode()) == 0
    assert consumer.handle(_event(to_alice).model_dump_json().encode()) == 1
    assert len(_drain(alice)) == 1
    assert metrics.registry.get_sample_value("parlour_gateway_bad_events_total") == 1
