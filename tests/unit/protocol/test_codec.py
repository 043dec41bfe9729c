"""Decoding and encoding: one unit test per failure kind, identity, limits, request_id echo."""

from __future__ import annotations

import json
from typing import Any

import pytest

from parlour_protocol.v1 import (
    CLIENT_COMMANDS,
    SERVER_EVENTS,
    DecodeFailure,
    ErrorCode,
    ProtocolError,
    decode_client_message,
    decode_command_envelope,
    decode_event_envelope,
    decode_server_message,
    encode,
    limits,
    type_tag,
)
from parlour_protocol.v1.base import RoomCommand
from parlour_protocol.v1.chat import SendChat
from parlour_protocol.v1.games.bigger_dice import Roll
from parlour_protocol.v1.rooms import CreateRoom, JoinRoom, RejoinRoom
from parlour_protocol.v1.system import Authenticate, Heartbeat
from tests.support.golden import GOLDEN_DIR, compact

ROOM = "3f6c1a9e-8b2d-4e57-9a41-0c7d2f5b8e13"


def _golden(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GOLDEN_DIR / name).read_text())
    return data


def _fail(data: bytes | str, **kwargs: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        decode_client_message(data, **kwargs)
    return caught.value


# --- one test per failure kind ----------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"not json",
        b'{"type": "system.heartbeat"',
        b"\xff\xfe\x00",
        b"[]",
        b"42",
        b'"system.heartbeat"',
        b"null",
        b"[" * 10_000 + b"]" * 10_000,
        '{"type":"system.heartbeat","request_id":"\ud800"}',
    ],
)
def test_invalid_json(frame: bytes | str) -> None:
    error = _fail(frame)
    assert error.code is DecodeFailure.INVALID_JSON
    assert error.error_code is ErrorCode.INVALID_MESSAGE
    assert error.fields == []
    assert error.request_id is None


def test_unknown_type_names_the_type_and_echoes_request_id() -> None:
    error = _fail(b'{"type": "games.command.spectate", "room_id": "r1", "request_id": "q7"}')
    assert error.code is DecodeFailure.UNKNOWN_TYPE
    assert error.message_type == "games.command.spectate"
    assert error.request_id == "q7"
    assert "games.command.spectate" in error.message


@pytest.mark.parametrize("frame", [b"{}", b'{"room_id": "r1"}', b'{"type": 7}', b'{"type": null}'])
def test_missing_or_non_string_type_is_unknown_type(frame: bytes) -> None:
    assert _fail(frame).code is DecodeFailure.UNKNOWN_TYPE


def test_invalid_fields_lists_every_path() -> None:
    frame = {
        "type": "games.command.create_room",
        "request_id": "q1",
        "game_type": "Bigger Dice!",
        "room_name": "",
        "max_players": 11,
    }
    error = _fail(json.dumps(frame))
    assert error.code is DecodeFailure.INVALID_FIELDS
    assert error.message_type == "games.command.create_room"
    assert error.request_id == "q1"
    assert {problem.path for problem in error.fields} == {"game_type", "room_name", "max_players"}
    assert all(problem.message for problem in error.fields)


def test_invalid_fields_nested_paths_are_dotted() -> None:
    event = _golden("games.event.room_state.json")
    event["room"]["players"][1]["user_id"] = 2077  # a number where the wire wants a string
    with pytest.raises(ProtocolError) as caught:
        decode_server_message(json.dumps(event))
    assert caught.value.code is DecodeFailure.INVALID_FIELDS
    assert [p.path for p in caught.value.fields] == ["room.players.1.user_id"]


def test_too_large_is_checked_before_parsing() -> None:
    frame = b'{"type":"system.heartbeat","pad":"' + b"x" * limits.MAX_FRAME_BYTES + b'"}'
    error = _fail(frame)
    assert error.code is DecodeFailure.TOO_LARGE
    assert error.error_code is ErrorCode.MESSAGE_TOO_LARGE
    # the limit counts UTF-8 bytes, also for str frames
    small = _fail("é" * 600, max_bytes=1_000)
    assert small.code is DecodeFailure.TOO_LARGE


def test_frame_at_the_limit_is_accepted() -> None:
    head = b'{"type":"system.heartbeat","pad":"'
    frame = head + b"x" * (limits.MAX_FRAME_BYTES - len(head) - 2) + b'"}'
    assert len(frame) == limits.MAX_FRAME_BYTES
    assert isinstance(decode_client_message(frame), Heartbeat)


def test_request_id_is_not_echoed_when_itself_invalid() -> None:
    assert _fail(b'{"type":"nope","request_id":""}').request_id is None
    assert _fail(b'{"type":"nope","request_id":12}').request_id is None
    assert _fail(json.dumps({"type": "nope", "request_id": "r" * 65})).request_id is None


