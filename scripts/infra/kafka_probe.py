"""Is a Kafka broker usable (a produce/consume round trip through a consumer group), and
the topics the services need. aiokafka is imported late: `down` and `status` run without it."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from infra.console import InfraError, say


def _quiet_aiokafka() -> None:
    # aiokafka logs every refused connection; the infra commands say what matters themselves
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL + 1)


def _need_aiokafka() -> None:
    try:
        import aiokafka  # noqa: F401
    except ImportError:
        raise InfraError(
            "aiokafka is not importable: run this with the project's virtualenv "
            "(`make install`, then `.venv/bin/python scripts/infra ...`)"
        ) from None


async def _round_trip(bootstrap: str, replication: int) -> None:
    """Produce one record with acks=all and read it back through a consumer group."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from infra.topics import HEALTH_TOPIC

    await _ensure_topics(bootstrap, {HEALTH_TOPIC: 1}, quiet=True, replication=replication)
    token = uuid.uuid4().hex.encode()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, request_timeout_ms=10_000
    )
    await producer.start()
    try:
        sent = await producer.send_and_wait(HEALTH_TOPIC, token)
    finally:
        await producer.stop()
    # a fresh group joins, gets the one partition assigned and starts at the record just sent:
    # this exercises the group coordinator too, which integration tests rely on
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"parlour-infra-health-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10_000,
    )
    await consumer.start()
    try:
        consumer.subscribe([HEALTH_TOPIC])
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, records in batches.items():
                if tp.partition == sent.partition and any(r.value == token for r in records):
                    return
                if any(r.offset < sent.offset for r in records):
                    consumer.seek(tp, sent.offset)
    finally:
        await consumer.stop()


def kafka_check(bootstrap: str, timeout: float = 20.0, replication: int = 1) -> str | None:
    """None when a produce/consume round trip works; otherwise why not (one line).
    `replication`: of the health topic when it is created (3 on the cluster, whose brokers
    refuse an acks=all write to a topic with fewer replicas than min.insync.replicas)."""
    _need_aiokafka()
    _quiet_aiokafka()

    async def run() -> None:
        await asyncio.wait_for(_round_trip(bootstrap, replication), timeout)

    try:
        asyncio.run(run())
    except TimeoutError:
        return f"no produce/consume round trip within {timeout:.0f}s"
    except Exception as exc:  # noqa: BLE001 - any client failure means "not usable yet"
        return f"{type(exc).__name__}: {exc}".strip()
    return None


async def _ensure_topics(
    bootstrap: str,
    topics: dict[str, int],
    *,
    quiet: bool = False,
    replication: int = 1,
    configs: dict[str, str] | None = None,
) -> list[str]:
    """Create the missing topics (`replication` replicas each, topic `configs`), wait until
    every partition has a leader; returns the names that were created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(n, p, replication, topic_configs=configs)
            for n, p in topics.items()
            if n not in existing
        ]
        if missing:
            response = await admin.create_topics(missing)
            for name, code, message in (t[:3] for t in response.topic_errors):
                if code not in (0, 36):  # 36: TOPIC_ALREADY_EXISTS (a concurrent `up`)
                    raise InfraError(f"creating topic {name} failed: error {code} {message}")
        deadline = time.monotonic() + 30
        while True:
            described = await admin.describe_topics(list(topics))
            unready = [
                t["topic"]
                for t in described
                if t["error_code"] != 0
                or any(p["error_code"] != 0 or p["leader"] < 0 for p in t["partitions"])
            ]
            if not unready:
                break
            if time.monotonic() > deadline:
                raise InfraError(f"topics have no leader after 30s: {', '.join(unready)}")
            await asyncio.sleep(0.2)
        if not quiet:
            counts = {t["topic"]: len(t["partitions"]) for t in described}
            for name, wanted in topics.items():
                if counts.get(name, 0) < wanted:
                    say(
                        f"warning: topic {name} has {counts.get(name)} partitions, "
                        f"{wanted} wanted (delete it to have it re-created)"
                    )
        return [t.name for t in missing]
    finally:
        await admin.close()


def service_topics() -> dict[str, int]:
    # imported late: it needs the project installed, which `down` and `status` do not
    from infra.topics import TOPICS

    return dict(TOPICS)


def ensure_topics(
    bootstrap: str, replication: int = 1, configs: dict[str, str] | None = None
) -> list[str]:
    _need_aiokafka()
    _quiet_aiokafka()
    return asyncio.run(
        _ensure_topics(bootstrap, service_topics(), replication=replication, configs=configs)
    )


def existing_topics(bootstrap: str) -> set[str] | None:
    _need_aiokafka()
    _quiet_aiokafka()
    from aiokafka.admin import AIOKafkaAdminClient

    async def run() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    try:
        return asyncio.run(asyncio.wait_for(run(), 10))
    except Exception:  # noqa: BLE001 - status only reports
        return None


def broker_ids(bootstrap: str) -> set[int]:
    """The broker ids in the cluster's metadata; empty when no broker answers."""
    _need_aiokafka()
    _quiet_aiokafka()
    from aiokafka.admin import AIOKafkaAdminClient

    async def run() -> set[int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000)
        await admin.start()
        try:
            cluster = await admin.describe_cluster()
            return {int(b["node_id"]) for b in cluster["brokers"]}
        finally:
            await admin.close()

    try:
        return asyncio.run(asyncio.wait_for(run(), 10))
    except Exception:  # noqa: BLE001 - not (yet) answering
        return set()
