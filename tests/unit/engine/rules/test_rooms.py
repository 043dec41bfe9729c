"""Rooms: create, join, spectate, rejoin, leave, room removal and room lists."""

from __future__ import annotations

import pytest

from parlour_engine.rules import list_rooms
from parlour_protocol.v1 import AudienceKind, ErrorCode
from parlour_protocol.v1 import rooms as r
from parlour_protocol.v1.rooms import RemovalReason, RoomRole, RoomStatus
from tests.support.rules_table import ROOM, Table, emits_of, of_type, rules_config, types, uid


def test_create_broadcasts_then_sends_state_to_the_creator(table: Table) -> None:
    out = table.create(max_players=3, allow_spectators=False)
    assert types(out) == ["games.event.room_created", "games.event.room_state"]
    created, state = out.emits
    assert created.audience.kind is AudienceKind.BROADCAST
    assert created.message.seq is None
    assert state.audience.kind is AudienceKind.USER
    assert state.audience.user_ids == ["u1"]
    snap = state.message.room  # type: ignore[attr-defined]
    assert snap.room_id == ROOM
    assert snap.host_id == "u1"
    assert [p.user_id for p in snap.lobby] == ["u1"]
    assert snap.max_players == 3
    assert snap.allow_spectators is False
    assert out.state is not None
    assert out.state.version == 1
    assert out.state.seq == 0


def test_create_unknown_game_is_refused(table: Table) -> None:
    out = table.send("u1", r.CreateRoom(game_type="chess", room_name="X"))
    assert out.rejected is ErrorCode.UNKNOWN_GAME
    assert out.state is None
    assert out.emits[0].message.room_id == ROOM  # type: ignore[attr-defined]


def test_password_is_stored_salted_and_never_echoed(table: Table) -> None:
    out = table.create(password="hunter2")
    assert table.state is not None
    stored = table.state.password_hash
    assert stored is not None
    assert stored.startswith("scrypt$")
    assert "hunter2" not in stored
    for emit in out.emits:
        dumped = emit.message.model_dump_json()
        assert "hunter2" not in dumped
        assert stored not in dumped
    assert of_type(out, "games.event.room_created")[0].is_password_protected  # type: ignore[attr-defined]
    other = Table(seed=8)
    other.create(password="hunter2")
    assert other.state is not None
    assert other.state.password_hash != stored  # another salt
    other.join("u2", password="hunter2")


def test_create_over_an_existing_room_id_is_refused(table: Table) -> None:
    table.create()
    out = table.send("u2", r.CreateRoom(game_type="bigger_dice", room_name="Other"))
    assert out.rejected is ErrorCode.ROOM_NAME_TAKEN


def test_lobby_is_bounded() -> None:
    table = Table(config=rules_config(scrypt_n=16, max_lobby=3))
    table.lobby_of(3)
    table.err("u4", r.JoinRoom(room_name="Table One"), ErrorCode.ROOM_FULL)


def test_selecting_beyond_the_seats_is_room_full() -> None:
    table = Table()
    table.lobby_of(3)
    table.ok("u1", r.SelectPlayer(room_id=ROOM, target_user_id="u2"))
    table.ok("u1", r.SelectPlayer(room_id=ROOM, target_user_id="u3"))
    table.ok("u4", r.JoinRoom(room_name="Table One"))
    table.ok("u1", r.SelectPlayer(room_id=ROOM, target_user_id="u4"))  # seats full: u1 removed
    table.ok("u1", r.RejoinRoom(room_id=ROOM))  # the host comes back to the lobby
    table.err("u1", r.SelectPlayer(room_id=ROOM, target_user_id="u1"), ErrorCode.ROOM_FULL)


def test_join_sends_state_to_joiner_then_lobby_joined_to_room(table: Table) -> None:
    table.create()
    out = table.join("u2")
    assert types(out) == ["games.event.room_state", "games.event.lobby_joined"]
    state, joined = out.emits
    assert state.audience.user_ids == ["u2"]
    assert joined.audience.kind is AudienceKind.ROOM
    assert joined.audience.user_ids == ["u1", "u2"]
    assert joined.message.seq == 1


@pytest.mark.parametrize(
    ("setup", "user", "password", "code"),
    [
        ("banned", "u3", None, ErrorCode.USER_BANNED),
        ("plain", "u1", None, ErrorCode.ALREADY_IN_ROOM),
        ("plain", "u2", None, ErrorCode.ALREADY_IN_ROOM),
        ("started", "u9", None, ErrorCode.ROOM_NOT_FOUND),
        ("password", "u3", "nope", ErrorCode.WRONG_PASSWORD),
        ("password", "u3", None, ErrorCode.WRONG_PASSWORD),
    ],
)
def test_join_errors(setup: str, user: str, password: str | None, code: ErrorCode) -> None:
    table = Table()
    if setup == "started":
        table.start(2)
    else:
        table.lobby_of(2, **({"password": "pw"} if setup == "password" else {}))
        if setup == "password":
            pass
    if setup == "banned":
        table.ok("u1", r.BanPlayer(room_id=ROOM, target_user_id="u3"))
    if setup == "password":
        table.ok("u3", r.JoinRoom(room_name="Table One", password="pw"))
        table.ok("u3", r.LeaveRoom(room_id=ROOM))
    table.err(user, r.JoinRoom(room_name="Table One", password=password), code)