def test_server_side_decoders_report_the_same_kinds() -> None:
    for decoder in (decode_server_message, decode_command_envelope, decode_event_envelope):
        with pytest.raises(ProtocolError) as caught:
            decoder(b"{")
        assert caught.value.code is DecodeFailure.INVALID_JSON
    with pytest.raises(ProtocolError) as caught:
        decode_server_message(b'{"type":"games.command.bigger_dice.roll","room_id":"r"}')
    assert caught.value.code is DecodeFailure.UNKNOWN_TYPE
    envelope = _golden("_envelope.command.json")
    del envelope["actor"]
    with pytest.raises(ProtocolError) as caught:
        decode_command_envelope(json.dumps(envelope))
    assert caught.value.code is DecodeFailure.INVALID_FIELDS
    assert [p.path for p in caught.value.fields] == ["actor"]


def test_envelope_type_must_match_its_payload() -> None:
    envelope = _golden("_envelope.event.json")
    envelope["type"] = "games.event.bigger_dice.game_over"
    with pytest.raises(ProtocolError) as caught:
        decode_event_envelope(json.dumps(envelope))
    assert caught.value.code is DecodeFailure.INVALID_FIELDS
    envelope = _golden("_envelope.event.json")
    envelope["seq"] = 57  # the payload says 56
    with pytest.raises(ProtocolError) as caught:
        decode_event_envelope(json.dumps(envelope))
    assert caught.value.code is DecodeFailure.INVALID_FIELDS
    command = _golden("_envelope.command.json")
    command["type"] = "games.command.leave_room"
    with pytest.raises(ProtocolError):
        decode_command_envelope(json.dumps(command))


def test_command_envelope_refuses_connection_level_commands() -> None:
    envelope = _golden("_envelope.command.json")
    envelope["type"] = "system.heartbeat"
    envelope["payload"] = {"type": "system.heartbeat"}
    with pytest.raises(ProtocolError) as caught:
        decode_command_envelope(json.dumps(envelope))
    assert caught.value.code is DecodeFailure.INVALID_FIELDS


# --- identity never comes from a message body --------------------------------------------------


@pytest.mark.parametrize("model", CLIENT_COMMANDS, ids=lambda m: type_tag(m))
def test_commands_drop_user_identity_fields(model: type[Any]) -> None:
    frame = _golden(f"{type_tag(model)}.json")
    if model is Authenticate:
        pytest.skip("system.authenticate carries user_id/username for the dev-mode login only")
    frame.update(user_id="9999", username="mallory", actor={"user_id": "9999"}, roles=["admin"])
    decoded = decode_client_message(json.dumps(frame))
    dumped = decoded.model_dump()
    for field in ("user_id", "username", "actor", "roles"):
        assert field not in dumped
    assert b"9999" not in encode(decoded)
    assert b"mallory" not in encode(decoded)


def test_authenticate_identity_is_optional_and_bounded() -> None:
    assert decode_client_message(b'{"type":"system.authenticate","token":"abc"}') == Authenticate(
        token="abc"
    )
    assert _fail(b'{"type":"system.authenticate","token":""}').code is DecodeFailure.INVALID_FIELDS
    bad_id = b'{"type":"system.authenticate","user_id":"a b"}'
    assert _fail(bad_id).fields[0].path == "user_id"


# --- limits ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "ok"),
    [
        ("gl hf!", True),
        ("line one\nline two\ttabbed", True),
        ("ünïcödé ✓ 🎲", True),
        ("x" * limits.CHAT_CONTENT_MAX_LENGTH, True),
        ("x" * (limits.CHAT_CONTENT_MAX_LENGTH + 1), False),
        ("", False),
        ("   \n\t ", False),
        ("bell\x07", False),
        ("nul\x00", False),
        ("del\x7f", False),
    ],
)
def test_chat_content_limits(content: str, ok: bool) -> None:
    frame = json.dumps(
        {"type": "games.command.send_chat", "room_id": ROOM, "channel": "lobby", "content": content}
    )
    if ok:
        assert isinstance(decode_client_message(frame), SendChat)
    else:
        assert _fail(frame).fields[0].path == "content"


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("Friday Dice", True),
        ("  Friday Dice  ", True),
        ("Игра №1", False),
        ("Игра 1", True),
        ("Room (2)+fun!", True),
        ("x" * limits.ROOM_NAME_MAX_LENGTH, True),
        ("x" * (limits.ROOM_NAME_MAX_LENGTH + 1), False),
        ("", False),
        ("   ", False),
        (" -dash first", False),
        ("semi;colon", False),
        ("<script>", False),
    ],
)
def test_room_name_limits(name: str, ok: bool) -> None:
    frame = json.dumps({"type": "games.command.join_room", "room_name": name})
    if ok:
        decoded = decode_client_message(frame)
        assert isinstance(decoded, JoinRoom)
        assert decoded.room_name == name.strip()
    else:
        assert _fail(frame).fields[0].path == "room_name"


