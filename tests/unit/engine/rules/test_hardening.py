"""Hardening of the pure rules: caps on every collection a client can grow, a ban that takes
a seat away, actions ending a pending disconnect, look-alike room names, room lifetimes."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from parlour_engine.games.bigger_dice import HISTORY_KEEP, DiceConfig, DiceState
from parlour_engine.rules import Outcome, RoomState, RulesConfig, presence_changed
from parlour_engine.rules.queries import PRESENCE_AUDIENCE_CHUNK
from parlour_protocol.v1 import AudienceKind, ErrorCode, RedisKeys
from parlour_protocol.v1 import chat as c
from parlour_protocol.v1 import rooms as r
from parlour_protocol.v1.games import bigger_dice as dice
from parlour_protocol.v1.internal import PresenceChanged, TimerFired, TimerKind
from parlour_protocol.v1.keys import fold_room_name
from parlour_protocol.v1.limits import MAX_BANNED_PER_ROOM, MAX_MUTED_PER_USER
from parlour_protocol.v1.rooms import RemovalReason, RoomStatus
from tests.support.rules_table import (
    FAST,
    ROOM,
    ScriptedRng,
    Table,
    of_type,
    rules_config,
    types,
    uid,
)

ROLLED = "games.event.bigger_dice.rolled"
REJOINED = "games.event.player_rejoined"


def made_up(n: int) -> str:
    """A 64-character user id nobody has."""
    return f"ghost{n:059d}"


def error_message(table: Table) -> str:
    errors = of_type(table.outcomes[-1], "system.error")
    return str(errors[0].message)  # type: ignore[attr-defined]


# --- 1. caps ----------------------------------------------------------------------------


def test_ban_list_is_capped_with_limit_reached() -> None:
    table = Table()
    table.lobby_of(2)
    for n in range(MAX_BANNED_PER_ROOM):
        table.ok("u1", r.BanPlayer(room_id=ROOM, target_user_id=made_up(n)))
    table.err("u1", r.BanPlayer(room_id=ROOM, target_user_id=made_up(999)), ErrorCode.LIMIT_REACHED)
    assert "MAX_BANNED_PER_ROOM" in error_message(table)
    assert str(MAX_BANNED_PER_ROOM) in error_message(table)
    # a member can no longer be banned either, and banning a banned id is still a no-op
    table.err("u1", r.BanPlayer(room_id=ROOM, target_user_id="u2"), ErrorCode.LIMIT_REACHED)
    again = table.ok("u1", r.BanPlayer(room_id=ROOM, target_user_id=made_up(0)))
    assert not again.changed
    # an unban frees a slot
    table.ok("u1", r.UnbanPlayer(room_id=ROOM, target_user_id=made_up(0)))
    table.ok("u1", r.BanPlayer(room_id=ROOM, target_user_id="u2"))
    assert table.state is not None
    assert len(table.state.banned) == MAX_BANNED_PER_ROOM


def test_mute_list_is_capped_per_member_with_limit_reached() -> None:
    table = Table()
    table.lobby_of(2)
    for n in range(MAX_MUTED_PER_USER):
        table.ok("u2", c.MuteUser(room_id=ROOM, target_user_id=made_up(n)))
    table.err("u2", c.MuteUser(room_id=ROOM, target_user_id="u1"), ErrorCode.LIMIT_REACHED)
    assert "MAX_MUTED_PER_USER" in error_message(table)
    # muting an already muted id is still answered; another member has their own list
    assert table.ok("u2", c.MuteUser(room_id=ROOM, target_user_id=made_up(3))).changed is False
    table.ok("u1", c.MuteUser(room_id=ROOM, target_user_id="u2"))
    table.ok("u2", c.UnmuteUser(room_id=ROOM, target_user_id=made_up(3)))
    table.ok("u2", c.MuteUser(room_id=ROOM, target_user_id="u1"))
    assert table.state is not None
    assert len(table.state.mutes["u2"]) == MAX_MUTED_PER_USER


def _leave(table: Table) -> None:
    table.ok("u2", r.LeaveRoom(room_id=ROOM))


def _kick(table: Table) -> None:
    table.ok("u1", r.KickPlayer(room_id=ROOM, target_user_id="u2"))


def _ban(table: Table) -> None:
    table.ok("u1", r.BanPlayer(room_id=ROOM, target_user_id="u2"))


def _not_selected(table: Table) -> None:
    # u1 and u3 fill both seats: u2 leaves the lobby
    table.ok("u1", r.SelectPlayer(room_id=ROOM, target_user_id="u1"))
    table.ok("u1", r.SelectPlayer(room_id=ROOM, target_user_id="u3"))


@pytest.mark.parametrize("goes", [_leave, _kick, _ban, _not_selected])
def test_mutes_go_with_the_member_who_leaves(goes: object) -> None:
    table = Table()
    table.create(max_players=2)
    table.join("u2")
    table.join("u3")
    table.ok("u2", c.MuteUser(room_id=ROOM, target_user_id="u1"))
    table.ok("u3", c.MuteUser(room_id=ROOM, target_user_id="u1"))
    goes(table)  # type: ignore[operator]
    assert table.state is not None
    assert table.state.mutes == {"u3": ("u1",)}


def test_spectator_mutes_go_when_they_stop_watching() -> None:
    table = Table()
    table.lobby_of(2)
    table.ok("u9", r.JoinAsSpectator(room_name="Table One"))
    table.ok("u9", c.MuteUser(room_id=ROOM, target_user_id="u1"))
    table.ok("u9", r.StopSpectating(room_id=ROOM))
    assert table.state is not None
    assert table.state.mutes == {}


def test_password_failures_are_capped_by_users_and_forgotten_after_the_window() -> None:
    config = rules_config(scrypt_n=16, password_failure_users=3)
    table = Table(config=config)
    table.create(password="secret")
    for n in range(2, 5):
        table.err(
            uid(n), r.JoinRoom(room_name="Table One", password="nope"), ErrorCode.WRONG_PASSWORD
        )
    # the table is full: a further user is refused before the password is checked
    table.err(
        "u5", r.JoinRoom(room_name="Table One", password="secret"), ErrorCode.TOO_MANY_ATTEMPTS
    )
    assert "password_failure_users" in error_message(table)
    # a user with a record may go on trying (up to their own attempts)
    table.join("u2", password="secret")
    assert table.state is not None
    assert set(table.state.password_failures) == {"u3", "u4"}
    table.err("u5", r.JoinRoom(room_name="Table One", password="nope"), ErrorCode.WRONG_PASSWORD)
    # past the window, old failures are dropped and new users may try again
    table.advance(config.password_window_seconds + 1)
    table.join("u6", password="secret")
    assert table.state.password_failures == {}


def test_dice_history_keeps_the_newest_rounds() -> None:
    table = Table(config=rules_config(scrypt_n=16, dice=DiceConfig(winning_score=1000)))
    table.start(2)
    table.rng = ScriptedRng([6, 6] * 30 + [6, 1] * 5)  # type: ignore[assignment]
    for _ in range(70):
        table.roll()
    assert table.state is not None
    game = table.state.game
    assert isinstance(game, DiceState)
    assert len(game.history) == HISTORY_KEEP
    assert game.history[-1].winner_id == "u1"
    state_event = table.ok("u9", r.JoinAsSpectator(room_name="Table One"))
    snapshot = of_type(state_event, "games.event.bigger_dice.state")[0]
    assert len(snapshot.round_history) == HISTORY_KEEP  # type: ignore[attr-defined]


def test_vote_kick_at_a_full_ban_list_still_hands_the_turns_over() -> None:
    table = Table()
    table.start(2)
    for n in range(MAX_BANNED_PER_ROOM):
        table.ok("u1", r.BanPlayer(room_id=ROOM, target_user_id=made_up(n)))
    table.disconnect("u2")
    table.advance(31)
    out = table.ok("u1", r.VoteKickDisconnected(room_id=ROOM, target_user_id="u2"))
    assert "games.event.player_auto_enabled" in types(out)
    assert table.state is not None
    assert len(table.state.banned) == MAX_BANNED_PER_ROOM
    assert not table.state.is_banned("u2")
    # never regains control: a rejoin does not give the turns back
    table.ok("u2", r.RejoinRoom(room_id=ROOM))
    assert table.state.auto_player("u2") is not None


def _bounded(state: RoomState, config: RulesConfig) -> None:
    """Every collection of the room within its documented cap."""
    members = set(state.member_ids())
    assert len(state.players) <= state.max_players
    assert len(state.lobby) <= config.max_lobby + 1
    assert len(state.selected) <= state.max_players
    assert set(state.selected) <= {m.user_id for m in state.lobby}
    assert len(state.spectators) <= state.max_spectators
    assert len(state.banned) <= MAX_BANNED_PER_ROOM
    players = {m.user_id for m in state.players}
    assert {a.user_id for a in state.auto_players} <= players
    assert {d.user_id for d in state.disconnects} <= players
    assert set(state.absent) <= {m.user_id for m in state.lobby}
    assert len(state.password_failures) <= config.password_failure_users
    assert all(len(t) <= config.password_attempts for t in state.password_failures.values())
    assert set(state.mutes) <= members
    assert all(len(t) <= MAX_MUTED_PER_USER for t in state.mutes.values())
    if isinstance(state.game, DiceState):
        assert len(state.game.history) <= HISTORY_KEEP
        assert set(state.game.active) <= players


@pytest.mark.parametrize("seed", range(6))
def test_hostile_command_mix_keeps_every_collection_bounded(seed: int) -> None:
    """Many users, a small cast of real ones and endless made-up ids: whatever they send,
    the room stays within its caps (and the table's own invariants hold for every step)."""
    config = rules_config(
        scrypt_n=16,
        max_lobby=8,
        max_spectators=3,
        password_failure_users=4,
        dice=DiceConfig(winning_score=3),
    )
    table = Table(seed=seed, config=config)
    table.create(max_players=3, password="pw")
    pick = random.Random(seed)
    users = [uid(n) for n in range(1, 25)]
    for step in range(1500):
        if table.state is None:
            break
        user = pick.choice(users)
        target = pick.choice([*users, made_up(step)])
        payload = pick.choice(
            [
                r.JoinRoom(room_name="Table One", password=pick.choice(["pw", "bad"])),
                r.JoinAsSpectator(room_name="Table One", password="pw"),
                r.LeaveRoom(room_id=ROOM),
                r.BanPlayer(room_id=ROOM, target_user_id=target),
                r.UnbanPlayer(room_id=ROOM, target_user_id=target),
                r.SelectPlayer(room_id=ROOM, target_user_id=target),
                r.Ready(room_id=ROOM),
                r.KickPlayer(room_id=ROOM, target_user_id=target),
                c.MuteUser(room_id=ROOM, target_user_id=target),
                c.SendChat(room_id=ROOM, channel=c.ChatChannel.LOBBY, content="hi"),
                dice.Roll(room_id=ROOM),
                dice.AutoRoll(room_id=ROOM, target_user_id=target),
                r.VoteKickDisconnected(room_id=ROOM, target_user_id=target),
                r.RejoinRoom(room_id=ROOM),
            ]
        )
        if pick.random() < 0.1:
            table.disconnect(user)
        else:
            host_move = isinstance(payload, r.BanPlayer | r.SelectPlayer | r.KickPlayer)
            table.send("u1" if host_move and pick.random() < 0.7 else user, payload)
        if pick.random() < 0.05:
            table.advance(40)
        if table.state is not None:
            _bounded(table.state, config)


# --- 2. a ban takes the seat; nobody acts for a banned or unseated player ----------------


def test_ban_of_the_current_player_passes_the_turn_and_they_are_never_played_for() -> None:
    table = Table()
    table.start(3)
    assert table.state is not None
    assert table.state.current_turn == "u1"
    table.roll("u1")
    out = table.ok("u1", r.BanPlayer(room_id=ROOM, target_user_id="u2"))
    assert types(out)[:2] == ["games.event.player_banned", "games.event.turn_changed"]
    assert table.state.player("u2") is None
    assert table.state.current_turn == "u3"
    game = table.state.game
    assert isinstance(game, DiceState)
    assert game.active == ("u1", "u3")
    # nobody can act for them any more
    table.err("u2", dice.Roll(room_id=ROOM), ErrorCode.NOT_A_PLAYER)
    table.err("u3", dice.AutoRoll(room_id=ROOM, target_user_id="u2"), ErrorCode.INVALID_PLAYER)
    table.err(
        "u1", r.VoteKickDisconnected(room_id=ROOM, target_user_id="u2"), ErrorCode.INVALID_PLAYER
    )
    # the round ends with the two rolls and the game goes on without them
    table.rng = ScriptedRng([2])  # type: ignore[assignment]
    done = table.roll("u3")
    result = of_type(done, "games.event.bigger_dice.round_result")[0]
    assert [u for u, _ in result.rolls] == ["u1", "u3"]  # type: ignore[attr-defined]
    table.play_out()
    over = next(e.message for _, e in table.all_emits() if e.message.type.endswith("game_over"))
    assert {f.user_id for f in over.final_scores} == {"u1", "u3"}  # type: ignore[attr-defined]
    banned_at = table.outcomes.index(out)
    rolled_for = {
        e.message.player_id  # type: ignore[attr-defined]
        for i, e in table.all_emits()
        if i > banned_at and e.message.type == ROLLED
    }
    assert rolled_for == {"u1", "u3"}


def test_ban_of_the_last_pending_roller_ends_the_round() -> None:
    table = Table()
    table.start(3)
    table.rng = ScriptedRng([5, 3])  # type: ignore[assignment]
    table.roll("u1")
    table.roll("u2")
    out = table.ok("u1", r.BanPlayer(room_id=ROOM, target_user_id="u3"))
    result = of_type(out, "games.event.bigger_dice.round_result")[0]
    assert result.winner_id == "u1"  # type: ignore[attr-defined]
    assert table.state is not None
    assert table.state.current_turn == "u1"


def test_ban_in_a_two_player_game_ends_it_for_the_one_left() -> None:
    table = Table()
    table.start(2)
    out = table.ok("u1", r.BanPlayer(room_id=ROOM, target_user_id="u2"))
    over = of_type(out, "games.event.bigger_dice.game_over")[0]
    assert over.winner == "u1"  # type: ignore[attr-defined]
    assert table.state is not None
    assert table.state.status is RoomStatus.FINISHED
    assert table.state.current_turn is None
    assert [t.kind for t in out.timers] == [TimerKind.ROOM_EXPIRY]


def test_ban_of_a_disconnected_or_auto_player_drops_their_records() -> None:
    table = Table()
    table.start(4)
    table.disconnect("u2")
    table.ok("u3", dice.EnableAutoPlay(room_id=ROOM))
    table.ok("u1", r.BanPlayer(room_id=ROOM, target_user_id="u2"))
    table.ok("u1", r.BanPlayer(room_id=ROOM, target_user_id="u3"))
    assert table.state is not None
    assert table.state.disconnects == ()
    assert table.state.auto_players == ()
    assert [m.user_id for m in table.state.players] == ["u1", "u4"]


def test_a_vote_kicked_player_cannot_roll_or_be_auto_rolled_by_others() -> None:
    table = Table(config=rules_config(scrypt_n=16, dice=DiceConfig(auto_roll_guard=0)))
    table.start(2)
    table.disconnect("u2")
    table.advance(31)
    table.ok("u1", r.VoteKickDisconnected(room_id=ROOM, target_user_id="u2"))
    table.roll("u1")  # the guard of 0 leaves u2's turn to the turn timer
    assert table.state is not None
    assert table.state.current_turn == "u2"
    table.err("u2", dice.Roll(room_id=ROOM), ErrorCode.NOT_A_PLAYER)
    table.err("u1", dice.AutoRoll(room_id=ROOM, target_user_id="u2"), ErrorCode.INVALID_PLAYER)
    assert of_type(table.fire_turn(), ROLLED)


def test_select_never_seats_a_banned_user() -> None:
    table = Table()
    table.lobby_of(2)
    table.ok("u1", r.BanPlayer(room_id=ROOM, target_user_id="u2"))
    table.err(
        "u1", r.SelectPlayer(room_id=ROOM, target_user_id="u2"), ErrorCode.PLAYER_NOT_IN_LOBBY
    )


# --- 3. any action ends a pending disconnect ----------------------------------------------


def _roll_of_u1(table: Table) -> None:
    table.roll("u1")


def _chat_of_u1(table: Table) -> None:
    table.ok("u1", c.SendChat(room_id=ROOM, channel=c.ChatChannel.PLAYERS, content="still here"))


def _history_of_u1(table: Table) -> None:
    table.ok("u1", c.GetChatHistory(room_id=ROOM, channel=c.ChatChannel.PLAYERS))


def _mute_of_u1(table: Table) -> None:
    table.ok("u1", c.MuteUser(room_id=ROOM, target_user_id="u2"))


@pytest.mark.parametrize("action", [_roll_of_u1, _chat_of_u1, _history_of_u1, _mute_of_u1])
def test_any_action_ends_a_pending_disconnect(action: object) -> None:
    table = Table()
    table.start(2)
    table.disconnect("u1")
    table.advance(31)
    action(table)  # type: ignore[operator]
    out = table.outcomes[-1]
    assert types(out)[0] == REJOINED
    rejoined = out.emits[0]
    assert rejoined.audience.kind is AudienceKind.ROOM
    assert rejoined.message.user_id == "u1"  # type: ignore[attr-defined]
    assert out.changed
    assert table.state is not None
    assert table.state.disconnect("u1") is None
    table.err(
        "u2",
        r.VoteKickDisconnected(room_id=ROOM, target_user_id="u1"),
        ErrorCode.PLAYER_NOT_DISCONNECTED,
    )


def test_a_refused_action_or_a_leave_keeps_the_disconnect() -> None:
    table = Table()
    table.start(2)
    table.disconnect("u2")
    table.err("u2", dice.Roll(room_id=ROOM), ErrorCode.NOT_YOUR_TURN)
    assert table.state is not None
    assert table.state.disconnect("u2") is not None
    table.ok("u2", r.LeaveRoom(room_id=ROOM))
    assert table.state.disconnect("u2") is not None


def test_a_rejoin_still_sends_one_player_rejoined() -> None:
    table = Table()
    table.start(2)
    table.disconnect("u2")
    out = table.ok("u2", r.RejoinRoom(room_id=ROOM))
    assert types(out).count(REJOINED) == 1


# --- 4. look-alike room names ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("Table One", "TABLE ONE", True),
        ("Table", "\uff34\uff41\uff42\uff4c\uff45", True),  # fullwidth
        ("fine", "\ufb01ne", True),  # the fi ligature
        ("Stra\u00dfe", "STRASSE", True),
        ("Caf\u00e9", "Cafe\u0301", True),  # composed vs combining accent
        ("\u2460 room", "1 room", True),  # circled digit
        ("Table", "Tab1e", False),
        ("Table", "Table 2", False),
    ],
)
def test_room_names_fold_with_nfkc_and_casefold(a: str, b: str, same: bool) -> None:
    assert (fold_room_name(a) == fold_room_name(b)) is same
    keys = RedisKeys(prefix="t:")
    assert (keys.room_name("bigger_dice", a) == keys.room_name("bigger_dice", b)) is same