def test_join_with_no_room_is_room_not_found() -> None:
    table = Table()
    out = table.send("u2", r.JoinRoom(room_name="Nowhere"))
    assert out.rejected is ErrorCode.ROOM_NOT_FOUND


def test_password_attempts_are_limited_per_user_and_window() -> None:
    table = Table(config=rules_config(scrypt_n=16, password_attempts=3, password_window_seconds=60))
    table.create(password="secret")
    for _ in range(3):
        out = table.send("u2", r.JoinRoom(room_name="Table One", password="bad"))
        assert out.rejected is ErrorCode.WRONG_PASSWORD
        assert out.changed  # the attempt is recorded
    # even the right password is refused now, for this user only
    table.err(
        "u2", r.JoinRoom(room_name="Table One", password="secret"), ErrorCode.TOO_MANY_ATTEMPTS
    )
    table.join("u3", password="secret")
    table.advance(61)
    table.join("u2", password="secret")
    assert table.state is not None
    assert "u2" not in table.state.password_failures


def test_spectator_join_and_errors() -> None:
    table = Table(config=rules_config(scrypt_n=16, max_spectators=1))
    table.lobby_of(2, password="pw")
    table.err(
        "u5", r.JoinAsSpectator(room_name="Table One", password="x"), ErrorCode.WRONG_PASSWORD
    )
    out = table.ok("u5", r.JoinAsSpectator(room_name="Table One", password="pw"))
    assert types(out) == ["games.event.room_state", "games.event.spectator_joined"]
    joined = of_type(out, "games.event.spectator_joined")[0]
    assert joined.spectator.user_id == "u5"  # type: ignore[attr-defined]
    assert joined.spectator_count == 1  # type: ignore[attr-defined]
    table.err(
        "u5", r.JoinAsSpectator(room_name="Table One", password="pw"), ErrorCode.ALREADY_IN_ROOM
    )
    table.err(
        "u6",
        r.JoinAsSpectator(room_name="Table One", password="pw"),
        ErrorCode.SPECTATOR_CAPACITY_FULL,
    )
    table.ok("u1", r.BanPlayer(room_id=ROOM, target_user_id="u7"))
    table.err("u7", r.JoinAsSpectator(room_name="Table One", password="pw"), ErrorCode.USER_BANNED)


def test_spectators_not_allowed() -> None:
    table = Table()
    table.create(allow_spectators=False)
    table.err("u5", r.JoinAsSpectator(room_name="Table One"), ErrorCode.SPECTATORS_NOT_ALLOWED)


def test_stop_spectating_works() -> None:
    table = Table()
    table.lobby_of(2)
    table.ok("u5", r.JoinAsSpectator(room_name="Table One"))
    out = table.ok("u5", r.StopSpectating(room_id=ROOM))
    left = emits_of(out, "games.event.spectator_left")[0]
    assert "u5" in left.audience.user_ids
    assert left.message.spectator_count == 0
    assert table.state is not None
    assert table.state.spectators == ()
    table.err("u5", r.StopSpectating(room_id=ROOM), ErrorCode.NOT_A_SPECTATOR)


def test_leave_lobby_member_gets_own_player_left() -> None:
    table = Table()
    table.lobby_of(3)
    out = table.ok("u2", r.LeaveRoom(room_id=ROOM))
    left = emits_of(out, "games.event.player_left")[0]
    assert left.audience.kind is AudienceKind.ROOM
    assert set(left.audience.user_ids) == {"u1", "u2", "u3"}
    assert table.state is not None
    assert [m.user_id for m in table.state.lobby] == ["u1", "u3"]
    table.err("u2", r.LeaveRoom(room_id=ROOM), ErrorCode.NOT_IN_ROOM)


def test_host_leaving_waiting_room_closes_it() -> None:
    table = Table()
    table.lobby_of(3)
    out = table.ok("u1", r.LeaveRoom(room_id=ROOM))
    assert out.state is None
    assert types(out) == ["games.event.room_removed", "games.event.player_left"]
    removed, left = out.emits
    assert removed.audience.kind is AudienceKind.BROADCAST
    assert removed.message.reason is RemovalReason.HOST_LEFT  # type: ignore[attr-defined]
    assert set(left.audience.user_ids) == {"u1", "u2", "u3"}
    assert left.message.seq == 3


