"""Random command streams from random users: apply never raises, and the harness checks on
every step that the input state is untouched, seqs are consecutive, rejections change
nothing and the state round-trips through JSON."""

from __future__ import annotations

import random

import pytest

from parlour_protocol.v1 import rooms as r
from parlour_protocol.v1.base import ClientCommand
from parlour_protocol.v1.chat import ChatChannel, GetChatHistory, MuteUser, SendChat, UnmuteUser
from parlour_protocol.v1.games import bigger_dice as dice
from parlour_protocol.v1.internal import PlayerDisconnectedCommand, TimerFired, TimerKind
from tests.support.rules_table import ROOM, Table

USERS = [f"u{i}" for i in range(1, 7)]


def _random_command(pick: random.Random, table: Table) -> tuple[str, ClientCommand, bool]:
    user = pick.choice(USERS)
    target = pick.choice(USERS)
    turn = str(table.state.turn_number) if table.state is not None else "1"
    options: list[tuple[str, ClientCommand, bool]] = [
        (user, r.JoinRoom(room_name="Table One"), False),
        (user, r.JoinAsSpectator(room_name="Table One"), False),
        (user, r.RejoinRoom(room_id=ROOM), False),
        (user, r.LeaveRoom(room_id=ROOM), False),
        (user, r.StopSpectating(room_id=ROOM), False),
        (user, r.Ready(room_id=ROOM), False),
        (user, r.SetReady(room_id=ROOM, is_ready=pick.random() < 0.7), False),
        (user, r.StartGame(room_id=ROOM), False),
        ("u1", r.SelectPlayer(room_id=ROOM, target_user_id=target), False),
        ("u1", r.SelectPlayer(room_id=ROOM, target_user_id=target), False),
        ("u1", r.DeselectPlayer(room_id=ROOM, target_user_id=target), False),
        (user, r.KickPlayer(room_id=ROOM, target_user_id=target), False),
        (user, r.KickSpectator(room_id=ROOM, target_user_id=target), False),
        (user, r.BanPlayer(room_id=ROOM, target_user_id=target), False),
        (user, r.UnbanPlayer(room_id=ROOM, target_user_id=target), False),
        (user, r.VoteKickDisconnected(room_id=ROOM, target_user_id=target), False),
        (user, r.DesignateAdminSpectator(room_id=ROOM, target_user_id=target), False),
        (user, SendChat(room_id=ROOM, channel=pick.choice(list(ChatChannel)), content="hi"), False),
        (user, GetChatHistory(room_id=ROOM, channel=pick.choice(list(ChatChannel))), False),
        (user, MuteUser(room_id=ROOM, target_user_id=target), False),
        (user, UnmuteUser(room_id=ROOM, target_user_id=target), False),
        (user, dice.Roll(room_id=ROOM), False),
        (user, dice.Roll(room_id=ROOM), False),
        (user, dice.AutoRoll(room_id=ROOM, target_user_id=target), False),
        (user, dice.EnableAutoPlay(room_id=ROOM), False),
        (user, PlayerDisconnectedCommand(room_id=ROOM), True),
        ("system", TimerFired(room_id=ROOM, kind=TimerKind.TURN, token=turn), True),
        (
            "system",
            TimerFired(room_id=ROOM, kind=TimerKind.DISCONNECT_GRACE, token=f"{user}:1"),
            True,
        ),
    ]
    if table.state is not None and table.state.current_turn is not None:
        options.append((table.state.current_turn, dice.Roll(room_id=ROOM), False))
    return pick.choice(options)


@pytest.mark.parametrize("seed", range(25))
def test_random_streams_keep_the_invariants(seed: int) -> None:
    pick = random.Random(seed)
    table = Table(seed=seed)

    def open_room() -> None:
        # odd seeds start from a running game so game-time rules get their share
        if seed % 2:
            table.start(pick.randint(2, 4))
        else:
            table.create(max_players=pick.randint(2, 4))

    open_room()
    for _ in range(400):
        if table.state is None:
            open_room()
            continue
        user, command, system = _random_command(pick, table)
        table.send(user, command, system=system)
        if pick.random() < 0.2:
            table.advance(pick.choice([1, 10, 31]))
