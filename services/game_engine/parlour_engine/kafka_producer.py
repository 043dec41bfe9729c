"""The engine's Kafka producer side: `EventSink` (what the command processor sends events and
dead letters through) and `KafkaSink`, its implementation over one idempotent aiokafka
producer, with `CachedPartitioner`, the partitioner that producer uses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.admin.config_resource import ConfigResourceType
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaError,
    KafkaTimeoutError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    UnknownProducerId,
)
from aiokafka.partitioner import DefaultPartitioner, murmur2

from parlour_engine.kafka_configs import numeric_configs
from parlour_engine.logging import get_logger

_log = get_logger(__name__)

Headers = dict[str, str] | list[tuple[str, bytes]]
"""Record headers: a dict of text (dead letters), or Kafka's (name, bytes) pairs (events)."""


class EventSink(Protocol):
    """Where events and dead letters go (the Kafka producer). `send` enqueues and returns an
    awaitable that completes when Kafka acknowledged the record; per-key order is the order
    of `send` calls."""

    async def send(
        self, topic: str, key: str, value: bytes, headers: Headers | None = None
    ) -> Awaitable[Any]: ...


class CachedPartitioner:
    """aiokafka's default partitioner (murmur2 of the key, in pure Python) with the hash
    remembered per key: events are keyed by room id, so the same few thousand keys repeat.
    Gives exactly the partition the default would."""

    def __init__(self, size: int = 65_536) -> None:
        self._default = DefaultPartitioner()
        self._hashes: dict[bytes, int] = {}
        self._size = size

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(self._default(key, all_partitions, available))
        idx = self._hashes.get(key)
        if idx is None:
            idx = murmur2(key) & 0x7FFFFFFF
            if len(self._hashes) >= self._size:
                self._hashes.clear()
            self._hashes[key] = idx
        return all_partitions[idx % len(all_partitions)]


_MAX_REQUEST_BYTES = 1024 * 1024
"""aiokafka's max_request_size, stated: events are at most EVENT_MAX_BYTES (the processor
checks before the commit) and dead letters at most failures.DLQ_VALUE_MAX_BYTES plus small
headers, so the producer never refuses one for size. Kafka's topic max.message.bytes must be
at least EVENT_MAX_BYTES plus the record overhead too: a record the BROKER refuses also kills
aiokafka's idempotent producer (the next batch of that partition fails with
OutOfOrderSequenceNumber)."""
_PRODUCER_DEAD = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch)

_MAX_BATCH_BYTES = 512 * 1024
"""The producer's batch size where the topics allow it (Kafka's default max.message.bytes is
1 MiB): big enough that the engine's ~600-byte events never fill a batch."""
_BATCH_MARGIN_BYTES = 1024
"""Kept below the topics' max.message.bytes: the broker also counts the log overhead."""
_MAX_MESSAGE_BYTES = "max.message.bytes"


def fitted_batch_bytes(limit: int | None) -> int:
    """The producer batch size for topics that take record batches of at most `limit` bytes
    (None: unknown). The broker refuses a whole batch that is over the limit, with every
    record in it: one oversized event would take the events batched with it down too, and
    their commands would be dead-lettered as refused although their events were fine. With
    batches below the limit, only a record that alone exceeds it (aiokafka always puts the
    first record of a batch in, whatever its size) is refused, alone in its batch."""
    if limit is None:
        return _MAX_BATCH_BYTES
    return max(1024, min(_MAX_BATCH_BYTES, limit - _BATCH_MARGIN_BYTES))


async def topics_max_message_bytes(
    bootstrap_servers: list[str], client_kwargs: dict[str, Any], topics: Sequence[str]
) -> int | None:
    """The smallest max.message.bytes among `topics`, or None when no topic tells (a
    principal without DescribeConfigs on them gets an error per topic)."""
    limits = await numeric_configs(
        bootstrap_servers, client_kwargs, ConfigResourceType.TOPIC, topics, _MAX_MESSAGE_BYTES
    )
    return min(limits, default=None)


