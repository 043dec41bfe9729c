"""The committed generated contract (docs/protocol.md, docs/protocol/) matches the models."""

from __future__ import annotations

import json

from protocol_golden_util import REPO_ROOT, gen_docs

from parlour_protocol.v1 import CLIENT_COMMANDS, INTERNAL_COMMANDS, SERVER_EVENTS, type_tag


def test_generated_files_are_up_to_date() -> None:
    stale = gen_docs()._stale(gen_docs().render())
    assert not stale, (
        "generated protocol docs are stale; run "
        ".venv/bin/python scripts/gen_protocol_docs.py --write\n" + "\n".join(stale)
    )


def test_generation_is_deterministic() -> None:
    assert gen_docs().render() == gen_docs().render()


def test_every_message_has_a_schema_and_a_doc_section() -> None:
    files = gen_docs().render()
    markdown = files[gen_docs().DOCS_MD]
    for folder, models in (
        ("client", CLIENT_COMMANDS),
        ("internal", INTERNAL_COMMANDS),
        ("server", SERVER_EVENTS),
    ):
        for model in models:
            tag = type_tag(model)
            schema = json.loads(files[gen_docs().DOCS_DIR / "schemas" / folder / f"{tag}.json"])
            assert schema["properties"]["type"]["const"] == tag
            assert f"#### `{tag}`" in markdown


def test_asyncapi_names_the_three_topics_and_keys() -> None:
    doc = json.loads((REPO_ROOT / "docs" / "protocol" / "asyncapi.json").read_text())
    assert doc["asyncapi"] == "3.0.0"
    addresses = {channel["address"] for channel in doc["channels"].values()}
    assert addresses == {"games.command.v1", "games.event.v1", "games.command.v1.dlq"}
    for message in doc["components"]["messages"].values():
        assert message["bindings"]["kafka"]["key"]["type"] == "string"
    assert {"CommandEnvelope", "EventEnvelope"} <= set(doc["components"]["schemas"])
    # every $ref resolves inside the document
    text = json.dumps(doc)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "#/')[1:]}:
        node = doc
        for step in ref.split("/"):
            node = node[step]


def test_protocol_md_lists_what_was_left_out() -> None:
    markdown = (REPO_ROOT / "docs" / "protocol.md").read_text()
    for name in (
        "games.command.spectate",
        "player_chat",
        "spectator_chat",
        "chat.command.typing",
        "chat.command.mark_read",
        "chat.command.send_lobby_message",
        "insufficient_balance",
        "user_not_found",
        "join_failed",
        "unban_failed",
        "tic-tac-toe",
        "rooms_updated",
        "room_creation_failed",
        "player_joined",
        "lobby_updated",
        "spectators_updated",
        "round_complete",
        "state_sync",
        "your_turn",
    ):
        assert name in markdown, name


def test_golden_examples_fit_their_schema_top_level() -> None:
    """Without a JSON Schema validator installed: every required property is in the example,
    every example key is a declared property, and `type` is the schema's const."""
    files = gen_docs().render()
    for folder, models in (
        ("client", CLIENT_COMMANDS),
        ("internal", INTERNAL_COMMANDS),
        ("server", SERVER_EVENTS),
    ):
        for model in models:
            tag = type_tag(model)
            schema = json.loads(files[gen_docs().DOCS_DIR / "schemas" / folder / f"{tag}.json"])
            example = json.loads(
                (REPO_ROOT / "tests" / "protocol" / "golden" / f"{tag}.json").read_text()
            )
            assert set(schema.get("required", [])) <= set(example), tag
            assert set(example) <= set(schema["properties"]), tag
            assert example["type"] == schema["properties"]["type"]["const"]
