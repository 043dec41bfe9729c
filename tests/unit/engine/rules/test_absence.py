"""Turn timeouts, disconnects, the grace, the vote and auto-play: a game never stalls."""

from __future__ import annotations

from datetime import timedelta

import pytest

from parlour_protocol.v1 import AudienceKind, ErrorCode
from parlour_protocol.v1 import rooms as r
from parlour_protocol.v1.games import bigger_dice as dice
from parlour_protocol.v1.internal import TimerFired, TimerKind
from parlour_protocol.v1.rooms import RoomStatus
from tests.support.rules_table import ROOM, ScriptedRng, Table, emits_of, of_type, types

ROLLED = "games.event.bigger_dice.rolled"


def test_turn_timeout_rolls_for_the_player() -> None:
    table = Table()
    table.start(2)
    table.advance(30)
    out = table.fire_turn()
    assert out.rejected is None
    assert types(out)[:2] == [ROLLED, "games.event.turn_changed"]
    rolled = of_type(out, ROLLED)[0]
    assert rolled.player_id == "u1"  # type: ignore[attr-defined]
    assert rolled.auto is True  # type: ignore[attr-defined]
    assert table.state is not None
    assert table.state.current_turn == "u2"
    assert out.timers[0].due == table.now + timedelta(seconds=30)


def test_stale_turn_timer_has_no_effect() -> None:
    table = Table()
    table.start(2)
    table.roll()
    before = table.state
    out = table.send(
        "system", TimerFired(room_id=ROOM, kind=TimerKind.TURN, token="1"), system=True
    )
    assert out.emits == ()
    assert not out.changed
    assert out.state is before


def test_timer_for_vanished_room_is_silent() -> None:
    table = Table()
    out = table.send(
        "system", TimerFired(room_id=ROOM, kind=TimerKind.TURN, token="1"), system=True
    )
    assert out.state is None
    assert out.emits == ()


def _disconnected(n: int = 3, who: str = "u2") -> Table:
    table = Table()
    table.start(n)
    out = table.disconnect(who)
    assert types(out) == ["games.event.player_disconnected"]
    event = out.emits[0]
    assert event.audience.kind is AudienceKind.ROOM
    assert event.message.timeout_at == table.now + timedelta(seconds=30)  # type: ignore[attr-defined]
    assert [(t.kind, t.token) for t in out.timers] == [(TimerKind.DISCONNECT_GRACE, f"{who}:1")]
    return table


def test_disconnect_only_counts_for_present_players_of_running_games() -> None:
    table = _disconnected()
    again = table.disconnect("u2")
    assert again.emits == ()
    assert not again.changed
    lobby = Table()
    lobby.lobby_of(2)
    assert lobby.disconnect("u2").emits == ()


def test_leave_mid_game_is_a_disconnect() -> None:
    table = Table()
    table.start(2)
    out = table.ok("u2", r.LeaveRoom(room_id=ROOM))
    assert types(out) == ["games.event.player_disconnected"]
    assert table.state is not None
    assert table.state.player("u2") is not None


@pytest.mark.parametrize(
    ("voter", "target", "advance", "code"),
    [
        ("u1", "u2", 10, ErrorCode.DISCONNECT_TIMEOUT_ACTIVE),
        ("u1", "u3", 31, ErrorCode.PLAYER_NOT_DISCONNECTED),
        ("u9", "u2", 31, ErrorCode.INVALID_PLAYER),
        ("u1", "u9", 31, ErrorCode.INVALID_PLAYER),
        ("u2", "u2", 31, ErrorCode.CANNOT_KICK_SELF),
    ],
)
def test_vote_errors(voter: str, target: str, advance: int, code: ErrorCode) -> None:
    table = _disconnected()
    table.advance(advance)
    table.err(voter, r.VoteKickDisconnected(room_id=ROOM, target_user_id=target), code)


def test_vote_needs_running_game() -> None:
    table = Table()
    table.lobby_of(2)
    table.err(
        "u1",
        r.VoteKickDisconnected(room_id=ROOM, target_user_id="u2"),
        ErrorCode.GAME_NOT_IN_PROGRESS,
    )


