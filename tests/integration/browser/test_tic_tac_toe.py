"""A real browser plays tic-tac-toe: the same page, gateway and engine as Bigger Dice, the game
chosen on the page. Two Chromium pages: alice picks the game and creates a room, bob's lobby
list (filtered by the game he picked) shows it, he joins, both play a whole game on the 3x3
board to the game-over card; bob's socket is cut mid-game and his page resumes by `last_seq`.

Both players press the first free cell whenever their page lets them: the starter of a round
then wins it on the diagonal 2-4-6 and the starters alternate, so the game runs (about) the
whole nine rounds. Nothing sleeps: every step waits for the page.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.support.browser import (
    GAME_MS,
    STEP_MS,
    Stack,
    User,
    assert_shows_game_over,
    axe_violations,
    join_from_list,
    login,
    room_row,
    seat_and_start,
    unique_room,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

GAME_TYPE = "tic_tac_toe"
MOVE = "games.command.tic_tac_toe.move"
GAME_OVER = "games.event.tic_tac_toe.game_over"

# "cell-<n>" for the first cell the page lets me press, "over" once it shows the game-over card
# (a truthy value ends the wait)
_MY_CELL = """() => {
    if (!document.querySelector('#gameover-card').hidden) return "over";
    const cell = document.querySelector('#ttt-board button:not([disabled])');
    return cell ? cell.id : null;
}"""


async def play_board(
    user: User,
    *,
    after_move: Callable[[int], Awaitable[None]] | None = None,
    let_time_out: Callable[[], Awaitable[None]] | None = None,
    within_ms: int = GAME_MS,
) -> int:
    """Press the first free cell whenever the page enables one, until it shows the game-over
    card; returns how many moves it made. `after_move(n)` runs after the n-th move.
    `let_time_out`: on the first turn, press nothing and wait in it (the server's move timer
    then forfeits the round)."""
    page = user.page
    moves = 0
    while True:
        handle = await page.wait_for_function(_MY_CELL, timeout=within_ms)
        cell = await handle.json_value()
        if cell == "over":
            return moves
        if let_time_out is not None:
            await let_time_out()
            let_time_out = None
            continue
        await page.click(f"#{cell}", timeout=STEP_MS)
        moves += 1
        if after_move is not None:
            await after_move(moves)


# the move timer, short so the test sees one run out (the game's own default is 60 s; the
# engine's ENGINE_TURN_TIMEOUT_SECONDS caps it when set). Every other move is a click, well
# inside it even on a loaded machine.
MOVE_TIMEOUT = {"ENGINE_TURN_TIMEOUT_SECONDS": "8"}
ROUND_RESULT = "games.event.tic_tac_toe.round_result"


@pytest.mark.parametrize("browser_stack", [MOVE_TIMEOUT], indirect=True)
async def test_browser_tic_tac_toe_full_game(browser_stack: Stack, chromium: Any) -> None:
    """A whole game between two browsers: bob lets his first move time out (the round is
    forfeited to alice, and both pages say so), and his socket drops after his third move
    and his page resumes by last_seq."""
    from playwright.async_api import expect

    started = time.monotonic()
    room_name = f"Noughts {unique_room().split()[-1]}"
    alice = await User.open(chromium, "alice")
    bob = await User.open(chromium, "bob", viewport={"width": 390, "height": 844})  # a phone
    for user in (alice, bob):
        user.watch()
    await login(bob, browser_stack)
    await login(alice, browser_stack)

    # the page offers every game; Bigger Dice is the default
    for user in (alice, bob):
        select = user.page.locator("#create-game")
        await expect(select).to_have_value("bigger_dice", timeout=STEP_MS)
        assert await select.locator(f'option[value="{GAME_TYPE}"]').count() == 1
    await bob.page.select_option("#create-game", GAME_TYPE)
    await expect(bob.page.locator("#rooms-game")).to_have_text("Tic-tac-toe rooms")

    alice_page = alice.page
    await alice_page.select_option("#create-game", GAME_TYPE)
    await expect(alice_page.locator("#create-max")).to_have_value("2")  # two seats, always
    await alice_page.fill("#create-name", room_name)
    await alice_page.click("#create-submit")
    await expect(alice_page.locator("#room-name")).to_have_text(room_name, timeout=STEP_MS)
    created = alice.sent_of("games.command.create_room")
    assert created[-1]["game_type"] == GAME_TYPE, created

    # bob's list shows the new room live; the Bigger Dice list does not have it
    await expect(room_row(bob, room_name)).to_be_visible(timeout=STEP_MS)
    await bob.page.select_option("#create-game", "bigger_dice")
    await expect(room_row(bob, room_name)).to_have_count(0, timeout=STEP_MS)
    await bob.page.select_option("#create-game", GAME_TYPE)
    await expect(room_row(bob, room_name)).to_be_visible(timeout=STEP_MS)
    listed = bob.sent_of("games.command.list_rooms")
    assert [f["game_type"] for f in listed[-3:]] == [GAME_TYPE, "bigger_dice", GAME_TYPE]
    await join_from_list(bob, room_name)
    assert bob.sent_of("games.command.join_room")[-1]["game_type"] == GAME_TYPE

    await seat_and_start(alice, [alice, bob])
    for user in (alice, bob):
        page = user.page
        await expect(page.locator("#ttt-board button")).to_have_count(9, timeout=STEP_MS)
        await expect(page.locator("#btn-roll")).to_be_hidden()
        await expect(page.locator("#die")).to_be_hidden()
        await expect(page.locator("#btn-autoplay")).to_be_hidden()
        await expect(page.locator("#ttt-cell-4")).to_have_attribute("aria-label", "Cell 5, empty")
    # alice (seat 0) starts with X; bob waits
    await expect(alice.page.locator("#ttt-cell-0")).to_be_enabled(timeout=STEP_MS)
    await expect(alice.page.locator("#turn-info")).to_contain_text("Your turn (X)")
    await expect(bob.page.locator("#ttt-cell-0")).to_be_disabled()
    await expect(bob.page.locator("#turn-info")).to_contain_text("alice's turn")
    # the board is as accessible as the rest of the page (WCAG 2 A/AA, axe-core)
    for user in (alice, bob):
        violations = await axe_violations(user.page)
        assert not violations, (user.name, [(v["id"], v["nodes"]) for v in violations])

    async def drop_bob(moves: int) -> None:
        if moves == 3:
            await bob.page.evaluate("window.parlour.dropConnection()")

    room_id = (await alice.summary())["room_id"]

    async def bob_waits_out_his_turn() -> None:
        await browser_stack.bus.wait_for(
            lambda e: e.type == ROUND_RESULT and bool(getattr(e.payload, "by_timeout", False)),
            room_id=room_id,
            within=60,
            what="a round forfeited on time",
        )

    alice_moves, bob_moves = await asyncio.gather(
        play_board(alice),
        play_board(bob, after_move=drop_bob, let_time_out=bob_waits_out_his_turn),
    )
    assert bob_moves >= 3, "the game ended before bob's socket could be dropped"
    assert bob.sockets >= 2, "bob's page never reconnected"

    over = (
        await browser_stack.bus.wait_for(
            lambda e: e.type == GAME_OVER, room_id=room_id, within=30, what="game_over"
        )
    ).payload
    assert over.winner in ("alice", "bob", None), over
    results = [
        e.payload
        for e in browser_stack.bus.by_room[room_id]
        if e.type == "games.event.tic_tac_toe.round_result"
    ]
    for user in (alice, bob):
        await assert_shows_game_over(user, over)
        user.check_frames()
        summary = await user.summary()
        assert summary["game_type"] == GAME_TYPE
        assert summary["board"] == list(results[-1].board), summary  # ends on the last board
        assert summary["round_wins"] == results[-1].round_wins
        assert [r["winner_id"] for r in summary["round_results"]] == [r.winner_id for r in results]
        # the round bob let run out went to alice, on time, and the page says so
        timed_out = [r for r in summary["round_results"] if r["by_timeout"]]
        assert [r["winner_id"] for r in timed_out] == ["alice"], summary["round_results"]
        await expect(user.page.locator("#round-log li", has_text="on time")).to_have_count(1)
        log = user.page.locator("#round-log li")
        await expect(log).to_have_count(len(results), timeout=STEP_MS)
        # the winning line of the last round is marked on the final board
        for position in results[-1].line or []:
            cell = user.page.locator(f"#ttt-cell-{position}")
            await expect(cell).to_have_class(re.compile(r"\bttt-line\b"))
    # one move command per click, every one a cell of the board; nobody moved out of turn
    assert len(alice.sent_of(MOVE)) == alice_moves
    assert len(bob.sent_of(MOVE)) == bob_moves
    assert all(0 <= f["position"] <= 8 and f["room_id"] == room_id for f in bob.sent_of(MOVE))
    # bob's second socket re-authenticated and resumed the room by last_seq
    rejoins = bob.sent_of("games.command.rejoin_room")
    assert rejoins, "bob's page never sent rejoin_room"
    assert rejoins[-1]["room_id"] == room_id
    assert rejoins[-1]["game_type"] == GAME_TYPE
    assert isinstance(rejoins[-1].get("last_seq"), int), rejoins
    print(
        f"browser tic-tac-toe: {time.monotonic() - started:.1f}s, "
        f"{alice_moves}+{bob_moves} moves, {len(results)} rounds"
    )
