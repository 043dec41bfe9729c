"""A real browser plays Bigger Dice: Debian's Chromium (headless, driven by Playwright) opens
the client a real gateway serves, against a real engine on real Kafka and Redis.

alice and bob (two browser contexts) log in with dev-mode usernames; alice creates a room, bob
joins it from his live lobby list, alice selects both, both press Ready, each rolls on their
turn until the game is over. Midway bob's socket is dropped: his page reconnects, resumes the
room by `last_seq` and finishes the game. Both pages must show the winner and final scores the
engine published in `game_over`, and every frame the pages sent must decode as a v1 command.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from engine_harness import Bus, EngineProcess
from gateway_harness import GatewayProc

from parlour_protocol.v1 import Topics, decode_client_message

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
STEP_MS = 30_000  # the longest any single UI step may take
GAME_MS = 120_000


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "chromium is not installed, so the browser test cannot run. Install Debian's "
            "package (`apt-get install -y chromium`; .ci/run does this on CI). Playwright "
            "never downloads a browser here.",
            pytrace=False,
        )
    return path


@dataclass
class Stack:
    engine: EngineProcess
    gateway: GatewayProc
    bus: Bus


@pytest.fixture
async def stack(
    kafka_bootstrap: str,
    redis_url: str,
    topic_prefix: str,
    create_topics: Any,
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    chromium_path()  # fail before starting anything when the browser is missing
    topics = Topics(prefix=topic_prefix)
    await create_topics(kafka_bootstrap, topics.with_partitions())
    engine = EngineProcess.configure(
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=topic_prefix,
        log_dir=tmp_path,
    )
    engine.start()
    gateway = GatewayProc(
        bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=topic_prefix,
        key_prefix=topic_prefix,  # the engine's REDIS_KEY_PREFIX: the replay stream is shared
        public_key=None,
        log_dir=tmp_path,
        env={"AUTH_DEV_MODE": "true"},
    )
    bus = Bus(kafka_bootstrap, topics)
    try:
        await bus.start()
        await engine.wait_ready()
        await asyncio.to_thread(gateway.wait_ready)
        yield Stack(engine, gateway, bus)
    finally:
        await bus.stop()
        gateway.terminate()
        engine.stop()


@dataclass
class Browser:
    """One user's page, with every WebSocket frame it sent and received."""

    name: str
    page: Any
    sent: list[str] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    sockets: int = 0
    errors: list[str] = field(default_factory=list)

    def watch(self) -> None:
        import json

        def on_socket(ws: Any) -> None:
            self.sockets += 1
            ws.on("framesent", lambda payload: self.sent.append(_text(payload)))
            ws.on("framereceived", lambda payload: self.received.append(json.loads(payload)))

        self.page.on("websocket", on_socket)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    async def summary(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.page.evaluate("window.parlour.summary()")
        return result


def _text(payload: str | bytes) -> str:
    return payload.decode() if isinstance(payload, bytes) else payload


async def login(browser: Browser, base_url: str, username: str) -> None:
    from playwright.async_api import expect

    page = browser.page
    await page.goto(base_url)
    await page.fill("#login-username", username)
    await page.click("#login-submit")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=STEP_MS)
    await expect(page.locator("#me")).to_have_text(username, timeout=STEP_MS)
    await expect(page.locator("#view-lobby")).to_be_visible(timeout=STEP_MS)


async def play(browser: Browser, *, drop_after_rolls: int | None = None) -> int:
    """Roll whenever the page enables Roll, until it shows the game-over card. Optionally
    drop the page's socket (as a network failure would) after some rolls."""
    page = browser.page
    rolls = 0
    dropped = False
    while True:
        await page.wait_for_function(
            "() => !document.querySelector('#btn-roll').disabled"
            " || !document.querySelector('#gameover-card').hidden",
            timeout=GAME_MS,
        )
        if await page.locator("#gameover-card").is_visible():
            return rolls
        await page.click("#btn-roll")
        rolls += 1
        if drop_after_rolls is not None and rolls == drop_after_rolls and not dropped:
            dropped = True
            await page.evaluate("window.parlour.dropConnection()")


