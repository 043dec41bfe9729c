"""The engine's command processing: Kafka records in -> `CommandHandler` -> events out, and
what happens when a record fails.

One poll of the commands topic gives a batch. Records are grouped by Kafka key (room id, or
user id for commands without a room); groups run concurrently, the records of one group in
offset order. Each record is decoded (an undecodable record goes straight to the dead-letter
topic) and handed to the `CommandHandler` (handler.py: rules -> Redis -> events).

The Kafka offset is committed only after every event of the batch was acknowledged by Kafka.

A failing record is retried, dead-lettered or left for the next batch as failures.py
describes (`DeadLetterReason` names each way a record leaves by the dead-letter topic).
The gauge `parlour_engine_stalled_records` counts the records retrying right now (in the
retry loop, or whose events Kafka failed to acknowledge within the last
_ACK_STALL_WINDOW_SECONDS), and the counter `parlour_engine_dead_letters{reason}` every dead
letter (alert on either).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, cast

import structlog
from aiokafka.errors import KafkaError

from parlour_engine import rules
from parlour_engine.failures import (
    RECORD_STALL_MAX_SECONDS,
    AfterCommitError,
    DeadLetterReason,
    DeadLetters,
    EventTooLarge,
    InfraError,
    is_outage,
)
from parlour_engine.handler import (
    ApplyFn,
    CommandHandler,
    RngFor,
    current_hops,
    current_position,
    error_emit,
)
from parlour_engine.kafka_consumer import RawCommand
from parlour_engine.kafka_producer import EventSink
from parlour_engine.logging import get_logger
from parlour_engine.metrics import CommandOutcome, EngineMetrics
from parlour_engine.rules import RulesConfig
from parlour_engine.store import Position, RoomStore
from parlour_protocol.v1 import (
    CommandEnvelope,
    ErrorCode,
    ProtocolError,
    decode_command_envelope,
    utc_now,
)
from parlour_protocol.v1.limits import DEFAULT_MAX_ROOMS_PER_HOST, DEFAULT_MAX_ROOMS_PER_USER
from parlour_runtime.redis_client import REDIS_OUTAGE_ERRORS, AnyRedis

_log = get_logger(__name__)

_INFRA_BACKOFF_SECONDS = (0.1, 0.2, 0.5, 1.0, 2.0)
_PROBE_SECONDS = 2.0
_ACK_FAILURES_KEEP = 10_000
_ACK_STALL_WINDOW_SECONDS = 120.0
"""A record whose events failed to be acknowledged counts as stalled this long after its last
failure (a re-run fails again within one produce timeout, 40 s by default, while it lasts)."""


class CommandProcessor:
    """Handles batches of command records: decoding, retries, dead letters, and the wait for
    Kafka's acknowledgements. What one command does is the `CommandHandler`'s."""

    def __init__(
        self,
        *,
        redis: AnyRedis,
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
        self._metrics = metrics
        self._max_tries = max_tries
        self._clock = clock
        self._handler = CommandHandler(
            redis=redis,
            store=store,
            sink=sink,
            metrics=metrics,
            config=config,
            events_topic=events_topic,
            rng_for=rng_for,
            apply=apply,
            clock=clock,
            max_rooms_per_host=max_rooms_per_host,
            max_rooms_per_user=max_rooms_per_user,
        )
        self._dead_letters = DeadLetters(sink, dlq_topic, metrics)
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
        return self._handler.games_in_progress()

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
                self._handler.discard_timers()
                raise result
        await self._handler.flush_timers()
        return pending

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
                await self._dead_letters.send(
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
        current_position.set(
            Position(
                record.topic,
                record.partition,
                record.offset,
                int(command.timestamp.timestamp() * 1000),
            )
            if keyed_by_room
            else None
        )
        current_hops.set(record.hops)
        failing_since: float | None = None
        try:
            tries = 0
            infra_failures = 0
            while True:
                local: list[Awaitable[Any]] = []
                failure: BaseException
                after_commit = False
                try:
                    outcome = await self._handler.handle(command, local)
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
                        pending.append(self._settled(record, command, local))
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

    def _settled(
        self, record: RawCommand, command: CommandEnvelope, acks: list[Awaitable[Any]]
    ) -> Awaitable[Any]:
        """`_settle` as a future, without a task per command while every acknowledgement
        succeeds (callbacks count them down); the first failure hands over to `_settle`."""
        if not all(isinstance(ack, asyncio.Future) for ack in acks):
            return asyncio.ensure_future(self._settle(record, command, acks))
        loop = asyncio.get_running_loop()
        out: asyncio.Future[None] = loop.create_future()
        remaining = len(acks)
        failed = False

        def finish(task: asyncio.Future[None]) -> None:
            if out.done():
                return
            if task.cancelled():
                out.cancel()
            elif (exc := task.exception()) is not None:
                out.set_exception(exc)
            else:
                out.set_result(None)

        def on_ack(ack: asyncio.Future[Any]) -> None:
            nonlocal remaining, failed
            if failed or out.done():
                return
            if ack.cancelled() or ack.exception() is not None:
                failed = True  # as before: _settle decides (dead letter, or raise)
                asyncio.ensure_future(self._settle(record, command, acks)).add_done_callback(finish)
                return
            remaining -= 1
            if remaining == 0:
                if self._ack_failures:
                    self._ack_failures.pop(self._ack_key(record, command), None)
                out.set_result(None)

        for ack in acks:
            cast("asyncio.Future[Any]", ack).add_done_callback(on_ack)
        return out

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
        except REDIS_OUTAGE_ERRORS:
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
            await self._dead_letters.send(record, reason, error, tries=tries)
        except KafkaError as exc:
            _log.warning("dead_letter_failed", reason=reason.value, error=str(exc))
            return False
        self._count(command.type, CommandOutcome.DLQ)
        try:
            await self._handler.abandon_claim(command)
        except REDIS_OUTAGE_ERRORS as exc:
            _log.warning("dead_letter_release_failed", error=f"{type(exc).__name__}: {exc}")
        # a few tries: right after Kafka refused an event, aiokafka's producer fails the next
        # send of that partition (the sink replaces it), and this reply goes to that partition
        for attempt in range(len(_INFRA_BACKOFF_SECONDS)):
            try:
                await self._handler.publish_now(
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

    # --- giving up ------------------------------------------------------------------------

    async def give_up(self, record: RawCommand, error: str) -> None:
        """Last resort of the batch handler (isolation.py) for a record that fails even in a
        batch of its own: dead-letter it and tell its sender, as `_give_up` does. Raises
        InfraError when Kafka does not take the copy (the batch is retried)."""
        try:
            command = decode_command_envelope(record.value)
        except ProtocolError:
            await self._dead_letters.send(
                record, DeadLetterReason.UNDECODABLE, error, tries=self._max_tries
            )
            return
        try:
            room_id = await self._handler.room_id_for(command)
            applied = (
                None
                if room_id is None
                else await self._store.recorded(room_id, str(command.msg_id))
            )
        except REDIS_OUTAGE_ERRORS as exc:
            raise InfraError(f"giving up: reading the command's record failed: {exc}") from exc
        if applied is not None:
            # it took effect: telling its sender `internal_error` would be a lie. The events
            # it produced go out again (same ids: whoever has them drops the copy), so the
            # effect is seen even if the first send never made it.
            await self._dead_letters.send(
                record, DeadLetterReason.AFTER_COMMIT, error, tries=self._max_tries
            )
            await self._handler.publish_recorded(applied.events)
            return
        if not await self._give_up(
            record, command, DeadLetterReason.FAILED, error, self._max_tries
        ):
            raise InfraError(f"dead-lettering failed: {error}")
