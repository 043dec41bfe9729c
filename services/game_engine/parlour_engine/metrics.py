"""Prometheus metrics of one engine process (own registry, so tests can build several), and
the sampling of the engine's own consumer lag."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from aiokafka.errors import IllegalStateError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_POSITION_WAIT_SECONDS = 1.0
"""How long a lag sample waits for a partition's position (only a partition whose offset is
still being fetched or reset makes `position()` wait; that one is left out of this round)."""


class CommandOutcome(StrEnum):
    """How the engine handled one command: the `outcome` label of `parlour_engine_commands`.
    (The rules' result of one command is `rules.Outcome`, a different thing.)"""

    APPLIED = "applied"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    DLQ = "dlq"
    ANSWERED = "answered"
    """A read-only command (list_rooms, chat history, direct message) was answered."""
    FAULT = "fault"
    """The rules failed internally (a bug): nothing took effect, the sender got
    `internal_error`, and the fault is logged at error level."""


class EngineMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.commands = Counter(
            "parlour_engine_commands",
            "Commands handled, by type and outcome",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "parlour_engine_command_seconds",
            "Time from decoding a command to its events being handed to the producer",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
            registry=self.registry,
        )
        self.dlq = Counter(
            "parlour_engine_dlq", "Commands sent to the dead-letter topic", registry=self.registry
        )
        self.dead_letters = Counter(
            "parlour_engine_dead_letters",
            "Commands sent to the dead-letter topic, by reason (failures.DeadLetterReason)",
            ["reason"],
            registry=self.registry,
        )
        self.stalled_records = Gauge(
            "parlour_engine_stalled_records",
            "Commands being retried after a failure right now; each holds its partition "
            "(see failures.RECORD_STALL_MAX_SECONDS for the bound)",
            registry=self.registry,
        )
        self.conflicts = Counter(
            "parlour_engine_version_conflicts",
            "Optimistic-concurrency conflicts (another engine wrote the room first)",
            registry=self.registry,
        )
        self.timers_fired = Counter(
            "parlour_engine_timers_fired",
            "Due timers published as commands",
            registry=self.registry,
        )
        self.active_rooms = Gauge(
            "parlour_engine_active_rooms",
            "Rooms listed in the game room sets",
            registry=self.registry,
        )
        self.active_games = Gauge(
            "parlour_engine_active_games",
            "Rooms whose game is in progress",
            registry=self.registry,
        )
        self.task_last_ok = Gauge(
            "parlour_engine_background_task_last_ok_timestamp_seconds",
            "Unix time of a background task's last good round (timers, gauges); an old value "
            "means the task keeps failing or hangs, and /ready fails",
            ["task"],
            registry=self.registry,
        )
        self.task_failures = Counter(
            "parlour_engine_background_task_failures",
            "Failed rounds of a background task (each is logged, backed off and retried)",
            ["task"],
            registry=self.registry,
        )
        self.dropped = Counter(
            "parlour_engine_dropped_commands",
            "Commands given up on that not even the dead-letter topic took (see the "
            "record_dropped log line for the partition and offset)",
            registry=self.registry,
        )
        self.redis_evicting = Gauge(
            "parlour_engine_redis_evicting",
            "1 when Redis may evict keys (maxmemory-policy is not noeviction): room state can "
            "vanish under memory pressure",
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "parlour_engine_consumer_lag",
            "Commands on a partition this engine owns that it has not taken yet: the partition's "
            "high watermark (as of the last fetch) minus the consumer's position; partitions "
            "it lost are removed",
            ["partition"],
            registry=self.registry,
        )
        self._lag_partitions: set[str] = set()

    def set_consumer_lag(self, lags: Mapping[int, int]) -> None:
        """Show exactly these partitions' lag: a partition missing from `lags` (this engine
        lost it, or it has no consumer any more) is removed from the gauge."""
        current = {str(partition) for partition in lags}
        for gone in self._lag_partitions - current:
            self.consumer_lag.remove(gone)
        for partition, lag in lags.items():
            self.consumer_lag.labels(partition=str(partition)).set(lag)
        self._lag_partitions = current


async def consumer_lag(consumer: Any, topic: str) -> dict[int, int]:
    """Partition -> records between the consumer's position and the partition's high watermark,
    for each partition of `topic` assigned to `consumer` (an aiokafka consumer, None before it
    starts). No request to Kafka: both numbers are the consumer's own, kept by its fetches.

    The position is the next record the engine takes (it moves when a batch is handed to the
    handler, and back when a failed batch is rewound), so records being processed count as
    taken. A partition without a high watermark yet (no fetch answered since it was assigned),
    without a position within `_POSITION_WAIT_SECONDS`, or taken away meanwhile is left out."""
    if consumer is None:
        return {}
    lags: dict[int, int] = {}
    for tp in sorted(consumer.assignment(), key=lambda tp: (tp.topic, tp.partition)):
        if tp.topic != topic:
            continue
        try:
            high = consumer.highwater(tp)
            if high is None:
                continue
            position = await asyncio.wait_for(consumer.position(tp), _POSITION_WAIT_SECONDS)
        except (IllegalStateError, AssertionError, TimeoutError):
            continue  # revoked since `assignment()`, or its offset is still being reset
        lags[tp.partition] = max(0, int(high) - int(position))
    return lags