# --- 5. room lifetimes ----------------------------------------------------------------------


def _expiry(table: Table, token: str) -> Outcome:
    return table.send(
        "system", TimerFired(room_id=ROOM, kind=TimerKind.ROOM_EXPIRY, token=token), system=True
    )


def test_waiting_room_expires_once_every_lobby_member_is_gone() -> None:
    table = Table()
    table.lobby_of(3)
    table.ok("u9", r.JoinAsSpectator(room_name="Table One"))  # spectators keep no room
    assert table.disconnect("u2").timers == ()
    assert table.disconnect("u3").timers == ()
    out = table.disconnect("u1")
    assert out.emits == ()
    assert [(t.kind, t.token, t.due) for t in out.timers] == [
        (TimerKind.ROOM_EXPIRY, "idle:1", table.now + timedelta(seconds=600))
    ]
    table.advance(600)
    removed = _expiry(table, "idle:1")
    assert removed.state is None
    event = of_type(removed, "games.event.room_removed")[0]
    assert event.reason is RemovalReason.ABANDONED  # type: ignore[attr-defined]


def test_a_member_coming_back_makes_the_expiry_stale() -> None:
    table = Table(config=rules_config(scrypt_n=16, idle_room_seconds=60))
    table.lobby_of(2)
    table.disconnect("u2")
    table.disconnect("u1")
    came_back = table.ok("u1", r.RejoinRoom(room_id=ROOM))
    assert came_back.changed  # the rejoin of a waiting room stores that u1 is back
    assert table.state is not None
    assert table.state.absent == ("u2",)
    stale = _expiry(table, "idle:1")
    assert stale.emits == ()
    assert stale.state is table.state
    # gone again: a new token; the old timer still does nothing
    again = table.disconnect("u1")
    assert [t.token for t in again.timers] == ["idle:2"]
    assert _expiry(table, "idle:1").state is not None
    assert _expiry(table, "idle:2").state is None


