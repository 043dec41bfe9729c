"""The committed generated contract (docs/protocol.md, docs/protocol/) matches the models."""

from __future__ import annotations

import json

import pytest
from protocol_docs.files import render, stale
from protocol_docs.javascript import js_pattern
from protocol_docs.sources import DOCS_DIR, DOCS_MD, WEB_PROTOCOL_JS

from parlour_protocol.v1 import CLIENT_COMMANDS, INTERNAL_COMMANDS, SERVER_EVENTS, type_tag
from tests.support.golden import REPO_ROOT


def test_generated_files_are_up_to_date() -> None:
    outdated = stale(render())
    assert not outdated, (
        "generated protocol docs are stale; run "
        ".venv/bin/python scripts/protocol_docs --write\n" + "\n".join(outdated)
    )


def test_generation_is_deterministic() -> None:
    assert render() == render()


def test_every_message_has_a_schema_and_a_doc_section() -> None:
    files = render()
    markdown = files[DOCS_MD]
    for folder, models in (
        ("client", CLIENT_COMMANDS),
        ("internal", INTERNAL_COMMANDS),
        ("server", SERVER_EVENTS),
    ):
        for model in models:
            tag = type_tag(model)
            schema = json.loads(files[DOCS_DIR / "schemas" / folder / f"{tag}.json"])
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


def test_every_message_says_who_receives_it_or_what_it_causes() -> None:
    """The protocol docs read a command's answer and an event's audience from the message
    class itself (`doc_answer` / `doc_audience`), so each one sets its own."""
    for model in (*CLIENT_COMMANDS, *INTERNAL_COMMANDS):
        text = vars(model).get("doc_answer")
        assert isinstance(text, str), f"{type_tag(model)} sets no doc_answer"
        assert text.strip(), type_tag(model)
    for event in SERVER_EVENTS:
        text = vars(event).get("doc_audience")
        assert isinstance(text, str), f"{type_tag(event)} sets no doc_audience"
        assert text.strip(), type_tag(event)


def test_the_browser_clients_protocol_module_is_generated_and_checked() -> None:
    """clients/web/protocol.js is one of the generated files, so `--check` (and the test
    above) fails when it no longer matches the models."""
    files = render()
    assert WEB_PROTOCOL_JS in files
    edited = {**files, WEB_PROTOCOL_JS: files[WEB_PROTOCOL_JS] + "// edited\n"}
    assert stale(edited) == [str(WEB_PROTOCOL_JS)]


@pytest.mark.parametrize(
    ("python", "javascript"),
    [
        (r"^[A-Za-z0-9_.:@-]+$", r"^[A-Za-z0-9_.:@-]+$"),
        (r"^[\w][\w .]*$", r"^[\p{L}\p{N}\p{M}_][\p{L}\p{N}\p{M}_ .]*$"),
        (r"^[^\x00-\x08]*[^\s\x00]$", r"^[^\x00-\x08]*[^\s\x00]$"),
    ],
)
def test_patterns_become_unicode_javascript_regexps(python: str, javascript: str) -> None:
    assert js_pattern(python) == javascript


def test_a_pattern_without_a_translation_is_refused() -> None:
    with pytest.raises(ValueError, match="no JavaScript translation"):
        js_pattern(r"^(?i)abc\b$")
