"""Room chat channels and roles, control characters, mute, history reads; direct messages
and presence fan-out."""

from __future__ import annotations

from uuid import UUID

import pytest

from parlour_engine.rules import direct_message, presence_changed
from parlour_protocol.v1 import Actor, AudienceKind, CommandEnvelope, ErrorCode
from parlour_protocol.v1 import rooms as r
from parlour_protocol.v1.chat import (
    ChatChannel,
    GetChatHistory,
    MuteUser,
    SendChat,
    SendDirectMessage,
    UnmuteUser,
)
from parlour_protocol.v1.internal import PresenceChanged
from tests.support.rules_table import ROOM, Table, types

L, P, S = ChatChannel.LOBBY, ChatChannel.PLAYERS, ChatChannel.SPECTATORS


def _room(phase: str) -> Table:
    """u1 host, u2 players (or lobby), u3 lobby-only while waiting, u5 spectator, u9 outsider."""
    table = Table()
    if phase == "waiting":
        table.lobby_of(2)
        table.join("u3")
    else:
        table.start(2)
    table.ok("u5", r.JoinAsSpectator(room_name="Table One"))
    return table


# (phase, user, channel, expected error or None)
SEND_CASES = [
    ("waiting", "u1", L, None),
    ("waiting", "u3", L, None),
    ("waiting", "u5", L, None),
    ("waiting", "u9", L, ErrorCode.CHANNEL_ACCESS_DENIED),
    ("waiting", "u1", P, ErrorCode.CHANNEL_ACCESS_DENIED),
    ("waiting", "u5", S, ErrorCode.CHAT_DISABLED),
    ("waiting", "u1", S, ErrorCode.CHANNEL_ACCESS_DENIED),
    ("playing", "u1", L, ErrorCode.CHAT_DISABLED),
    ("playing", "u1", P, None),
    ("playing", "u2", P, None),
    ("playing", "u5", P, ErrorCode.CHANNEL_ACCESS_DENIED),
    ("playing", "u9", P, ErrorCode.CHANNEL_ACCESS_DENIED),
    ("playing", "u5", S, None),
    ("playing", "u1", S, ErrorCode.CHANNEL_ACCESS_DENIED),
]


@pytest.mark.parametrize(("phase", "user", "channel", "code"), SEND_CASES)
def test_send_chat_access(
    phase: str, user: str, channel: ChatChannel, code: ErrorCode | None
) -> None:
    table = _room(phase)
    out = table.send(user, SendChat(room_id=ROOM, channel=channel, content="hello"))
    assert out.rejected is code
    if code is not None:
        assert out.chat == ()
        return
    assert types(out) == ["games.event.chat_message"]
    emit = out.emits[0]
    assert out.chat[0].channel is channel
    assert out.chat[0].item.message_id == emit.message.message_id  # type: ignore[attr-defined]
    assert out.changed
    if channel is S:
        assert emit.audience.kind is AudienceKind.SPECTATORS
        assert emit.audience.user_ids == ["u5"]
        assert emit.message.seq is None
    else:
        assert emit.audience.kind is AudienceKind.ROOM
        assert "u5" in emit.audience.user_ids  # spectators read the players' chat
        assert emit.message.seq is not None


# (phase, user, channel, allowed)
READ_CASES = [
    ("waiting", "u3", L, True),
    ("waiting", "u5", L, True),
    ("waiting", "u9", L, False),
    ("playing", "u1", P, True),
    ("playing", "u5", P, True),
    ("playing", "u9", P, False),
    ("playing", "u5", S, True),
    ("playing", "u1", S, False),
]


@pytest.mark.parametrize(("phase", "user", "channel", "allowed"), READ_CASES)
def test_chat_history_access(phase: str, user: str, channel: ChatChannel, allowed: bool) -> None:
    table = _room(phase)
    out = table.send(user, GetChatHistory(room_id=ROOM, channel=channel, limit=20))
    if not allowed:
        assert out.rejected is ErrorCode.CHANNEL_ACCESS_DENIED
        assert out.chat_read is None
        return
    assert out.rejected is None
    assert not out.changed
    assert out.chat_read is not None
    assert out.chat_read.channel is channel
    assert out.chat_read.limit == 20
    assert out.chat_read.audience.kind is AudienceKind.CONNECTION
    assert out.chat_read.audience.connection_id == f"c-{user}"


