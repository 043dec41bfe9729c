"""The engine's Kafka consumer side: `RawCommand` (one record of the commands topic, as the
processor takes it) and the offset commits that trail the processing, in order.

The consume loop hands each processed batch (its producer acknowledgements and the offsets
to commit) to an `OffsetCommitter` and goes straight on to the next poll. A background chain
awaits each batch's acknowledgements and then commits exactly that batch's offsets, batch
after batch. If a batch's events could not be published, the chain rewinds the partitions
to that batch's first records and drops the commits of every later batch, so all of them are
consumed again; the store's msg_id records and offset watermark make that re-run publish the
same events and change nothing else. Committing never runs ahead of what Kafka acknowledged.

Small batches' commits are coalesced: an acknowledged batch of fewer than _COALESCE_BELOW
records has its offsets wait up to ENGINE_COMMIT_INTERVAL_SECONDS (`interval`) and go in one
commit with those of the batches acknowledged meanwhile, so at light load the engine does not
send Kafka one commit request per command (in the light-load profile, 7 % of the engine's
CPU). What that costs is a longer redelivery after a crash or a rebalance:
up to one interval more of commands consumed again, which the store's msg_id records answer
as duplicates. `drain` commits what is due at once (shutdown).

Only outages reach the rewind: the worker settles each record's acknowledgements itself
(`CommandProcessor._settle`), so an event Kafka refuses for good (too large, invalid, not
authorised) dead-letters that one record and its batch commits; a record whose outage
outlasts the worker's stall bound is dead-lettered there too, once Kafka takes the copy.
An acknowledgement that fails with anything else is treated like a failed publish (rewind),
never allowed to break the chain: a broken chain would stop every later commit.

`fit_session_timeout` runs once before the engine starts: a broker refuses a group session
shorter than its `group.min.session.timeout.ms` (Kafka's default 6 s, above the engine's
default 4 s), and an engine whose join is refused exits. So the engine asks the brokers for
that floor and, if it is higher than `ENGINE_SESSION_TIMEOUT_SECONDS`, uses the floor and
says so: a slower failover, but a working engine on a broker left at Kafka's defaults.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin.config_resource import ConfigResourceType
from aiokafka.errors import IllegalStateError, KafkaError

from parlour_engine.kafka_configs import numeric_configs
from parlour_engine.logging import get_logger
from parlour_engine.settings import EngineSettings
from parlour_protocol.v1.records import H_HOPS, HOP_ENGINE_CONSUMED, hop

_log = get_logger(__name__)


@dataclass(frozen=True)
class RawCommand:
    """One Kafka record of the commands topic, as the processor needs it."""

    key: str
    value: bytes
    topic: str = ""
    partition: int = -1
    offset: int = -1
    hops: str | None = None
    """per-hop timestamps (`p-hops`) the record carried, with the engine's `ec` added"""


def record_hops(headers: Sequence[tuple[str, bytes]] | None, consumed_us: int) -> str | None:
    """A command record's `p-hops` header with `ec` (consumed at `consumed_us`) appended; None
    when the record has none (nearly free then: commands rarely carry headers)."""
    if headers:
        for name, value in headers:
            if name == H_HOPS:
                return hop(value.decode("ascii", "replace"), HOP_ENGINE_CONSUMED, consumed_us)
    return None