def test_any_action_of_an_absent_member_counts_as_coming_back() -> None:
    table = Table()
    table.lobby_of(2)
    table.disconnect("u2")
    table.disconnect("u1")
    out = table.ok("u2", c.GetChatHistory(room_id=ROOM, channel=c.ChatChannel.LOBBY))
    assert out.changed
    assert table.state is not None
    assert table.state.absent == ("u1",)
    assert _expiry(table, "idle:1").state is not None


def test_leaving_the_absent_ones_behind_starts_the_idle_time() -> None:
    table = Table()
    table.lobby_of(3)
    table.disconnect("u1")
    table.disconnect("u3")
    out = table.ok("u2", r.LeaveRoom(room_id=ROOM))
    assert [t.token for t in out.timers] == ["idle:1"]
    assert _expiry(table, "idle:1").state is None


def test_running_game_expires_once_every_player_is_gone() -> None:
    table = Table()
    table.start(2)
    table.ok("u9", r.JoinAsSpectator(room_name="Table One"))  # spectators keep no room
    left = table.ok("u1", r.LeaveRoom(room_id=ROOM))  # leaving a running game keeps the seat
    assert [t.token for t in left.timers if t.kind is TimerKind.ROOM_EXPIRY] == []
    out = table.disconnect("u2")
    assert [(t.kind, t.token, t.due) for t in out.timers if t.kind is TimerKind.ROOM_EXPIRY] == [
        (TimerKind.ROOM_EXPIRY, "idle:1", table.now + timedelta(seconds=600))
    ]
    table.advance(600)
    removed = _expiry(table, "idle:1")
    assert removed.state is None
    event = of_type(removed, "games.event.room_removed")[0]
    assert event.reason is RemovalReason.ABANDONED  # type: ignore[attr-defined]


