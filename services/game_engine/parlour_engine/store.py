"""Redis access for one room: a load, and ONE Lua script that commits a command's effect
(plus the small script that releases a room's name; every Lua script of the engine is here).

The script is the room's only write path. Over keys that share the `{room:<id>}` hash tag it
1. returns the recorded outcome if the command's msg_id was already applied (nothing written),
2. returns OLD if the command's Kafka position is at or below the room's watermark for that
   partition (it was handled before, its record already trimmed: nothing is written and
   nothing new is sent),
3. returns CONFLICT with the current state if the stored version is not the one the caller
   read (the caller re-runs the rules on that state),
4. writes (or deletes) the state, appends the room events to the replay stream (`seq`, `env`)
   trimmed to REPLAY_MAX_EVENTS entries and REPLAY_MAX_AGE_SECONDS, appends chat messages to
   their channel lists with a TTL, records msg_id -> the produced outcome and moves the
   watermark to the command's position.

Idempotency horizon. The msg_id records (the newest `applied_keep` per room) let a redelivery
re-send exactly the events of its first delivery, and catch the gateway's re-send of a
msg_id (a new Kafka record, so a new offset) while it is among them. The watermark catches
every redelivery of a Kafka record (the same offset, read again after a rewind, a crash or a
rebalance) however old: a room's commands keyed by its id share one partition and are handled
in offset order, so a record of that key at or below the highest offset the room committed
from that partition was handled before. The watermark lives in the applied hash under
`~offset:<topic>:<partition>` (no msg_id starts with `~`), so it lasts as long as the room's
records: `applied_ttl_seconds` after the room's last commit. It is only consulted for records
whose Kafka key is the room id (the worker passes no position otherwise: commands naming a
room by name are keyed by the user and rely on the msg_id records), and one field per
partition means a change of the partition count starts a new watermark (the msg_id records
still cover the recent past).

Offsets start again at 0 when the commands topic is deleted and made again (a wiped Kafka
with a kept Redis): every new record would sit below the old watermark. So the watermark
also keeps the newest command timestamp (the envelope's) it has seen, and a record is OLD
only if its offset AND its timestamp are at or below: a redelivered record carries its old
timestamp, a new one a newer timestamp (gateway clocks must agree to within the time
between a topic's recreation and a room's next command). The first commit from the new
topic moves the watermark there.

Only commands that change something are committed: a rejection or a read-only answer
(`changed=False`) writes nothing, and a redelivery of one is answered again.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from parlour_protocol.v1 import RedisKeys
from parlour_protocol.v1.chat import ChatChannel
from parlour_protocol.v1.keys import (
    CHAT_HISTORY_KEEP,
    CHAT_HISTORY_TTL_SECONDS,
    REPLAY_MAX_AGE_SECONDS,
    REPLAY_MAX_EVENTS,
)
from parlour_runtime.redis_client import AnyRedis, run_scripts

# KEYS: 1 state, 2 events stream, 3 applied hash, 4 applied order list, 5.. chat lists
# ARGV: 1 msg_id, 2 expected version (0 = the room must not exist), 3 mode (w|d|n),
#       4 new state JSON, 5 record, 6 applied TTL s, 7 stream max entries, 8 stream max age ms,
#       9 TTL s of a deleted room's stream and chat lists, 10 chat TTL s, 11 chat keep,
#       12 event count, 13 applied records kept, 14 watermark field ('' = no position), 15 offset,
#       16 command timestamp ms,
#       then (seq, envelope) per room event, then per chat key: count, items (oldest first)
# The watermark is "<offset>:<newest timestamp ms>"; both compare as Lua numbers (doubles:
# exact below 2^53).
_COMMIT_LUA = """
local applied = redis.call('HGET', KEYS[3], ARGV[1])
if applied then
  return {'dup', applied}
