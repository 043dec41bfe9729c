"""A real browser plays Bigger Dice: Debian's Chromium (headless, driven by Playwright) opens
the client a real gateway serves, against a real engine on real Kafka and Redis.

- a whole two-player game, created and joined through the pages; midway one socket drops and
  the page resumes by `last_seq`; both pages end on the engine's `game_over`;
- lobby features: wrong password, spectator, chat text shown as text, kick, ban, unban, a page
  reload that logs in and rejoins by itself;
- lost and duplicated frames (Playwright sits between page and gateway): the page ignores the
  duplicate, sees the gap, resyncs with `rejoin_room {last_seq}`; auto-play;
- a player whose browser goes away: the other page shows the grace, then the vote button; the
  server plays for the voted-out player until the game ends;
- token login against a gateway that verifies JWTs.

Every frame a page sends must decode as a v1 command. Nothing sleeps: every step waits for what
the page shows, with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable
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


# --------------------------------------------------------------------------- the stack


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
async def stack(
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


# --------------------------------------------------------------------------- one user's page

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


# --------------------------------------------------------------------------- tests


async def test_browser_two_players_full_game(stack: Stack, chromium: Any) -> None:
    """alice creates, bob joins from his live list, both play to the end; bob's socket is
    cut after his third roll and his page resumes the room by last_seq."""
    from playwright.async_api import expect

    started = time.monotonic()
    room_name = unique_room()
    alice = await User.open(chromium, "alice")
    bob = await User.open(chromium, "bob", viewport={"width": 390, "height": 844})  # a phone
    for user in (alice, bob):
        user.watch()
    await login(bob, stack)
    await login(alice, stack)

    await create_room(alice, room_name)
    # bob's lobby list shows the room live (room_created broadcast), without a refresh
    await expect(room_row(bob, room_name)).to_be_visible(timeout=STEP_MS)
    await join_from_list(bob, room_name)
    await seat_and_start(alice, [alice, bob])

    async def drop_bob(rolls: int) -> None:
        if rolls == 3:
            await bob.page.evaluate("window.parlour.dropConnection()")

    alice_rolls, bob_rolls = await asyncio.gather(play(alice), play(bob, after_roll=drop_bob))
    assert bob_rolls >= 3, "the game ended before bob's socket could be dropped"
    assert bob.sockets >= 2, "bob's page never reconnected"

    room_id = (await alice.summary())["room_id"]
    over = (await stack.game_over(room_id)).payload
    for user in (alice, bob):
        await assert_shows_game_over(user, over)
        user.check_frames()
    # the page follows system.welcome's heartbeat_interval (2 s here) and gets acks
    for user in (alice, bob):
        assert len(user.sent_of("system.heartbeat")) >= 2, user.name
        assert any(f["type"] == "system.heartbeat_ack" for f in user.received), user.name
    # one roll command per click: the page never rolled out of turn
    assert len(alice.sent_of("games.command.bigger_dice.roll")) == alice_rolls
    assert len(bob.sent_of("games.command.bigger_dice.roll")) == bob_rolls
    # bob's second socket re-authenticated and resumed the room by last_seq
    rejoins = bob.sent_of("games.command.rejoin_room")
    assert rejoins, "bob's page never sent rejoin_room"
    assert rejoins[-1]["room_id"] == room_id
    assert isinstance(rejoins[-1].get("last_seq"), int), rejoins
    print(f"browser game: {time.monotonic() - started:.1f}s, {alice_rolls}+{bob_rolls} rolls")


async def test_browser_lobby_password_spectator_chat_kick_ban_reload(
    stack: Stack, chromium: Any
) -> None:
    from playwright.async_api import expect

    room_name = unique_room()
    alice, bob, carol = [await User.open(chromium, n) for n in ("alice", "bob", "carol")]
    for user in (alice, bob, carol):
        user.watch()
        await login(user, stack)
    await create_room(alice, room_name, password="s3cret")

    # a wrong password is refused with a readable toast naming the code; nothing joined
    row = room_row(bob, room_name)
    await row.locator("input.pw").fill("nope", timeout=STEP_MS)
    await row.locator('button[data-action="join"]').click()
    await expect(bob.page.locator("#toasts")).to_contain_text("wrong_password", timeout=STEP_MS)
    await expect(bob.page.locator("#view-lobby")).to_be_visible()
    await join_from_list(bob, room_name, password="s3cret")
    await join_from_list(carol, room_name, action="watch", password="s3cret")
    await expect(alice.page.locator("#spectator-list")).to_contain_text("carol", timeout=STEP_MS)

    # chat: markup typed by a user is shown as text, never parsed
    await bob.page.fill("#chat-input", "<img src=x onerror=alert(1)> <b>hi</b>")
    await bob.page.click("#chat-send")
    for user in (alice, bob, carol):
        log = user.page.locator("#chat-log")
        await expect(log).to_contain_text("<b>hi</b>", timeout=STEP_MS)
        assert await log.locator("img, b").count() == 0

    # a reload keeps the login (sessionStorage) and comes back to the room by itself
    await bob.page.reload()
    await expect(bob.page.locator("#room-name")).to_have_text(room_name, timeout=STEP_MS)
    await expect(bob.page.locator("#chat-log")).to_contain_text("<b>hi</b>", timeout=STEP_MS)
    assert bob.sent_of("system.authenticate")[-1]["username"] == "bob"

    # host controls: name the spectator admin, kick her, ban bob, unban him; he joins again
    specs = alice.page.locator("#spectator-list")
    await specs.locator('button[data-action="designate_admin_spectator"]').click()
    await expect(carol.page.locator("#spectator-list")).to_contain_text("admin", timeout=STEP_MS)
    await specs.locator('button[data-action="kick_spectator"]').click(timeout=STEP_MS)
    await expect(carol.page.locator("#view-lobby")).to_be_visible(timeout=STEP_MS)
    await expect(specs).not_to_contain_text("carol", timeout=STEP_MS)

    lobby = alice.page.locator("#lobby-list")
    await lobby.locator('li[data-user-id="bob"] button[data-action="ban_player"]').click()
    await expect(bob.page.locator("#view-lobby")).to_be_visible(timeout=STEP_MS)
    await expect(lobby.locator('li[data-user-id="bob"]')).to_have_count(0, timeout=STEP_MS)
    await expect(room_row(bob, room_name)).to_have_count(0, timeout=STEP_MS)  # hidden from him
    await alice.page.locator('#banned-list button[data-action="unban_player"]').click()
    await expect(alice.page.locator("#banned-box")).to_be_hidden(timeout=STEP_MS)
    await bob.page.click("#rooms-refresh")
    await join_from_list(bob, room_name, password="s3cret")
    await expect(lobby.locator('li[data-user-id="bob"]')).to_be_visible(timeout=STEP_MS)

    # a second tab has no session: bob logs in there and rejoins from the list (can_rejoin)
    tab = User("bob", bob.context, await bob.context.new_page())
    tab.watch()
    await login(tab, stack)
    await room_row(tab, room_name).locator('button[data-action="rejoin"]').click(timeout=STEP_MS)
    await expect(tab.page.locator("#room-name")).to_have_text(room_name, timeout=STEP_MS)

    # carol waits in the lobby too, but both seats go to alice and bob: she is let go
    await join_from_list(carol, room_name, password="s3cret")
    await expect(lobby.locator('li[data-user-id="carol"]')).to_be_visible(timeout=STEP_MS)
    bob_member = lobby.locator('li[data-user-id="bob"]')
    for uid in ("alice", "bob"):
        select = lobby.locator(f'li[data-user-id="{uid}"] button[data-action="select_player"]')
        await select.click(timeout=STEP_MS)
    await expect(carol.page.locator("#view-lobby")).to_be_visible(timeout=STEP_MS)
    await expect(carol.page.locator("#toasts")).to_contain_text("not picked", timeout=STEP_MS)
    await expect(lobby.locator('li[data-user-id="carol"]')).to_have_count(0, timeout=STEP_MS)

    # both seats taken: bob readies, changes his mind (set_ready false); alice sees both
    await bob.page.locator("#btn-ready").click(timeout=STEP_MS)
    await expect(bob_member.locator(".tag-ready")).to_be_visible(timeout=STEP_MS)
    await bob.page.locator("#btn-unready").click(timeout=STEP_MS)
    await expect(bob_member.locator(".tag-ready")).to_have_count(0, timeout=STEP_MS)
    await expect(tab.page.locator("#btn-ready")).to_be_visible(timeout=STEP_MS)
    assert bob.sent_of("games.command.set_ready")[-1]["is_ready"] is False

    alice.check_frames()
    bob.check_frames(allowed_errors=("wrong_password",))
    tab.check_frames()
    carol.check_frames(allowed_errors=("kicked_from_room",))


async def test_browser_resyncs_after_lost_and_duplicate_frames(stack: Stack, chromium: Any) -> None:
    """Between bob's page and the gateway, Playwright doubles the first `turn_changed` and
    loses the first `rolled` frame. The page must skip the duplicate, see the gap and resync
    with rejoin_room {last_seq}, and still finish on the engine's result. alice lets the
    server play for her."""
    from playwright.async_api import expect

    room_name = unique_room()
    alice = await User.open(chromium, "alice")
    bob = await User.open(chromium, "bob")
    alice.watch()
    tampered: dict[str, int] = {}

    def lose_and_double(frame: dict[str, Any]) -> list[dict[str, Any]]:
        if frame["type"] == "games.event.turn_changed" and "doubled" not in tampered:
            tampered["doubled"] = frame["seq"]
            return [frame, frame]
        if frame["type"] == "games.event.bigger_dice.rolled" and "lost" not in tampered:
            tampered["lost"] = frame["seq"]
            return []
        return [frame]

    await bob.proxy(lose_and_double)
    for user in (alice, bob):
        await login(user, stack)
    await create_room(alice, room_name)
    await join_from_list(bob, room_name)
    await seat_and_start(alice, [alice, bob])
    await alice.page.click("#btn-autoplay")
    await expect(
        alice.page.locator('#score-list li[data-user-id="alice"] .tag-auto')
    ).to_be_visible(timeout=STEP_MS)

    bob_rolls = await play(bob)
    assert await play(alice) == 0  # alice's page shows the end; the server rolled for her
    assert "lost" in tampered
    assert "doubled" in tampered
    room_id = (await alice.summary())["room_id"]
    over = (await stack.game_over(room_id)).payload
    for user in (alice, bob):
        await assert_shows_game_over(user, over)
    # the gap made bob's page ask for everything after the last seq it had
    resyncs = [f for f in bob.sent_of("games.command.rejoin_room") if f.get("last_seq") is not None]
    assert resyncs, "bob's page never resynced"
    assert resyncs[0]["last_seq"] == tampered["lost"] - 1
    stats = (await bob.summary())["stats"]
    assert stats["duplicates"] >= 1, stats  # the doubled turn_changed was dropped
    assert stats["gaps"] >= 1, stats
    # every roll of alice's was the server's, and her page marks them
    await expect(alice.page.locator("#round-log")).to_contain_text("alice", timeout=STEP_MS)
    log_text = await alice.page.locator("#round-log").text_content() or ""
    assert re.findall(r"alice \d \(auto\)", log_text), log_text
    assert not re.findall(r"alice \d(?! \(auto\))", log_text), log_text
    assert bob_rolls > 0
    assert not alice.sent_of("games.command.bigger_dice.roll")
    alice.check_frames()
    bob.check_frames()


@pytest.mark.parametrize("stack", [{"ENGINE_DISCONNECT_GRACE_SECONDS": "2"}], indirect=True)
async def test_browser_vote_kick_after_player_leaves(stack: Stack, chromium: Any) -> None:
    """bob's browser closes mid-game; alice's page shows him disconnected, then (after the
    grace) a vote button; her vote hands his turns to the server and the game finishes.
    carol watches the running game by name and sees the same end."""
    from playwright.async_api import expect

    room_name = unique_room()
    alice = await User.open(chromium, "alice")
    bob = await User.open(chromium, "bob")
    alice.watch()
    bob.watch()
    for user in (alice, bob):
        await login(user, stack)
    await create_room(alice, room_name)
    await join_from_list(bob, room_name)
    await seat_and_start(alice, [alice, bob])

    # a couple of rolls each, then bob's browser goes away
    async def two_rolls(user: User) -> None:
        for _ in range(2):
            await user.page.locator("#btn-roll:enabled").click(timeout=STEP_MS)

    await asyncio.gather(two_rolls(alice), two_rolls(bob))
    bob.check_frames()

    # carol cannot see the running game in her list: she watches it by name
    carol = await User.open(chromium, "carol")
    carol.watch()
    await login(carol, stack)
    await expect(room_row(carol, room_name)).to_have_count(0)
    await carol.page.fill("#byname-name", room_name)
    await carol.page.click("#byname-watch")
    await expect(carol.page.locator("#game-card")).to_be_visible(timeout=STEP_MS)
    await expect(carol.page.locator("#round-log li")).not_to_have_count(0, timeout=STEP_MS)
    await expect(carol.page.locator("#btn-roll")).to_be_hidden()

    await bob.context.close()

    bob_row = alice.page.locator('#score-list li[data-user-id="bob"]')
    await expect(bob_row.locator(".tag-off")).to_be_visible(timeout=STEP_MS)
    vote = bob_row.locator('button[data-action="vote_kick"]')
    await vote.click(timeout=STEP_MS)  # appears once the grace has run out
    await expect(bob_row.locator(".tag-auto")).to_be_visible(timeout=STEP_MS)

    await play(alice)
    room_id = (await alice.summary())["room_id"]
    over = (await stack.game_over(room_id)).payload
    for user in (alice, carol):
        await assert_shows_game_over(user, over)
        assert "bob" in (await user.summary())["auto_players"]
        user.check_frames()
    assert alice.sent_of("games.command.vote_kick_disconnected")[0]["target_user_id"] == "bob"


async def test_browser_token_login(
    kafka_bootstrap: str,
    redis_url: str,
    topic_prefix: str,
    create_topics: Any,
    tmp_path: Path,
    chromium: Any,
) -> None:
    """A gateway that verifies JWTs (no dev mode): a pasted bad token is refused with a toast
    and the login form comes back; a good one logs in as its subject and survives a reload."""
    from gateway_harness import Keys
    from playwright.async_api import expect

    await create_topics(kafka_bootstrap, Topics(prefix=topic_prefix).with_partitions())
    keys = Keys(tmp_path)
    gateway = GatewayProc(
        bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=topic_prefix,
        key_prefix=topic_prefix,
        public_key=keys.public_path,
        log_dir=tmp_path,
    )
    try:
        await asyncio.to_thread(gateway.wait_ready)
        user = await User.open(chromium, "dora")
        user.watch()
        page = user.page
        await page.goto(f"http://127.0.0.1:{gateway.port}/")
        await page.fill("#login-token", "not-a-token")
        await page.click("#login-submit")
        await expect(page.locator("#toasts")).to_contain_text("auth_failed", timeout=STEP_MS)
        await expect(page.locator("#view-login")).to_be_visible(timeout=STEP_MS)

        await page.fill("#login-token", keys.token("1042", username="Dora"))
        await page.click("#login-submit")
        await expect(page.locator("#me")).to_have_text("Dora", timeout=STEP_MS)
        await expect(page.locator("#view-lobby")).to_be_visible(timeout=STEP_MS)
        assert (await user.summary())["me"]["user_id"] == "1042"
        await page.reload()
        await expect(page.locator("#me")).to_have_text("Dora", timeout=STEP_MS)
        # the token went only to the socket, never into a dev-mode identity
        for auth in user.sent_of("system.authenticate"):
            assert auth.get("user_id") is None
            assert auth.get("username") is None
        user.check_frames(allowed_errors=("auth_failed",))
    finally:
        gateway.terminate()
