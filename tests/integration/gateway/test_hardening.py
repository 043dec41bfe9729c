"""Gateway hardening against real processes (two gateways and one engine on real Kafka and
Redis, `websockets` clients): a long resume replays in pages without closing the socket, a
former member gets nothing from a room's replay stream, presence records that expired under
an open socket come back, and each hostile sequence leaves an ordinary game playable."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from parlour_gateway.presence import Presence, Refreshed, SocketInfo
from parlour_protocol.v1 import RedisKeys
from tests.support.browser import STEP_MS, User, create_room, login
from tests.support.browser import Stack as BrowserStack
from tests.support.engine_harness import EngineProcess
from tests.support.gateway_harness import Client, GatewayProc, Keys
from tests.support.stack import (
    Player,
    is_room_event,
    play_turns,
    room_of,
    start_game,
)
from tests.support.stack import create_room as ws_create_room

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

Stack = tuple[EngineProcess, GatewayProc, GatewayProc, Keys]


def _chat(room_id: str, text: str) -> dict[str, Any]:
    return {
        "type": "games.command.send_chat",
        "room_id": room_id,
        "channel": "lobby",
        "content": text,
    }


async def _send_within_rate(player: Player, message: dict[str, Any]) -> None:
    """Send a command and wait for its ack; when the socket's rate limit drops it, wait as
    long as the limit asks (50 frames/s) and send it again, as a client would."""
    while True:
        rid = uuid.uuid4().hex[:12]
        mark = len(player.frames)
        await player.send({**message, "request_id": rid})
        frame = await player.wait(
            lambda f, rid=rid: (
                f.get("request_id") == rid
                or (f["type"] == "system.error" and f.get("code") == "rate_limited")
            ),
            after=mark,
        )
        if frame["type"] == "system.ack":
            return
        assert frame.get("code") == "rate_limited", frame
        await asyncio.sleep(0.05)


async def _socket_answers(player: Player) -> None:
    mark = len(player.frames)
    await player.send({"type": "system.heartbeat"})
    await player.wait(lambda f: f["type"] == "system.heartbeat_ack", after=mark, within=5)


async def _ordinary_game_finishes(keys: Keys, gw_a: GatewayProc, gw_b: GatewayProc) -> None:
    tag = uuid.uuid4().hex[:6]
    host = Player(f"oh{tag}", keys.token(f"oh{tag}"))
    guest = Player(f"og{tag}", keys.token(f"og{tag}"))
    await host.connect(gw_a.url)
    await guest.connect(gw_b.url)
    room_id = await start_game(host, guest, f"Ordinary {tag}")
    _, over = await play_turns(room_id, {host.user_id: host, guest.user_id: guest}, host)
    assert over
    await guest.wait(is_room_event(room_id, "games.event.bigger_dice.game_over"))
    await host.close()
    await guest.close()


async def test_resume_after_500_room_events_replays_every_one_in_order(stack: Stack) -> None:
    """More missed events than the send queue holds (256): the replay is paced into it, so
    the client gets all 500 once, in order, and the socket stays open."""
    _, gw1, gw2, keys = stack
    tag = uuid.uuid4().hex[:6]
    host = Player(f"h{tag}", keys.token(f"h{tag}"))
    guest = Player(f"g{tag}", keys.token(f"g{tag}"))
    await host.connect(gw1.url)
    await guest.connect(gw2.url)
    room_id = await ws_create_room(host, f"Long {tag}")
    await guest.command({"type": "games.command.join_room", "room_name": f"Long {tag}"})
    await host.command(_chat(room_id, "before"))
    seen = await guest.wait(lambda f: f.get("content") == "before")
    last_seq = int(seen["seq"])

    await guest.close()
    for i in range(500):
        await _send_within_rate(host, _chat(room_id, f"m{i}"))
    newest = await host.wait(lambda f: f.get("content") == "m499", within=60)
    assert newest["seq"] == last_seq + 500

    await guest.connect(gw2.url)
    mark = len(guest.frames)
    await guest.command(
        {"type": "games.command.rejoin_room", "room_id": room_id, "last_seq": last_seq}
    )
    await guest.wait(lambda f: f.get("seq") == newest["seq"], after=mark, within=60)
    await guest.wait(is_room_event(room_id, "games.event.room_state"), after=mark)
    await _socket_answers(guest)
    chats = [f for f in guest.frames[mark:] if f["type"] == "games.event.chat_message"]
    assert [f["seq"] for f in chats] == list(range(last_seq + 1, last_seq + 501))
    assert [f["content"] for f in chats] == [f"m{i}" for i in range(500)]
    assert not [f for f in guest.frames[mark:] if f["type"] == "system.error"]
    await host.close()
    await guest.close()
    await _ordinary_game_finishes(keys, gw1, gw2)


async def test_former_member_gets_nothing_from_the_replay_stream(
    stack: Stack, redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    """The stream still holds events the user was an audience of while a member; after
    leaving, a `rejoin_room {last_seq: 0}` on a fresh socket replays none of them."""
    _, gw1, gw2, keys = stack
    rkeys = RedisKeys(prefix=topic_prefix)
    tag = uuid.uuid4().hex[:6]
    host = Player(f"h{tag}", keys.token(f"h{tag}"))
    other = Player(f"x{tag}", keys.token(f"x{tag}"))
    await host.connect(gw1.url)
    await other.connect(gw2.url)
    room_id = await ws_create_room(host, f"Private {tag}")
    await other.command({"type": "games.command.join_room", "room_name": f"Private {tag}"})
    await host.command(_chat(room_id, "while you were here"))
    await other.wait(lambda f: f.get("content") == "while you were here")
    assert 1 in other.room_seqs(room_id)  # the stream starts at seq 1: last_seq 0 fits it
    await other.command({"type": "games.command.leave_room", "room_id": room_id})
    await host.wait(is_room_event(room_id, "games.event.player_left"))
    deadline = time.monotonic() + 10
    while await redis_client.hexists(rkeys.user_rooms(other.user_id), room_id):
        assert time.monotonic() < deadline, "the engine did not drop the room from user_rooms"
        await asyncio.sleep(0.05)
    await other.close()

    await other.connect(gw2.url)  # a fresh socket: it has been given no seq of the room
    mark = len(other.frames)
    await other.command({"type": "games.command.rejoin_room", "room_id": room_id, "last_seq": 0})
    await other.wait(is_room_event(room_id, "games.event.not_in_room"), after=mark)
    await host.command(_chat(room_id, "after"))
    await host.wait(lambda f: f.get("content") == "after")
    await _socket_answers(other)
    assert not [f for f in other.frames[mark:] if room_of(f) == room_id and f.get("seq")]
    await host.close()
    await other.close()
    await _ordinary_game_finishes(keys, gw1, gw2)


async def test_presence_refresh_recreates_expired_records(
    redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    """The socket record, the user's socket set and the online entry are gone while the
    socket is open (a Redis restart, a stall past the TTL): the next refresh writes them
    again, so another gateway's sweep does not take the user offline."""
    rkeys = RedisKeys(prefix=topic_prefix)
    here = Presence(redis_client, rkeys, "gw-here", ttl=30)
    elsewhere = Presence(redis_client, rkeys, "gw-else", ttl=30)
    info = SocketInfo(f"s{uuid.uuid4().hex[:8]}", f"u{uuid.uuid4().hex[:8]}", "Ann")
    assert await here.register(info, 5, time.time()) is True
    try:
        # only the record expired: the set still lists the socket, so a sweep would drop it
        await redis_client.delete(rkeys.socket(info.user_id, info.socket_id))
        assert await here.touch_many([(info, False)], time.time()) == Refreshed(
            recreated=[info.socket_id], back_online=[]
        )
        assert await elsewhere.sweep() == []
        # everything gone
        await redis_client.delete(
            rkeys.socket(info.user_id, info.socket_id), rkeys.user_sockets(info.user_id)
        )
        await redis_client.srem(rkeys.presence_online(), info.user_id)
        # ... and the user's online entry: they are back online (to be announced)
        assert await here.touch_many([(info, True)], time.time()) == Refreshed(
            recreated=[info.socket_id], back_online=[info]
        )
        assert await elsewhere.sweep() == []
        assert info.user_id in await elsewhere.online_users()
        record = await redis_client.hgetall(rkeys.socket(info.user_id, info.socket_id))
        assert record[b"user_id"] == info.user_id.encode()
        assert record[b"gateway_id"] == b"gw-here"
        assert 0 < await redis_client.ttl(rkeys.socket(info.user_id, info.socket_id)) <= 30
        assert await redis_client.smembers(rkeys.user_sockets(info.user_id)) == {
            info.socket_id.encode()
        }
        # a live record is only refreshed, not counted as re-created
        assert await here.touch_many([(info, True)], time.time()) == Refreshed([], [])
        # a socket that closed while the refresh ran is not brought back
        closed = await here.touch_many([(info, True)], time.time(), lambda _sid: False)
        assert closed == Refreshed([], [])
        assert not await redis_client.exists(rkeys.socket(info.user_id, info.socket_id))
        assert info.user_id not in await elsewhere.online_users()
    finally:
        await here.unregister(info.user_id, info.socket_id)