end
local wm_field = ARGV[14]
local wm_ts = tonumber(ARGV[16])
if wm_field ~= '' then
  local wm = redis.call('HGET', KEYS[3], wm_field)
  if wm then
    local off, ts = string.match(wm, '^(%d+):(%d+)$')
    if off and tonumber(off) >= tonumber(ARGV[15]) and tonumber(ts) >= wm_ts then
      return {'old'}
    end
    if ts and tonumber(ts) > wm_ts then
      wm_ts = tonumber(ts)
    end
  end
end
local cur = redis.call('GET', KEYS[1])
local version = 0
if cur then
  -- the state JSON ends with its top-level `"version":N,"seq":M}` (fixed field order);
  -- matching that tail (the last 80 bytes hold it) avoids decoding the whole state
  local tail = string.match(string.sub(cur, -80), '"version":(%d+),"seq":%d+}$')
  if tail then
    version = tonumber(tail)
  else
    version = tonumber(cjson.decode(cur)['version'])
  end
end
if version ~= tonumber(ARGV[2]) then
  return {'conflict', cur or ''}
end
local mode = ARGV[3]
if mode == 'w' then
  redis.call('SET', KEYS[1], ARGV[4])
elseif mode == 'd' then
  redis.call('DEL', KEYS[1])
end
local n = tonumber(ARGV[12])
local i = 17
if n > 0 then
  for _ = 1, n do
    redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[7], '*', 'seq', ARGV[i], 'env', ARGV[i + 1])
    i = i + 2
  end
  local t = redis.call('TIME')
  local min_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[8])
  redis.call('XTRIM', KEYS[2], 'MINID', string.format('%d', min_ms))
end
if mode == 'd' then
  redis.call('EXPIRE', KEYS[2], ARGV[9])
end
for k = 5, #KEYS do
  local count = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, count do
    redis.call('LPUSH', KEYS[k], ARGV[i])
    i = i + 1
  end
  redis.call('LTRIM', KEYS[k], 0, tonumber(ARGV[11]) - 1)
  if mode == 'd' then
    -- a removed room passes every channel: its chat goes with its replay stream
    redis.call('EXPIRE', KEYS[k], ARGV[9])
  else
    redis.call('EXPIRE', KEYS[k], ARGV[10])
  end
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[5])
if wm_field ~= '' then
  redis.call('HSET', KEYS[3], wm_field, ARGV[15] .. ':' .. string.format('%d', wm_ts))
end
redis.call('EXPIRE', KEYS[3], ARGV[6])
local kept = redis.call('RPUSH', KEYS[4], ARGV[1])
local keep = tonumber(ARGV[13])
if mode == 'd' then
  -- a removed room keeps only its newest records (a gateway re-send of its last commands is
  -- still answered from them) and its watermark, which still catches any Kafka redelivery:
  -- the rest would sit in memory for ARGV[6] seconds with no room left to protect
  keep = math.min(keep, 16)
end
local excess = kept - keep
if excess > 0 then
  local old = redis.call('LPOP', KEYS[4], excess)
  redis.call('HDEL', KEYS[3], unpack(old))
end
redis.call('EXPIRE', KEYS[4], ARGV[6])
return {'ok'}
"""


# KEYS: 1 a room name's claim; ARGV: 1 the room id. Compare-and-delete: the name is released
# only while it still names this room (another room may have claimed it since).
_RELEASE_NAME_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def text(value: bytes | str) -> str:
    """Redis replies are bytes (no decode_responses); typed stubs say bytes or str."""
    return value.decode() if isinstance(value, bytes) else value


# the state JSON ends with its top-level `"version":N,"seq":M}` (as the commit script reads it)
_VERSION_TAIL = re.compile(r'"version":(\d+),"seq":\d+}$')
_RECORD_TAG = "R1"
_PENDING = "p:"  # a direct message record whose events were not yet acknowledged
_SENT = "s"  # ... and one whose events were


class StateWrite(Enum):
    WRITE = "w"
    DELETE = "d"
    NONE = "n"


class CommitStatus(Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    OLD = "old"
    """At or below the room's offset watermark: handled before, its record trimmed."""
    CONFLICT = "conflict"


