"""The trailing offset committer: commits in batch order, only after the batch's events are
acknowledged; a failed publish rewinds that batch and drops every later commit."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError

from parlour_engine.kafka_consumer import OffsetCommitter, batch_offsets

TP0 = TopicPartition("cmd", 0)
TP1 = TopicPartition("cmd", 1)


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int


class Consumer:
    """Records what the committer asks of the consumer."""

    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: list[tuple[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


def test_engine_batch_offsets() -> None:
    commit, first = batch_offsets(
        [Rec("cmd", 0, 5), Rec("cmd", 1, 2), Rec("cmd", 0, 7), Rec("cmd", 0, 6)]
    )
    assert commit == {TP0: 8, TP1: 3}
    assert first == {TP0: 5, TP1: 2}


async def test_engine_commits_wait_for_acks_and_keep_order() -> None:
    consumer = Consumer()
    committer = OffsetCommitter()
    loop = asyncio.get_running_loop()
    ack1: asyncio.Future[Any] = loop.create_future()
    ack2: asyncio.Future[Any] = loop.create_future()
    await committer.enqueue(consumer, [ack1], {TP0: 10}, {TP0: 0})
    await committer.enqueue(consumer, [ack2], {TP0: 20}, {TP0: 10})
    ack2.set_result(None)  # the later batch is acknowledged first ...
    await asyncio.sleep(0.01)
    assert consumer.commits == []  # ... but nothing is committed past the first batch
    ack1.set_result(None)
    await committer.drain()
    assert consumer.commits == [{TP0: 10}, {TP0: 20}]


async def test_engine_failed_publish_rewinds_and_drops_later_commits() -> None:
    consumer = Consumer()
    committer = OffsetCommitter()
    loop = asyncio.get_running_loop()
    ok: asyncio.Future[Any] = loop.create_future()
    failed: asyncio.Future[Any] = loop.create_future()
    later: asyncio.Future[Any] = loop.create_future()
    await committer.enqueue(consumer, [ok], {TP0: 10}, {TP0: 0})
    await committer.enqueue(consumer, [failed], {TP0: 20, TP1: 4}, {TP0: 10, TP1: 3})
    await committer.enqueue(consumer, [later], {TP0: 30}, {TP0: 20})
    ok.set_result(None)
    failed.set_exception(KafkaTimeoutError())
    later.set_result(None)
    await committer.drain()
    assert consumer.commits == [{TP0: 10}]
    assert sorted(consumer.seeks, key=lambda s: s[0].partition) == [(TP0, 10), (TP1, 3)]
    # after the rewind, new batches commit again
    again: asyncio.Future[Any] = loop.create_future()
    again.set_result(None)
    await committer.enqueue(consumer, [again], {TP0: 20}, {TP0: 10})
    await committer.drain()
    assert consumer.commits[-1] == {TP0: 20}


async def test_engine_publish_failure_after_a_later_rewind_still_rewinds() -> None:
    consumer = Consumer()
    committer = OffsetCommitter()
    loop = asyncio.get_running_loop()
    earlier: asyncio.Future[Any] = loop.create_future()
    await committer.enqueue(consumer, [earlier], {TP1: 9}, {TP1: 5})
    committer.rewind(consumer, {TP0: 40})  # a later batch failed in processing
    earlier.set_exception(KafkaTimeoutError())
    await committer.drain()
    assert consumer.commits == []
    assert (TP1, 5) in consumer.seeks


async def test_engine_unexpected_ack_failure_rewinds_and_the_chain_goes_on() -> None:
    """An acknowledgement failing with something other than a KafkaError (a bug in a settle
    step) must not break the chain: every later commit would then fail with it."""
    consumer = Consumer()
    committer = OffsetCommitter()
    loop = asyncio.get_running_loop()
    broken: asyncio.Future[Any] = loop.create_future()
    await committer.enqueue(consumer, [broken], {TP0: 10}, {TP0: 0})
    broken.set_exception(RuntimeError("a settle step is broken"))
    await committer.drain()
    assert consumer.commits == []
    assert consumer.seeks == [(TP0, 0)]
    again: asyncio.Future[Any] = loop.create_future()
    again.set_result(None)
    await committer.enqueue(consumer, [again], {TP0: 10}, {TP0: 0})
    await committer.drain()
    assert consumer.commits == [{TP0: 10}]


async def test_engine_commits_coalesce_within_the_interval() -> None:
    """With an interval, the acknowledged batches of one interval go in one commit (the
    highest offset per partition); nothing is committed before its batch is acknowledged,
    a rewound batch's offsets never join, and drain commits what is due at once."""
    consumer = Consumer()
    committer = OffsetCommitter(interval=0.05)
    loop = asyncio.get_running_loop()
    acks = [loop.create_future() for _ in range(3)]
    await committer.enqueue(consumer, [acks[0]], {TP0: 10}, {TP0: 0})
    await committer.enqueue(consumer, [acks[1]], {TP0: 20, TP1: 4}, {TP0: 10, TP1: 3})
    await committer.enqueue(consumer, [acks[2]], {TP0: 30}, {TP0: 20})
    acks[0].set_result(None)
    acks[1].set_result(None)
    async with asyncio.timeout(5):
        while not consumer.commits:  # noqa: ASYNC110 - the committer has no event to wait on
            await asyncio.sleep(0.01)
    assert consumer.commits == [{TP0: 20, TP1: 4}]  # one commit for two batches; not the third
    acks[2].set_exception(KafkaTimeoutError())
    await asyncio.sleep(0.1)
    assert consumer.commits == [{TP0: 20, TP1: 4}]
    assert consumer.seeks == [(TP0, 20)]
    again: asyncio.Future[Any] = loop.create_future()
    again.set_result(None)
    await committer.enqueue(consumer, [again], {TP0: 30}, {TP0: 20})
    await committer.drain()  # due now, not after the interval
    assert consumer.commits == [{TP0: 20, TP1: 4}, {TP0: 30}]


async def test_engine_big_batches_commit_at_once_even_with_an_interval() -> None:
    """A batch of many records (under load) commits in the chain as without coalescing,
    together with whatever smaller batches were due, in order."""
    consumer = Consumer()
    committer = OffsetCommitter(interval=60.0)  # a timer that never fires in this test
    loop = asyncio.get_running_loop()
    small: asyncio.Future[Any] = loop.create_future()
    big: asyncio.Future[Any] = loop.create_future()
    small.set_result(None)
    big.set_result(None)
    await committer.enqueue(consumer, [small], {TP1: 5}, {TP1: 4})
    await committer.enqueue(consumer, [big], {TP0: 500}, {TP0: 0})
    if committer._tail is not None:
        await committer._tail  # the chain, without drain's flush
    assert consumer.commits == [{TP1: 5, TP0: 500}]
