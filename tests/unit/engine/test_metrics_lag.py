"""`parlour_engine_consumer_lag{partition}`: the high watermark minus the position of each
commands partition the engine's consumer owns, sampled with the other gauges; lost partitions
leave the gauge, and a failing sample never stops the sampler (a fake consumer, no Kafka)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError
from prometheus_client import generate_latest
from structlog.testing import capture_logs

from parlour_engine import app, metrics
from parlour_engine.metrics import EngineMetrics, consumer_lag
from parlour_engine.settings import EngineSettings
from parlour_protocol.v1 import GAMES

TOPIC = "games.command.v1"


@dataclass
class FakeConsumer:
    """The part of aiokafka's consumer the sampler reads: `assignment()`, `highwater(tp)` (None
    before the first fetch answers) and `position(tp)` (waits while the offset is unknown)."""

    high: dict[int, int | None] = field(default_factory=dict)
    positions: dict[int, int | None] = field(default_factory=dict)
    """None: the position is still being fetched, `position()` waits"""
    revoked_meanwhile: set[int] = field(default_factory=set)
    other_topics: Iterable[TopicPartition] = ()

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(TOPIC, p) for p in self.high} | set(self.other_topics)

    def highwater(self, tp: TopicPartition) -> int | None:
        assert tp.topic == TOPIC, "only the commands topic is read"
        return self.high[tp.partition]

    async def position(self, tp: TopicPartition) -> int:
        if tp.partition in self.revoked_meanwhile:
            raise IllegalStateError(f"Partition {tp} is not assigned")
        position = self.positions[tp.partition]
        if position is None:
            await asyncio.Event().wait()  # as aiokafka, until the offset is known
        assert position is not None
        return position


def _lag(registry_metrics: EngineMetrics) -> dict[str, float]:
    """The gauge's series as a scrape shows them: partition -> lag."""
    text = generate_latest(registry_metrics.registry).decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("parlour_engine_consumer_lag{"):
            labels, value = line.rsplit(" ", 1)
            found[labels.split('partition="')[1].split('"')[0]] = float(value)
    return found


async def test_lag_is_the_high_watermark_minus_the_position_per_owned_partition() -> None:
    consumer = FakeConsumer(
        high={0: 120, 3: 7, 5: 50},
        positions={0: 100, 3: 7, 5: 50},
        other_topics=[TopicPartition("elsewhere", 1)],
    )
    assert await consumer_lag(consumer, TOPIC) == {0: 20, 3: 0, 5: 0}


async def test_partitions_without_numbers_yet_or_revoked_meanwhile_are_left_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics, "_POSITION_WAIT_SECONDS", 0.05)
    consumer = FakeConsumer(
        high={0: 10, 1: None, 2: 10, 4: 10},
        positions={0: 4, 1: 0, 2: None, 4: 0},
        revoked_meanwhile={4},
    )
    # 1: no fetch answered yet; 2: its offset is still being reset; 4: lost since assignment()
    assert await asyncio.wait_for(consumer_lag(consumer, TOPIC), 2) == {0: 6}


async def test_no_consumer_no_partitions() -> None:
    assert await consumer_lag(None, TOPIC) == {}
    assert await consumer_lag(FakeConsumer(), TOPIC) == {}


def test_lost_partitions_leave_the_gauge() -> None:
    engine_metrics = EngineMetrics()
    assert _lag(engine_metrics) == {}
    engine_metrics.set_consumer_lag({0: 5, 1: 0, 2: 9})
    assert _lag(engine_metrics) == {"0": 5, "1": 0, "2": 9}
    # a rebalance took 0 and 2 away and gave 4
    engine_metrics.set_consumer_lag({1: 3, 4: 0})
    assert _lag(engine_metrics) == {"1": 3, "4": 0}
    engine_metrics.set_consumer_lag({})  # stopped, or every partition went elsewhere
    assert _lag(engine_metrics) == {}


class _Rooms:
    async def scard(self, key: str) -> int:
        return 2


def _engine(consumer: Any) -> app.Engine:
    """What `_sample_gauges` reads of an engine: settings, metrics, Redis, the processor and
    the commands subscriber (whose `consumer` FastStream sets when the broker starts)."""
    return cast(
        app.Engine,
        SimpleNamespace(
            settings=EngineSettings(kafka_topic_prefix=""),
            metrics=EngineMetrics(),
            redis=_Rooms(),
            processor=SimpleNamespace(games_in_progress=lambda: 1),
            commands=SimpleNamespace(consumer=consumer),
        ),
    )


async def test_the_gauge_sampler_sets_the_lag_of_the_commands_topic() -> None:
    engine = _engine(FakeConsumer(high={0: 9, 1: 4}, positions={0: 9, 1: 1}))
    await app._sample_gauges(engine)
    assert _lag(engine.metrics) == {"0": 0, "1": 3}
    engine.commands.consumer = None  # the subscriber stopped: nothing is owned
    await app._sample_gauges(engine)
    assert _lag(engine.metrics) == {}


async def test_a_failing_lag_sample_is_logged_and_the_round_goes_on() -> None:
    class Broken:
        def assignment(self) -> set[TopicPartition]:
            raise RuntimeError("consumer in a bad state")

    engine = _engine(Broken())
    engine.metrics.set_consumer_lag({0: 7})
    with capture_logs() as logs:
        await app._sample_gauges(engine)  # does not raise: the supervisor sees a good round
    assert [entry["event"] for entry in logs] == ["consumer_lag_sample_failed"]
    assert logs[0]["error_type"] == "RuntimeError"
    # the room gauges are still sampled; the last lag stays until a sample succeeds
    assert engine.metrics.registry.get_sample_value("parlour_engine_active_rooms") == 2 * len(GAMES)
    assert _lag(engine.metrics) == {"0": 7}
