"""Lobby: selection, moderation, the ready phase and the game start."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from parlour_protocol.v1 import AudienceKind, ErrorCode
from parlour_protocol.v1 import rooms as r
from parlour_protocol.v1.rooms import RemovalReason, RoomStatus
from tests.support.rules_table import ROOM, Table, emits_of, of_type, types


def _lobby() -> Table:
    """u1 host, u2 u3 u4 in the lobby of a 2-seat room, u5 spectating, u6 banned."""
    table = Table()
    table.lobby_of(2)
    table.join("u3")
    table.join("u4")
    table.ok("u5", r.JoinAsSpectator(room_name="Table One"))
    table.ok("u1", r.BanPlayer(room_id=ROOM, target_user_id="u6"))
    return table


T = "target_user_id"


@pytest.mark.parametrize(
    ("actor", "command", "code"),
    [
        ("u2", r.SelectPlayer(room_id=ROOM, target_user_id="u3"), ErrorCode.NOT_ADMIN),
        ("u1", r.SelectPlayer(room_id=ROOM, target_user_id="u9"), ErrorCode.PLAYER_NOT_IN_LOBBY),
        ("u1", r.SelectPlayer(room_id=ROOM, target_user_id="u5"), ErrorCode.PLAYER_NOT_IN_LOBBY),
        ("u1", r.DeselectPlayer(room_id=ROOM, target_user_id="u3"), ErrorCode.NOT_SELECTED),
        ("u2", r.DeselectPlayer(room_id=ROOM, target_user_id="u3"), ErrorCode.NOT_ADMIN),
        ("u2", r.KickPlayer(room_id=ROOM, target_user_id="u3"), ErrorCode.NOT_ADMIN),
        ("u1", r.KickPlayer(room_id=ROOM, target_user_id="u1"), ErrorCode.CANNOT_KICK_SELF),
        ("u1", r.KickPlayer(room_id=ROOM, target_user_id="u9"), ErrorCode.PLAYER_NOT_IN_LOBBY),
        ("u2", r.KickSpectator(room_id=ROOM, target_user_id="u5"), ErrorCode.NOT_ADMIN),
        ("u1", r.KickSpectator(room_id=ROOM, target_user_id="u1"), ErrorCode.CANNOT_KICK_SELF),
        ("u1", r.KickSpectator(room_id=ROOM, target_user_id="u3"), ErrorCode.SPECTATOR_NOT_FOUND),
        ("u2", r.BanPlayer(room_id=ROOM, target_user_id="u3"), ErrorCode.NOT_ADMIN),
        ("u1", r.BanPlayer(room_id=ROOM, target_user_id="u1"), ErrorCode.CANNOT_BAN_SELF),
        ("u2", r.UnbanPlayer(room_id=ROOM, target_user_id="u6"), ErrorCode.NOT_ADMIN),
        ("u1", r.UnbanPlayer(room_id=ROOM, target_user_id="u3"), ErrorCode.NOT_BANNED),
        ("u2", r.StartGame(room_id=ROOM), ErrorCode.NOT_ADMIN),
        ("u1", r.StartGame(room_id=ROOM), ErrorCode.PLAYERS_NOT_READY),
        ("u2", r.Ready(room_id=ROOM), ErrorCode.NOT_SELECTED),
        ("u5", r.SetReady(room_id=ROOM, is_ready=True), ErrorCode.NOT_SELECTED),
        (
            "u1",
            r.DesignateAdminSpectator(room_id=ROOM, target_user_id="u3"),
            ErrorCode.SPECTATOR_NOT_FOUND,
        ),
        ("u2", r.DesignateAdminSpectator(room_id=ROOM, target_user_id="u5"), ErrorCode.NOT_ADMIN),
        ("u1", r.LeaveRoom(room_id="another-room"), ErrorCode.ROOM_NOT_FOUND),
    ],
)
def test_lobby_errors(actor: str, command: Any, code: ErrorCode) -> None:
    table = _lobby()
    out = table.err(actor, command, code)
    error = out.emits[0]
    assert error.message.type == "system.error"
    assert error.message.code is code  # type: ignore[attr-defined]
    assert error.audience.connection_id == f"c-{actor}"


def test_select_twice_is_already_selected() -> None:
    table = Table()
    table.lobby_of(3)
    table.ok("u1", r.SelectPlayer(room_id=ROOM, target_user_id="u2"))
    table.err("u1", r.SelectPlayer(room_id=ROOM, target_user_id="u2"), ErrorCode.ALREADY_SELECTED)


def test_filling_the_seats_removes_the_unselected_and_starts_ready_phase() -> None:
    table = _lobby()
    out1 = table.ok("u1", r.SelectPlayer(room_id=ROOM, target_user_id="u2"))
    assert types(out1) == ["games.event.player_selected"]
    out = table.ok("u1", r.SelectPlayer(room_id=ROOM, target_user_id="u3"))
    assert types(out) == [
        "games.event.player_selected",
        "games.event.removed_from_game",
        "games.event.removed_from_game",
        "games.event.game_starting",
        "games.event.room_state",
    ]
    removed = emits_of(out, "games.event.removed_from_game")
    assert [e.audience.user_ids for e in removed] == [["u1"], ["u4"]]
    assert removed[0].message.reason == "not_selected"
    starting = emits_of(out, "games.event.game_starting")[0]
    assert starting.audience.user_ids == ["u2", "u3", "u5"]
    assert emits_of(out, "games.event.room_state")[0].audience.user_ids == ["u2", "u3", "u5"]
    assert table.state is not None
    assert table.state.status is RoomStatus.WAITING
    assert [m.user_id for m in table.state.lobby] == ["u2", "u3"]
    # the host was not selected: they may still rejoin, landing in the lobby
    back = table.ok("u1", r.RejoinRoom(room_id=ROOM))
    assert types(back) == ["games.event.room_state", "games.event.lobby_joined"]


def test_deselect_kick_ban_unban_events() -> None:
    table = _lobby()
    table.ok("u1", r.SelectPlayer(room_id=ROOM, target_user_id="u2"))
    out = table.ok("u1", r.DeselectPlayer(room_id=ROOM, target_user_id="u2"))
    assert types(out) == ["games.event.player_deselected", "games.event.selected_players_updated"]
    assert of_type(out, "games.event.selected_players_updated")[0].selected_players == []  # type: ignore[attr-defined]
    out = table.ok("u1", r.KickPlayer(room_id=ROOM, target_user_id="u3"))
    kicked = emits_of(out, "games.event.player_kicked")[0]
    assert "u3" in kicked.audience.user_ids  # the kicked user hears it too
    table.join("u3")  # a kicked user may come back
    out = table.ok("u1", r.BanPlayer(room_id=ROOM, target_user_id="u3"))
    assert "u3" in emits_of(out, "games.event.player_banned")[0].audience.user_ids
    assert table.state is not None
    assert table.state.lobby_member("u3") is None
    table.err("u3", r.JoinRoom(room_name="Table One"), ErrorCode.USER_BANNED)
    out = table.ok("u1", r.UnbanPlayer(room_id=ROOM, target_user_id="u3"))
    assert types(out) == ["games.event.player_unbanned"]
    table.join("u3")


def test_kick_spectator_works() -> None:
    table = _lobby()
    out = table.ok("u1", r.KickSpectator(room_id=ROOM, target_user_id="u5"))
    assert types(out) == ["games.event.spectator_kicked", "system.error"]
    kicked, notice = out.emits
    assert "u5" in kicked.audience.user_ids
    assert notice.audience.user_ids == ["u5"]
    assert notice.message.code is ErrorCode.KICKED_FROM_ROOM  # type: ignore[attr-defined]
    assert table.state is not None
    assert table.state.spectators == ()


def test_designate_admin_spectator() -> None:
    table = _lobby()
    out = table.ok("u1", r.DesignateAdminSpectator(room_id=ROOM, target_user_id="u5"))
    assert types(out) == ["games.event.admin_spectator_designated"]
    assert table.state is not None
    assert table.state.admin_spectator_id == "u5"


def _ready_phase() -> Table:
    table = Table()
    table.lobby_of(3)
    for u in ("u1", "u2", "u3"):
        table.ok("u1", r.SelectPlayer(room_id=ROOM, target_user_id=u))
    return table


def test_unready_works_and_game_starts_when_all_ready() -> None:
    table = _ready_phase()
    out = table.ok("u2", r.SetReady(room_id=ROOM, is_ready=True))
    assert of_type(out, "games.event.player_ready_changed")[0].is_ready is True  # type: ignore[attr-defined]
    out = table.ok("u2", r.SetReady(room_id=ROOM, is_ready=False))
    assert of_type(out, "games.event.player_ready_changed")[0].is_ready is False  # type: ignore[attr-defined]
    assert table.state is not None
    member = table.state.lobby_member("u2")
    assert member is not None
    assert member.is_ready is False
    table.ok("u1", r.Ready(room_id=ROOM))
    table.ok("u3", r.Ready(room_id=ROOM))
    assert table.state.status is RoomStatus.WAITING
    table.err("u1", r.StartGame(room_id=ROOM), ErrorCode.PLAYERS_NOT_READY)
    out = table.ok("u2", r.Ready(room_id=ROOM))
    assert types(out) == [
        "games.event.player_ready",
        "games.event.game_started",
        "games.event.turn_changed",
        "games.event.room_removed",
    ]
    started = of_type(out, "games.event.game_started")[0]
    assert [p.id for p in started.players] == ["u1", "u2", "u3"]  # type: ignore[attr-defined]
    assert started.first_turn == "u1"  # type: ignore[attr-defined]
    removed = emits_of(out, "games.event.room_removed")[0]
    assert removed.audience.kind is AudienceKind.BROADCAST
    assert removed.message.reason is RemovalReason.GAME_STARTED
    assert table.state.status is RoomStatus.IN_PROGRESS
    assert table.state.lobby_chat_enabled is False
    assert [m.user_id for m in table.state.players] == ["u1", "u2", "u3"]
    assert table.state.lobby == ()
    table.err("u1", r.StartGame(room_id=ROOM), ErrorCode.GAME_IN_PROGRESS)
    table.err("u1", r.SelectPlayer(room_id=ROOM, target_user_id="u2"), ErrorCode.GAME_IN_PROGRESS)
    table.err("u2", r.Ready(room_id=ROOM), ErrorCode.GAME_IN_PROGRESS)


def test_selection_order_is_seat_order() -> None:
    table = Table()
    table.lobby_of(3)
    for u in ("u3", "u1", "u2"):
        table.ok("u1", r.SelectPlayer(room_id=ROOM, target_user_id=u))
    for u in ("u1", "u2", "u3"):
        out = table.ok(u, r.Ready(room_id=ROOM))
    assert table.state is not None
    assert [m.user_id for m in table.state.players] == ["u3", "u1", "u2"]
    assert table.state.current_turn == "u3"
    turn = of_type(out, "games.event.turn_changed")[0]
    assert turn.turn_deadline == table.now + timedelta(seconds=30)  # type: ignore[attr-defined]
    assert [(t.kind.value, t.token) for t in out.timers] == [("turn", "1")]


def test_kicking_the_last_lobby_member_abandons_the_room() -> None:
    table = Table()
    table.lobby_of(2)
    table.join("u3")
    table.ok("u1", r.SelectPlayer(room_id=ROOM, target_user_id="u2"))
    table.ok("u1", r.SelectPlayer(room_id=ROOM, target_user_id="u3"))  # host left out
    table.ok("u1", r.KickPlayer(room_id=ROOM, target_user_id="u2"))
    out = table.ok("u1", r.BanPlayer(room_id=ROOM, target_user_id="u3"))
    assert out.state is None
    assert types(out) == [
        "games.event.player_banned",
        "games.event.selected_players_updated",
        "games.event.room_removed",
    ]
    assert of_type(out, "games.event.room_removed")[0].reason is RemovalReason.ABANDONED  # type: ignore[attr-defined]
