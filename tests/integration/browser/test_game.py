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
import re
import time
from pathlib import Path
from typing import Any

import pytest

from parlour_protocol.v1 import Topics
from tests.support.browser import (
    STEP_MS,
    Stack,
    User,
    assert_shows_game_over,
    create_room,
    join_from_list,
    login,
    play,
    room_row,
    seat_and_start,
    unique_room,
)
from tests.support.gateway_harness import GatewayProc

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]


async def test_browser_two_players_full_game(browser_stack: Stack, chromium: Any) -> None:
    """alice creates, bob joins from his live list, both play to the end; bob's socket is
    cut after his third roll and his page resumes the room by last_seq."""
    from playwright.async_api import expect

    started = time.monotonic()
    room_name = unique_room()
    alice = await User.open(chromium, "alice")
    bob = await User.open(chromium, "bob", viewport={"width": 390, "height": 844})  # a phone
    for user in (alice, bob):
        user.watch()
    await login(bob, browser_stack)
    await login(alice, browser_stack)

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
    over = (await browser_stack.game_over(room_id)).payload
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
    browser_stack: Stack, chromium: Any
) -> None:
    from playwright.async_api import expect

    room_name = unique_room()
    alice, bob, carol = [await User.open(chromium, n) for n in ("alice", "bob", "carol")]
    for user in (alice, bob, carol):
        user.watch()
        await login(user, browser_stack)
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
    await login(tab, browser_stack)
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


async def test_browser_resyncs_after_lost_and_duplicate_frames(
    browser_stack: Stack, chromium: Any
) -> None:
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
        await login(user, browser_stack)
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
    over = (await browser_stack.game_over(room_id)).payload
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


@pytest.mark.parametrize("browser_stack", [{"ENGINE_DISCONNECT_GRACE_SECONDS": "2"}], indirect=True)
async def test_browser_vote_kick_after_player_leaves(browser_stack: Stack, chromium: Any) -> None:
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
        await login(user, browser_stack)
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
    await login(carol, browser_stack)
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
    over = (await browser_stack.game_over(room_id)).payload
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
    from playwright.async_api import expect

    from tests.support.gateway_harness import Keys

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
