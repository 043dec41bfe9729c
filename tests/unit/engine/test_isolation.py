"""A batch that keeps failing is taken record by record after a few tries, and the record
that fails on its own is given up on; an outage (InfraError) is retried for as long as it
lasts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from parlour_engine.failures import InfraError
from parlour_engine.isolation import FailingBatches, process_one_by_one
from parlour_engine.kafka_consumer import RawCommand
from parlour_engine.metrics import EngineMetrics

_TP = TopicPartition("games.command.v1", 0)


def _batch(*offsets: int, poison: int | None = None) -> list[RawCommand]:
    return [
        RawCommand(
            key="room-1",
            value=b"poison" if o == poison else f"cmd-{o}".encode(),
            topic=_TP.topic,
            partition=_TP.partition,
            offset=o,
        )
        for o in offsets
    ]


def _acked() -> asyncio.Future[str]:
    # what the producer hands back: a future Kafka completes when it took the record
    done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    done.set_result("ack")
    return done


class _Processor:
    """Fails any batch that holds the poison record; remembers what it handled."""

    def __init__(self, give_up_error: BaseException | None = None) -> None:
        self.handled: list[int] = []
        self.given_up: list[tuple[int, str]] = []
        self.outage = False
        self._give_up_error = give_up_error

    async def process_batch_nowait(self, records: Sequence[RawCommand]) -> list[Awaitable[Any]]:
        if self.outage:
            raise InfraError("redis away")
        if any(r.value == b"poison" for r in records):
            raise ValueError("no code path handles this record")
        self.handled.extend(r.offset for r in records)
        return [_acked() for _ in records]

    async def give_up(self, record: RawCommand, error: str) -> None:
        if self._give_up_error is not None:
            raise self._give_up_error
        self.given_up.append((record.offset, error))


async def test_engine_failing_batch_is_isolated_after_three_failures() -> None:
    processor, metrics, failing = _Processor(), EngineMetrics(), FailingBatches(3)
    batch = _batch(10, 11, 12, poison=11)
    first = {_TP: 10}
    for attempt in range(1, 4):
        assert not failing.isolate(first)
        with pytest.raises(ValueError, match="no code path"):
            await processor.process_batch_nowait(batch)
        assert failing.failed(first) == attempt
    assert failing.isolate(first)
    acks = await process_one_by_one(processor, batch, metrics)
    # the neighbours are processed in order, the poison record is dead-lettered once
    assert processor.handled == [10, 12]
    assert processor.given_up == [(11, "ValueError: no code path handles this record")]
    assert len(acks) == 2
    for ack in acks:
        await ack
    failing.succeeded(first)
    assert not failing.isolate(first)


def test_engine_failures_count_per_partition_and_offset() -> None:
    failing = FailingBatches(2)
    other = TopicPartition("games.command.v1", 1)
    failing.failed({_TP: 5, other: 7})
    failing.failed({_TP: 6})  # a different first offset starts a new count
    assert not failing.isolate({_TP: 6})
    failing.failed({_TP: 6, other: 7})
    assert failing.isolate({_TP: 6})
    # a batch that shares the stuck partition at that offset is isolated too
    assert failing.isolate({other: 7, TopicPartition("x", 0): 0})
    assert not failing.isolate({other: 8})
    failing.succeeded({_TP: 6})
    assert not failing.isolate({_TP: 6})


async def test_engine_isolation_keeps_retrying_outages() -> None:
    """An outage during the record-by-record pass is an InfraError like any other: the
    caller rewinds, nothing is dead-lettered."""
    processor, metrics = _Processor(), EngineMetrics()
    processor.outage = True
    with pytest.raises(InfraError):
        await process_one_by_one(processor, _batch(1, 2, poison=2), metrics)
    assert processor.given_up == []
    outage_on_dlq = _Processor(give_up_error=KafkaConnectionError("broker away"))
    with pytest.raises(InfraError, match="dead-lettering failed"):
        await process_one_by_one(outage_on_dlq, _batch(1, 2, poison=2), metrics)
    assert metrics.dropped._value.get() == 0


async def test_engine_isolation_drops_what_not_even_the_dlq_takes() -> None:
    processor = _Processor(give_up_error=TopicAuthorizationFailedError("dlq not allowed"))
    metrics = EngineMetrics()
    acks = await process_one_by_one(processor, _batch(1, 2, 3, poison=2), metrics)
    assert processor.handled == [1, 3]
    assert len(acks) == 2
    for ack in acks:
        await ack
    assert metrics.dropped._value.get() == 1
