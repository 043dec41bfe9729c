"""Every game this repository ships is complete on every side: the protocol declares it, the
engine has its rules, each of its messages has a golden fixture and a section in the protocol
docs, the browser client has a renderer module for it and its type tags are in the generated
protocol.js. A game added on one side only fails here, naming what is missing."""

from __future__ import annotations

import pytest

from parlour_engine.games import discover
from parlour_protocol.v1.registry import GAMES, type_tag
from tests.support.golden import GOLDEN_DIR
from tests.support.paths import REPO_ROOT

CLIENT = REPO_ROOT / "clients" / "web"
PROTOCOL_DOC = REPO_ROOT / "docs" / "protocol.md"


def test_the_protocol_and_the_engine_know_the_same_games() -> None:
    assert set(GAMES) == set(discover().names)
    assert {"bigger_dice", "tic_tac_toe"} <= set(GAMES)


@pytest.mark.parametrize("game", sorted(GAMES))
def test_every_message_of_a_game_has_a_fixture_and_a_doc_entry(game: str) -> None:
    spec = GAMES[game]
    doc = PROTOCOL_DOC.read_text()
    missing = []
    for model in (*spec.commands, *spec.events):
        tag = type_tag(model)
        if not (GOLDEN_DIR / f"{tag}.json").exists():
            missing.append(f"golden fixture {tag}.json")
        if f"`{tag}`" not in doc:
            missing.append(f"docs/protocol.md entry for {tag}")
    assert missing == [], missing


@pytest.mark.parametrize("game", sorted(GAMES))
def test_every_game_has_a_client_renderer(game: str) -> None:
    module = CLIENT / "games" / f"{game}.js"
    assert module.exists(), f"clients/web/games/{game}.js: the browser cannot show {game}"
    generated = (CLIENT / "protocol.js").read_text()
    for model in (*GAMES[game].commands, *GAMES[game].events):
        assert f'"{type_tag(model)}"' in generated, f"protocol.js lacks {type_tag(model)}"
