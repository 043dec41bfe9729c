"""The guide `docs/adding-a-game.md` stays true: its example game, taken out of the guide and
installed in a scratch folder (found only through its `parlour.games` and
`parlour.engine_games` entry points), plays a whole game through a real gateway and a real
engine on real Kafka and Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from parlour_protocol.v1 import GAMES
from tests.support.gateway_harness import GatewayProc, Keys
from tests.support.guide import install_guide_game, pythonpath_with
from tests.support.paths import REPO_ROOT
from tests.support.stack import Player, is_room_event, room_of, running_stack

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

GAME = "higher_or_lower"
TURN = "games.event.turn_changed"
TABLE = "games.event.higher_or_lower.table"
GUESSED = "games.event.higher_or_lower.guessed"
OVER = "games.event.higher_or_lower.game_over"
WINNING_SCORE = 3
"""The guide's `WINNING_SCORE`."""


@pytest.fixture
def installed(tmp_path: Path) -> dict[str, str]:
    """The guide's game installed in a scratch folder: the environment that sees it."""
    assert GAME not in GAMES  # this test process must not know it: only the services do
    site = install_guide_game(tmp_path / "site")
    return {"PYTHONPATH": pythonpath_with(site)}


def test_the_guide_code_passes_mypy_strict(installed: dict[str, str]) -> None:
    """The guide says `RULES: GameRules` makes mypy check the plug-in against the contract."""
    site = installed["PYTHONPATH"].split(os.pathsep)[0]
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", f"{site}/{GAME}"],
        cwd=REPO_ROOT,
        env={**os.environ, **installed},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
async def guide_stack(
    installed: dict[str, str],
    kafka_bootstrap: str,
    redis_url: str,
    topic_prefix: str,
    create_topics: Any,
    tmp_path: Path,
) -> AsyncIterator[tuple[GatewayProc, Keys]]:
    async with running_stack(
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=topic_prefix,
        create_topics=create_topics,
        tmp_path=tmp_path,
        gateways=1,
        engine_env=installed,
        gateway_env=installed,
    ) as (_, (gateway,), keys):
        yield gateway, keys


def _shown(player: Player, room_id: str) -> int:
    """The card on the table as `player` last heard of it."""
    card = 7
    for frame in player.frames:
        if room_of(frame) != room_id:
            continue
        if frame["type"] == TABLE:
            card = frame["card"]
        elif frame["type"] == GUESSED:
            card = frame["drawn"]
    return card


def _turn_or_over(room_id: str, after: int) -> Callable[[dict[str, Any]], bool]:
    """Matches the room's next `turn_changed` or `game_over` after room event `after`."""
    return lambda f: room_of(f) == room_id and f["type"] in (TURN, OVER) and f["seq"] > after


async def test_the_guide_game_plays_through_the_real_stack(
    guide_stack: tuple[GatewayProc, Keys],
) -> None:
    gateway, keys = guide_stack
    tag = uuid.uuid4().hex[:6]
    host = Player(f"h{tag}", keys.token(f"h{tag}"))
    guest = Player(f"g{tag}", keys.token(f"g{tag}"))
    players = {host.user_id: host, guest.user_id: guest}
    try:
        await host.connect(gateway.url)
        await guest.connect(gateway.url)
        room_name = f"Cards {tag}"
        await host.command(
            {
                "type": "games.command.create_room",
                "game_type": GAME,
                "room_name": room_name,
                "max_players": 2,
            }
        )
        state = await host.wait(lambda f: f["type"] == "games.event.room_state")
        room_id = str(state["room"]["room_id"])
        await guest.command(
            {"type": "games.command.join_room", "room_name": room_name, "game_type": GAME}
        )
        await host.wait(is_room_event(room_id, "games.event.lobby_joined"))
        for target in players:
            await host.command(
                {
                    "type": "games.command.select_player",
                    "room_id": room_id,
                    "target_user_id": target,
                }
            )
        for player in players.values():
            await player.command({"type": "games.command.ready", "room_id": room_id})
        await guest.wait(is_room_event(room_id, TABLE))

        seen = 0
        for _ in range(200):
            event = await host.wait(_turn_or_over(room_id, seen), within=30)
            seen = event["seq"]
            if event["type"] == OVER:
                break
            mover = players[event["current_turn"]]
            await mover.command(
                {
                    "type": "games.command.higher_or_lower.guess",
                    "room_id": room_id,
                    "higher": _shown(mover, room_id) <= 7,
                }
            )
        else:
            pytest.fail("no game_over after 200 guesses")

        over = await guest.wait(is_room_event(room_id, OVER))
        assert over["winner"] in players
        assert over["scores"][over["winner"]] == WINNING_SCORE
        guesses = [f for f in host.frames if room_of(f) == room_id and f["type"] == GUESSED]
        right = sum(1 for g in guesses if g["player_id"] == over["winner"] and g["right"])
        assert right == WINNING_SCORE
        for g in guesses:  # the rules the guide states: equal is never right
            assert g["right"] == (
                g["drawn"] > g["shown"] if g["higher"] else g["drawn"] < g["shown"]
            )
    finally:
        for player in players.values():
            await player.close()
