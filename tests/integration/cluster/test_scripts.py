"""Every Lua script of the services, run by the services' own code on a real Redis Cluster
(3 masters): the room commit (state, replay stream, records, chat lists), the room-name
release, and the gateway's presence register/unregister/touch/sweep. The rooms and users are
picked so that each master runs each script; a SCRIPT FLUSH on every master (what a promoted
replica looks like) is recovered from without an error."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest
from redis.asyncio.cluster import RedisCluster

from parlour_engine.store import (
    ChatAppendJson,
    CommitStatus,
    PublishedEvent,
    Record,
    RoomStore,
    StateWrite,
)
from parlour_gateway.presence import Presence, SocketInfo
from parlour_protocol.v1 import RedisKeys

pytestmark = pytest.mark.timeout(120)


def _one_per_master(cluster: RedisCluster, key_of: Callable[[str], str]) -> list[str]:
    """Ids whose keys (`key_of(id)`) live on different masters, one per master."""
    masters = {node.name for node in cluster.get_primaries()}
    picked: dict[str, str] = {}
    while set(picked) != masters:
        candidate = str(uuid.uuid4())
        picked.setdefault(cluster.get_node_from_key(key_of(candidate)).name, candidate)
    return list(picked.values())


def _record(room_id: str, *seqs: int | None) -> Record:
    return Record(
        events=[PublishedEvent(key=room_id, seq=s, envelope=json.dumps({"seq": s})) for s in seqs]
    )


async def test_room_scripts_on_every_master(cluster: RedisCluster, topic_prefix: str) -> None:
    keys = RedisKeys(prefix=topic_prefix)
    store = RoomStore(cluster, keys, applied_ttl_seconds=300, ended_room_ttl_seconds=60)
    rooms = _one_per_master(cluster, keys.room_state)
    assert len(rooms) == 3
    for room_id in rooms:
        first = await store.commit(
            room_id,
            msg_id="m1",
            expected_version=0,
            write=StateWrite.WRITE,
            state_json='{"version":1,"seq":1}',
            record=_record(room_id, 1),
            chat=[ChatAppendJson("lobby", '{"n":1}'), ChatAppendJson("players", '{"n":2}')],
        )
        assert first.status is CommitStatus.APPLIED
        assert await store.load(room_id) == '{"version":1,"seq":1}'
        assert await store.chat_history(room_id, "lobby", 10) == ['{"n":1}']
        assert await store.chat_history(room_id, "players", 10) == ['{"n":2}']
        again = await store.commit(
            room_id,
            msg_id="m1",
            expected_version=1,
            write=StateWrite.WRITE,
            state_json='{"version":2,"seq":2}',
            record=_record(room_id, 2),
        )
        assert again.status is CommitStatus.DUPLICATE
        seen = await store.seen(room_id, "m1", None)
        assert seen.record == _record(room_id, 1)
        assert seen.version == 1
        # the room's name: claimed with SET NX, released by the compare-and-delete script
        name_key = keys.room_name("bigger_dice", f"Room {room_id}")
        assert await cluster.set(name_key, room_id, nx=True)
        await store.release_name("bigger_dice", f"Room {room_id}", "another-room")
        assert await cluster.get(name_key) == room_id.encode()
        await store.release_name("bigger_dice", f"Room {room_id}", room_id)
        assert await cluster.get(name_key) is None
        removed = await store.commit(
            room_id,
            msg_id="m2",
            expected_version=1,
            write=StateWrite.DELETE,
            record=_record(room_id, 2),
        )
        assert removed.status is CommitStatus.APPLIED
        assert await store.load(room_id) is None
        assert await cluster.xlen(keys.room_events(room_id)) == 2
        assert 0 < await cluster.ttl(keys.room_chat(room_id, "lobby")) <= 60


async def test_presence_scripts_on_every_master(cluster: RedisCluster, topic_prefix: str) -> None:
    keys = RedisKeys(prefix=topic_prefix)
    presence = Presence(cluster, keys, "gw-cluster", ttl=30)
    users = _one_per_master(cluster, keys.user_sockets)
    online = keys.presence_online()
    for user_id in users:
        first = SocketInfo(f"s1-{user_id}", user_id, "alice")
        second = SocketInfo(f"s2-{user_id}", user_id, "alice")
        assert await presence.register(first, max_sockets=2, now=1.0) is True
        assert await presence.register(second, max_sockets=2, now=1.0) is False
        over = SocketInfo(f"s3-{user_id}", user_id, "alice")
        assert await presence.register(over, max_sockets=2, now=1.0) is None
        assert await cluster.sismember(online, user_id)

        # a record that expired while its socket stayed open is written again; a user missing
        # from the online set (another gateway took them offline) is put back
        await cluster.delete(keys.socket(user_id, second.socket_id))
        await cluster.srem(online, user_id)
        refreshed = await presence.touch_many([(first, True), (second, False)], now=2.0)
        assert refreshed.recreated == [second.socket_id]
        assert refreshed.back_online == [first]
        assert await cluster.exists(keys.socket(user_id, second.socket_id))
        assert await cluster.sismember(online, user_id)

        assert await presence.unregister(user_id, first.socket_id) is False
        # the second socket dies without an unregister (its gateway crashed): the sweeper
        # takes the user offline, once
        await cluster.delete(keys.socket(user_id, second.socket_id))
        assert user_id in await presence.sweep()
        assert not await cluster.sismember(online, user_id)
        assert not await cluster.exists(keys.user_sockets(user_id))
        assert await presence.sweep_user(user_id) is False


async def test_scripts_survive_a_script_flush(cluster: RedisCluster, topic_prefix: str) -> None:
    """A replica promoted by a failover starts with no scripts: NOSCRIPT is answered by
    loading the script and running the call again (EVALSHA in a cluster pipeline, and the
    single script calls)."""
    keys = RedisKeys(prefix=topic_prefix)
    store = RoomStore(cluster, keys, applied_ttl_seconds=300, ended_room_ttl_seconds=60)
    presence = Presence(cluster, keys, "gw-cluster", ttl=30)
    rooms = _one_per_master(cluster, keys.room_state)
    users = _one_per_master(cluster, keys.user_sockets)
    for room_id in rooms:  # every master has run the commit script
        await store.commit(
            room_id,
            msg_id="m1",
            expected_version=0,
            write=StateWrite.WRITE,
            state_json='{"version":1,"seq":1}',
            record=_record(room_id, 1),
        )
    await cluster.script_flush()  # every master (redis-py routes SCRIPT FLUSH so)
    for room_id in rooms:
        result = await store.commit(
            room_id,
            msg_id="m2",
            expected_version=1,
            write=StateWrite.WRITE,
            state_json='{"version":2,"seq":2}',
            record=_record(room_id, 2),
        )
        assert result.status is CommitStatus.APPLIED
        assert await store.load(room_id) == '{"version":2,"seq":2}'
    infos = [SocketInfo(f"s-{u}", u, "bob") for u in users]
    for info in infos:
        assert await presence.register(info, max_sockets=2, now=1.0) is True
    await cluster.script_flush()  # every master (redis-py routes SCRIPT FLUSH so)
    refreshed = await presence.touch_many([(info, True) for info in infos], now=2.0)
    assert refreshed.recreated == []
    for info in infos:
        assert await presence.unregister(info.user_id, info.socket_id) is True