async def test_browser_two_players_full_game(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.async_api import async_playwright, expect

    started = time.monotonic()
    base_url = f"http://127.0.0.1:{stack.gateway.port}/?anim=120"
    room_name = f"Dice {uuid.uuid4().hex[:6]}"
    async with async_playwright() as pw:
        # launch() gives the browser a fresh temporary profile (user-data-dir) of its own
        chromium = await pw.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            alice = Browser("alice", await (await chromium.new_context()).new_page())
            bob = Browser("bob", await (await chromium.new_context()).new_page())
            for b in (alice, bob):
                b.watch()
            await login(bob, base_url, "bob")
            await login(alice, base_url, "alice")

            # alice creates the room; bob's lobby list shows it live (room_created broadcast)
            await alice.page.fill("#create-name", room_name)
            await alice.page.select_option("#create-max", "2")
            await alice.page.click("#create-submit")
            await expect(alice.page.locator("#room-name")).to_have_text(room_name, timeout=STEP_MS)
            bob_row = bob.page.locator(f'#rooms li[data-room-name="{room_name}"]')
            await bob_row.locator('button[data-action="join"]').click(timeout=STEP_MS)
            await expect(bob.page.locator("#room-name")).to_have_text(room_name, timeout=STEP_MS)

            # alice (host) sees bob in the lobby and selects both seats
            lobby = alice.page.locator("#lobby-list")
            for uid in ("alice", "bob"):
                await lobby.locator(
                    f'li[data-user-id="{uid}"] button[data-action="select_player"]'
                ).click(timeout=STEP_MS)
                selected = lobby.locator(f'li[data-user-id="{uid}"] .tag-selected')
                await expect(selected).to_be_visible(timeout=STEP_MS)
            for b in (alice, bob):
                await b.page.locator("#btn-ready").click(timeout=STEP_MS)
            for b in (alice, bob):
                await expect(b.page.locator("#game-card")).to_be_visible(timeout=STEP_MS)

            # play to the end; bob's socket is cut after his third roll
            alice_rolls, bob_rolls = await asyncio.gather(
                play(alice), play(bob, drop_after_rolls=3)
            )
            assert bob_rolls >= 3, "the game ended before bob's socket could be dropped"
            assert bob.sockets >= 2, "bob's page never reconnected"

            room_id = (await alice.summary())["room_id"]
            over_env = await stack.bus.wait_for(
                lambda e: e.type == "games.event.bigger_dice.game_over",
                room_id=room_id,
                within=30,
                what="game_over",
            )
            over: Any = over_env.payload
            expected = [(s.user_id, s.username, s.score) for s in over.final_scores]

            for b in (alice, bob):
                page = b.page
                await expect(page.locator("#gameover-card")).to_be_visible(timeout=STEP_MS)
                await expect(page.locator("#winner-name")).to_have_text(
                    over.winner_name, timeout=STEP_MS
                )
                rows = page.locator("#final-scores tr")
                await expect(rows).to_have_count(len(expected), timeout=STEP_MS)
                shown = [
                    (
                        await rows.nth(i).get_attribute("data-user-id"),
                        await rows.nth(i).locator("td").nth(0).text_content(),
                        int(await rows.nth(i).locator("td").nth(1).text_content() or "-1"),
                    )
                    for i in range(len(expected))
                ]
                assert shown == expected, (b.name, shown, expected)
                summary = await b.summary()
                assert summary["winner"] == over.winner
                assert summary["final_scores"] == [s.model_dump() for s in over.final_scores]
                assert summary["status"] == "finished"
                assert summary["last_seq"] == over.seq, (b.name, summary["last_seq"], over.seq)
                # the page's score table agrees with the engine too
                assert summary["scores"] == {s.user_id: s.score for s in over.final_scores}

            # every frame the pages sent is a valid v1 command; none was refused
            for b in (alice, bob):
                assert b.sent, b.name
                for raw in b.sent:
                    decode_client_message(raw)  # raises ProtocolError on a bad frame
                errors = [f for f in b.received if f.get("type") == "system.error"]
                assert not errors, (b.name, errors)
                assert not b.errors, (b.name, b.errors)
            # the page rolled only on its own turns: one roll command per click
            rolls_sent = {
                b.name: sum('"games.command.bigger_dice.roll"' in raw for raw in b.sent)
                for b in (alice, bob)
            }
            assert rolls_sent == {"alice": alice_rolls, "bob": bob_rolls}
            # bob's second socket resumed the room by last_seq
            rejoins = [raw for raw in bob.sent if '"games.command.rejoin_room"' in raw]
            assert rejoins, "bob's page never sent rejoin_room"
            assert '"last_seq"' in rejoins[-1], rejoins
        finally:
            await chromium.close()
    duration = time.monotonic() - started
    print(f"browser game: {duration:.1f}s, {alice_rolls}+{bob_rolls} rolls")
    assert os.environ.get("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD") == "1"
