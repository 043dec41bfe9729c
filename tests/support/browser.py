"""The browser harness: Debian's Chromium driven by Playwright against a real gateway and
engine (the `stack` and `chromium` fixtures), one user's page, and the UI steps tests share."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from parlour_protocol.v1 import Topics, decode_client_message
from tests.support.engine_harness import Bus, EngineProcess
from tests.support.gateway_harness import GatewayProc

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


GAME_OVER = "games.event.bigger_dice.game_over"


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "chromium is not installed, so the browser tests cannot run. Install Debian's "
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

    @property
    def url(self) -> str:
        # short dice animations keep the games quick; the queue still runs every one
        return f"http://127.0.0.1:{self.gateway.port}/?anim=120"

    async def game_over(self, room_id: str) -> Any:
        envelope = await self.bus.wait_for(
            lambda e: e.type == GAME_OVER, room_id=room_id, within=30, what="game_over"
        )
        return envelope


@pytest.fixture
async def browser_stack(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    redis_url: str,
    topic_prefix: str,
    create_topics: Any,
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    """One real engine and one real dev-mode gateway on this test's topics and keys. An
    indirect parameter adds engine settings."""
    chromium_path()  # fail before starting anything when the browser is missing
    engine_extra: dict[str, str] = getattr(request, "param", {})
    topics = Topics(prefix=topic_prefix)
    await create_topics(kafka_bootstrap, topics.with_partitions())
    engine = EngineProcess.configure(
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=topic_prefix,
        log_dir=tmp_path,
        extra=engine_extra,
    )
    engine.start()
    gateway = GatewayProc(
        bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=topic_prefix,
        key_prefix=topic_prefix,  # the engine's REDIS_KEY_PREFIX: the replay stream is shared
        public_key=None,
        log_dir=tmp_path,
        # a short heartbeat so every test sees the page keep its socket alive
        env={"AUTH_DEV_MODE": "true", "WS_HEARTBEAT_INTERVAL_SECONDS": "2"},
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


@pytest.fixture
async def chromium(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """Debian's chromium, headless; `launch()` gives it a fresh temporary user-data-dir."""
    monkeypatch.setenv("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


FrameFilter = Callable[[dict[str, Any]], list[dict[str, Any]]]


@dataclass
class User:
    """One user's browser context and page, with every WebSocket frame it sent and got."""

    name: str
    context: Any
    page: Any
    sent: list[str] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    sockets: int = 0
    errors: list[str] = field(default_factory=list)

    @classmethod
    async def open(
        cls, chromium: Any, name: str, *, viewport: dict[str, int] | None = None
    ) -> User:
        context = await chromium.new_context(viewport=viewport or {"width": 1100, "height": 900})
        user = cls(name, context, await context.new_page())
        user.page.on("pageerror", lambda exc: user.errors.append(str(exc)))
        return user

    def watch(self) -> None:
        """Record the page's frames as Chromium sees them."""

        def on_socket(ws: Any) -> None:
            self.sockets += 1
            ws.on("framesent", lambda payload: self.sent.append(_text(payload)))
            ws.on("framereceived", lambda payload: self.received.append(json.loads(payload)))

        self.page.on("websocket", on_socket)

    async def proxy(self, server_to_page: FrameFilter) -> None:
        """Put Playwright between the page and the gateway: every server frame passes through
        `server_to_page`, which returns the frames the page gets instead (none, one, two)."""

        def handler(route: Any) -> None:
            self.sockets += 1
            server = route.connect_to_server()

            def from_page(message: str | bytes) -> None:
                self.sent.append(_text(message))
                server.send(message)

            def from_server(message: str | bytes) -> None:
                frame = json.loads(message)
                self.received.append(frame)
                for out in server_to_page(frame):
                    route.send(json.dumps(out))

            route.on_message(from_page)
            server.on_message(from_server)

        await self.page.route_web_socket(re.compile(r"/ws$"), handler)

    async def summary(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.page.evaluate("window.parlour.summary()")
        return result

    def check_frames(self, *, allowed_errors: tuple[str, ...] = ()) -> None:
        """Every frame sent is a valid v1 command; no unexpected error; no script error."""
        assert self.sent, self.name
        for raw in self.sent:
            decode_client_message(raw)  # raises ProtocolError on a bad frame
        errors = [
            f
            for f in self.received
            if f.get("type") == "system.error" and f.get("code") not in allowed_errors
        ]
        assert not errors, (self.name, errors)
        assert not self.errors, (self.name, self.errors)

    def sent_of(self, type_: str) -> list[dict[str, Any]]:
        frames = (json.loads(raw) for raw in self.sent)
        return [f for f in frames if f.get("type") == type_]


def _text(payload: str | bytes) -> str:
    return payload.decode() if isinstance(payload, bytes) else payload


async def login(user: User, stack: Stack) -> None:
    from playwright.async_api import expect

    page = user.page
    await page.goto(stack.url)
    await page.fill("#login-username", user.name)
    await page.click("#login-submit")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=STEP_MS)
    await expect(page.locator("#me")).to_have_text(user.name, timeout=STEP_MS)
    await expect(page.locator("#view-lobby")).to_be_visible(timeout=STEP_MS)


async def create_room(user: User, room_name: str, password: str = "") -> None:
    from playwright.async_api import expect

    await user.page.fill("#create-name", room_name)
    if password:
        await user.page.fill("#create-password", password)
    await user.page.select_option("#create-max", "2")
    await user.page.click("#create-submit")
    await expect(user.page.locator("#room-name")).to_have_text(room_name, timeout=STEP_MS)


def room_row(user: User, room_name: str) -> Any:
    return user.page.locator(f'#rooms li[data-room-name="{room_name}"]')


async def join_from_list(
    user: User, room_name: str, action: str = "join", password: str = ""
) -> None:
    from playwright.async_api import expect

    row = room_row(user, room_name)
    if password:
        await row.locator("input.pw").fill(password, timeout=STEP_MS)
    await row.locator(f'button[data-action="{action}"]').click(timeout=STEP_MS)
    await expect(user.page.locator("#room-name")).to_have_text(room_name, timeout=STEP_MS)


async def seat_and_start(host: User, players: list[User]) -> None:
    """The host selects every player, each presses Ready, every page shows the game."""
    from playwright.async_api import expect

    lobby = host.page.locator("#lobby-list")
    for player in players:
        member = lobby.locator(f'li[data-user-id="{player.name}"]')
        await member.locator('button[data-action="select_player"]').click(timeout=STEP_MS)
        await expect(member.locator(".tag-selected")).to_be_visible(timeout=STEP_MS)
    for player in players:
        await player.page.locator("#btn-ready").click(timeout=STEP_MS)
    for player in players:
        await expect(player.page.locator("#game-card")).to_be_visible(timeout=STEP_MS)


async def play(
    user: User, *, after_roll: Callable[[int], Any] | None = None, within_ms: int = GAME_MS
) -> int:
    """Roll whenever the page enables Roll, until it shows the game-over card; returns how
    many times it rolled. `after_roll(n)` runs after the n-th roll."""
    page = user.page
    rolls = 0
    while True:
        await page.wait_for_function(
            "() => !document.querySelector('#btn-roll').disabled"
            " || !document.querySelector('#gameover-card').hidden",
            timeout=within_ms,
        )
        if await page.locator("#gameover-card").is_visible():
            return rolls
        await page.click("#btn-roll")
        rolls += 1
        if after_roll is not None:
            await after_roll(rolls)


async def assert_shows_game_over(user: User, over: Any) -> None:
    """The page's game-over card and state match the engine's game_over exactly."""
    from playwright.async_api import expect

    page = user.page
    expected = [(s.user_id, s.username, s.score) for s in over.final_scores]
    await expect(page.locator("#gameover-card")).to_be_visible(timeout=STEP_MS)
    await expect(page.locator("#winner-name")).to_have_text(over.winner_name, timeout=STEP_MS)
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
    assert shown == expected, (user.name, shown, expected)
    summary = await user.summary()
    assert summary["winner"] == over.winner
    assert summary["final_scores"] == [s.model_dump() for s in over.final_scores]
    assert summary["status"] == "finished"
    assert summary["last_seq"] == over.seq, (user.name, summary["last_seq"], over.seq)
    assert summary["scores"] == {s.user_id: s.score for s in over.final_scores}
    assert summary["stats"]["errors"] == 0, summary["stats"]  # no event failed to apply


def unique_room() -> str:
    return f"Dice {uuid.uuid4().hex[:6]}"


AXE_JS = (
    Path(__file__).resolve().parents[2] / "scripts/asyncapi_check/node_modules/axe-core/axe.min.js"
)


AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


async def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.0/2.1 A and AA violations on the page as it is now: each with its
    id, impact, help and nodes (each node's target selectors and failure summary)."""
    if not AXE_JS.is_file():
        pytest.fail(
            f"{AXE_JS} is missing, so the accessibility checks cannot run: "
            "run `npm ci --prefix scripts/asyncapi_check` (`make test` does).",
            pytrace=False,
        )
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        # not page.add_script_tag: the gateway's CSP (script-src 'self') refuses an inline
        # <script>, and it stays in force here; DevTools evaluation is outside its reach
        await page.evaluate(AXE_JS.read_text(encoding="utf-8") + "\n;0")
    violations: list[dict[str, Any]] = await page.evaluate(
        """async (tags) => {
            const r = await window.axe.run(document, {
                runOnly: {type: "tag", values: tags}, resultTypes: ["violations"],
            });
            return r.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map((n) => ({target: n.target, summary: n.failureSummary})),
            }));
        }""",
        AXE_TAGS,
    )
    return violations