@pytest.mark.parametrize(("players", "ok"), [(1, False), (2, True), (10, True), (11, False)])
def test_max_players_range(players: int, ok: bool) -> None:
    frame = json.dumps(
        {
            "type": "games.command.create_room",
            "game_type": "bigger_dice",
            "room_name": "Friday Dice",
            "max_players": players,
        }
    )
    if ok:
        assert isinstance(decode_client_message(frame), CreateRoom)
    else:
        assert _fail(frame).fields[0].path == "max_players"


def test_empty_password_means_none() -> None:
    frame = b'{"type":"games.command.join_room","room_name":"Friday Dice","password":""}'
    decoded = decode_client_message(frame)
    assert isinstance(decoded, JoinRoom)
    assert decoded.password is None


def test_rejoin_needs_an_id_or_a_name() -> None:
    assert _fail(b'{"type":"games.command.rejoin_room"}').code is DecodeFailure.INVALID_FIELDS
    by_name = decode_client_message(b'{"type":"games.command.rejoin_room","room_name":"Friday"}')
    assert isinstance(by_name, RejoinRoom)


@pytest.mark.parametrize("bad", [123, "", "a" * 65, "has space", "semi;colon", None])
def test_ids_are_bounded_strings(bad: Any) -> None:
    frame = json.dumps({"type": "games.command.bigger_dice.roll", "room_id": bad})
    assert _fail(frame).fields[0].path == "room_id"


def test_numeric_string_ids_as_the_original_gateway_sent_them() -> None:
    decoded = decode_client_message(
        b'{"type":"games.command.kick_player","room_id":"r-1","target_user_id":"123"}'
    )
    assert decoded.model_dump()["target_user_id"] == "123"


def test_a_roll_value_from_the_client_is_ignored() -> None:
    frame = {"type": "games.command.bigger_dice.roll", "room_id": ROOM, "roll": 6}
    decoded = decode_client_message(json.dumps(frame))
    assert decoded == Roll(room_id=ROOM)


# --- invariants of the model set ------------------------------------------------------------


def test_every_client_command_takes_a_request_id_and_every_event_a_seq() -> None:
    for command in CLIENT_COMMANDS:
        assert "request_id" in command.model_fields
        assert not command.model_fields["request_id"].is_required()
    for event in SERVER_EVENTS:
        assert "seq" in event.model_fields
        assert not event.model_fields["seq"].is_required()


def test_room_scoped_commands_carry_room_id() -> None:
    for command in CLIENT_COMMANDS:
        if issubclass(command, RoomCommand):
            assert command.room_scoped
            assert command.model_fields["room_id"].is_required()


def test_encode_is_compact_utf8_with_z_timestamps() -> None:
    event = _golden("games.event.chat_message.json")
    event["content"] = "gl hf ✓"
    raw = encode(decode_server_message(json.dumps(event)))
    assert raw == compact(event)
    assert b"\xe2\x9c\x93" in raw
    assert b'"timestamp":"2026-03-14T17:57:31.250000Z"' in raw


def test_protocol_error_is_an_exception_with_a_readable_str() -> None:
    error = _fail(b"{")
    assert isinstance(error, Exception)
    assert str(error).startswith("invalid_json: ")


def test_envelope_payload_paths_leave_out_the_union_tag() -> None:
    envelope = _golden("_envelope.event.json")
    envelope["payload"]["roll"] = 9
    with pytest.raises(ProtocolError) as caught:
        decode_event_envelope(json.dumps(envelope))
    assert [p.path for p in caught.value.fields] == ["payload.roll"]
    envelope["payload"]["type"] = envelope["type"] = "games.event.nope"
    with pytest.raises(ProtocolError) as caught:
        decode_event_envelope(json.dumps(envelope))
    assert [(p.path, p.message) for p in caught.value.fields] == [
        ("payload", "unknown message type 'games.event.nope'")
    ]


def test_error_size_is_bounded() -> None:
    long_type = _fail(json.dumps({"type": "x" * 5_000}))
    assert long_type.code is DecodeFailure.UNKNOWN_TYPE
    assert len(long_type.message) < 100
    frame = {"type": "games.event.room_list", "game_type": "bigger_dice", "rooms": [{}] * 500}
    with pytest.raises(ProtocolError) as caught:
        decode_server_message(json.dumps(frame))
    assert len(caught.value.fields) == 20
    assert caught.value.message.endswith("more")