def _raw_chat(raw: str) -> SendChat:
    # the protocol already refuses C0 controls at decode time; the rules strip them again
    # (and C1 ones, which the protocol lets through) so a lenient decoder cannot smuggle any
    return SendChat.model_construct(
        type="games.command.send_chat", request_id=None, room_id=ROOM, channel=L, content=raw
    )


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("hi\x00there", "hithere"),
        ("line1\nline2\tend", "line1\nline2\tend"),
        ("bell\x07\x1b[31mred", "bell[31mred"),
        ("c1\x85\x9bx", "c1x"),
        ("ok\x7f", "ok"),
    ],
)
def test_control_characters_are_stripped(raw: str, clean: str) -> None:
    table = _room("waiting")
    out = table.ok("u1", _raw_chat(raw))
    assert out.emits[0].message.content == clean  # type: ignore[attr-defined]
    assert out.chat[0].item.content == clean


@pytest.mark.parametrize("raw", ["\x00\x01", " \x07 ", "\n\t"])
def test_empty_after_stripping_is_invalid(raw: str) -> None:
    table = _room("waiting")
    table.err("u1", _raw_chat(raw), ErrorCode.INVALID_MESSAGE)


def test_chat_message_id_is_derived_from_the_command() -> None:
    a, b = _room("waiting"), _room("waiting")
    out_a = a.ok("u1", SendChat(room_id=ROOM, channel=L, content="x"))
    out_b = b.ok("u1", SendChat(room_id=ROOM, channel=L, content="x"))
    assert out_a.chat[0].item.message_id == out_b.chat[0].item.message_id


def test_mute_is_per_viewer_and_hides_history() -> None:
    table = _room("waiting")
    out = table.ok("u3", MuteUser(room_id=ROOM, target_user_id="u1"))
    assert types(out) == ["games.event.user_muted"]
    assert out.emits[0].audience.user_ids == ["u3"]
    assert out.emits[0].message.target_username == "name-u1"  # type: ignore[attr-defined]
    read = table.ok("u3", GetChatHistory(room_id=ROOM, channel=L)).chat_read
    assert read is not None
    assert read.hidden_user_ids == frozenset({"u1"})
    other = table.ok("u2", GetChatHistory(room_id=ROOM, channel=L)).chat_read
    assert other is not None
    assert other.hidden_user_ids == frozenset()
    out = table.ok("u3", UnmuteUser(room_id=ROOM, target_user_id="u1"))
    assert types(out) == ["games.event.user_unmuted"]
    read = table.ok("u3", GetChatHistory(room_id=ROOM, channel=L)).chat_read
    assert read is not None
    assert read.hidden_user_ids == frozenset()
    table.err("u9", MuteUser(room_id=ROOM, target_user_id="u1"), ErrorCode.NOT_IN_ROOM)


# Live chat honours mutes as history does: (phase, mutes as (muter, muted), sender, channel,
# audience kind, recipients, whether the message takes a seq). Rooms as in `_room`, plus u6
# as a second spectator; u5 is a spectator throughout.
MUTED_LIVE_CASES = [
    ("waiting", [], "u1", L, AudienceKind.ROOM, ["u1", "u2", "u3", "u5", "u6"], True),
    ("waiting", [("u3", "u2")], "u1", L, AudienceKind.ROOM, ["u1", "u2", "u3", "u5", "u6"], True),
    ("waiting", [("u3", "u1")], "u1", L, AudienceKind.USERS, ["u1", "u2", "u5", "u6"], False),
    (
        "waiting",
        [("u5", "u1"), ("u2", "u1")],
        "u1",
        L,
        AudienceKind.USERS,
        ["u1", "u3", "u6"],
        False,
    ),
    ("waiting", [("u1", "u5")], "u5", L, AudienceKind.USERS, ["u2", "u3", "u5", "u6"], False),
    ("playing", [("u5", "u1")], "u1", P, AudienceKind.USERS, ["u1", "u2", "u6"], False),
    (
        "playing",
        [("u2", "u1"), ("u5", "u1"), ("u6", "u1")],
        "u1",
        P,
        AudienceKind.USER,
        ["u1"],
        False,
    ),
    ("playing", [("u6", "u5")], "u5", S, AudienceKind.USER, ["u5"], False),
    # a player who muted a spectator never hears the spectators channel anyway
    ("playing", [("u1", "u5")], "u5", S, AudienceKind.SPECTATORS, ["u5", "u6"], False),
]


