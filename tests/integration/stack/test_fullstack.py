"""Full stack: two real gateways + one real engine on real Kafka and Redis; browsers are
`websockets` clients. The players of one room sit on different gateways and play a whole
Bigger Dice game; every client sees every room event once, in seq order. Then one gateway is
SIGKILLed mid-game: its client reconnects to the other gateway and resumes with last_seq."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from parlour_protocol.v1 import RedisKeys
from tests.support.engine_harness import EngineProcess
from tests.support.gateway_harness import GatewayProc, Keys
from tests.support.stack import (
    Player,
    assert_once_in_order,
    is_room_event,
    play_turns,
    room_of,
    send_chat,
    start_game,
)

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


async def test_gateway_fullstack_game_across_two_gateways(
    stack: tuple[EngineProcess, GatewayProc, GatewayProc, Keys],
) -> None:
    _, gw1, gw2, keys = stack
    tag = uuid.uuid4().hex[:6]
    host = Player(f"h{tag}", keys.token(f"h{tag}"))
    guest = Player(f"g{tag}", keys.token(f"g{tag}"))
    await host.connect(gw1.url)
    await guest.connect(gw2.url)
    room_id = await start_game(host, guest, f"Table {tag}")
    _, over = await play_turns(room_id, {host.user_id: host, guest.user_id: guest}, host)
    assert over
    await guest.wait(is_room_event(room_id, "games.event.bigger_dice.game_over"))
    assert_once_in_order(host, room_id, from_one=True)
    assert_once_in_order(guest, room_id, from_one=False)
    assert guest.room_seqs(room_id)[-1] == host.room_seqs(room_id)[-1]
    await host.close()
    await guest.close()


async def test_gateway_fullstack_failover_resume_with_last_seq(
    stack: tuple[EngineProcess, GatewayProc, GatewayProc, Keys],
    redis_client: aioredis.Redis,
    topic_prefix: str,
) -> None:
    _, gw1, gw2, keys = stack
    rkeys = RedisKeys(prefix=topic_prefix)
    tag = uuid.uuid4().hex[:6]
    host = Player(f"h{tag}", keys.token(f"h{tag}"))
    guest = Player(f"g{tag}", keys.token(f"g{tag}"))
    await host.connect(gw1.url)
    await guest.connect(gw2.url)
    room_id = await start_game(host, guest, f"Fail {tag}")
    players = {host.user_id: host, guest.user_id: guest}
    seen, over = await play_turns(room_id, players, host, max_turns=2)
    assert not over
    await guest.wait(lambda f: room_of(f) == room_id and f.get("seq") == seen)
    dead_sockets = [
        m.decode() for m in await redis_client.smembers(rkeys.user_sockets(guest.user_id))
    ]
    assert dead_sockets

    gw2.kill()  # SIGKILL: no goodbye, no presence cleanup
    await guest.close()
    last_seq = max(guest.room_seqs(room_id))
    # the game goes on while the guest is away, if it is the host's turn
    turn = await host.wait(
        lambda f: (
            room_of(f) == room_id
            and f["type"] == "games.event.turn_changed"
            and f["seq"] > seen - 1
        )
    )
    resume_after = turn["seq"] - 1
    if turn["current_turn"] == host.user_id:
        await host.command({"type": "games.command.bigger_dice.roll", "room_id": room_id})
        await host.wait(lambda f: room_of(f) == room_id and (f.get("seq") or 0) > turn["seq"])
        resume_after = turn["seq"]

    # reconnect to the surviving gateway and resume
    await guest.connect(gw1.url)
    mark = len(guest.frames)
    await guest.command(
        {"type": "games.command.rejoin_room", "room_id": room_id, "last_seq": last_seq}
    )
    await guest.wait(is_room_event(room_id, "games.event.room_state"), after=mark)
    _, over = await play_turns(room_id, players, host, seen=resume_after)
    assert over
    await guest.wait(is_room_event(room_id, "games.event.bigger_dice.game_over"))
    assert_once_in_order(host, room_id, from_one=True)
    assert_once_in_order(guest, room_id, from_one=False)
    assert guest.room_seqs(room_id)[-1] == host.room_seqs(room_id)[-1]

    # the dead gateway's presence records are gone within their TTL (6 s) + a sweep
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = [
            s for s in dead_sockets if await redis_client.exists(rkeys.socket(guest.user_id, s))
        ]
        members = {
            m.decode() for m in await redis_client.smembers(rkeys.user_sockets(guest.user_id))
        }
        if not left and not members & set(dead_sockets):
            break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError(f"dead sockets still listed: {left}, {members}")
    assert await redis_client.sismember(rkeys.presence_online(), guest.user_id)
    await host.close()
    await guest.close()


async def test_gateway_fullstack_resume_replay_is_not_overtaken_by_live_events(
    stack: tuple[EngineProcess, GatewayProc, GatewayProc, Keys],
) -> None:
    """The race: a room event reaches a fresh socket after system.authenticate and before the
    client's rejoin_room {last_seq}. The replayed older events must still come first."""
    _, gw1, _, keys = stack
    tag = uuid.uuid4().hex[:6]
    host = Player(f"h{tag}", keys.token(f"h{tag}"))
    guest = Player(f"g{tag}", keys.token(f"g{tag}"))
    await host.connect(gw1.url)
    await guest.connect(gw1.url)
    mark = len(host.frames)
    await host.command(
        {
            "type": "games.command.create_room",
            "game_type": "bigger_dice",
            "room_name": f"Resume {tag}",
            "max_players": 2,
        }
    )
    state = await host.wait(lambda f: f["type"] == "games.event.room_state", after=mark)
    room_id = str(state["room"]["room_id"])
    await guest.command({"type": "games.command.join_room", "room_name": f"Resume {tag}"})
    seq = await send_chat(host, room_id, "before")
    await guest.wait(lambda f: room_of(f) == room_id and f.get("seq") == seq)
    last_seq = max(guest.room_seqs(room_id))

    await guest.close()
    missed = await send_chat(host, room_id, "while away")
    await guest.connect(gw1.url)  # authenticated: the guest is in the room per user_rooms
    mark = len(guest.frames)
    # host and guest share gw1, so once the host has this event the guest's new socket has
    # been handed it too: before its rejoin_room
    live = await send_chat(host, room_id, "after auth, before rejoin")
    assert live > missed > last_seq
    await guest.command(
        {"type": "games.command.rejoin_room", "room_id": room_id, "last_seq": last_seq}
    )
    await guest.wait(lambda f: room_of(f) == room_id and f.get("seq") == live, after=mark)
    await guest.wait(is_room_event(room_id, "games.event.room_state"), after=mark)
    after = await send_chat(host, room_id, "after rejoin")
    await guest.wait(lambda f: room_of(f) == room_id and f.get("seq") == after, after=mark)
    resumed = [
        f["seq"] for f in guest.frames[mark:] if f.get("seq") is not None and room_of(f) == room_id
    ]
    assert resumed == sorted(resumed), f"out of order after resume: {resumed}"
    assert resumed[0] == last_seq + 1
    assert missed in resumed
    assert live in resumed
    assert_once_in_order(guest, room_id, from_one=False)
    await host.close()
    await guest.close()


