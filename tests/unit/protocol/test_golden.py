"""Golden fixtures pin the wire format; the field snapshot pins every model's fields.

A new message without a fixture fails here; so does a change that alters how a fixture encodes,
or that removes/renames a field recorded in `golden/_fields.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from protocol_docs.snapshot import breaking_changes, fields_snapshot, merged_fields_snapshot
from pydantic import BaseModel, TypeAdapter

from parlour_protocol.v1 import (
    CLIENT_COMMANDS,
    INTERNAL_COMMANDS,
    SERVER_EVENTS,
    CommandEnvelope,
    EventEnvelope,
    ProtocolError,
    decode_client_message,
    decode_command_envelope,
    decode_event_envelope,
    decode_server_message,
    encode,
    type_tag,
)
from parlour_protocol.v1.messages import EngineCommand
from tests.support.golden import GOLDEN_DIR, compact, golden_messages

ALL_MESSAGES: tuple[type[BaseModel], ...] = (*CLIENT_COMMANDS, *INTERNAL_COMMANDS, *SERVER_EVENTS)
_internal_adapter: TypeAdapter[Any] = TypeAdapter(EngineCommand)


def _decode(model: type[BaseModel], raw: bytes) -> BaseModel:
    if model in CLIENT_COMMANDS:
        return decode_client_message(raw)
    if model in SERVER_EVENTS:
        return decode_server_message(raw)
    decoded: BaseModel = _internal_adapter.validate_json(raw)
    return decoded


def test_every_registered_message_has_a_fixture() -> None:
    missing = {type_tag(m) for m in ALL_MESSAGES} - set(golden_messages())  # type: ignore[arg-type]
    assert not missing, f"add tests/unit/protocol/golden/<type>.json for: {sorted(missing)}"


def test_no_fixture_without_a_message() -> None:
    orphans = set(golden_messages()) - {type_tag(m) for m in ALL_MESSAGES}  # type: ignore[arg-type]
    assert not orphans


@pytest.mark.parametrize("model", ALL_MESSAGES, ids=lambda m: type_tag(m))
def test_fixture_round_trips(model: type[BaseModel]) -> None:
    tag = type_tag(model)  # type: ignore[arg-type]
    data = json.loads((GOLDEN_DIR / f"{tag}.json").read_text())
    raw = compact(data)
    message = _decode(model, raw)
    assert type(message) is model
    assert encode(message) == raw, "decode -> encode no longer gives the golden JSON"


@pytest.mark.parametrize(
    ("envelope", "name", "decoder"),
    [
        (CommandEnvelope, "_envelope.command.json", decode_command_envelope),
        (EventEnvelope, "_envelope.event.json", decode_event_envelope),
    ],
)
def test_envelope_fixture_round_trips(envelope: type[BaseModel], name: str, decoder: Any) -> None:
    raw = compact(json.loads((GOLDEN_DIR / name).read_text()))
    decoded = decoder(raw)
    assert type(decoded) is envelope
    assert encode(decoded) == raw


def test_fixtures_are_realistic() -> None:
    """Fixed timestamps in UTC, string ids, no placeholder values."""
    for path in sorted(GOLDEN_DIR.glob("*.json")):
        if path.name == "_fields.json":
            continue
        text = path.read_text()
        for placeholder in ("string", "foo", "bar", "xxx", "TODO", "lorem"):
            assert f'"{placeholder}"' not in text, (path.name, placeholder)
        _walk_realistic(json.loads(text), path.name)


def _walk_realistic(node: Any, where: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("_id") and value is not None and key != "request_id":
                assert isinstance(value, str), (where, key, "ids are strings")
            if (key.endswith("_at") or key in {"timestamp", "deadline"}) and value is not None:
                assert isinstance(value, str)
                assert value.startswith("2026-03-14T"), (where, key, "fixed timestamps")
                assert value.endswith("Z"), (where, key, "UTC with Z")
            _walk_realistic(value, where)
    elif isinstance(node, list):
        for item in node:
            _walk_realistic(item, where)


@pytest.mark.parametrize("model", INTERNAL_COMMANDS, ids=lambda m: type_tag(m))
def test_internal_commands_are_refused_from_a_socket(model: type[BaseModel]) -> None:
    raw = compact(json.loads((GOLDEN_DIR / f"{type_tag(model)}.json").read_text()))  # type: ignore[arg-type]
    with pytest.raises(ProtocolError) as caught:
        decode_client_message(raw)
    assert caught.value.code == "unknown_type"


# --- field snapshot -----------------------------------------------------------------------


def _recorded() -> dict[str, dict[str, Any]]:
    recorded: dict[str, dict[str, Any]] = json.loads((GOLDEN_DIR / "_fields.json").read_text())
    return recorded


def test_no_model_or_field_removed_or_renamed() -> None:
    problems = breaking_changes(_recorded(), fields_snapshot())
    assert not problems, "breaking changes inside v1:\n" + "\n".join(problems)


def test_the_snapshot_check_catches_breaking_changes() -> None:
    """The guard itself: simulated removals, renames and tightenings are reported."""
    recorded = _recorded()
    current = fields_snapshot()
    rolled = "games.bigger_dice:Rolled"
    broken = json.loads(json.dumps(current))
    del broken[rolled]["fields"]["new_score"]  # removed
    fields = broken["rooms:TurnChanged"]["fields"]
    fields["deadline"] = fields.pop("turn_deadline")  # renamed
    broken["rooms:CreateRoom"]["fields"]["password"] = "required"  # optional -> required
    broken["chat:SendChat"]["type"] = "games.command.chat"  # message renamed
    del broken["system:Heartbeat"]  # model removed
    problems = breaking_changes(recorded, broken)
    assert len(problems) == 5, problems
    assert any("new_score" in p for p in problems)
    assert any("turn_deadline" in p for p in problems)
    assert any("password" in p for p in problems)
    assert any("SendChat" in p for p in problems)
    assert any("Heartbeat" in p for p in problems)
    # additions are not breaking
    grown = json.loads(json.dumps(current))
    grown[rolled]["fields"]["bonus"] = "optional"
    grown["rooms:CreateRoom"]["fields"]["password"] = "optional"
    assert breaking_changes(recorded, grown) == []


def test_new_fields_are_recorded_and_optional() -> None:
    """New models may have any fields; a new field on a recorded model must be optional. Run
    `scripts/protocol_docs --write` to record additions."""
    recorded = _recorded()
    unrecorded: list[str] = []
    for key, entry in fields_snapshot().items():
        if key not in recorded:
            unrecorded.append(f"model {key}")
            continue
        for name, kind in entry["fields"].items():
            if name not in recorded[key]["fields"]:
                assert kind != "required", f"{key}.{name}: a new field must be optional"
                unrecorded.append(f"{key}.{name}")
    assert not unrecorded, "record with scripts/protocol_docs --write: " + ", ".join(unrecorded)


def test_snapshot_merge_never_drops_a_field() -> None:
    """The snapshot writer keeps what was recorded, so --write cannot hide a removal."""
    recorded = _recorded()
    some_key = next(iter(recorded))
    tampered = {**recorded, some_key: {**recorded[some_key], "fields": {"gone": "required"}}}
    merged = merged_fields_snapshot(tampered)
    assert merged[some_key]["fields"]["gone"] == "required"
    assert set(recorded[some_key]["fields"]) <= set(merged[some_key]["fields"])


def test_golden_dir_has_only_known_files() -> None:
    names = {p.name for p in Path(GOLDEN_DIR).iterdir()}
    expected = {f"{type_tag(m)}.json" for m in ALL_MESSAGES}  # type: ignore[arg-type]
    expected |= {"_fields.json", "_envelope.command.json", "_envelope.event.json"}
    assert names == expected