def batch_offsets(
    records: Sequence[Any],
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """(offset to commit per partition = last + 1, first offset per partition)."""
    commit: dict[TopicPartition, int] = {}
    first: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        commit[tp] = max(commit.get(tp, 0), record.offset + 1)
        first[tp] = min(first.get(tp, record.offset), record.offset)
    return commit, first


_COALESCE_BELOW = 64
"""A batch of at least this many records commits at once, as when coalescing is off: under
load the commit awaited in the chain is what bounds the batches in flight (at most
`max_outstanding`), so polls grow into bigger batches. Measured with bench_engine.py at 1,000
rooms: coalescing every batch ran 4-10 % fewer commands/s than committing each."""


class OffsetCommitter:
    def __init__(self, max_outstanding: int = 4, interval: float = 0.0) -> None:
        """`interval`: how long an acknowledged batch's offsets may wait to be committed
        together with later ones (0: each batch commits on its own)."""
        self._tail: asyncio.Task[None] | None = None
        self._generation = 0
        self._outstanding = asyncio.Semaphore(max_outstanding)
        self._interval = interval
        self._due: dict[TopicPartition, int] = {}
        self._due_consumer: Any = None
        self._timer: asyncio.TimerHandle | None = None
        self._flushes: set[asyncio.Task[None]] = set()
        self._committing = asyncio.Lock()  # commits reach Kafka in the order they were due

    async def enqueue(
        self,
        consumer: Any,
        acks: list[Awaitable[Any]],
        commit: dict[TopicPartition, int],
        first: dict[TopicPartition, int],
    ) -> None:
        """Queue one batch; waits only when `max_outstanding` batches are still in flight."""
        await self._outstanding.acquire()
        previous, generation = self._tail, self._generation
        self._tail = asyncio.create_task(
            self._finish(previous, generation, consumer, acks, commit, first)
        )

    def rewind(self, consumer: Any, first: dict[TopicPartition, int]) -> None:
        """Consume again from `first`; commits of batches queued so far are dropped."""
        self._generation += 1
        for tp, offset in first.items():
            try:
                consumer.seek(tp, offset)
            except (IllegalStateError, AssertionError) as exc:
                # no longer ours: its new owner starts from the last commit anyway
                _log.warning("rewind_skipped", partition=str(tp), error=str(exc))

    async def drain(self) -> None:
        """Wait for every queued batch, then commit what is due now."""
        if self._tail is not None:
            await self._tail
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.flush()
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)

    async def flush(self) -> None:
        """Commit the offsets due so far (the acknowledged batches not yet committed)."""
        if not self._due:
            return
        due, self._due = self._due, {}
        async with self._committing:
            await _commit(self._due_consumer, due)

    def _defer(self, consumer: Any, commit: dict[TopicPartition, int]) -> None:
        for tp, offset in commit.items():
            if offset > self._due.get(tp, -1):
                self._due[tp] = offset
        self._due_consumer = consumer
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval, self._flush_due)

    def _flush_due(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self.flush())
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _finish(
        self,
        previous: asyncio.Task[None] | None,
        generation: int,
        consumer: Any,
        acks: list[Awaitable[Any]],
        commit: dict[TopicPartition, int],
        first: dict[TopicPartition, int],
    ) -> None:
        try:
            if previous is not None:
                await previous
            try:
                await asyncio.gather(*acks)
            except KafkaError as exc:
                # always: rewinding further back only re-reads more (as duplicates), while
                # skipping it could let a later commit pass commands whose events were lost
                _log.warning("batch_publish_failed", error=str(exc))
                self.rewind(consumer, first)
                return
            except Exception as exc:  # noqa: BLE001 - logged; the batch is consumed again
                _log.error(
                    "batch_settle_failed", error=f"{type(exc).__name__}: {exc}", exc_info=exc
                )
                self.rewind(consumer, first)
                return
            if generation != self._generation:
                return  # an earlier batch was rewound: this one is consumed again too
            records = sum(offset - first.get(tp, offset) for tp, offset in commit.items())
            if self._interval > 0 and records < _COALESCE_BELOW:
                self._defer(consumer, commit)
            elif self._due:
                self._defer(consumer, commit)
                await self.flush()
            else:
                async with self._committing:
                    await _commit(consumer, commit)
        finally:
            self._outstanding.release()


async def _commit(consumer: Any, offsets: dict[TopicPartition, int]) -> None:
    try:
        await consumer.commit(offsets)
    except KafkaError as exc:
        # e.g. the partitions moved to another engine, which re-reads from the last commit;
        # the store's msg_id records make that redelivery harmless
        _log.warning("commit_failed", error=str(exc))


_SESSION_FLOOR = "group.min.session.timeout.ms"


async def brokers_session_floor_ms(
    bootstrap_servers: list[str], client_kwargs: dict[str, Any]
) -> int | None:
    """The highest `group.min.session.timeout.ms` among the brokers, or None when no broker
    tells (a principal without DescribeConfigs on the cluster gets an error per broker)."""
    floors = await numeric_configs(
        bootstrap_servers, client_kwargs, ConfigResourceType.BROKER, None, _SESSION_FLOOR
    )
    return max(floors, default=None)


async def fit_session_timeout(settings: EngineSettings, within: float = 10.0) -> EngineSettings:
    """`settings` with a session timeout the brokers accept: ENGINE_SESSION_TIMEOUT_SECONDS,
    or the brokers' floor when that is higher (logged as a warning). When the floor cannot be
    read (no broker yet, no permission), the setting is used as it is."""
    wanted = settings.engine_session_timeout_seconds
    kwargs = settings.kafka_client_kwargs()
    try:
        floor_ms = await asyncio.wait_for(
            brokers_session_floor_ms(settings.bootstrap_servers, kwargs), within
        )
    except (KafkaError, OSError, TimeoutError) as exc:
        _log.info("session_floor_unknown", error=f"{type(exc).__name__}: {exc}")
        return settings
    if floor_ms is None or floor_ms <= round(wanted * 1000):
        return settings
    _log.warning(
        "session_timeout_raised",
        detail="the brokers refuse shorter group sessions (group.min.session.timeout.ms): "
        "a dead engine's rooms wait this long, not ENGINE_SESSION_TIMEOUT_SECONDS",
        wanted_seconds=wanted,
        used_seconds=floor_ms / 1000,
    )
    return settings.model_copy(update={"engine_session_timeout_seconds": floor_ms / 1000})