class KafkaSink:
    """EventSink over a dedicated idempotent aiokafka producer (acks=all). Events are the
    engine's hot path: a direct `send` costs a fraction of a FastStream publish.

    An idempotent producer numbers each partition's batches; when the broker refuses one for
    good (too large, invalid, not authorised) its number is spent and every later batch of
    that partition fails with OutOfOrderSequenceNumber, for good. So a send whose
    acknowledgement fails with a non-retriable error replaces the producer (a new producer id
    starts new numbers); sends caught in between fail and are retried by the worker as an
    outage.

    Its batches stay below the smallest max.message.bytes of `topics` (read once at start,
    `fitted_batch_bytes`), so the broker refuses only an event that is too large on its own,
    never the events that happened to share its batch."""

    def __init__(
        self,
        bootstrap_servers: list[str],
        client_id: str,
        client_kwargs: dict[str, Any] | None = None,
        topics: Sequence[str] = (),
    ) -> None:
        """`client_kwargs`: what every Kafka client of the engine shares (security, the
        metadata refresh interval), as aiokafka keyword arguments. `topics`: the topics it
        writes to, whose max.message.bytes bound its batches."""
        self._bootstrap = bootstrap_servers
        self._client_id = client_id
        self._client_kwargs = client_kwargs or {}
        self._topics = tuple(topics)
        self.max_batch_bytes = _MAX_BATCH_BYTES
        self._producer: AIOKafkaProducer | None = None
        self._replacing = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._topics:
            self.max_batch_bytes = fitted_batch_bytes(await self._topics_limit())
        self._producer = await self._started_producer()

    async def _topics_limit(self, within: float = 10.0) -> int | None:
        try:
            limit = await asyncio.wait_for(
                topics_max_message_bytes(self._bootstrap, self._client_kwargs, self._topics),
                within,
            )
        except (KafkaError, OSError, TimeoutError) as exc:
            _log.info("topic_limits_unknown", error=f"{type(exc).__name__}: {exc}")
            return None
        if limit is not None and fitted_batch_bytes(limit) < _MAX_BATCH_BYTES:
            _log.info(
                "producer_batches_fitted",
                max_message_bytes=limit,
                max_batch_bytes=fitted_batch_bytes(limit),
            )
        return limit

    async def _started_producer(self) -> AIOKafkaProducer:
        # aiokafka binds to the running loop, so the producer is made here, not in __init__
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            enable_idempotence=True,
            acks="all",
            max_batch_size=self.max_batch_bytes,
            linger_ms=0,
            max_request_size=_MAX_REQUEST_BYTES,
            partitioner=CachedPartitioner(),
            **self._client_kwargs,
        )
        await producer.start()
        return producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()  # flushes what is still buffered

    async def send(
        self, topic: str, key: str, value: bytes, headers: Headers | None = None
    ) -> Awaitable[Any]:
        if self._producer is None:
            raise RuntimeError("KafkaSink.send before start")
        encoded = (
            [(k, v.encode()) for k, v in headers.items()]
            if isinstance(headers, dict)
            else headers or None
        )
        if self._replacing.locked():
            # a refusal is replacing the producer: what is sent now (the refused command's
            # dead letter and its sender's answer, first of all) goes to the new one, never
            # to the one being stopped, where it could wait out the request timeout
            async with self._replacing:
                pass
        producer = self._producer
        try:
            future: Awaitable[Any] = await producer.send(
                topic, value, key=key.encode(), headers=encoded
            )
        except _PRODUCER_DEAD:
            await self._replace(producer)
            raise
        if isinstance(future, asyncio.Future):
            future.add_done_callback(lambda done: self._spent(done, producer))
        return future

    def _spent(self, done: asyncio.Future[Any], producer: AIOKafkaProducer) -> None:
        if done.cancelled() or producer is not self._producer:
            return
        exc = done.exception()
        # the delivery timeout and a closed producer spend no number (an outage, a shutdown)
        refused = not isinstance(exc, KafkaTimeoutError | ProducerClosed)
        if isinstance(exc, KafkaError) and not exc.retriable and refused:
            task = asyncio.ensure_future(self._replace(producer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _replace(self, dead: AIOKafkaProducer) -> None:
        old = dead  # (`is` below narrows `dead` to the attribute's optional type)
        async with self._replacing:
            if self._producer is not dead:
                return  # a concurrent send replaced it already
            try:
                self._producer = await self._started_producer()
            except (KafkaError, OSError) as exc:
                # Kafka away: the next refused send tries again, this producer is kept
                _log.warning("producer_replace_failed", error=f"{type(exc).__name__}: {exc}")
                return
            _log.warning("producer_replaced", reason="idempotent producer state lost")
        # outside the lock: sends waiting for the replacement go on at once (stopping the old
        # producer flushes what it still holds, which can take up to its request timeout)
        try:
            await asyncio.wait_for(old.stop(), 5)
        except (KafkaError, TimeoutError) as exc:
            _log.warning("dead_producer_stop_failed", error=f"{type(exc).__name__}: {exc}")
