"""How a command record fails, and the dead-letter topic where a record that cannot go on
ends up.

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
The retry loop that applies these rules is `worker.CommandProcessor`.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

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

from parlour_engine.kafka_consumer import RawCommand
from parlour_engine.kafka_producer import EventSink
from parlour_engine.logging import get_logger
from parlour_engine.metrics import EngineMetrics
from parlour_protocol.v1.limits import EVENT_MAX_BYTES
from parlour_runtime.redis_client import REDIS_OUTAGE_ERRORS

_log = get_logger(__name__)

RECORD_STALL_MAX_SECONDS = 60.0
"""Most time one command may spend failing (and so holding its partition) while the
infrastructure answers, before it is dead-lettered as `stalled` (see the module docstring)."""
DLQ_VALUE_MAX_BYTES = EVENT_MAX_BYTES
"""A dead-letter copy keeps at most this much of the record (the rest is cut, header
`x-truncated` = the original size), so it always fits the producer's max_request_size
(aiokafka's default 1 MiB, with room for the headers) and the broker's message.max.bytes:
a dead letter can never fail for its size."""
_REDACTED = "***"


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
    Redis connection errors and timeouts, a Redis Cluster between masters (CLUSTERDOWN,
    TRYAGAIN, a slot with no node: `REDIS_OUTAGE_ERRORS`), socket errors, and Kafka errors
    that Kafka marks retriable (connection, not enough replicas, leader moves) plus those
    aiokafka marks non-retriable that say nothing about the record: the producer's delivery
    timeout, a closed producer, and the idempotent producer's own state (sequence numbers,
    producer id, epoch; aiokafka's producer does not recover from those, it has to be replaced)."""
    if isinstance(exc, REDIS_OUTAGE_ERRORS):
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


class DeadLetters:
    """The dead-letter topic: where a record goes that the engine gives up on."""

    def __init__(self, sink: EventSink, topic: str, metrics: EngineMetrics) -> None:
        self._sink = sink
        self._topic = topic
        self._metrics = metrics

    async def send(
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
        ack = await self._sink.send(self._topic, record.key[:1000], value, headers)
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
