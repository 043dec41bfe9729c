"""The engine's producer against a real broker whose events topic takes smaller record
batches than the producer would build (max.message.bytes): the broker refuses a whole batch
over the limit, with every record in it. So the sink fits its batches below the topics'
limit at start, and an event too large on its own is refused alone: the events sent just
before it, on the same partition, are acknowledged, where before they shared its batch and
its refusal (and their commands were dead-lettered as refused)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from parlour_engine.failures import is_outage
from parlour_engine.kafka_producer import KafkaSink, fitted_batch_bytes

LIMIT = 64 * 1024


@pytest.fixture
async def small_topic(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[str]:
    name = f"{topic_prefix}small-{uuid.uuid4().hex[:6]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, 1, 1, topic_configs={"max.message.bytes": str(LIMIT)})]
        )
        yield name
    finally:
        await admin.delete_topics([name])
        await admin.close()


async def test_an_oversized_event_is_refused_alone(kafka_bootstrap: str, small_topic: str) -> None:
    sink = KafkaSink([kafka_bootstrap], "test-batches", topics=[small_topic])
    await sink.start()
    try:
        assert sink.max_batch_bytes == fitted_batch_bytes(LIMIT) < LIMIT
        # one loop turn, one partition: before the fit, these three shared one batch
        before = await sink.send(small_topic, "room", b"x" * 200)
        oversized = await sink.send(small_topic, "room", b"y" * (LIMIT + 16 * 1024))
        after = await sink.send(small_topic, "room", b"z" * 200)
        results = await asyncio.wait_for(
            asyncio.gather(before, oversized, after, return_exceptions=True), 30
        )
    finally:
        await sink.stop()
    first, big, last = results
    assert not isinstance(first, BaseException), first
    assert isinstance(big, MessageSizeTooLargeError), big
    # the refused batch spent its sequence number: a later batch of that partition may fail
    # with the idempotent producer's state, an outage the worker retries; never "too large"
    if isinstance(last, BaseException):
        assert isinstance(last, KafkaError), last
        assert is_outage(last), last


def test_batches_fit_the_topics_limit() -> None:
    assert fitted_batch_bytes(None) == 512 * 1024
    assert fitted_batch_bytes(1_048_588) == 512 * 1024  # Kafka's default limit
    assert fitted_batch_bytes(LIMIT) == LIMIT - 1024
    assert fitted_batch_bytes(100) == 1024  # never below one small record