@dataclass(frozen=True)
class Position:
    """Where a command record sits on the commands topic, and its command's timestamp (ms):
    what the room's watermark compares."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int

    @property
    def field(self) -> str:
        return f"~offset:{self.topic}:{self.partition}"

    def below(self, watermark: str) -> bool:
        """At or below a stored watermark (as the commit script decides)."""
        offset, _, ts = watermark.partition(":")
        return (
            offset.isdigit()
            and ts.isdigit()
            and int(offset) >= self.offset
            and int(ts) >= self.timestamp_ms
        )


@dataclass(slots=True)
class PublishedEvent:
    """One event as it goes to Kafka: its key, its room seq (or None) and the envelope JSON
    (what the record and the replay stream keep). `frame` and `headers` are its Kafka record
    (parlour_protocol.v1.records), set when the event is built; an event read back from a
    record has neither and they are derived from the envelope when it is sent again. Not
    frozen: a frozen dataclass's __init__ costs the hot path a setattr call per field."""

    key: str
    seq: int | None
    envelope: str
    frame: bytes | None = field(default=None, compare=False, repr=False)
    headers: list[tuple[str, bytes]] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Record:
    """What a command produced, kept under its msg_id: the exact events (re-published as they
    are on a redelivery) and the projection work to redo after the commit."""

    events: list[PublishedEvent]
    projection: dict[str, Any] = field(default_factory=dict)

    def dumps(self) -> str:
        """Lines: a format tag, the projection JSON, then key, seq ('' for none) and envelope
        per event. Envelope JSON never holds a raw newline (JSON escapes it), so the envelopes
        are stored as they are instead of being escaped into a JSON string again (the record
        is written on every command: that escaping was a measurable share of the hot path).
        Keys are protocol ids (no newline); anything else falls back to the JSON form."""
        lines = [_RECORD_TAG, json.dumps(self.projection, separators=(",", ":"))]
        for event in self.events:
            if "\n" in event.key or "\n" in event.envelope:
                return self._dumps_json()
            lines += (event.key, "" if event.seq is None else str(event.seq), event.envelope)
        return "\n".join(lines)

    def _dumps_json(self) -> str:
        return json.dumps(
            {
                "events": [[e.key, e.seq, e.envelope] for e in self.events],
                "projection": self.projection,
            },
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, raw: str | bytes) -> Record:
        raw_text = text(raw)
        if raw_text.startswith(_RECORD_TAG + "\n"):
            lines = raw_text.split("\n")
            events = [
                PublishedEvent(
                    key=lines[i],
                    seq=int(lines[i + 1]) if lines[i + 1] else None,
                    envelope=lines[i + 2],
                )
                for i in range(2, len(lines) - 2, 3)
            ]
            return cls(events=events, projection=json.loads(lines[1]) or {})
        data = json.loads(raw_text)  # the JSON form (older records, odd keys)
        return cls(
            events=[PublishedEvent(key=k, seq=s, envelope=e) for k, s, e in data["events"]],
            projection=data.get("projection") or {},
        )


@dataclass(frozen=True)
class Seen:
    """A command's standing in its room without committing (`RoomStore.seen`)."""

    record: Record | None
    old: bool
    version: int
    """The stored state's version; 0 when there is no room."""


@dataclass(frozen=True)
class CommitResult:
    status: CommitStatus
    record: Record | None = None
    """The earlier outcome, when DUPLICATE."""
    current_state: str | None = None
    """The stored state JSON (None: no room), when CONFLICT."""


@dataclass(frozen=True)
class ChatAppendJson:
    channel: str
    item: str
    """A chat message item as JSON (oldest first within one commit)."""


