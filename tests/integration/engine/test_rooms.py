"""Room life cycle, indexes, chat, direct messages and presence on a real engine."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from parlour_protocol.v1 import RedisKeys
from parlour_protocol.v1.chat import ChatChannel, GetChatHistory, SendChat, SendDirectMessage
from parlour_protocol.v1.internal import PresenceChanged
from parlour_protocol.v1.rooms import CreateRoom, JoinRoom, LeaveRoom
from tests.support.engine_harness import Bus, EngineProcess, actor, running_engine


@pytest.fixture
async def engine_env(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, create_topics, tmp_path: Path
) -> AsyncIterator[tuple[EngineProcess, Bus]]:
    async with running_engine(
        kafka_bootstrap, redis_url, topic_prefix, create_topics, tmp_path
    ) as env:
        yield env


async def test_engine_room_names_indexes_and_removal(
    engine_env: tuple[EngineProcess, Bus], redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    _, bus = engine_env
    keys = RedisKeys(prefix=topic_prefix)
    tag = uuid.uuid4().hex[:6]
    host, guest, rival = actor(0, tag), actor(1, tag), actor(2, tag)
    name = f"Name {tag}"
    room_id = str(uuid.uuid4())
    create = await bus.send(
        CreateRoom(game_type="bigger_dice", room_name=name), host, room_id=room_id
    )
    await bus.wait_caused(create, "games.event.room_state")
    assert await redis_client.get(keys.room_name("bigger_dice", name)) == room_id.encode()
    assert await redis_client.sismember(keys.rooms_by_game("bigger_dice"), room_id)
    assert await redis_client.hget(keys.user_rooms(host.user_id), room_id) == b"host"

    # the name is taken (case-insensitively) while the room lives
    other_id = str(uuid.uuid4())
    taken = await bus.send(
        CreateRoom(game_type="bigger_dice", room_name=name.upper()), rival, room_id=other_id
    )
    error = await bus.wait_caused(taken, "system.error")
    assert error.payload.code == "room_name_taken"  # type: ignore[attr-defined]
    assert await redis_client.get(keys.room_state(other_id)) is None

    join = await bus.send(JoinRoom(room_name=name), guest)
    await bus.wait_for(
        lambda e: e.causation_id == join.msg_id and e.type == "games.event.lobby_joined",
        room_id=room_id,
    )
    assert await redis_client.hget(keys.user_rooms(guest.user_id), room_id) == b"lobby"

    # the host leaves a waiting room: it is removed, its name and indexes are freed, and its
    # replay stream stays a while (with a TTL) so clients can see the end
    leave = await bus.send(LeaveRoom(room_id=room_id), host)
    await bus.wait_caused(leave, "games.event.room_removed")
    assert await redis_client.get(keys.room_state(room_id)) is None
    assert await redis_client.get(keys.room_name("bigger_dice", name)) is None
    assert not await redis_client.sismember(keys.rooms_by_game("bigger_dice"), room_id)
    assert await redis_client.hget(keys.user_rooms(host.user_id), room_id) is None
    assert await redis_client.hget(keys.user_rooms(guest.user_id), room_id) is None
    assert await redis_client.xlen(keys.room_events(room_id)) > 0
    assert 0 < await redis_client.ttl(keys.room_events(room_id)) <= 600

    # the freed name can be used again; the removed room's id cannot come back by redelivery
    again = await bus.send(
        CreateRoom(game_type="bigger_dice", room_name=name), rival, room_id=other_id
    )
    await bus.wait_caused(again, "games.event.room_state")
    await bus.send(create.payload, host, envelope=create)
    await bus.wait_for(
        lambda e: (
            e.causation_id == create.msg_id
            and sum(1 for x in bus.events if x.causation_id == create.msg_id) > 2
        ),
        what="the recorded answer to the re-sent create",
    )
    assert await redis_client.get(keys.room_state(room_id)) is None
    assert await redis_client.get(keys.room_name("bigger_dice", name)) == other_id.encode()


async def test_engine_chat_direct_messages_and_presence(
    engine_env: tuple[EngineProcess, Bus],
) -> None:
    _, bus = engine_env
    tag = uuid.uuid4().hex[:6]
    host, guest = actor(0, tag), actor(1, tag)
    name = f"Chat {tag}"
    room_id = str(uuid.uuid4())
    create = await bus.send(
        CreateRoom(game_type="bigger_dice", room_name=name), host, room_id=room_id
    )
    await bus.wait_caused(create, "games.event.room_state")
    join = await bus.send(JoinRoom(room_name=name), guest)
    await bus.wait_for(
        lambda e: e.causation_id == join.msg_id and e.type == "games.event.lobby_joined",
        room_id=room_id,
    )

    for text in ("hello", "how are you"):
        said = await bus.send(
            SendChat(room_id=room_id, channel=ChatChannel.LOBBY, content=text), host
        )
        message = await bus.wait_caused(said, "games.event.chat_message")
        assert message.seq is not None
        assert set(message.audience.user_ids) == {host.user_id, guest.user_id}
    ask = await bus.send(GetChatHistory(room_id=room_id, channel=ChatChannel.LOBBY), guest)
    history = await bus.wait_caused(ask, "games.event.chat_history")
    assert [m.content for m in history.payload.messages] == ["hello", "how are you"]  # type: ignore[attr-defined]
    assert history.seq is None
    assert history.audience.user_ids == [guest.user_id]

    dm = await bus.send(SendDirectMessage(recipient_id=guest.user_id, content="psst"), host)
    received = await bus.wait_for(lambda e: e.causation_id == dm.msg_id, what="the direct message")
    assert received.type == "chat.event.message_received"
    assert set(received.audience.user_ids) == {host.user_id, guest.user_id}

    online = await bus.send(PresenceChanged(online=False), guest)
    offline = await bus.wait_for(lambda e: e.causation_id == online.msg_id, what="presence")
    assert offline.type == "presence.event.user_offline"
    assert offline.audience.user_ids == [host.user_id]


async def test_engine_password_room(
    engine_env: tuple[EngineProcess, Bus], redis_client: aioredis.Redis, topic_prefix: str
) -> None:
    _, bus = engine_env
    keys = RedisKeys(prefix=topic_prefix)
    tag = uuid.uuid4().hex[:6]
    host, guest = actor(0, tag), actor(1, tag)
    name = f"Locked {tag}"
    room_id = str(uuid.uuid4())
    create = await bus.send(
        CreateRoom(game_type="bigger_dice", room_name=name, password="s3cret"),
        host,
        room_id=room_id,
    )
    state_event = await bus.wait_caused(create, "games.event.room_state")
    assert state_event.payload.room.is_password_protected  # type: ignore[attr-defined]
    stored = await redis_client.get(keys.room_state(room_id))
    assert b"s3cret" not in stored  # only a salted hash is kept

    wrong = await bus.send(JoinRoom(room_name=name, password="nope"), guest)
    error = await bus.wait_caused(wrong, "system.error")
    assert error.payload.code == "wrong_password"  # type: ignore[attr-defined]
    right = await bus.send(JoinRoom(room_name=name, password="s3cret"), guest)
    await bus.wait_for(
        lambda e: e.causation_id == right.msg_id and e.type == "games.event.lobby_joined",
        room_id=room_id,
    )
