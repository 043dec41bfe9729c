"""A batch that keeps failing is taken apart instead of retried forever.

The consume loop hands a whole batch to the processor. An InfraError (Redis or Kafka away) is
nobody's fault: the batch is rewound and retried for as long as the outage lasts. Any other
error is deterministic more often than not (a record no code path can handle), and retrying
the same batch would stall every partition in it for good, on this engine and on every
engine that takes the partitions over. So after `max_failures` failures in a row at the same
first offset of a partition, the batch is processed one record at a time, and a record that
still fails on its own is given up on: dead-lettered, its sender told, and its offset
committed with the rest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Protocol

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from parlour_engine.failures import InfraError, is_outage
from parlour_engine.kafka_consumer import RawCommand
from parlour_engine.logging import get_logger
from parlour_engine.metrics import EngineMetrics
from parlour_runtime.redis_client import REDIS_OUTAGE_ERRORS

_log = get_logger(__name__)

DEFAULT_MAX_BATCH_FAILURES = 3


class BatchProcessor(Protocol):
    """What the isolation needs of `worker.CommandProcessor`."""

    async def process_batch_nowait(self, records: Sequence[RawCommand]) -> list[Awaitable[Any]]: ...

    async def give_up(self, record: RawCommand, error: str) -> None: ...


class FailingBatches:
    """Consecutive non-infrastructure failures per partition at its batch's first offset.
    One entry per partition at most, dropped when a batch of it goes through."""

    def __init__(self, max_failures: int = DEFAULT_MAX_BATCH_FAILURES) -> None:
        self._max = max_failures
        self._failures: dict[TopicPartition, tuple[int, int]] = {}

    def failed(self, first: Mapping[TopicPartition, int]) -> int:
        """Count a failure of the batch starting at `first`; returns the highest count."""
        worst = 0
        for tp, offset in first.items():
            at, count = self._failures.get(tp, (offset, 0))
            count = count + 1 if at == offset else 1
            self._failures[tp] = (offset, count)
            worst = max(worst, count)
        return worst

    def succeeded(self, first: Mapping[TopicPartition, int]) -> None:
        for tp in first:
            self._failures.pop(tp, None)

    def isolate(self, first: Mapping[TopicPartition, int]) -> bool:
        """True when a partition of this batch has failed `max_failures` times at the same
        first offset: process it record by record."""
        return any(
            self._failures.get(tp, (-1, 0))[0] == offset and self._failures[tp][1] >= self._max
            for tp, offset in first.items()
        )


async def process_one_by_one(
    processor: BatchProcessor, batch: Sequence[RawCommand], metrics: EngineMetrics
) -> list[Awaitable[Any]]:
    """Process each record as a batch of its own (in order, so per-room order holds) and
    give up on a record that fails on its own. Raises InfraError on an outage, as a whole
    batch would: the caller rewinds, and the records done so far are redelivered as
    duplicates, which the store answers from their msg_id records."""
    acks: list[Awaitable[Any]] = []
    for record in batch:
        try:
            acks.extend(await processor.process_batch_nowait([record]))
            continue
        except InfraError:
            raise
        except Exception as exc:  # noqa: BLE001 - the record is given up on, never retried
            error = f"{type(exc).__name__}: {exc}"
            _log.error(
                "record_given_up",
                key=record.key,
                partition=record.partition,
                offset=record.offset,
                error_type=type(exc).__name__,
                error=error,
                exc_info=exc,
            )
        try:
            await processor.give_up(record, error)
        except REDIS_OUTAGE_ERRORS as exc:
            raise InfraError(f"giving up on a record failed: {exc}") from exc
        except KafkaError as exc:
            if is_outage(exc):  # incl. KafkaTimeoutError, which aiokafka marks non-retriable
                raise InfraError(f"dead-lettering failed: {exc}") from exc
            _dropped(record, exc, metrics)
        except Exception as exc:  # noqa: BLE001 - logged and counted; the partition moves on
            _dropped(record, exc, metrics)
    return acks


def _dropped(record: RawCommand, exc: BaseException, metrics: EngineMetrics) -> None:
    # the dead-letter topic refuses this record for good (too large, not authorised) or
    # giving up itself fails: dropping it is the only way the partition moves on
    metrics.dropped.inc()
    _log.error(
        "record_dropped",
        key=record.key,
        partition=record.partition,
        offset=record.offset,
        error_type=type(exc).__name__,
        error=str(exc),
    )