async def test_gateway_fullstack_retry_with_same_request_id_takes_effect_once(
    stack: tuple[EngineProcess, GatewayProc, GatewayProc, Keys],
    redis_client: aioredis.Redis,
    topic_prefix: str,
) -> None:
    """A client re-sends a command whose answer it did not get (as after service_unavailable):
    same request_id on the same socket -> same msg_id -> the engine applies it once."""
    _, gw1, _, keys = stack
    rkeys = RedisKeys(prefix=topic_prefix)
    tag = uuid.uuid4().hex[:6]
    host = Player(f"h{tag}", keys.token(f"h{tag}"))
    await host.connect(gw1.url)

    create = {
        "type": "games.command.create_room",
        "game_type": "bigger_dice",
        "room_name": f"Retry {tag}",
        "max_players": 2,
        "request_id": "create-1",
    }
    mark = len(host.frames)
    await host.send(create)
    await host.send(create)  # the retry

    def is_ack(f: dict[str, Any]) -> bool:
        return f["type"] == "system.ack" and f.get("request_id") == "create-1"

    await host.wait(is_ack, after=mark)
    first = next(i for i in range(mark, len(host.frames)) if is_ack(host.frames[i]))
    await host.wait(is_ack, after=first + 1)
    acks = [f for f in host.frames[mark:] if f.get("request_id") == "create-1"]
    assert len(acks) == 2
    assert acks[0]["msg_id"] == acks[1]["msg_id"]
    state = await host.wait(lambda f: f["type"] == "games.event.room_state", after=mark)
    room_id = str(state["room"]["room_id"])

    chat = {
        "type": "games.command.send_chat",
        "room_id": room_id,
        "channel": "lobby",
        "content": "said once",
        "request_id": "chat-1",
    }
    await host.send(chat)
    await host.send(chat)  # the retry
    # a later command of the same room is applied after both copies (same Kafka key)
    marker_seq = await send_chat(host, room_id, "marker")
    said = [
        f
        for f in host.frames[mark:]
        if f["type"] == "games.event.chat_message" and f.get("content") == "said once"
    ]
    assert len(said) == 1, said
    assert said[0]["seq"] < marker_seq
    errors = [f for f in host.frames[mark:] if f["type"] == "system.error"]
    assert errors == []
    room_states = {
        f["room"]["room_id"] for f in host.frames[mark:] if f["type"] == "games.event.room_state"
    }
    assert room_states == {room_id}
    rooms = await redis_client.smembers(rkeys.rooms_by_game("bigger_dice"))
    assert {r.decode() for r in rooms} == {room_id}
    history = await redis_client.xrange(rkeys.room_events(room_id))
    assert len(history) == marker_seq  # every seq used once: no second chat, no second room
    await host.close()
