"""Muting through the real stack: two gateways, one engine, real Kafka and Redis.

A mute is per viewer: the muter stops getting the muted user's live chat (and their history,
covered by the rules tests), everyone else still gets it, and the muter's room seqs stay
without a gap, so the client never resyncs over a line it was not meant to see."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from tests.support.engine_harness import EngineProcess
from tests.support.gateway_harness import GatewayProc, Keys
from tests.support.stack import Player, assert_once_in_order, create_room, is_room_event

Match = Callable[[dict[str, Any]], bool]


def _line(text: str) -> Match:
    return lambda f: f["type"] == "games.event.chat_message" and f.get("content") == text


def _joined(room_id: str, user_id: str) -> Match:
    joined = is_room_event(room_id, "games.event.lobby_joined")
    return lambda f: joined(f) and f["player"]["user_id"] == user_id


async def _say(player: Player, room_id: str, text: str) -> dict[str, Any]:
    """Send a lobby chat line; return it as the sender got it back."""
    mark = len(player.frames)
    await player.command(
        {"type": "games.command.send_chat", "room_id": room_id, "channel": "lobby", "content": text}
    )
    return await player.wait(_line(text), after=mark)


async def test_a_muted_users_live_chat_reaches_everyone_but_the_muter(
    stack: tuple[EngineProcess, GatewayProc, GatewayProc, Keys],
) -> None:
    _, gw1, gw2, keys = stack
    tag = uuid.uuid4().hex[:6]
    host, bob, carol = (Player(f"{n}{tag}", keys.token(f"{n}{tag}")) for n in ("h", "b", "c"))
    await host.connect(gw1.url)
    await bob.connect(gw2.url)
    await carol.connect(gw1.url)
    room_name = f"Mutes {tag}"
    mark = len(host.frames)
    room_id = await create_room(host, room_name)
    for guest in (bob, carol):
        await guest.command({"type": "games.command.join_room", "room_name": room_name})
        await host.wait(_joined(room_id, guest.user_id), after=mark)

    before = await _say(host, room_id, f"before {tag}")
    await bob.wait(_line(f"before {tag}"))

    mark = len(bob.frames)
    await bob.command(
        {"type": "games.command.mute_user", "room_id": room_id, "target_user_id": host.user_id}
    )
    await bob.wait(lambda f: f["type"] == "games.event.user_muted", after=mark)

    hidden = await _say(host, room_id, f"hidden {tag}")
    await carol.wait(_line(f"hidden {tag}"))  # everyone else still hears the host
    # carol's line is on the same partition after the host's: once bob has it, he would
    # already hold the host's line had it been addressed to him
    await _say(carol, room_id, f"marker {tag}")
    await bob.wait(_line(f"marker {tag}"))
    assert not any(_line(f"hidden {tag}")(f) for f in bob.frames), "bob muted the host"
    assert hidden.get("seq") is None, hidden  # not a room event: nobody's seqs get a gap

    mark = len(bob.frames)
    await bob.command(
        {"type": "games.command.unmute_user", "room_id": room_id, "target_user_id": host.user_id}
    )
    await bob.wait(lambda f: f["type"] == "games.event.user_unmuted", after=mark)
    after = await _say(host, room_id, f"after {tag}")
    got = await bob.wait(_line(f"after {tag}"))
    assert after["seq"] is not None, after  # a room event again, with its seq
    assert got["seq"] == after["seq"]
    assert after["seq"] > before["seq"]

    for player in (host, bob, carol):
        assert_once_in_order(player, room_id, from_one=player is host)
        await player.close()