def test_a_player_coming_back_keeps_the_running_game() -> None:
    table = Table()
    table.start(2)
    table.disconnect("u1")
    table.disconnect("u2")
    table.ok("u2", r.RejoinRoom(room_id=ROOM))
    stale = _expiry(table, "idle:1")
    assert stale.emits == ()
    assert stale.state is table.state
    assert table.state is not None
    assert table.state.status is RoomStatus.IN_PROGRESS
    again = table.disconnect("u2")  # everyone gone again: a new token, the old one stays stale
    assert [t.token for t in again.timers if t.kind is TimerKind.ROOM_EXPIRY] == ["idle:2"]
    assert _expiry(table, "idle:1").state is not None
    assert _expiry(table, "idle:2").state is None


def test_absence_ends_when_the_game_starts() -> None:
    table = Table()
    table.lobby_of(2)
    for n in (1, 2):
        table.ok("u1", r.SelectPlayer(room_id=ROOM, target_user_id=uid(n)))
    table.ok("u2", r.Ready(room_id=ROOM))
    table.disconnect("u2")
    table.ok("u1", r.Ready(room_id=ROOM))
    assert table.state is not None
    assert table.state.status is RoomStatus.IN_PROGRESS
    assert table.state.absent == ()


def test_finished_room_expires_after_its_keep_time() -> None:
    table = Table(
        config=rules_config(
            scrypt_n=16, finished_room_seconds=120, dice=DiceConfig(winning_score=1)
        )
    )
    table.start(2)
    table.rng = ScriptedRng([6, 1])  # type: ignore[assignment]
    table.roll()
    out = table.roll()
    assert table.state is not None
    assert table.state.status is RoomStatus.FINISHED
    assert [(t.kind, t.token, t.due) for t in out.timers] == [
        (TimerKind.ROOM_EXPIRY, "finished", table.now + timedelta(seconds=120))
    ]
    assert _expiry(table, "idle:0").state is not None
    removed = _expiry(table, "finished")
    assert removed.state is None
    event = of_type(removed, "games.event.room_removed")[0]
    assert event.reason is RemovalReason.GAME_FINISHED  # type: ignore[attr-defined]


