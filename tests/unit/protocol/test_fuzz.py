"""Property tests: whatever arrives, a decoder returns a valid model or raises ProtocolError.

Inputs are random bytes/text and mutated golden messages (a field dropped, a value replaced by
another JSON type, junk keys, truncation, deep nesting, another message's type). A decoded
result must also re-encode and decode to the same model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from parlour_protocol.v1 import (
    CLIENT_COMMANDS,
    SERVER_EVENTS,
    ProtocolError,
    decode_client_message,
    decode_command_envelope,
    decode_event_envelope,
    decode_server_message,
    encode,
    type_tag,
)
from tests.support.golden import GOLDEN_DIR

Decoder = Callable[[bytes | str], BaseModel]

SETTINGS = settings(
    max_examples=int(os.environ.get("PROTOCOL_FUZZ_EXAMPLES", "250")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


CLIENT_SEEDS = [_load(GOLDEN_DIR / f"{type_tag(m)}.json") for m in CLIENT_COMMANDS]  # type: ignore[arg-type]
SERVER_SEEDS = [_load(GOLDEN_DIR / f"{type_tag(m)}.json") for m in SERVER_EVENTS]  # type: ignore[arg-type]
COMMAND_ENVELOPE = _load(GOLDEN_DIR / "_envelope.command.json")
EVENT_ENVELOPE = _load(GOLDEN_DIR / "_envelope.event.json")
ALL_TYPES = sorted(
    {type_tag(m) for m in (*CLIENT_COMMANDS, *SERVER_EVENTS)} | {"", "system", "games.command."}  # type: ignore[arg-type]
)

DECODERS: list[tuple[Decoder, list[Any]]] = [
    (decode_client_message, CLIENT_SEEDS),
    (decode_server_message, SERVER_SEEDS),
    (decode_command_envelope, [COMMAND_ENVELOPE]),
    (decode_event_envelope, [EVENT_ENVELOPE]),
]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["", "0", "1042", "3f6c1a9e-8b2d-4e57-9a41-0c7d2f5b8e13"])
    | st.sampled_from(["\u0000", "\U0001d521", "\u202e", "a" * 70])
    | st.sampled_from(["2026-03-14T18:02:11Z", "2026-13-99", "lobby", "in_progress"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _check(decoder: Decoder, frame: bytes | str) -> None:
    error: ProtocolError | None = None
    try:
        decoded = decoder(frame)
    except ProtocolError as caught:
        error = caught
    if error is not None:
        assert error.code is not None
        assert all(problem.path for problem in error.fields)
        return
    # anything accepted is a stable, encodable message
    assert decoder(encode(decoded)) == decoded


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _parent(root: Any, path: tuple[Any, ...]) -> Any:
    node = root
    for step in path[:-1]:
        node = node[step]
    return node


def _mutate(data: st.DataObject, seed: Any) -> bytes:
    tree = json.loads(json.dumps(seed))
    operation = data.draw(
        st.sampled_from(["drop", "retype", "junk", "truncate", "nest", "swap_type", "many"])
    )
    paths = [p for p in _paths(tree) if p]
    if operation == "drop":
        path = data.draw(st.sampled_from(paths))
        del _parent(tree, path)[path[-1]]
    elif operation == "retype":
        path = data.draw(st.sampled_from(paths))
        _parent(tree, path)[path[-1]] = data.draw(json_values)
    elif operation == "junk":
        containers = [p for p in _paths(tree) if isinstance(_get(tree, p), dict)]
        target = _get(tree, data.draw(st.sampled_from(containers)))
        target[data.draw(st.text(max_size=12))] = data.draw(json_values)
    elif operation == "truncate":
        raw = json.dumps(tree).encode()
        return raw[: data.draw(st.integers(min_value=0, max_value=len(raw)))]
    elif operation == "nest":
        depth = data.draw(st.integers(min_value=1, max_value=600))
        wrapper = data.draw(st.sampled_from(["list", "dict"]))
        path = data.draw(st.sampled_from(paths))
        value: Any = _parent(tree, path)[path[-1]]
        for _ in range(depth):
            value = [value] if wrapper == "list" else {"a": value}
        _parent(tree, path)[path[-1]] = value
    elif operation == "swap_type":
        node = tree.get("payload", tree)
        node["type"] = data.draw(st.sampled_from(ALL_TYPES))
    else:
        for _ in range(data.draw(st.integers(min_value=2, max_value=5))):
            path = data.draw(st.sampled_from([p for p in _paths(tree) if p] or [()]))
            if path:
                _parent(tree, path)[path[-1]] = data.draw(json_values)
    return json.dumps(tree, ensure_ascii=data.draw(st.booleans())).encode()


def _get(root: Any, path: tuple[Any, ...]) -> Any:
    node = root
    for step in path:
        node = node[step]
    return node


@SETTINGS
@given(frame=st.binary(max_size=300), which=st.integers(min_value=0, max_value=3))
def test_random_bytes_only_raise_protocol_error(frame: bytes, which: int) -> None:
    _check(DECODERS[which][0], frame)


@SETTINGS
@given(frame=st.text(max_size=200), which=st.integers(min_value=0, max_value=3))
def test_random_text_only_raises_protocol_error(frame: str, which: int) -> None:
    _check(DECODERS[which][0], frame)


@SETTINGS
@given(value=json_values, which=st.integers(min_value=0, max_value=3))
def test_random_json_only_raises_protocol_error(value: Any, which: int) -> None:
    _check(DECODERS[which][0], json.dumps(value))


@SETTINGS
@given(data=st.data(), which=st.integers(min_value=0, max_value=3))
def test_mutated_messages_only_raise_protocol_error(data: st.DataObject, which: int) -> None:
    decoder, seeds = DECODERS[which]
    seed = data.draw(st.sampled_from(seeds))
    _check(decoder, _mutate(data, seed))


@SETTINGS
@given(data=st.data())
def test_mutated_payload_inside_envelopes(data: st.DataObject) -> None:
    envelope = json.loads(
        json.dumps(data.draw(st.sampled_from([COMMAND_ENVELOPE, EVENT_ENVELOPE])))
    )
    seeds = CLIENT_SEEDS if "msg_id" in envelope else SERVER_SEEDS
    mutated = _mutate(data, data.draw(st.sampled_from(seeds)))
    try:
        envelope["payload"] = json.loads(mutated)
    except ValueError:  # truncated: the payload is then a string, still not a valid payload
        envelope["payload"] = mutated.decode("utf-8", "replace")
    decoder = decode_command_envelope if "msg_id" in envelope else decode_event_envelope
    _check(decoder, json.dumps(envelope))


@SETTINGS
@given(request_id=st.text(max_size=80), kind=st.sampled_from(["unknown", "fields", "ok"]))
def test_request_id_echo_is_always_sendable(request_id: str, kind: str) -> None:
    frame: dict[str, Any] = {"type": "games.command.leave_room", "request_id": request_id}
    if kind == "unknown":
        frame["type"] = "games.command.spectate"
    if kind == "ok":
        frame["room_id"] = "r-1"
    echoed: str | None = None
    try:
        decode_client_message(json.dumps(frame))
    except ProtocolError as error:
        echoed = error.request_id
    if echoed is not None:
        assert echoed == request_id
        echoed.encode("utf-8")  # raises on a lone surrogate
