"""The engine's command processing: Kafka record in -> rules -> Redis -> events out.

One poll of the commands topic gives a batch. Records are grouped by Kafka key (room id, or
user id for commands without a room); groups run concurrently, the records of one group in
offset order. For each command:

1. decode (an undecodable record goes straight to the dead-letter topic);
2. load the room (an in-process cache holds the last state this process stored, checked by the
   store's version test), run `rules.apply`;
3. build the events and check each against EVENT_MAX_BYTES (one that would not fit stops the
   command here: nothing is committed);
4. an outcome that changes nothing (a rejection, a read-only answer) is only answered; one
   that changes the room is committed with the store's one Lua script (on a version conflict
   re-run on the state the script returned; on a duplicate msg_id, or a record at or below the
   room's offset watermark, take the recorded events, or send nothing);
5. rewrite the cross-room indexes (idempotent) and hand the events to the idempotent producer.

The Kafka offset is committed only after every event of the batch was acknowledged by Kafka.

Failures (`DeadLetterReason` names each way a record leaves by the dead-letter topic; the
sender then gets `system.error` `internal_error` and the offset moves on):
- deterministic, before the commit (a fault in the engine): tried `ENGINE_MAX_TRIES` times;
- an event over the budget: at once (`event_too_large`);
- Kafka refusing an event for good (a non-retriable KafkaError: too large, invalid record,
  not authorised), raised by `send` or by its acknowledgement: at once (`publish_refused`);
- an outage (Redis or Kafka unreachable, timeouts, not enough replicas, leader moves) and any
  failure of the idempotent steps after the commit: retried with backoff. No record holds its
  partition longer than RECORD_STALL_MAX_SECONDS of failing (plus one produce timeout of the
  producer, when Kafka is what fails) while the infrastructure answers others: it is then
  dead-lettered (`stalled`). "Answers" is Redis answering PING for a Redis failure, and Kafka
  taking the dead-letter copy for a Kafka failure; during a real outage neither holds, so
  nothing is dead-lettered and the record is retried until the outage ends.
The gauge `parlour_engine_stalled_records` counts the records retrying right now (in the
retry loop, or whose events Kafka failed to acknowledge within the last
_ACK_STALL_WINDOW_SECONDS), and the
counter `parlour_engine_dead_letters{reason}` every dead letter (alert on either).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import random
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

import structlog
from aiokafka.errors import (
    DuplicateSequenceNumber,
    InvalidProducerEpoch,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    ProducerFenced,
    UnknownProducerId,
)
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from parlour_engine import rules
from parlour_engine.lobby import Lobby, UserTurns, listing_member
from parlour_engine.logging import get_logger
from parlour_engine.metrics import CommandOutcome, EngineMetrics
from parlour_engine.rules import ChatRead, Emit, RoomState, RulesConfig
from parlour_engine.rules.context import derive_id
from parlour_engine.rules.views import listable
from parlour_engine.store import (
    ChatAppendJson,
    CommitStatus,
    Position,
    PublishedEvent,
    Record,
    RoomStore,
    Seen,
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
    limits,
    utc_now,
)
from parlour_protocol.v1.chat import ChatHistory, ChatMessageItem, GetChatHistory
from parlour_protocol.v1.limits import DEFAULT_MAX_ROOMS_PER_HOST, DEFAULT_MAX_ROOMS_PER_USER
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
RECORD_STALL_MAX_SECONDS = 60.0
"""Most time one command may spend failing (and so holding its partition) while the
infrastructure answers, before it is dead-lettered as `stalled` (see the module docstring)."""
EVENT_MAX_BYTES = limits.EVENT_MAX_BYTES
DLQ_VALUE_MAX_BYTES = EVENT_MAX_BYTES
"""A dead-letter copy keeps at most this much of the record (the rest is cut, header
`x-truncated` = the original size), so it always fits the producer's max_request_size
(aiokafka's default 1 MiB, with room for the headers) and the broker's message.max.bytes:
a dead letter can never fail for its size."""
_CHAT_ENVELOPE_RESERVE = 8 * 1024
"""Bytes of a chat_history envelope besides its messages (ids, audience, timestamps), kept
free when the history is filled up to EVENT_MAX_BYTES."""
_PROBE_SECONDS = 2.0
_ACK_FAILURES_KEEP = 10_000
_ACK_STALL_WINDOW_SECONDS = 120.0
"""A record whose events failed to be acknowledged counts as stalled this long after its last
failure (a re-run fails again within one produce timeout, 40 s by default, while it lasts)."""
_REDACTED = "***"

# where the record being handled sits on the commands topic: each key's group of a batch runs
# in its own task (asyncio.gather), so this is per record, and `_room_command` reads it
_position: contextvars.ContextVar[Position | None] = contextvars.ContextVar(
    "parlour_position", default=None
)


class DeadLetterReason(StrEnum):
    """Why a record went to the dead-letter topic (header `x-reason`, metric label)."""

    UNDECODABLE = "undecodable"
    """Not a command envelope of this protocol."""
    EVENT_TOO_LARGE = "event_too_large"
    """An event of the command would exceed EVENT_MAX_BYTES: nothing was committed."""
    PUBLISH_REFUSED = "publish_refused"
    """Kafka refused an event for good (a non-retriable error: too large for the broker,
    invalid or corrupt record, not authorised)."""
    STALLED = "stalled"
    """Kept failing for RECORD_STALL_MAX_SECONDS while Redis and Kafka answered otherwise."""
    FAILED = "failed"
    """Raised `ENGINE_MAX_TRIES` times before its commit (a fault in the engine)."""
    AFTER_COMMIT = "after_commit"
    """Took effect (its room commit is recorded), but a step after the commit (indexes,
    timers) kept failing even in a batch of its own. Its sender is not told it failed: its
    recorded events are sent again; the copy is for an operator to repair what is missing."""


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


class EventTooLarge(Exception):
    """An event would exceed EVENT_MAX_BYTES; raised before anything is committed."""


class AfterCommitError(Exception):
    """A step after the room commit failed (index writes, name release, publishing). The
    command took effect: these steps are idempotent and are retried like infrastructure
    work (the redelivery path redoes them from the command's record); only a failure that can
    never pass (Kafka refusing an event for good) or one that outlasts
    RECORD_STALL_MAX_SECONDS while Redis and Kafka answer ends in the dead-letter topic."""


_PRODUCER_STATE_ERRORS = (
    KafkaTimeoutError,
    KafkaConnectionError,
    ProducerClosed,
    OutOfOrderSequenceNumber,
    DuplicateSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    ProducerFenced,
)


def is_outage(exc: BaseException) -> bool:
    """Infrastructure that did not answer (worth retrying; never the command's fault):
    Redis connection errors and timeouts, socket errors, and Kafka errors that Kafka marks
    retriable (connection, not enough replicas, leader moves) plus those aiokafka marks
    non-retriable that say nothing about the record: the producer's delivery timeout, a
    closed producer, and the idempotent producer's own state (sequence numbers, producer id,
    epoch; aiokafka's producer does not recover from those, it has to be replaced)."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):
        return True
    if isinstance(exc, _PRODUCER_STATE_ERRORS):
        return True
    return isinstance(exc, KafkaError) and bool(exc.retriable)


def redacted(value: bytes) -> tuple[bytes, bool]:
    """The record with every `password` field (at any depth) replaced by "***", and whether
    one was. A record that is not JSON keeps its bytes (there is no field to find)."""
    try:
        data = json.loads(value)
    except ValueError:
        return value, False

    def scrub(node: Any) -> bool:
        found = False
        if isinstance(node, dict):
            for key, item in node.items():
                if key == "password" and item is not None:
                    node[key] = _REDACTED
                    found = True
                else:
                    found = scrub(item) or found
        elif isinstance(node, list):
            for item in node:
                found = scrub(item) or found
        return found

    if not scrub(data):
        return value, False
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode(), True


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
        stall_max_seconds: float = RECORD_STALL_MAX_SECONDS,
        max_rooms_per_host: int = DEFAULT_MAX_ROOMS_PER_HOST,
        max_rooms_per_user: int = DEFAULT_MAX_ROOMS_PER_USER,
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
        self._lobby = Lobby(redis, store.keys)
        self._user_turns = UserTurns()
        self._max_rooms_per_host = max_rooms_per_host
        self._max_rooms_per_user = max_rooms_per_user
        self._counters: dict[tuple[str, str], Any] = {}
        self._stall_max = stall_max_seconds
        self._retrying = 0
        # records whose events Kafka did not acknowledge (an outage fails the batch, which is
        # consumed again): when each first failed, to bound the stall across re-runs
        # (first failure, last failure) per record, monotonic seconds
        self._ack_failures: OrderedDict[str, tuple[float, float]] = OrderedDict()
        # read at scrape time: nothing stays stale once a record is gone (e.g. its partition
        # moved to another engine)
        metrics.stalled_records.set_function(self._stalled_now)
        self.stopping = False

    def _count(self, command_type: str, outcome: CommandOutcome) -> None:
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
            try:
                await self._dead_letter(
                    record, DeadLetterReason.UNDECODABLE, f"undecodable: {exc}", tries=0
                )
            except KafkaError as dlq_exc:  # nothing may skip it: retried like an outage
                raise InfraError(f"dead-lettering failed: {dlq_exc}") from dlq_exc
            self._metrics.commands.labels(type="(undecodable)", outcome=CommandOutcome.DLQ).inc()
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
        # the room's offset watermark covers records keyed by the room (see store.py)
        keyed_by_room = record.offset >= 0 and record.key == command.room_id
        _position.set(
            Position(
                record.topic,
                record.partition,
                record.offset,
                int(command.timestamp.timestamp() * 1000),
            )
            if keyed_by_room
            else None
        )
        failing_since: float | None = None
        try:
            tries = 0
            infra_failures = 0
            while True:
                local: list[Awaitable[Any]] = []
                failure: BaseException
                after_commit = False
                try:
                    outcome = await self._handle(command, local)
                except InfraError:
                    raise
                except EventTooLarge as exc:
                    await self._give_up_or_raise(
                        record, command, DeadLetterReason.EVENT_TOO_LARGE, str(exc), tries
                    )
                    return
                except AfterCommitError as exc:
                    outcome = None
                    failure = exc.__cause__ or exc
                    after_commit = True
                except Exception as exc:  # noqa: BLE001 - a faulty command must not stop the engine
                    outcome = None
                    failure = exc
                if outcome is not None:
                    if local:
                        pending.append(asyncio.ensure_future(self._settle(record, command, local)))
                    self._count(command.type, outcome)
                    elapsed = time.perf_counter() - started
                    self._metrics.latency.observe(elapsed)
                    _log.info("command_handled", outcome=outcome.value, ms=round(elapsed * 1e3, 2))
                    return
                error = f"{type(failure).__name__}: {failure}"
                if self.stopping:
                    raise InfraError(error) from failure
                outage = is_outage(failure)
                if isinstance(failure, KafkaError) and not outage:
                    # Kafka refuses this for good (too large, invalid, not authorised)
                    _log.error("command_publish_refused", error=error)
                    await self._give_up_or_raise(
                        record, command, DeadLetterReason.PUBLISH_REFUSED, error, tries
                    )
                    return
                if not outage and not after_commit:
                    tries += 1
                    _log.error("command_failed", tries=tries, error=error, exc_info=failure)
                    if tries >= self._max_tries:
                        await self._give_up_or_raise(
                            record, command, DeadLetterReason.FAILED, error, tries
                        )
                        return
                    continue
                # an outage, or an idempotent step after the commit: retry with backoff, for
                # at most the stall bound while the infrastructure answers
                now = time.monotonic()
                if failing_since is None:
                    failing_since = now
                    self._retrying += 1
                elif now - failing_since >= self._stall_max and await self._infra_answers(failure):
                    reason = DeadLetterReason.STALLED
                    if await self._give_up(record, command, reason, error, tries):
                        return
                delay = _INFRA_BACKOFF_SECONDS[min(infra_failures, len(_INFRA_BACKOFF_SECONDS) - 1)]
                infra_failures += 1
                if outage:
                    _log.warning("command_infra_retry", error=error, delay=delay)
                else:  # after the commit, and not an outage: worth an operator's look
                    _log.error("command_after_commit_retry", error=error, delay=delay)
                await asyncio.sleep(delay)
        finally:
            if failing_since is not None:
                self._retrying -= 1
            structlog.contextvars.unbind_contextvars("msg_id", "room_id", "user_id", "type")

    async def _settle(
        self, record: RawCommand, command: CommandEnvelope, acks: list[Awaitable[Any]]
    ) -> None:
        """Wait until Kafka acknowledged the command's events (the batch commits after this).
        A refusal for good dead-letters the command and lets its offset move on. An outage
        raises (the committer rewinds and the batch is consumed again; the redelivery re-sends
        the recorded events), until the command has failed for RECORD_STALL_MAX_SECONDS and
        Kafka takes its dead-letter copy."""
        try:
            await asyncio.gather(*acks)
        except KafkaError as exc:
            failure: KafkaError = exc
        else:
            if self._ack_failures:
                self._ack_failures.pop(self._ack_key(record, command), None)
            return
        error = f"{type(failure).__name__}: {failure}"
        if self.stopping:
            raise failure
        if not is_outage(failure):
            _log.error("command_publish_refused", msg_id=str(command.msg_id), error=error)
            if await self._give_up(record, command, DeadLetterReason.PUBLISH_REFUSED, error, 0):
                return
            raise failure
        key = self._ack_key(record, command)
        now = time.monotonic()
        first = self._ack_failures.get(key, (now, now))[0]
        self._ack_failures[key] = (first, now)
        while len(self._ack_failures) > _ACK_FAILURES_KEEP:
            self._ack_failures.popitem(last=False)
        stalled = time.monotonic() - first >= self._stall_max
        if stalled and await self._give_up(record, command, DeadLetterReason.STALLED, error, 0):
            self._ack_failures.pop(key, None)
            return
        raise failure

    def _stalled_now(self) -> float:
        recent = time.monotonic() - _ACK_STALL_WINDOW_SECONDS
        return self._retrying + sum(1 for _, last in self._ack_failures.values() if last > recent)

    @staticmethod
    def _ack_key(record: RawCommand, command: CommandEnvelope) -> str:
        return f"{record.topic}:{record.partition}:{record.offset}:{command.msg_id}"

    async def _infra_answers(self, failure: BaseException) -> bool:
        """Whether the infrastructure behind `failure` answers others: Redis answers PING for
        a Redis failure. For Kafka the dead-letter send itself is the probe (`_give_up`)."""
        if isinstance(failure, KafkaError):
            return True
        try:
            return bool(await asyncio.wait_for(self._redis.ping(), _PROBE_SECONDS))
        except (RedisConnectionError, RedisTimeoutError, OSError):
            return False

    async def _give_up_or_raise(
        self,
        record: RawCommand,
        command: CommandEnvelope,
        reason: DeadLetterReason,
        error: str,
        tries: int,
    ) -> None:
        """Dead-letter the command; if Kafka does not take the copy, the batch is retried."""
        if not await self._give_up(record, command, reason, error, tries):
            raise InfraError(f"dead-lettering failed ({reason}): {error}")

    async def _give_up(
        self,
        record: RawCommand,
        command: CommandEnvelope,
        reason: DeadLetterReason,
        error: str,
        tries: int,
    ) -> bool:
        """Send the record to the dead-letter topic and tell its sender `internal_error`.
        False when Kafka did not take the copy (an outage: the caller retries)."""
        try:
            await self._dead_letter(record, reason, error, tries=tries)
        except KafkaError as exc:
            _log.warning("dead_letter_failed", reason=reason.value, error=str(exc))
            return False
        self._count(command.type, CommandOutcome.DLQ)
        try:
            await self._abandon_claim(command)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            _log.warning("dead_letter_release_failed", error=f"{type(exc).__name__}: {exc}")
        # a few tries: right after Kafka refused an event, aiokafka's producer fails the next
        # send of that partition (the sink replaces it), and this reply goes to that partition
        for attempt in range(len(_INFRA_BACKOFF_SECONDS)):
            try:
                await self._publish_now(
                    [error_emit(command, ErrorCode.INTERNAL_ERROR, command.room_id)],
                    command,
                    key=command.key,
                    room_id=command.room_id,
                    now=self._clock(),
                )
                break
            except KafkaError as exc:
                if not is_outage(exc) or attempt + 1 == len(_INFRA_BACKOFF_SECONDS):
                    # the dead letter is what counts; the reply is a courtesy
                    _log.warning("dead_letter_reply_failed", error=f"{type(exc).__name__}: {exc}")
                    break
                await asyncio.sleep(_INFRA_BACKOFF_SECONDS[attempt])
        return True

    # --- one command ----------------------------------------------------------------------

    async def _handle(
        self, command: CommandEnvelope, pending: list[Awaitable[Any]]
    ) -> CommandOutcome:
        payload = command.payload
        now = self._clock()
        if isinstance(payload, ListRooms):
            return await self._list_rooms(command, payload, now, pending)
        if command.type == "chat.command.send_message":
            return await self._direct_message(command, now, pending)
        if command.type == "games.command.presence_changed":
            states = await self._user_room_states(command.actor.user_id)
            emits = rules.presence_changed(states, command)
            await self._send(self._envelopes(emits, command, None, now, command.key), pending)
            return CommandOutcome.ANSWERED
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
        if not isinstance(payload, CreateRoom | JoinRoom | JoinAsSpectator):
            return await self._room_command(command, room_id, now, pending)
        # one at a time per user in this engine, from the cap check to the index write
        async with self._user_turns.turn(command.actor.user_id):
            refused = await self._over_cap(command, room_id)
            if refused is not None:
                await self._send(
                    self._envelopes((refused,), command, command.room_id, now, command.key),
                    pending,
                )
                return CommandOutcome.REJECTED
            if isinstance(payload, CreateRoom):
                owner = await self._claim_name(payload.game_type, payload.room_name, room_id)
                if owner != room_id:
                    emit = error_emit(command, ErrorCode.ROOM_NAME_TAKEN, room_id)
                    await self._send(
                        self._envelopes((emit,), command, room_id, now, room_id), pending
                    )
                    return CommandOutcome.REJECTED
            return await self._room_command(command, room_id, now, pending)

    async def _over_cap(self, command: CommandEnvelope, room_id: str) -> Emit | None:
        """The `too_many_rooms` / `limit_reached` answer when creating or joining would take
        the user past max_rooms_per_host / max_rooms_per_user (counted from `user_rooms`, see
        lobby.py for the bound that holds under races), else None. Before the name claim, so
        a refused create claims no name."""
        user_id = command.actor.user_id
        refusal = await self._lobby.refusal(
            user_id,
            room_id,
            creating=isinstance(command.payload, CreateRoom),
            max_rooms_per_host=self._max_rooms_per_host,
            max_rooms_per_user=self._max_rooms_per_user,
        )
        if refusal is None:
            return None
        # A redelivery of a command that took effect while its index write was lost (a crash
        # between the commit and `_project`) must get its recorded answer, not a refusal.
        raw = await self._store.load(room_id)
        if raw is not None:
            state = RoomState.model_validate_json(raw)
            if isinstance(command.payload, CreateRoom) or state.is_member(user_id):
                return None
        return Emit(
            reply_audience(command),
            Error(code=refusal.code, message=refusal.message, request_id=command.request_id),
        )

    async def _direct_message(
        self, command: CommandEnvelope, now: datetime, pending: list[Awaitable[Any]]
    ) -> CommandOutcome:
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
            return CommandOutcome.DUPLICATE
        acks: list[Awaitable[Any]] = []
        await self._send(events if earlier is None else earlier.events, acks)
        pending.extend(acks)
        pending.append(asyncio.ensure_future(self._mark_direct_sent(acks, user_id, msg_id)))
        return CommandOutcome.ANSWERED if first else CommandOutcome.DUPLICATE

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
    ) -> CommandOutcome:
        msg_id = str(command.msg_id)
        position = _position.get()
        state = await self._load(room_id)
        for _ in range(_MAX_CONFLICT_RETRIES):
            outcome = await self._run_apply(state, command, now)
            emits: tuple[Emit, ...] = tuple(outcome.emits)
            if outcome.chat_read is not None:
                emits += (await self._chat_history(outcome.chat_read, command.payload),)
            after: RoomState | None = outcome.state
            if not outcome.changed:
                seen = await self._store.seen(room_id, msg_id, position)
                if seen.version != (0 if state is None else state.version):
                    # the cached state is stale (another engine moved the room on): as the
                    # commit script's version check would, re-run on the stored one
                    self._cache.pop(room_id, None)
                    state = await self._load(room_id)
                    continue
                return await self._answer(command, room_id, outcome, emits, seen, now, pending)
            write = StateWrite.DELETE if after is None else StateWrite.WRITE
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
                position=position,
            )
            if result.status is CommitStatus.OLD:
                # handled before, its record trimmed since: its events went out then
                _log.info("command_below_watermark", offset=position.offset if position else None)
                return CommandOutcome.DUPLICATE
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
                return CommandOutcome.DUPLICATE
            self._remember(room_id, after)
            steps = self._committed(
                command, room_id, state, after, outcome, projection, events, pending
            )
            await self._after_commit(steps)
            return (
                CommandOutcome.APPLIED
                if outcome.rejected is None
                else self._rejected_outcome(outcome)
            )
        raise RuntimeError(f"room {room_id}: {_MAX_CONFLICT_RETRIES} version conflicts in a row")

    async def _answer(
        self,
        command: CommandEnvelope,
        room_id: str,
        outcome: Any,
        emits: tuple[Emit, ...],
        seen: Seen,
        now: datetime,
        pending: list[Awaitable[Any]],
    ) -> CommandOutcome:
        """An outcome that changes nothing (a rejection, a read-only answer): sent, never
        stored, so reads and refusals cost the room no record (a redelivery is answered
        again). An earlier delivery that did take effect still gets its recorded events; one
        below the watermark whose record is gone gets no refusal (re-run on today's state, a
        command the room applied then may be refused now), only a read is answered again."""
        if seen.record is not None:
            await self._after_commit(self._after_duplicate(room_id, seen.record, pending))
            return CommandOutcome.DUPLICATE
        if seen.old and outcome.rejected is not None:
            return CommandOutcome.DUPLICATE
        after: RoomState | None = outcome.state
        events = self._envelopes(emits, command, room_id, now, room_id)
        for timer in outcome.timers:
            member = timer_member(room_id, timer.kind, timer.token)
            self._batch_timers[member] = int(timer.due.timestamp() * 1000)
        await self._send(events, pending)
        if outcome.rejected is not None and (
            after is None or not _same_name(after, command.payload)
        ):
            await self._release_if_create(command, room_id)
        return (
            CommandOutcome.ANSWERED if outcome.rejected is None else self._rejected_outcome(outcome)
        )

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

    def _rejected_outcome(self, outcome: Any) -> CommandOutcome:
        """REJECTED, or FAULT when the rules reported an internal fault: that is logged
        (error level; the notes name the fault, never chat text or passwords)."""
        if not outcome.notes:
            return CommandOutcome.REJECTED
        _log.error("rules_fault", notes=list(outcome.notes))
        return CommandOutcome.FAULT

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

    async def _chat_history(self, read: ChatRead, payload: object) -> Emit:
        """The newest `read.limit` messages (older than the request's `before`), filled
        newest first while they fit EVENT_MAX_BYTES; `has_more` when older ones are kept."""
        before = payload.before if isinstance(payload, GetChatHistory) else None
        channel = read.channel.value
        if before is None:
            # one more than asked, to know whether older messages exist
            raw = await self._store.chat_history(read.room_id, channel, read.limit + 1)
        else:  # the cursor's place is found in the whole list (at most chat_keep items)
            raw = await self._store.chat_history(read.room_id, channel, self._config.chat_keep)
        items = [(ChatMessageItem.model_validate_json(r), len(r.encode())) for r in raw]
        if before is not None:
            at = next((n for n, (i, _) in enumerate(items) if i.message_id == before), None)
            items = items[:at] if at is not None else []  # a cursor no longer kept: nothing
        has_more = len(items) > read.limit
        budget = EVENT_MAX_BYTES - _CHAT_ENVELOPE_RESERVE
        picked: list[ChatMessageItem] = []
        for item, size in reversed(items[-read.limit :]):
            if item.user_id in read.hidden_user_ids:
                continue
            budget -= size + 1
            if budget < 0:
                has_more = True
                break
            picked.append(item)
        picked.reverse()
        return Emit(
            read.audience,
            ChatHistory(
                room_id=read.room_id, channel=read.channel, messages=picked, has_more=has_more
            ),
        )

    async def _list_rooms(
        self,
        command: CommandEnvelope,
        payload: ListRooms,
        now: datetime,
        pending: list[Awaitable[Any]],
    ) -> CommandOutcome:
        """One page from the room index (lobby.py): never reads every room."""
        user_id, game_type = command.actor.user_id, payload.game_type
        page = await self._lobby.page(
            game_type,
            user_id,
            cursor=payload.cursor,
            limit=payload.limit,
            listable=lambda state: listable(state, user_id, game_type),
        )
        room_list = rules.list_rooms(
            page.states,
            user_id,
            game_type,
            now,
            cursor=payload.cursor,
            next_cursor=page.next_cursor,
        )
        emit = Emit(reply_audience(command), room_list)
        await self._send(self._envelopes((emit,), command, None, now, command.key), pending)
        return CommandOutcome.ANSWERED

    async def _user_room_states(self, user_id: str) -> list[RoomState]:
        # bounded: `user_rooms` holds at most max_rooms_per_user rooms (see `_over_cap`)
        ids: list[bytes | str] = await self._redis.hkeys(self._keys.user_rooms(user_id))
        return await self._states([text(i) for i in ids])

    async def _states(self, room_ids: list[str]) -> list[RoomState]:
        # read-only, so the cache is not consulted: another engine may own these rooms
        return list((await self._lobby.states(room_ids)).values())

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
            "listing": listing_member(subject.room_id, subject.created_at) if subject else None,
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
                # the room list's index: waiting rooms only (a room never returns to waiting)
                subject = after or before
                listing = (
                    listing_member(room_id, subject.created_at)
                    if subject is not None
                    else projection.get("listing")
                )
                if listing is not None:
                    if after is not None and after.status is RoomStatus.WAITING:
                        pipe.zadd(keys.rooms_waiting(game), {listing: 0})
                    else:
                        pipe.zrem(keys.rooms_waiting(game), listing)
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
            encoded = envelope.model_dump_json()
            # a char is at most 4 bytes in UTF-8: only long envelopes need encoding to measure
            if len(encoded) * 4 > EVENT_MAX_BYTES and len(encoded.encode()) > EVENT_MAX_BYTES:
                raise EventTooLarge(
                    f"{message.type} would be {len(encoded.encode())} bytes "
                    f"(the budget is {EVENT_MAX_BYTES})"
                )
            out.append(PublishedEvent(key=key, seq=message.seq, envelope=encoded))
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

    async def _dead_letter(
        self, record: RawCommand, reason: DeadLetterReason, error: str, *, tries: int
    ) -> None:
        """Copy the record to the dead-letter topic (raises KafkaError if Kafka does not take
        it). Passwords are replaced by "***" (header `x-redacted`), and the copy is cut to
        DLQ_VALUE_MAX_BYTES, so it can never be refused for its size."""
        value, was_redacted = redacted(record.value)
        headers = {
            "x-reason": reason.value,
            "x-error": error[:1000],
            "x-tries": str(tries),
            "x-origin": f"{record.topic}:{record.partition}:{record.offset}",
        }
        if was_redacted:
            headers["x-redacted"] = "password"
        if len(value) > DLQ_VALUE_MAX_BYTES:
            headers["x-truncated"] = str(len(value))
            value = value[:DLQ_VALUE_MAX_BYTES]
        ack = await self._sink.send(self._dlq_topic, record.key[:1000], value, headers)
        await ack
        self._metrics.dlq.inc()
        self._metrics.dead_letters.labels(reason=reason.value).inc()
        _log.error(
            "command_dead_lettered",
            key=record.key,
            offset=record.offset,
            tries=tries,
            reason=reason.value,
            error=error[:300],
        )

    async def give_up(self, record: RawCommand, error: str) -> None:
        """Last resort of the batch handler (isolation.py) for a record that fails even in a
        batch of its own: dead-letter it and tell its sender, as `_give_up` does. Raises
        InfraError when Kafka does not take the copy (the batch is retried)."""
        try:
            command = decode_command_envelope(record.value)
        except ProtocolError:
            await self._dead_letter(
                record, DeadLetterReason.UNDECODABLE, error, tries=self._max_tries
            )
            return
        try:
            room_id = await self._room_id_for(command)
            applied = (
                None
                if room_id is None
                else await self._store.recorded(room_id, str(command.msg_id))
            )
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise InfraError(f"giving up: reading the command's record failed: {exc}") from exc
        if applied is not None:
            # it took effect: telling its sender `internal_error` would be a lie. The events
            # it produced go out again (same ids: whoever has them drops the copy), so the
            # effect is seen even if the first send never made it.
            await self._dead_letter(
                record, DeadLetterReason.AFTER_COMMIT, error, tries=self._max_tries
            )
            await self._publish_recorded(applied.events)
            return
        if not await self._give_up(
            record, command, DeadLetterReason.FAILED, error, self._max_tries
        ):
            raise InfraError(f"dead-lettering failed: {error}")

    async def _publish_recorded(self, events: Sequence[PublishedEvent]) -> None:
        pending: list[Awaitable[Any]] = []
        await self._send(events, pending)
        await asyncio.gather(*pending)
