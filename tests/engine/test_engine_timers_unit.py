"""Timer entries become timer_fired commands with a msg_id derived from the entry."""

from __future__ import annotations

import pytest

from parlour_engine.timers import parse_member, timer_command, timer_member
from parlour_protocol.v1 import CommandEnvelope, decode_command_envelope, encode
from parlour_protocol.v1.internal import TimerFired, TimerKind


def test_engine_timer_member_round_trip() -> None:
    member = timer_member("room-1", TimerKind.TURN, "12|odd")
    assert member == "room-1|turn|12|odd"
    assert parse_member(member) == ("room-1", TimerKind.TURN, "12|odd")


def test_engine_timer_command_is_deterministic() -> None:
    member = timer_member("room-1", TimerKind.DISCONNECT_GRACE, "u1:3")
    first, second = timer_command(member), timer_command(member)
    # two engines racing on one entry publish the same msg_id: the store applies it once
    assert first.msg_id == second.msg_id
    assert first.key == "room-1"
    assert isinstance(first.payload, TimerFired)
    assert first.payload.kind is TimerKind.DISCONNECT_GRACE
    assert first.actor.user_id == "system"
    decoded = decode_command_envelope(encode(first))
    assert isinstance(decoded, CommandEnvelope)
    assert decoded.msg_id == first.msg_id
    assert timer_command(timer_member("room-1", TimerKind.TURN, "u1:3")).msg_id != first.msg_id


@pytest.mark.parametrize("member", ["no-separators", "room|badkind|1"])
def test_engine_timer_bad_member(member: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        timer_command(member)