def test_disconnected_player_who_votes_is_back_and_eligible() -> None:
    # voting is an action: it ends the voter's own pending disconnect first
    table = _disconnected(4, "u2")
    table.disconnect("u3")
    table.advance(31)
    out = table.ok("u3", r.VoteKickDisconnected(room_id=ROOM, target_user_id="u2"))
    assert types(out) == ["games.event.player_rejoined", "games.event.kick_vote_received"]
    assert table.state is not None
    assert table.state.disconnect("u3") is None
    assert table.state.disconnect("u2") is not None


@pytest.mark.parametrize(
    ("n", "votes_to_pass"),
    [(2, 1), (3, 2), (4, 2), (5, 3), (10, 5)],
)
def test_vote_passes_on_strict_majority(n: int, votes_to_pass: int) -> None:
    # eligible voters = n - 1 (everyone but the target); strict majority of them
    table = _disconnected(n, "u2")
    table.advance(31)
    voters = [f"u{i}" for i in range(1, n + 1) if i != 2]
    for i, voter in enumerate(voters[:votes_to_pass], start=1):
        out = table.ok(voter, r.VoteKickDisconnected(room_id=ROOM, target_user_id="u2"))
        vote = of_type(out, "games.event.kick_vote_received")[0]
        assert (vote.votes, vote.votes_required) == (i, (n - 1) // 2 + 1)  # type: ignore[attr-defined]
        passed = "games.event.player_auto_enabled" in types(out)
        assert passed == (i == votes_to_pass)
        if i < votes_to_pass:
            table.err(
                voter,
                r.VoteKickDisconnected(room_id=ROOM, target_user_id="u2"),
                ErrorCode.ALREADY_VOTED,
            )
    enabled = of_type(out, "games.event.player_auto_enabled")[0]
    assert enabled.reason == "vote_kick"  # type: ignore[attr-defined]
    assert table.state is not None
    assert table.state.is_banned("u2")
    assert table.state.auto_player("u2") is not None
    # the voted-out player is rolled for as soon as their turn comes, and cannot come back
    rejoin = table.ok("u2", r.RejoinRoom(room_id=ROOM))
    assert types(rejoin) == ["games.event.not_in_room"]
    table.err(
        "u1",
        r.VoteKickDisconnected(room_id=ROOM, target_user_id="u2"),
        ErrorCode.PLAYER_ALREADY_AUTO,
    )


def test_voted_out_player_is_auto_rolled_immediately_on_their_turn() -> None:
    table = _disconnected(2, "u2")
    table.advance(31)
    table.ok("u1", r.VoteKickDisconnected(room_id=ROOM, target_user_id="u2"))
    table.rng = ScriptedRng([6, 1])  # type: ignore[assignment]
    out = table.roll("u1")
    rolls = of_type(out, ROLLED)
    assert [(x.player_id, x.auto) for x in rolls] == [("u1", False), ("u2", True)]  # type: ignore[attr-defined]
    assert table.state is not None
    assert table.state.current_turn == "u1"


def test_game_with_everyone_gone_still_ends_by_timers() -> None:
    table = Table()
    table.start(2)
    table.disconnect("u1")
    table.disconnect("u2")
    for _ in range(2000):
        assert table.state is not None
        if table.state.status is not RoomStatus.IN_PROGRESS:
            break
        table.advance(30)
        out = table.fire_turn()
        assert out.rejected is None
    assert table.state is not None
    assert table.state.status is RoomStatus.FINISHED


def test_enable_auto_play_and_regain_control_on_rejoin() -> None:
    table = Table()
    table.start(3)
    out = table.ok("u2", dice.EnableAutoPlay(room_id=ROOM))
    assert types(out) == ["games.event.player_auto_enabled"]
    table.err("u2", dice.EnableAutoPlay(room_id=ROOM), ErrorCode.ALREADY_AUTO_PLAY)
    table.err("u9", dice.EnableAutoPlay(room_id=ROOM), ErrorCode.NOT_A_PLAYER)
    out = table.roll("u1")  # u2 is played by the server right away, then it is u3's turn
    assert [x.player_id for x in of_type(out, ROLLED)] == ["u1", "u2"]  # type: ignore[attr-defined]
    assert table.state is not None
    assert table.state.current_turn == "u3"
    table.disconnect("u3")
    out = table.ok("u2", r.RejoinRoom(room_id=ROOM))
    assert types(out) == [
        "games.event.room_state",
        "games.event.bigger_dice.state",
        "games.event.player_rejoined",
        "games.event.player_auto_disabled",
        "games.event.player_disconnected",
    ]
    pending = emits_of(out, "games.event.player_disconnected")[0]
    assert pending.audience.user_ids == ["u2"]
    assert pending.message.seq is None
    assert table.state.auto_player("u2") is None


def test_enable_auto_play_when_it_is_your_turn_rolls_now() -> None:
    table = Table()
    table.start(2)
    out = table.ok("u1", dice.EnableAutoPlay(room_id=ROOM))
    assert types(out)[:2] == ["games.event.player_auto_enabled", ROLLED]


def test_enable_auto_play_needs_running_game() -> None:
    table = Table()
    table.lobby_of(2)
    table.err("u1", dice.EnableAutoPlay(room_id=ROOM), ErrorCode.GAME_NOT_IN_PROGRESS)


def test_rejoin_clears_disconnect_and_votes() -> None:
    table = _disconnected(3, "u2")
    out = table.ok("u2", r.RejoinRoom(room_id=ROOM))
    assert "games.event.player_rejoined" in types(out)
    assert table.state is not None
    assert table.state.disconnect("u2") is None
    table.advance(31)
    table.err(
        "u1",
        r.VoteKickDisconnected(room_id=ROOM, target_user_id="u2"),
        ErrorCode.PLAYER_NOT_DISCONNECTED,
    )


def test_all_auto_players_chain_is_bounded() -> None:
    from parlour_engine.games.bigger_dice import DiceConfig
    from tests.support.rules_table import rules_config

    table = Table(config=rules_config(scrypt_n=16, dice=DiceConfig(auto_roll_guard=5)))
    table.start(2)
    table.ok("u2", dice.EnableAutoPlay(room_id=ROOM))
    out = table.ok("u1", dice.EnableAutoPlay(room_id=ROOM))
    assert len(of_type(out, ROLLED)) == 5
    assert table.state is not None
    assert table.state.status is RoomStatus.IN_PROGRESS
    assert [t.token for t in out.timers] == [str(table.state.turn_number)]


@pytest.mark.parametrize(
    ("actor", "target", "code"),
    [
        ("u1", "u1", ErrorCode.GAME_ERROR),  # not auto-played
        ("u1", "u2", ErrorCode.NOT_YOUR_TURN),
        ("u9", "u1", ErrorCode.NOT_IN_ROOM),
    ],
)
def test_auto_roll_errors(actor: str, target: str, code: ErrorCode) -> None:
    table = Table()
    table.start(2)
    table.err(actor, dice.AutoRoll(room_id=ROOM, target_user_id=target), code)


def test_auto_roll_for_stuck_auto_player() -> None:
    from parlour_engine.games.bigger_dice import DiceConfig
    from tests.support.rules_table import rules_config

    table = Table(config=rules_config(scrypt_n=16, dice=DiceConfig(auto_roll_guard=1)))
    table.start(2)
    table.ok("u2", dice.EnableAutoPlay(room_id=ROOM))
    table.ok("u1", dice.EnableAutoPlay(room_id=ROOM))  # one server roll, then it stops
    assert table.state is not None
    stuck = table.state.current_turn
    assert stuck is not None
    out = table.ok("u1", dice.AutoRoll(room_id=ROOM, target_user_id=stuck))
    assert of_type(out, ROLLED)[0].player_id == stuck  # type: ignore[attr-defined]
    assert of_type(out, ROLLED)[0].auto is True  # type: ignore[attr-defined]
