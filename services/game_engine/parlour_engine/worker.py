"""The engine's command processing: Kafka record in -> rules -> Redis -> events out.

One poll of the commands topic gives a batch. Records are grouped by Kafka key (room id, or
user id for commands without a room); groups run concurrently, the records of one group in
offset order. For each command:

1. decode (an undecodable record goes straight to the dead-letter topic);
2. load the room (an in-process cache holds the last state this process stored, checked by the
   store's version test), run `rules.apply`;
3. commit with the store's one Lua script; on a version conflict re-run on the state the script
   returned; on a duplicate msg_id take the recorded events instead;
4. rewrite the cross-room indexes (idempotent) and hand the events to the idempotent producer.

The Kafka offset is committed only after every event of the batch was acknowledged by Kafka.
An infrastructure failure (Redis or Kafka unreachable) is retried without limit and without
committing; a command whose processing raises anything else is tried `ENGINE_MAX_TRIES` times,
then sent to the dead-letter topic and its sender gets `system.error` `internal_error`.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import structlog
from aiokafka.errors import KafkaError
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from parlour_engine import rules
from parlour_engine.logging import get_logger
from parlour_engine.metrics import EngineMetrics, Outcome
from parlour_engine.rules import ChatRead, Emit, RoomState, RulesConfig
from parlour_engine.rules.context import derive_id
from parlour_engine.store import (
    ChatAppendJson,
    CommitStatus,
    PublishedEvent,
    Record,
    RoomStore,
    StateWrite,
    text,
)
from parlour_engine.timers import timer_member
from parlour_protocol.v1 import (
    ERROR_MEANINGS,
    Audience,
    AudienceKind,
    CommandEnvelope,
    ErrorCode,
    EventEnvelope,
    ProtocolError,
    RedisKeys,
    ServerEvent,
    decode_command_envelope,
    utc_now,
)
from parlour_protocol.v1.chat import ChatHistory, ChatMessageItem
from parlour_protocol.v1.rooms import (
    CreateRoom,
    JoinAsSpectator,
    JoinRoom,
    ListRooms,
    RejoinRoom,
    RoomRole,
    RoomStatus,
)
from parlour_protocol.v1.system import Error

_log = get_logger(__name__)

_MAX_CONFLICT_RETRIES = 50
_INFRA_BACKOFF_SECONDS = (0.1, 0.2, 0.5, 1.0, 2.0)
_CACHE_ROOMS = 20_000
_ENDED = frozenset({RoomStatus.FINISHED, RoomStatus.ABANDONED})

ApplyFn = Callable[[RoomState | None, CommandEnvelope, rules.Rng, datetime, RulesConfig], Any]
RngFor = Callable[[CommandEnvelope], rules.Rng]

# compare-and-delete: release a room name only if it still names this room
_RELEASE_NAME_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class EventSink(Protocol):
    """Where events and dead letters go (the Kafka producer). `send` enqueues and returns an
    awaitable that completes when Kafka acknowledged the record; per-key order is the order
    of `send` calls."""

    async def send(
        self, topic: str, key: str, value: bytes, headers: dict[str, str] | None = None
    ) -> Awaitable[Any]: ...


@dataclass(frozen=True)
class RawCommand:
    """One Kafka record of the commands topic, as the processor needs it."""

    key: str
    value: bytes
    topic: str = ""
    partition: int = -1
    offset: int = -1


class InfraError(Exception):
    """Redis or Kafka did not answer; the batch is retried, never dead-lettered."""


class AfterCommitError(Exception):
    """A step after the room commit failed (index writes, name release, publishing). The
    command took effect, so it must never be reported as failed: these steps are idempotent
    and are retried like infrastructure work (the redelivery path redoes them from the
    command's record), never dead-lettered."""


def production_rng() -> RngFor:
    system = secrets.SystemRandom()
    return lambda _command: system


def seeded_rng(seed: int) -> RngFor:
    """TEST ONLY: one `random.Random` per command, seeded from (seed, msg_id), so a command
    gives the same dice however often it is computed, on whichever engine; tests replay a
    room with `rules.replay` and the same derivation."""
    return lambda command: random.Random(f"{seed}:{command.msg_id}")


def reply_audience(command: CommandEnvelope) -> Audience:
    if command.connection_id is not None:
        return Audience(
            kind=AudienceKind.CONNECTION,
            user_ids=[command.actor.user_id],
            connection_id=command.connection_id,
            gateway_id=command.gateway_id,
        )
    return Audience(kind=AudienceKind.USER, user_ids=[command.actor.user_id])


def error_emit(command: CommandEnvelope, code: ErrorCode, room_id: str | None = None) -> Emit:
    return Emit(
        reply_audience(command),
        Error(
            code=code,
            message=ERROR_MEANINGS[code],
            request_id=command.request_id,
            room_id=room_id,
        ),
    )


def role_of(state: RoomState, user_id: str) -> RoomRole | None:
    if not state.is_member(user_id):
        return None
    if state.host_id == user_id:
        return RoomRole.HOST
    if state.player(user_id) is not None:
        return RoomRole.PLAYER
    if state.lobby_member(user_id) is not None:
        return RoomRole.LOBBY
    return RoomRole.SPECTATOR


def _same_name(state: RoomState, payload: object) -> bool:
    return (
        isinstance(payload, CreateRoom)
        and RedisKeys.fold_room_name(payload.room_name) == RedisKeys.fold_room_name(state.room_name)
        and payload.game_type == state.game_type
    )


def _membership(state: RoomState) -> tuple[object, ...]:
    """Everything the user-rooms index derives from (cheap to compare: no scores)."""
    return (
        state.host_id,
        tuple(m.user_id for m in state.players),
        tuple(m.user_id for m in state.lobby),
        tuple(s.user_id for s in state.spectators),
    )


class CommandProcessor:
    """Handles batches of command records. Pure wiring: every decision is the rules'."""

    def __init__(
        self,
        *,
        redis: Redis,
        store: RoomStore,
        sink: EventSink,
        metrics: EngineMetrics,
        config: RulesConfig,
        events_topic: str,
        dlq_topic: str,
        max_tries: int,
        rng_for: RngFor,
        apply: ApplyFn = rules.apply,
        clock: Callable[[], datetime] = utc_now,
        concurrency: int = 64,
    ) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._redis = redis
        self._store = store
        self._keys: RedisKeys = store.keys
        self._sink = sink
        self._metrics = metrics
        self._config = config
        self._events_topic = events_topic
        self._dlq_topic = dlq_topic
        self._max_tries = max_tries
        self._rng_for = rng_for
        self._apply = apply
        self._clock = clock
        self._release_name = redis.register_script(_RELEASE_NAME_LUA)
        self._cache: OrderedDict[str, RoomState] = OrderedDict()
        self._batch_timers: dict[str, int] = {}
        self._listed: OrderedDict[bytes, RoomState] = OrderedDict()
        self._counters: dict[tuple[str, str], Any] = {}
        self.stopping = False

    def _count(self, command_type: str, outcome: Outcome) -> None:
        """commands{type,outcome} += 1; the labelled child is looked up once per pair (the
        `labels()` call takes a lock and builds a key on every use)."""
        counter = self._counters.get((command_type, outcome))
        if counter is None:
            counter = self._metrics.commands.labels(type=command_type, outcome=outcome)
            if len(self._counters) < 4096:  # types are protocol names; bounded anyway
                self._counters[(command_type, outcome)] = counter
        counter.inc()

    def games_in_progress(self) -> int:
        """Rooms this process last stored with a running game (a per-process gauge)."""
        return sum(1 for s in self._cache.values() if s.status is RoomStatus.IN_PROGRESS)

    # --- batches --------------------------------------------------------------------------

    async def process_batch(self, records: Sequence[RawCommand]) -> None:
        """Process every record, then wait until Kafka acknowledged every event produced.
        Raises InfraError if that could not be done (the caller must not commit)."""
        pending = await self.process_batch_nowait(records)
        try:
            await asyncio.gather(*pending)
        except KafkaError as exc:
            raise InfraError(f"event publish failed: {exc}") from exc

    async def process_batch_nowait(self, records: Sequence[RawCommand]) -> list[Awaitable[Any]]:
        """Process every record (state stored, timers armed, events handed to the producer)
        and return the producer's acknowledgements, which the caller must await before it
        commits the batch's offsets. Raises InfraError when Redis or Kafka stay away."""
        groups: dict[str, list[RawCommand]] = {}
        for record in records:
            groups.setdefault(record.key, []).append(record)
        pending: list[Awaitable[Any]] = []
        results = await asyncio.gather(
            *(self._process_group(group, pending) for group in groups.values()),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                self._batch_timers.clear()
                raise result
        await self._flush_timers()
        return pending

    async def _flush_timers(self) -> None:
        """Arm the batch's timers in one ZADD. A crash before it leaves the batch uncommitted,
        and the redelivery re-arms them from the commands' records."""
        if not self._batch_timers:
            return
        timers, self._batch_timers = self._batch_timers, {}
        try:
            await self._redis.zadd(self._keys.timers(), timers)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise InfraError(f"arming timers failed: {exc}") from exc

    async def _process_group(self, group: list[RawCommand], pending: list[Awaitable[Any]]) -> None:
        # at most `concurrency` keys at once, each using one Redis connection at a time
        async with self._slots:
            for record in group:
                await self._process_record(record, pending)

    async def _process_record(self, record: RawCommand, pending: list[Awaitable[Any]]) -> None:
        started = time.perf_counter()
        try:
            command = decode_command_envelope(record.value)
        except ProtocolError as exc:
            await self._dead_letter(record, f"undecodable: {exc}", tries=0)
            self._metrics.commands.labels(type="(undecodable)", outcome=Outcome.DLQ).inc()
            _log.warning(
                "command_undecodable", key=record.key, offset=record.offset, error=str(exc)
            )
            return
        structlog.contextvars.bind_contextvars(
            msg_id=str(command.msg_id),
            room_id=command.room_id,
            user_id=command.actor.user_id,
            type=command.type,
        )
        try:
            tries = 0
            infra_failures = 0
            while True:
                tries += 1
                local: list[Awaitable[Any]] = []
                failure: BaseException
                try:
                    outcome = await self._handle(command, local)
                except InfraError:
                    raise
                except AfterCommitError as exc:
                    outcome = None
                    failure = exc.__cause__ or exc
                    retriable = True
                except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                    outcome = None
                    failure = exc
                    retriable = True
                except KafkaError as exc:
                    outcome = None
                    failure = exc
                    retriable = bool(getattr(exc, "retriable", False))
                except Exception as exc:  # noqa: BLE001 - a faulty command must not stop the engine
                    outcome = None
                    failure = exc
                    retriable = False
                if outcome is not None:
                    pending.extend(local)
                    self._count(command.type, outcome)
                    elapsed = time.perf_counter() - started
                    self._metrics.latency.observe(elapsed)
                    _log.info("command_handled", outcome=outcome.value, ms=round(elapsed * 1e3, 2))
                    return
                if retriable:
                    # Redis or Kafka away: not the command's fault, never dead-letter it
                    tries -= 1
                    if self.stopping:
                        raise InfraError(str(failure)) from failure
                    delay = _INFRA_BACKOFF_SECONDS[
                        min(infra_failures, len(_INFRA_BACKOFF_SECONDS) - 1)
                    ]
                    infra_failures += 1
                    if isinstance(failure, RedisConnectionError | RedisTimeoutError | OSError):
                        _log.warning("command_infra_retry", error=str(failure), delay=delay)
                    else:  # after the commit, and not an outage: worth an operator's look
                        _log.error(
                            "command_after_commit_retry",
                            error=f"{type(failure).__name__}: {failure}",
                            delay=delay,
                        )
                    await asyncio.sleep(delay)
                    continue
                _log.error(
                    "command_failed",
                    tries=tries,
                    error=f"{type(failure).__name__}: {failure}",
                    exc_info=failure,
                )
                if tries >= self._max_tries:
                    await self._dead_letter(
                        record, f"{type(failure).__name__}: {failure}", tries=tries
                    )
                    await self._abandon_claim(command)
                    await self._publish_now(
                        [error_emit(command, ErrorCode.INTERNAL_ERROR, command.room_id)],
                        command,
                        key=command.key,
                        room_id=command.room_id,
                        now=self._clock(),
                    )
                    self._count(command.type, Outcome.DLQ)
                    return
        finally:
            structlog.contextvars.unbind_contextvars("msg_id", "room_id", "user_id", "type")

    # --- one command ----------------------------------------------------------------------

    async def _handle(self, command: CommandEnvelope, pending: list[Awaitable[Any]]) -> Outcome:
        payload = command.payload
        now = self._clock()
        if isinstance(payload, ListRooms):
            return await self._list_rooms(command, payload.game_type, now, pending)
        if command.type == "chat.command.send_message":
            return await self._direct_message(command, now, pending)
        if command.type == "games.command.presence_changed":
            states = await self._user_room_states(command.actor.user_id)
            emits = rules.presence_changed(states, command)
            await self._send(self._envelopes(emits, command, None, now, command.key), pending)
            return Outcome.ANSWERED
        if not getattr(payload, "room_scoped", False) and not isinstance(
            payload, CreateRoom | JoinRoom | JoinAsSpectator | RejoinRoom
        ):
            raise ValueError(f"the engine has no handler for {command.type!r}")
        room_id = await self._room_id_for(command)
        if room_id is None:
            # a name that names no active room: the rules answer room_not_found
            outcome = await self._run_apply(None, command, now)
            await self._send(
                self._envelopes(outcome.emits, command, None, now, command.key), pending
            )
            return self._rejected_outcome(outcome)
        if isinstance(payload, CreateRoom):
            owner = await self._claim_name(payload.game_type, payload.room_name, room_id)
            if owner != room_id:
                emit = error_emit(command, ErrorCode.ROOM_NAME_TAKEN, room_id)
                await self._send(self._envelopes((emit,), command, room_id, now, room_id), pending)
                return Outcome.REJECTED
        return await self._room_command(command, room_id, now, pending)

    async def _direct_message(
        self, command: CommandEnvelope, now: datetime, pending: list[Awaitable[Any]]
    ) -> Outcome:
        """Exactly once: the events are recorded (sender + msg_id, SET NX) before they are
        sent and marked sent once Kafka acknowledged them. A redelivery of a sent message
        publishes nothing; one whose first delivery never got its events acknowledged sends
        the recorded events (same event ids) and nothing new."""
        emits = rules.direct_message(command, now)
        key = command.key
        for emit in emits:
            if emit.audience.user_ids and emit.audience.kind is not AudienceKind.CONNECTION:
                key = emit.audience.user_ids[0]
                break
        events = self._envelopes(emits, command, None, now, key)
        user_id, msg_id = command.actor.user_id, str(command.msg_id)
        first, earlier = await self._store.record_direct(user_id, msg_id, Record(events=events))
        if not first and earlier is None:
            return Outcome.DUPLICATE
        acks: list[Awaitable[Any]] = []
        await self._send(events if earlier is None else earlier.events, acks)
        pending.extend(acks)
        pending.append(asyncio.ensure_future(self._mark_direct_sent(acks, user_id, msg_id)))
        return Outcome.ANSWERED if first else Outcome.DUPLICATE

    async def _mark_direct_sent(
        self, acks: list[Awaitable[Any]], user_id: str, msg_id: str
    ) -> None:
        await asyncio.gather(*acks)  # a publish failure fails the batch (no commit)
        try:
            await self._store.mark_direct_sent(user_id, msg_id)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            # the events are out; only a redelivery of this very command could repeat them
            _log.warning("direct_message_mark_failed", msg_id=msg_id, error=str(exc))

    async def _room_id_for(self, command: CommandEnvelope) -> str | None:
        payload = command.payload
        if isinstance(payload, CreateRoom):
            # the gateway mints the id; lacking one, the rules derive it from the msg_id
            return command.room_id or str(derive_id(command.msg_id, "room"))
        if isinstance(payload, RejoinRoom) and payload.room_id is not None:
            return payload.room_id
        if isinstance(payload, JoinRoom | JoinAsSpectator | RejoinRoom):
            assert payload.room_name is not None  # RejoinRoom validates id or name
            raw: bytes | str | None = await self._redis.get(
                self._keys.room_name(payload.game_type, payload.room_name)
            )
            return None if raw is None else text(raw)
        room_id: str = payload.room_id  # type: ignore[attr-defined]
        return room_id

    async def _claim_name(self, game_type: str, room_name: str, room_id: str) -> str:
        key = self._keys.room_name(game_type, room_name)
        if await self._redis.set(key, room_id, nx=True):
            return room_id
        raw: bytes | str | None = await self._redis.get(key)
        if raw is None:  # released between the two calls: try once more
            return room_id if await self._redis.set(key, room_id, nx=True) else ""
        return text(raw)

    async def _load(self, room_id: str) -> RoomState | None:
        cached = self._cache.get(room_id)
        if cached is not None:
            self._cache.move_to_end(room_id)
            return cached
        raw = await self._store.load(room_id)
        state = None if raw is None else RoomState.model_validate_json(raw)
        self._remember(room_id, state)
        return state

    def _remember(self, room_id: str, state: RoomState | None) -> None:
        if state is None:
            self._cache.pop(room_id, None)
            return
        self._cache[room_id] = state
        self._cache.move_to_end(room_id)
        while len(self._cache) > _CACHE_ROOMS:
            self._cache.popitem(last=False)

    async def _room_command(
        self, command: CommandEnvelope, room_id: str, now: datetime, pending: list[Awaitable[Any]]
    ) -> Outcome:
        msg_id = str(command.msg_id)
        state = await self._load(room_id)
        for _ in range(_MAX_CONFLICT_RETRIES):
            outcome = await self._run_apply(state, command, now)
            emits: tuple[Emit, ...] = tuple(outcome.emits)
            if outcome.chat_read is not None:
                emits += (await self._chat_history(outcome.chat_read),)
            after: RoomState | None = outcome.state
            if state is None and after is None:
                # nothing exists: nothing to protect. An earlier delivery may have been applied
                # before the room was removed: then its recorded events are the answer.
                record = await self._store.recorded(room_id, msg_id)
                if record is not None:
                    await self._after_commit(self._after_duplicate(room_id, record, pending))
                    return Outcome.DUPLICATE
                await self._send(self._envelopes(emits, command, room_id, now, room_id), pending)
                await self._release_if_create(command, room_id)
                return self._rejected_outcome(outcome)
            if not outcome.changed:
                write = StateWrite.NONE
            elif after is None:
                write = StateWrite.DELETE
            else:
                write = StateWrite.WRITE
            events = self._envelopes(emits, command, room_id, now, room_id)
            projection = self._projection(state, after, outcome, now)
            record = Record(events=events, projection=projection)
            result = await self._store.commit(
                room_id,
                msg_id=msg_id,
                expected_version=0 if state is None else state.version,
                write=write,
                state_json=after.model_dump_json() if write is StateWrite.WRITE and after else "",
                record=record,
                chat=[
                    ChatAppendJson(channel=c.channel.value, item=c.item.model_dump_json())
                    for c in outcome.chat
                ],
            )
            if result.status is CommitStatus.CONFLICT:
                self._metrics.conflicts.inc()
                state = (
                    None
                    if result.current_state is None
                    else RoomState.model_validate_json(result.current_state)
                )
                self._remember(room_id, state)
                continue
            if result.status is CommitStatus.DUPLICATE:
                assert result.record is not None
                await self._after_commit(self._after_duplicate(room_id, result.record, pending))
                return Outcome.DUPLICATE
            if write is not StateWrite.NONE:
                self._remember(room_id, after)
            steps = self._committed(
                command, room_id, state, after, outcome, projection, events, pending
            )
            await self._after_commit(steps)
            return Outcome.APPLIED if outcome.rejected is None else self._rejected_outcome(outcome)
        raise RuntimeError(f"room {room_id}: {_MAX_CONFLICT_RETRIES} version conflicts in a row")

    async def _committed(
        self,
        command: CommandEnvelope,
        room_id: str,
        before: RoomState | None,
        after: RoomState | None,
        outcome: Any,
        projection: dict[str, Any],
        events: list[PublishedEvent],
        pending: list[Awaitable[Any]],
    ) -> None:
        """The steps after a commit; all idempotent (a redelivery redoes them)."""
        if outcome.rejected is not None and (
            after is None or not _same_name(after, command.payload)
        ):
            await self._release_if_create(command, room_id)
        await self._project(room_id, before, after, projection)
        await self._send(events, pending)

    @staticmethod
    async def _after_commit(steps: Awaitable[None]) -> None:
        """Run post-commit steps; whatever they raise becomes AfterCommitError (retried
        without limit, never dead-lettered: the command already took effect)."""
        try:
            await steps
        except InfraError:
            raise
        except Exception as exc:  # re-raised as a retry, never swallowed
            raise AfterCommitError(f"{type(exc).__name__}: {exc}") from exc

    def _rejected_outcome(self, outcome: Any) -> Outcome:
        """REJECTED, or FAULT when the rules reported an internal fault: that is logged
        (error level; the notes name the fault, never chat text or passwords)."""
        if not outcome.notes:
            return Outcome.REJECTED
        _log.error("rules_fault", notes=list(outcome.notes))
        return Outcome.FAULT

    async def _run_apply(
        self, state: RoomState | None, command: CommandEnvelope, now: datetime
    ) -> Any:
        rng = self._rng_for(command)
        if getattr(command.payload, "password", None):
            # hashing or checking a room password (scrypt) takes tens of milliseconds; the
            # rules are pure, so they run in a worker thread (scrypt releases the GIL) and
            # the other rooms of the batch go on meanwhile
            return await asyncio.to_thread(self._apply, state, command, rng, now, self._config)
        return self._apply(state, command, rng, now, self._config)

    async def _abandon_claim(self, command: CommandEnvelope) -> None:
        """A create_room that never took effect must not keep its name claimed."""
        if not isinstance(command.payload, CreateRoom):
            return
        room_id = await self._room_id_for(command)
        if room_id is not None and await self._store.load(room_id) is None:
            await self._release_if_create(command, room_id)

    async def _release_if_create(self, command: CommandEnvelope, room_id: str) -> None:
        payload = command.payload
        if isinstance(payload, CreateRoom):
            await self._release_name(
                keys=[self._keys.room_name(payload.game_type, payload.room_name)], args=[room_id]
            )

    async def _chat_history(self, read: ChatRead) -> Emit:
        raw = await self._store.chat_history(read.room_id, read.channel.value, read.limit)
        items = [ChatMessageItem.model_validate_json(item) for item in raw]
        return Emit(
            read.audience,
            ChatHistory(
                room_id=read.room_id,
                channel=read.channel,
                messages=[i for i in items if i.user_id not in read.hidden_user_ids],
            ),
        )

    async def _list_rooms(
        self, command: CommandEnvelope, game_type: str, now: datetime, pending: list[Awaitable[Any]]
    ) -> Outcome:
        ids: set[bytes | str] = await self._redis.smembers(self._keys.rooms_by_game(game_type))
        states = await self._states(sorted(text(i) for i in ids))
        room_list = rules.list_rooms(states, command.actor.user_id, game_type, now)
        emit = Emit(reply_audience(command), room_list)
        await self._send(self._envelopes((emit,), command, None, now, command.key), pending)
        return Outcome.ANSWERED

    async def _user_room_states(self, user_id: str) -> list[RoomState]:
        ids: list[bytes | str] = await self._redis.hkeys(self._keys.user_rooms(user_id))
        return await self._states([text(i) for i in ids])

    async def _states(self, room_ids: list[str]) -> list[RoomState]:
        if not room_ids:
            return []
        # one GET per room (different hash slots), pipelined; read-only, so the cache is
        # not consulted: another engine may own these rooms
        async with self._redis.pipeline(transaction=False) as pipe:
            for room_id in room_ids:
                pipe.get(self._keys.room_state(room_id))
            raw: list[bytes | None] = await pipe.execute()
        return [self._parse_listed(r) for r in raw if r is not None]

    def _parse_listed(self, raw: bytes) -> RoomState:
        """Room lists read every room of a game; most did not change since the last list,
        so their parsed state is reused (keyed by the exact stored JSON)."""
        state = self._listed.get(raw)
        if state is None:
            state = RoomState.model_validate_json(raw)
            self._listed[raw] = state
            while len(self._listed) > _CACHE_ROOMS:
                self._listed.popitem(last=False)
        else:
            self._listed.move_to_end(raw)
        return state

    # --- indexes across rooms (projections of room state) ---------------------------------

    def _projection(
        self, before: RoomState | None, after: RoomState | None, outcome: Any, now: datetime
    ) -> dict[str, Any]:
        """What `_project` needs again on a redelivery, when `before` is long gone."""
        gone = sorted(
            set(before.member_ids() if before else ()) - set(after.member_ids() if after else ())
        )
        subject = after or before
        return {
            "now": now.isoformat(),
            "gone": gone,
            "game": subject.game_type if subject else None,
            "name": subject.room_name if subject else None,
            "timers": [
                [timer_member(subject.room_id, t.kind, t.token), int(t.due.timestamp() * 1000)]
                for t in outcome.timers
            ]
            if subject
            else [],
        }

    async def _project(
        self,
        room_id: str,
        before: RoomState | None,
        after: RoomState | None,
        projection: dict[str, Any],
    ) -> None:
        """Rewrite the cross-room indexes from the committed state. Every write is
        idempotent, so a redelivery can simply run it again."""
        keys = self._keys
        game: str | None = projection.get("game")
        for member, due in projection.get("timers") or ():
            # armed once per batch, before its offsets are committed (see flush_timers)
            self._batch_timers[member] = due
        unchanged = (
            before is not None
            and after is not None
            and before.status is after.status
            and _membership(before) == _membership(after)
        )
        if unchanged:
            return  # most game moves: no index to touch
        async with self._redis.pipeline(transaction=False) as pipe:
            if after is not None and not unchanged:
                for user_id in after.member_ids():
                    role = role_of(after, user_id)
                    if role is not None:
                        pipe.hset(keys.user_rooms(user_id), room_id, role.value)
            for user_id in projection.get("gone", ()):
                if after is None or not after.is_member(user_id):
                    pipe.hdel(keys.user_rooms(user_id), room_id)
            if game is not None and not unchanged:
                if after is None or after.status in _ENDED:
                    pipe.srem(keys.rooms_by_game(game), room_id)
                else:
                    pipe.sadd(keys.rooms_by_game(game), room_id)
            await pipe.execute()
        if after is None and game is not None and projection.get("name"):
            await self._release_name(
                keys=[keys.room_name(game, projection["name"])], args=[room_id]
            )
        if before is not None and after is None and game is not None:
            # a room that is gone leaves no member index behind
            async with self._redis.pipeline(transaction=False) as pipe:
                for user_id in before.member_ids():
                    pipe.hdel(keys.user_rooms(user_id), room_id)
                await pipe.execute()

    async def _after_duplicate(
        self, room_id: str, record: Record, pending: list[Awaitable[Any]]
    ) -> None:
        """A redelivered command: redo the projections from the room as it is now, then
        re-send exactly the events recorded the first time (same ids and seqs)."""
        self._cache.pop(room_id, None)  # another engine may have moved the room on
        current = await self._load(room_id)
        await self._project(room_id, None, current, record.projection)
        await self._send(record.events, pending)

    # --- events ---------------------------------------------------------------------------

    def _envelopes(
        self,
        emits: Sequence[Emit],
        command: CommandEnvelope,
        room_id: str | None,
        now: datetime,
        key: str,
    ) -> list[PublishedEvent]:
        out: list[PublishedEvent] = []
        for index, emit in enumerate(emits):
            message: ServerEvent = emit.message
            # every part is already a validated model or value of ours (the rules' messages
            # and audiences, the decoded command's ids), and type/seq are taken from the
            # payload, so the envelope's checks hold by construction: build without
            # re-validating (the hot path's largest avoidable cost)
            envelope = EventEnvelope.model_construct(
                event_id=uuid.uuid5(command.msg_id, str(index)),
                type=message.type,
                room_id=room_id,
                seq=message.seq,
                audience=emit.audience,
                causation_id=command.msg_id,
                timestamp=now,
                payload=message,
            )
            out.append(
                PublishedEvent(key=key, seq=message.seq, envelope=envelope.model_dump_json())
            )
        return out

    async def _send(self, events: Sequence[PublishedEvent], pending: list[Awaitable[Any]]) -> None:
        # one after the other: the producer keeps per-partition order in the order of `send`
        for event in events:
            pending.append(
                await self._sink.send(self._events_topic, event.key, event.envelope.encode())
            )

    async def _publish_now(
        self,
        emits: Sequence[Emit],
        command: CommandEnvelope,
        *,
        key: str,
        room_id: str | None,
        now: datetime,
    ) -> None:
        pending: list[Awaitable[Any]] = []
        await self._send(self._envelopes(emits, command, room_id, now, key), pending)
        await asyncio.gather(*pending)

    async def _dead_letter(self, record: RawCommand, error: str, *, tries: int) -> None:
        self._metrics.dlq.inc()
        headers = {
            "x-error": error[:1000],
            "x-tries": str(tries),
            "x-origin": f"{record.topic}:{record.partition}:{record.offset}",
        }
        ack = await self._sink.send(self._dlq_topic, record.key, record.value, headers)
        await ack
        _log.error("command_dead_lettered", key=record.key, offset=record.offset, tries=tries)
