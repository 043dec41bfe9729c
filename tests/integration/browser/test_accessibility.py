"""The browser client stays accessible: axe-core (scripts/asyncapi_check's pinned npm
package), injected into Debian's Chromium, finds no WCAG 2.0/2.1 A or AA violation on the
login, lobby, room and game views, each checked once the page shows it (no sleeps)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.browser import (
    STEP_MS,
    Stack,
    User,
    axe_violations,
    create_room,
    join_from_list,
    login,
    room_row,
    seat_and_start,
    unique_room,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]


def _report(view: str, violations: list[dict[str, Any]]) -> str:
    lines = [f"{view}: {len(violations)} WCAG 2 A/AA violation(s)"]
    for v in violations:
        lines.append(f"- {v['id']} ({v['impact']}): {v['help']}")
        for node in v["nodes"]:
            lines.append(f"    {' '.join(map(str, node['target']))}: {node['summary']}")
    return "\n".join(lines)


async def test_views_have_no_wcag_violations(browser_stack: Stack, chromium: Any) -> None:
    """alice and bob: login, lobby with a room listed, the room's lobby with both members
    (host's and guest's page), then a Bigger Dice game in progress on both pages."""
    from playwright.async_api import expect

    found: dict[str, list[dict[str, Any]]] = {}

    async def check(view: str, user: User) -> None:
        found[f"{view} ({user.name})"] = await axe_violations(user.page)

    room_name = unique_room()
    alice = await User.open(chromium, "alice")
    bob = await User.open(chromium, "bob")

    await alice.page.goto(browser_stack.url)
    await expect(alice.page.locator("#view-login")).to_be_visible(timeout=STEP_MS)
    await expect(alice.page.locator("#login-submit")).to_be_enabled(timeout=STEP_MS)
    await check("login", alice)

    await login(alice, browser_stack)
    await login(bob, browser_stack)
    await create_room(alice, room_name)
    await expect(room_row(bob, room_name)).to_be_visible(timeout=STEP_MS)
    await check("lobby", bob)

    await join_from_list(bob, room_name)
    for user in (alice, bob):
        members = user.page.locator("#lobby-list li")
        await expect(members).to_have_count(2, timeout=STEP_MS)
    await expect(alice.page.locator('button[data-action="select_player"]').first).to_be_visible(
        timeout=STEP_MS
    )
    await check("room", alice)
    await check("room", bob)

    await seat_and_start(alice, [alice, bob])
    for user in (alice, bob):
        await expect(user.page.locator("#score-list li")).to_have_count(2, timeout=STEP_MS)
        await expect(user.page.locator("#turn-info")).not_to_be_empty(timeout=STEP_MS)
        await check("game", user)

    # one whole round: each player rolls once when the page says it is their turn
    users = {u.name: u for u in (alice, bob)}
    turn = await alice.page.locator("#turn-info").get_attribute("data-turn")
    first = users[turn or ""]
    second = bob if first is alice else alice
    await expect(first.page.locator("#btn-roll")).to_be_enabled(timeout=STEP_MS)
    await first.page.click("#btn-roll")
    await expect(second.page.locator("#btn-roll")).to_be_enabled(timeout=STEP_MS)
    await second.page.click("#btn-roll")
    for user in (alice, bob):
        await expect(user.page.locator("#round-log li")).to_have_count(1, timeout=STEP_MS)
        await expect(user.page.locator("#die")).to_have_text(
            re.compile(r"^[1-6]$"), timeout=STEP_MS
        )
        await expect(user.page.locator("#turn-info")).not_to_be_empty(timeout=STEP_MS)
        await check("game after a round", user)

    failing = {view: v for view, v in found.items() if v}
    assert not failing, "\n\n".join(_report(view, v) for view, v in failing.items())
    for user in (alice, bob):
        assert not user.errors, (user.name, user.errors)