class _Pipelined:
    """Runs one Lua script for many concurrent callers with as few round trips as possible:
    calls made while a pipeline is in flight are sent together in the next one. Each call
    is still its own atomic script run; only the transport is shared."""

    def __init__(self, redis: AnyRedis, source: str) -> None:
        self._redis = redis
        self._script = redis.register_script(source)
        self._queue: list[tuple[list[str], list[str | int], asyncio.Future[Any]]] = []
        self._flushing = False
        self._task: asyncio.Task[None] | None = None  # keeps the flush task referenced

    async def call(self, keys: list[str], args: list[str | int]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((keys, args, future))
        if not self._flushing:
            self._flushing = True
            self._task = asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                queue, self._queue = self._queue, []
                await self._run(queue)
        finally:
            self._flushing = False

    async def _run(
        self, queue: list[tuple[list[str], list[str | int], asyncio.Future[Any]]]
    ) -> None:
        try:
            # one pipeline (one per node on a Redis Cluster); a NOSCRIPT reply (a restart,
            # SCRIPT FLUSH, a promoted replica) loads the script and runs those calls again
            results = await run_scripts(self._redis, self._script, [(k, a) for k, a, _ in queue])
        except BaseException as exc:  # every waiter must learn the outcome, even on cancel
            for _, _, future in queue:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, future), result in zip(queue, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)