@pytest.mark.parametrize(
    ("phase", "mutes", "sender", "channel", "kind", "recipients", "sequenced"), MUTED_LIVE_CASES
)
def test_live_chat_skips_members_who_muted_the_sender(
    phase: str,
    mutes: list[tuple[str, str]],
    sender: str,
    channel: ChatChannel,
    kind: AudienceKind,
    recipients: list[str],
    sequenced: bool,
) -> None:
    table = _room(phase)
    table.ok("u6", r.JoinAsSpectator(room_name="Table One"))
    for muter, muted in mutes:
        table.ok(muter, MuteUser(room_id=ROOM, target_user_id=muted))
    out = table.ok(sender, SendChat(room_id=ROOM, channel=channel, content="hello"))
    (emit,) = out.emits
    assert emit.message.type == "games.event.chat_message"
    assert emit.audience.kind is kind
    assert sorted(emit.audience.user_ids) == recipients
    assert (emit.message.seq is not None) is sequenced
    # stored whoever hears it live; each reader's history hides it exactly when live chat did
    assert [c.item.content for c in out.chat] == ["hello"]
    for muter, muted in mutes:
        read = table.ok(muter, GetChatHistory(room_id=ROOM, channel=L)).chat_read
        assert read is not None
        assert muted in read.hidden_user_ids


def test_live_chat_reaches_a_muter_again_after_unmute() -> None:
    table = _room("waiting")
    table.ok("u3", MuteUser(room_id=ROOM, target_user_id="u1"))
    hidden = table.ok("u1", SendChat(room_id=ROOM, channel=L, content="one"))
    assert "u3" not in hidden.emits[0].audience.user_ids
    table.ok("u3", UnmuteUser(room_id=ROOM, target_user_id="u1"))
    shown = table.ok("u1", SendChat(room_id=ROOM, channel=L, content="two"))
    assert shown.emits[0].audience.kind is AudienceKind.ROOM
    assert "u3" in shown.emits[0].audience.user_ids


def test_a_muted_message_leaves_no_seq_gap() -> None:
    # the next room event takes the seq right after the last one the muter received
    table = _room("waiting")
    table.ok("u3", MuteUser(room_id=ROOM, target_user_id="u1"))
    assert table.state is not None
    seq = table.state.seq
    table.ok("u1", SendChat(room_id=ROOM, channel=L, content="hidden from u3"))
    out = table.ok("u2", SendChat(room_id=ROOM, channel=L, content="seen by all"))
    assert out.emits[0].audience.kind is AudienceKind.ROOM
    assert out.emits[0].message.seq == seq + 1


def _envelope(user: str, payload: SendDirectMessage | PresenceChanged) -> CommandEnvelope:
    return CommandEnvelope(
        msg_id=UUID(int=99),
        type=payload.type,
        key=user,
        actor=Actor(user_id=user, username=f"name-{user}"),
        connection_id=f"c-{user}",
        gateway_id="gw",
        request_id="req",
        payload=payload,
    )


def test_direct_message_to_recipient_and_sender() -> None:
    table = Table()
    env = _envelope("u1", SendDirectMessage(recipient_id="u2", content="psst\x85!"))
    (emit,) = direct_message(env, table.now)
    assert emit.audience.kind is AudienceKind.USERS
    assert emit.audience.user_ids == ["u2", "u1"]
    message = emit.message
    assert message.content == "psst!"  # type: ignore[attr-defined]
    assert message.sender_id == "u1"  # type: ignore[attr-defined]
    assert message.seq is None
    (again,) = direct_message(env, table.now)
    assert again.message.message_id == message.message_id  # type: ignore[attr-defined]


def test_direct_message_to_self_is_refused() -> None:
    env = _envelope("u1", SendDirectMessage(recipient_id="u1", content="me"))
    (emit,) = direct_message(env, Table().now)
    assert emit.message.code is ErrorCode.CANNOT_MESSAGE_SELF  # type: ignore[attr-defined]
    assert emit.message.request_id == "req"  # type: ignore[attr-defined]
    assert emit.audience.kind is AudienceKind.CONNECTION


@pytest.mark.parametrize("online", [True, False])
def test_presence_goes_to_members_of_the_users_rooms(online: bool) -> None:
    one = _room("waiting")
    two = _room("playing")
    assert one.state is not None
    assert two.state is not None
    env = _envelope("u2", PresenceChanged(online=online))
    (emit,) = presence_changed([one.state, two.state], env)
    assert emit.audience.kind is AudienceKind.USERS
    assert sorted(emit.audience.user_ids) == ["u1", "u3", "u5"]
    assert emit.message.type == (
        "presence.event.user_online" if online else "presence.event.user_offline"
    )
    assert presence_changed([one.state], _envelope("u9", PresenceChanged(online=online))) == ()
