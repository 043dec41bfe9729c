"""The floor: what the durable path costs at the least on this broker and this Redis, with
no Parlour code in it. One sample is: produce a record (acks=all, idempotent, linger 0) and
consume it, produce a second record and consume it (the command hop and the event hop), then
one Redis round trip (the commit). Samples are paced, one at a time."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.support import redis_client


async def _topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, 1, 1) for n in names])
        for _ in range(300):
            described = await admin.describe_topics(names)
            if all(
                t["error_code"] == 0 and all(p["leader"] >= 0 for p in t["partitions"])
                for t in described
            ):
                return
            await asyncio.sleep(0.1)
        raise RuntimeError("floor topics not ready")
    finally:
        await admin.close()


async def _drop(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


async def measure(
    bootstrap: str,
    redis_url: str,
    samples: int,
    rate: float,
    tick: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """`samples` floor round trips at most `rate` per second; latencies in ms."""
    prefix = f"benchfloor{uuid.uuid4().hex[:6]}."
    names = [f"{prefix}a", f"{prefix}b"]
    await _topics(bootstrap, names)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=0
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=5
    )
    redis = redis_client(redis_url)
    await producer.start()
    await consumer.start()
    parts = [TopicPartition(n, 0) for n in names]
    consumer.assign(parts)
    await consumer.seek_to_end(*parts)
    arrived: dict[bytes, asyncio.Future[None]] = {}

    async def read() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            for records in batches.values():
                for record in records:
                    future = arrived.pop(record.value or b"", None)
                    if future is not None and not future.done():
                        future.set_result(None)

    async def hop(topic: str, value: bytes) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        arrived[value] = future
        await producer.send_and_wait(topic, value)
        await asyncio.wait_for(future, 10)

    reader = asyncio.create_task(read())
    latencies: list[float] = []
    try:
        await hop(names[0], b"warm-up")
        key = f"{prefix}k"
        for i in range(samples):
            started = time.perf_counter()
            await hop(names[0], f"c{i}".encode() + b"x" * 300)
            await hop(names[1], f"e{i}".encode() + b"x" * 300)
            await redis.set(key, i)
            latencies.append((time.perf_counter() - started) * 1000.0)
            tick()
            await asyncio.sleep(max(0.0, 1.0 / rate - (time.perf_counter() - started)))
    finally:
        reader.cancel()
        await producer.stop()
        await consumer.stop()
        await redis.delete(f"{prefix}k")
        await redis.aclose()
        await _drop(bootstrap, names)
    return {"latencies_ms": latencies, "samples": len(latencies), "rate": rate}