def test_expiry_of_a_waiting_room_with_someone_present_does_nothing() -> None:
    table = Table()
    table.lobby_of(2)
    table.disconnect("u2")
    out = _expiry(table, "idle:0")
    assert out.state is table.state
    assert out.emits == ()


def test_expiry_of_a_running_game_does_nothing() -> None:
    table = Table()
    table.start(2)
    assert _expiry(table, "finished").state is table.state
    table.disconnect("u1")  # one player still here: the game is not abandoned
    assert _expiry(table, "idle:0").state is table.state
    assert _expiry(table, "idle:1").state is table.state


def test_lifetimes_default_to_the_documented_values() -> None:
    assert (FAST.idle_room_seconds, FAST.finished_room_seconds) == (600, 300)


# --- presence of a user in many full rooms ---------------------------------------------------


def test_presence_audience_is_split_into_bounded_emits() -> None:
    table = Table()
    table.lobby_of(2)
    assert table.state is not None
    base = table.state
    states = []
    for room in range(25):
        lobby = (
            base.lobby[1],  # u2
            *(
                base.lobby[0].model_copy(update={"user_id": made_up(room * 1000 + n)})
                for n in range(99)
            ),
        )
        states.append(base.model_copy(update={"room_id": f"room-{room}", "lobby": lobby}))
    envelope = table.envelope("u2", PresenceChanged(online=False), system=True)
    emits = presence_changed(states, envelope)
    sizes = [len(e.audience.user_ids) for e in emits]
    assert sizes == [PRESENCE_AUDIENCE_CHUNK, PRESENCE_AUDIENCE_CHUNK, 25 * 99 - 2000]
    everyone = [uid for e in emits for uid in e.audience.user_ids]
    assert len(everyone) == len(set(everyone)) == 25 * 99
    assert "u2" not in everyone