async def test_gateway_recreates_presence_of_an_open_socket(
    stack: Stack, redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    """The same through a real gateway's heartbeat loop (every 2 s in this stack): the keys
    come back, and a member of the player's room is told the player is online again."""
    _, gw1, gw2, keys = stack
    rkeys = RedisKeys(prefix=topic_prefix)
    tag = uuid.uuid4().hex[:6]
    player = Player(f"p{tag}", keys.token(f"p{tag}"))
    friend = Player(f"f{tag}", keys.token(f"f{tag}"))
    await player.connect(gw1.url)
    await friend.connect(gw2.url)
    await ws_create_room(player, f"Presence {tag}")
    await friend.command({"type": "games.command.join_room", "room_name": f"Presence {tag}"})
    [sid] = await redis_client.smembers(rkeys.user_sockets(player.user_id))
    socket_key = rkeys.socket(player.user_id, sid.decode())
    mark = len(friend.frames)
    await redis_client.delete(socket_key, rkeys.user_sockets(player.user_id))
    await redis_client.srem(rkeys.presence_online(), player.user_id)
    deadline = time.monotonic() + 10
    while not (
        await redis_client.exists(socket_key)
        and await redis_client.sismember(rkeys.presence_online(), player.user_id)
        and await redis_client.sismember(rkeys.user_sockets(player.user_id), sid)
    ):
        assert time.monotonic() < deadline, "the gateway did not re-create the presence"
        await asyncio.sleep(0.1)
    online = await friend.wait(
        lambda f: f["type"] == "presence.event.user_online" and f["user_id"] == player.user_id,
        after=mark,
    )
    assert online["username"] == f"name-p{tag}"
    await _socket_answers(player)
    await player.close()
    await friend.close()
    await _ordinary_game_finishes(keys, gw1, gw2)


async def test_lobby_updates_reach_only_sockets_that_listed_the_rooms(stack: Stack) -> None:
    """A host creates and leaves rooms in a loop: the socket that asked for the room list
    sees each room_created / room_removed; another authenticated socket sees none of them."""
    _, gw1, gw2, keys = stack
    tag = uuid.uuid4().hex[:6]
    host = Player(f"h{tag}", keys.token(f"h{tag}"))
    lister = Player(f"l{tag}", keys.token(f"l{tag}"))
    bystander = Player(f"b{tag}", keys.token(f"b{tag}"))
    await host.connect(gw2.url)
    await lister.connect(gw1.url)
    await bystander.connect(gw2.url)  # same gateway as the host: it sees what gw2 sends
    await lister.command({"type": "games.command.list_rooms", "game_type": "bigger_dice"})
    await lister.wait(lambda f: f["type"] == "games.event.room_list")
    rooms = []
    for n in range(5):
        room_id = await ws_create_room(host, f"Loop {tag} {n}")
        rooms.append(room_id)
        await host.command({"type": "games.command.leave_room", "room_id": room_id})
        # the engine publishes room_removed before the player_left the host gets: once the
        # host has it, gw2 has dispatched the room_removed to its sockets
        await host.wait(is_room_event(room_id, "games.event.player_left"))
    for room_id in rooms:
        await lister.wait(
            lambda f, r=room_id: f["type"] == "games.event.room_removed" and f["room_id"] == r
        )
    created = [f["room_id"] for f in lister.frames if f["type"] == "games.event.room_created"]
    assert created == rooms
    await _socket_answers(bystander)
    lobby_types = {"games.event.room_created", "games.event.room_removed"}
    assert not [f for f in bystander.frames if f["type"] in lobby_types]
    await host.close()
    await lister.close()
    await bystander.close()
    await _ordinary_game_finishes(keys, gw1, gw2)


async def test_a_room_whose_seq_went_backwards_is_resynced_not_dropped(
    stack: Stack, redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    """Redis loses a room's newest writes (its state is set back to an older copy, seq 69
    lower): the next event reuses seqs the sockets already have. Each gateway resets the
    room for its socket and gets it a fresh room_state, and newer events reach the clients
    instead of being dropped as duplicates."""
    _, gw1, gw2, keys = stack
    rkeys = RedisKeys(prefix=topic_prefix)
    tag = uuid.uuid4().hex[:6]
    host = Player(f"h{tag}", keys.token(f"h{tag}"))
    guest = Player(f"g{tag}", keys.token(f"g{tag}"))
    await host.connect(gw1.url)
    await guest.connect(gw2.url)
    room_id = await ws_create_room(host, f"Rewind {tag}")
    await guest.command({"type": "games.command.join_room", "room_name": f"Rewind {tag}"})
    await host.command(_chat(room_id, "kept"))
    kept = (await guest.wait(lambda f: f.get("content") == "kept"))["seq"]
    older_copy = await redis_client.get(rkeys.room_state(room_id))
    assert older_copy is not None
    for i in range(69):
        await _send_within_rate(host, _chat(room_id, f"lost {i}"))
    await guest.wait(lambda f: f.get("content") == "lost 68")
    assert max(guest.room_seqs(room_id)) == kept + 69

    await redis_client.set(rkeys.room_state(room_id), older_copy)  # the writes are lost
    mark = len(guest.frames)
    await host.command(_chat(room_id, "after the loss"))  # takes seq kept + 1 again
    state = await guest.wait(is_room_event(room_id, "games.event.room_state"), after=mark)
    assert state["room"]["last_seq"] == kept + 1
    await host.command(_chat(room_id, "after the resync"))
    for player in (guest, host):
        newer = await player.wait(lambda f: f.get("content") == "after the resync", after=mark)
        assert newer["seq"] == kept + 2
    await _socket_answers(guest)
    await host.close()
    await guest.close()
    await _ordinary_game_finishes(keys, gw1, gw2)


@pytest.mark.browser
async def test_the_browser_adopts_the_resync_after_a_seq_went_backwards(
    browser_stack: BrowserStack, chromium: Any, redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    """The same loss with the real web client: its page takes the gateway's fresh room_state
    (lower last_seq, asked for by no rejoin of its own) as the room now, and shows the newer
    events instead of dropping them as duplicates."""
    from playwright.async_api import expect

    rkeys = RedisKeys(prefix=topic_prefix)
    room_name = f"Rewind {uuid.uuid4().hex[:6]}"
    alice = await User.open(chromium, "alice")
    alice.watch()
    await login(alice, browser_stack)
    await create_room(alice, room_name)
    bob = await Client.open(browser_stack.gateway.url)
    await bob.expect("system.welcome")
    await bob.send({"type": "system.authenticate", "user_id": "bob", "username": "bob"})
    await bob.expect("system.authenticated")

    async def bob_says(text: str) -> int:
        rid = uuid.uuid4().hex[:12]
        mark = len(bob.frames)
        await bob.send({**_chat(room_id, text), "request_id": rid})
        # the chat line may reach the socket before the ack does (the ack waits for the
        # session's task to resume after Kafka's produce ack; on a loaded machine the event
        # consumer can deliver first), and `expect` consumes what it skips: take either order
        frame = await bob.expect(lambda f: f.get("content") == text)
        acked = [f for f in bob.frames[mark:] if f.get("request_id") == rid]
        if not acked:
            acked = [await bob.expect(lambda f: f.get("request_id") == rid)]
        assert acked[0]["type"] == "system.ack", acked
        return int(frame["seq"])

    async def page_at(seq: int) -> None:
        await alice.page.wait_for_function(
            f"() => window.parlour.summary().last_seq === {seq}", timeout=STEP_MS
        )

    await bob.send({"type": "games.command.join_room", "room_name": room_name})
    state = await bob.expect("games.event.room_state")
    room_id = state["room"]["room_id"]
    kept = await bob_says("kept")
    await page_at(kept)
    older_copy = await redis_client.get(rkeys.room_state(room_id))
    assert older_copy is not None
    for i in range(69):
        await bob_says(f"lost {i}")
    await page_at(kept + 69)

    await redis_client.set(rkeys.room_state(room_id), older_copy)  # the writes are lost
    rid = uuid.uuid4().hex[:12]
    await bob.send({**_chat(room_id, "after the loss"), "request_id": rid})  # seq kept + 1
    # bob's own socket is resynced too: a fresh room_state that covers that chat line
    resync = await bob.expect(lambda f: f["type"] == "games.event.room_state")
    assert resync["room"]["last_seq"] == kept + 1
    assert await bob_says("after the resync") == kept + 2
    await page_at(kept + 2)
    await expect(alice.page.locator("#chat-log")).to_contain_text(
        "after the resync", timeout=STEP_MS
    )
    summary = await alice.summary()
    assert summary["stats"]["rewinds"] == 1, summary
    assert summary["stats"]["errors"] == 0, summary
    assert not alice.sent_of("games.command.rejoin_room")  # the gateway asked, not the page
    await bob.close()
    alice.check_frames()
