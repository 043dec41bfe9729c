"""The gateway's events consumer takes partitions added to the events topic: new ones from
their beginning, the ones it reads keep their positions (aiokafka's `assign` replaces the
whole assignment and forgets positions, so EventConsumer re-seeks them)."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition

from parlour_gateway.events import EventConsumer
from parlour_gateway.hub import Hub
from parlour_gateway.metrics import Metrics

TOPIC = "events"


class FakeConsumer:
    """What EventConsumer uses of AIOKafkaConsumer, with aiokafka's assign semantics."""

    def __init__(self, partitions: set[int], ends: dict[int, int]) -> None:
        self.known = partitions
        self.ends = ends
        self.positions: dict[TopicPartition, int | None] = {}

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        assert topic == TOPIC
        return set(self.known)

    def assign(self, tps: list[TopicPartition]) -> None:
        self.positions = dict.fromkeys(tps)  # every position is forgotten

    async def seek_to_end(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self.positions[tp] = self.ends[tp.partition]

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self.positions[tp] = 0

    def seek(self, tp: TopicPartition, offset: int) -> None:
        assert tp in self.positions
        self.positions[tp] = offset

    async def position(self, tp: TopicPartition) -> int:
        offset = self.positions[tp]
        assert offset is not None, f"{tp} has no position"
        return offset


def _events(consumer: Any) -> EventConsumer:
    return EventConsumer(consumer, TOPIC, Hub("gw-1"), Metrics())


async def test_new_partitions_are_read_from_their_beginning_old_ones_keep_position() -> None:
    fake = FakeConsumer({0, 1}, ends={0: 10, 1: 20, 2: 5, 3: 7})
    events = _events(fake)
    await events.assign({0, 1})
    assert await events.take_new_partitions() == set()  # nothing new: nothing changes
    fake.positions[TopicPartition(TOPIC, 0)] = 13  # read on since
    fake.positions[TopicPartition(TOPIC, 1)] = 21
    fake.known = {0, 1, 2, 3}  # the metadata refresh saw two more
    assert await events.take_new_partitions() == {2, 3}
    assert events.partitions == {0, 1, 2, 3}
    assert fake.positions == {
        TopicPartition(TOPIC, 0): 13,
        TopicPartition(TOPIC, 1): 21,
        TopicPartition(TOPIC, 2): 0,
        TopicPartition(TOPIC, 3): 0,
    }
    assert await events.take_new_partitions() == set()


async def test_no_metadata_yet_changes_nothing() -> None:
    fake = FakeConsumer({0}, ends={0: 4})
    events = _events(fake)
    await events.assign({0})
    fake.known = set()
    assert await events.take_new_partitions() == set()
    assert fake.positions == {TopicPartition(TOPIC, 0): 4}