class RoomStore:
    """Redis access for rooms. One instance per process; the scripts are registered once and
    run by EVALSHA (reloaded if the server lost its script cache)."""

    def __init__(
        self,
        redis: AnyRedis,
        keys: RedisKeys,
        *,
        applied_ttl_seconds: int,
        ended_room_ttl_seconds: int,
        applied_keep: int = 1000,
        chat_keep: int = CHAT_HISTORY_KEEP,
    ) -> None:
        self._applied_keep = applied_keep
        self._chat_keep = chat_keep
        self._redis = redis
        self._keys = keys
        self._applied_ttl = applied_ttl_seconds
        self._ended_ttl = ended_room_ttl_seconds
        self._commit = _Pipelined(redis, _COMMIT_LUA)
        self._release_name = redis.register_script(_RELEASE_NAME_LUA)

    @property
    def keys(self) -> RedisKeys:
        return self._keys

    async def load(self, room_id: str) -> str | None:
        """The room's state JSON, or None when there is no such room."""
        raw: bytes | str | None = await self._redis.get(self._keys.room_state(room_id))
        return None if raw is None else text(raw)

    async def recorded(self, room_id: str, msg_id: str) -> Record | None:
        raw: bytes | str | None = await self._redis.hget(self._keys.room_applied(room_id), msg_id)
        return None if raw is None else Record.loads(raw)

    async def seen(self, room_id: str, msg_id: str, position: Position | None) -> Seen:
        """What the commit script would check, for a command that commits nothing: the
        command's record, whether its position is at or below the room's watermark, and the
        stored version (to tell a stale cached state). One round trip."""
        applied = self._keys.room_applied(room_id)
        state_key = self._keys.room_state(room_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(applied, [msg_id, position.field if position else msg_id])
            pipe.getrange(state_key, -80, -1)
            (raw, wm), tail = await pipe.execute()
        version = 0
        if tail:
            match = _VERSION_TAIL.search(text(tail))
            if match is not None:
                version = int(match.group(1))
            else:  # not the usual field order: read the whole state
                current = await self.load(room_id)
                version = 0 if current is None else int(json.loads(current)["version"])
        return Seen(
            record=None if raw is None else Record.loads(raw),
            old=position is not None and wm is not None and position.below(text(wm)),
            version=version,
        )

    async def commit(
        self,
        room_id: str,
        *,
        msg_id: str,
        expected_version: int,
        write: StateWrite,
        state_json: str = "",
        record: Record,
        chat: list[ChatAppendJson] | None = None,
        position: Position | None = None,
    ) -> CommitResult:
        keys = self._keys
        chat_by_channel: dict[str, list[str]] = {}
        for append in chat or ():
            chat_by_channel.setdefault(append.channel, []).append(append.item)
        if write is StateWrite.DELETE:
            # the room is going: every channel's list expires with its replay stream instead
            # of living on for CHAT_HISTORY_TTL_SECONDS with nobody left to read it
            for channel in ChatChannel:
                chat_by_channel.setdefault(channel.value, [])
        room_events = [e for e in record.events if e.seq is not None]
        script_keys: list[str] = [
            keys.room_state(room_id),
            keys.room_events(room_id),
            keys.room_applied(room_id),
            keys.room_applied_order(room_id),
            *(keys.room_chat(room_id, channel) for channel in chat_by_channel),
        ]
        args: list[str | int] = [
            msg_id,
            expected_version,
            write.value,
            state_json,
            record.dumps(),
            self._applied_ttl,
            REPLAY_MAX_EVENTS,
            REPLAY_MAX_AGE_SECONDS * 1000,
            self._ended_ttl,
            CHAT_HISTORY_TTL_SECONDS,
            self._chat_keep,
            len(room_events),
            self._applied_keep,
            "" if position is None else position.field,
            -1 if position is None else position.offset,
            0 if position is None else position.timestamp_ms,
        ]
        for event in room_events:
            args.append(event.seq)  # type: ignore[arg-type]  # filtered above
            args.append(event.envelope)
        for items in chat_by_channel.values():
            args.append(len(items))
            args.extend(items)
        reply: list[bytes] = await self._commit.call(script_keys, args)
        status = reply[0].decode()
        if status == "ok":
            return CommitResult(CommitStatus.APPLIED)
        if status == "dup":
            return CommitResult(CommitStatus.DUPLICATE, record=Record.loads(reply[1]))
        if status == "old":
            return CommitResult(CommitStatus.OLD)
        current = reply[1].decode() if reply[1] else None
        return CommitResult(CommitStatus.CONFLICT, current_state=current)

    async def release_name(self, game_type: str, room_name: str, room_id: str) -> None:
        """Free the room name if it still names `room_id` (one script: compare and delete)."""
        await self._release_name(keys=[self._keys.room_name(game_type, room_name)], args=[room_id])

    async def record_direct(
        self, user_id: str, msg_id: str, record: Record
    ) -> tuple[bool, Record | None]:
        """Record a direct message's events under its sender and msg_id before they are sent.
        Returns (True, None) when this call made the record (send the events); otherwise the
        command was handled before: (False, None) when its events were acknowledged by Kafka
        (send nothing), (False, earlier) when they may not have been (send `earlier`, the
        recorded events with their ids, then `mark_direct_sent`)."""
        key = self._keys.user_direct_applied(user_id, msg_id)
        for _ in range(2):
            if await self._redis.set(key, _PENDING + record.dumps(), nx=True, ex=self._applied_ttl):
                return True, None
            raw: bytes | str | None = await self._redis.get(key)
            if raw is None:
                continue  # expired between the two calls: record it now
            earlier = text(raw)
            if earlier == _SENT:
                return False, None
            return False, Record.loads(earlier[len(_PENDING) :])
        raise RuntimeError(f"direct message {msg_id}: record vanished twice")

    async def mark_direct_sent(self, user_id: str, msg_id: str) -> None:
        """Kafka acknowledged the direct message's events: a redelivery sends nothing."""
        await self._redis.set(
            self._keys.user_direct_applied(user_id, msg_id), _SENT, xx=True, keepttl=True
        )

    async def chat_history(self, room_id: str, channel: str, limit: int) -> list[str]:
        """The newest `limit` chat items of a channel as JSON, oldest first."""
        raw: list[bytes | str] = await self._redis.lrange(
            self._keys.room_chat(room_id, channel), 0, limit - 1
        )
        return [text(item) for item in reversed(raw)]