def test_last_member_leaving_abandons_room() -> None:
    table = Table()
    table.start(2)
    # finish: both players leave a finished game
    table.play_out()
    table.ok("u1", r.LeaveRoom(room_id=ROOM))
    out = table.ok("u2", r.LeaveRoom(room_id=ROOM))
    assert out.state is None
    assert of_type(out, "games.event.room_removed")[0].reason is RemovalReason.GAME_FINISHED  # type: ignore[attr-defined]


def test_non_host_lobby_left_alone_after_host_removed_abandons() -> None:
    table = Table()
    table.lobby_of(2)
    table.ok("u3", r.JoinRoom(room_name="Table One"))
    table.ok("u1", r.SelectPlayer(room_id=ROOM, target_user_id="u2"))
    table.ok("u1", r.SelectPlayer(room_id=ROOM, target_user_id="u3"))  # host not selected: removed
    assert table.state is not None
    assert table.state.lobby_member("u1") is None
    table.ok("u2", r.LeaveRoom(room_id=ROOM))
    out = table.ok("u3", r.LeaveRoom(room_id=ROOM))
    assert out.state is None
    assert of_type(out, "games.event.room_removed")[0].reason is RemovalReason.ABANDONED  # type: ignore[attr-defined]


def test_rejoin_non_member_and_banned_get_not_in_room() -> None:
    table = Table()
    table.lobby_of(2)
    table.ok("u1", r.BanPlayer(room_id=ROOM, target_user_id="u2"))
    for user in ("u2", "u9"):
        out = table.ok(user, r.RejoinRoom(room_id=ROOM))
        assert types(out) == ["games.event.not_in_room"]
        assert out.emits[0].audience.kind is AudienceKind.CONNECTION
        assert not out.changed


def test_rejoin_by_name_and_unknown_room() -> None:
    table = Table()
    table.lobby_of(2)
    out = table.ok("u2", r.RejoinRoom(room_name="Table One"))
    assert types(out) == ["games.event.room_state"]
    assert not out.changed
    table.err("u2", r.RejoinRoom(room_id="other-room"), ErrorCode.ROOM_NOT_FOUND)
    empty = Table()
    assert empty.send("u2", r.RejoinRoom(room_id=ROOM)).rejected is ErrorCode.ROOM_NOT_FOUND


def test_list_rooms_visibility() -> None:
    waiting = Table()
    waiting.lobby_of(2)
    waiting.ok("u1", r.BanPlayer(room_id=ROOM, target_user_id="u8"))
    running = Table()
    running.start(2)
    assert waiting.state is not None
    assert running.state is not None
    running.state = running.state.model_copy(update={"room_id": "room-2", "room_name": "Two"})
    states = [waiting.state, running.state]
    now = waiting.now

    def listed(user: str) -> dict[str, tuple[bool, RoomRole | None]]:
        out = list_rooms(states, user, "bigger_dice", now)
        return {i.room_id: (i.can_rejoin, i.rejoin_role) for i in out.rooms}

    assert listed("u9") == {ROOM: (False, None)}
    assert listed("u8") == {}  # banned from the waiting one, not a member of the running one
    assert listed("u1") == {ROOM: (True, RoomRole.HOST), "room-2": (True, RoomRole.HOST)}
    assert listed("u2") == {ROOM: (True, RoomRole.LOBBY), "room-2": (True, RoomRole.PLAYER)}
    assert list_rooms(states, "u1", "other_game", now).rooms == []
    item = list_rooms(states, "u2", "bigger_dice", now).rooms[1]
    assert item.status is RoomStatus.IN_PROGRESS
    assert item.player_count == 2


@pytest.mark.parametrize("n", [uid(i) for i in range(2, 4)])
def test_non_room_command_on_room_is_refused(n: str) -> None:
    table = Table()
    table.lobby_of(3)
    out = table.send(n, r.ListRooms())
    assert out.rejected is ErrorCode.INVALID_MESSAGE


def test_a_fault_in_the_rules_refuses_the_command_and_tells_the_sender(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import random

    from parlour_engine.rules import apply, dispatch

    table = Table()
    table.lobby_of(2)
    before = table.state

    def broken(ctx: object, payload: object) -> None:
        raise KeyError("boom")

    monkeypatch.setitem(dispatch.HANDLERS, r.Ready, broken)
    envelope = table.envelope("u2", r.Ready(room_id=ROOM))
    out = apply(before, envelope, random.Random(1), table.now, rules_config())
    assert out.rejected is ErrorCode.INTERNAL_ERROR
    assert out.state is before
    assert not out.changed
    assert out.notes == ("rules_fault:KeyError:'boom'",)
    assert types(out) == ["system.error"]
    assert out.emits[0].audience.kind is AudienceKind.CONNECTION
