"""Commands to Kafka: idempotent producer (acks=all), bounded wait."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from parlour_gateway.metrics import Metrics
from parlour_protocol.v1 import CommandEnvelope, encode
from parlour_protocol.v1.records import H_HOPS, HOP_GATEWAY_PRODUCED, hop


class PublishError(Exception):
    """Kafka did not confirm the command in time. It may still have been written (a timeout
    does not withdraw it), so the client is told it is not confirmed and may re-send it with the
    same request_id: the derived msg_id makes the retry take effect at most once."""


class CommandPublisher:
    def __init__(
        self, producer: AIOKafkaProducer, topic: str, timeout: float, metrics: Metrics
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout = timeout
        self._metrics = metrics

    async def publish(self, envelope: CommandEnvelope, hops: str | None = None) -> None:
        """`hops`: the per-hop timestamps so far (`gr`); `gp` is added here."""
        started = time.perf_counter()
        value = encode(envelope)
        headers = None
        if hops is not None:
            headers = [(H_HOPS, hop(hops, HOP_GATEWAY_PRODUCED).encode())]
        try:
            # a timeout scope, not wait_for: no extra task per command
            async with asyncio.timeout(self._timeout):
                await self._producer.send_and_wait(
                    self._topic, value, key=envelope.key.encode(), headers=headers
                )
        except (TimeoutError, KafkaError) as exc:
            self._metrics.publish_failures.labels(type(exc).__name__).inc()
            raise PublishError(f"{type(exc).__name__}") from None
        finally:
            self._metrics.publish_latency.observe(time.perf_counter() - started)
