"""The engine's wiring: one FastStream app with one batch subscriber on the commands topic
(manual offset commits), the Redis client, the supervised background jobs (timer loop, gauge
sampler) and the health server."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from aiokafka.errors import KafkaError
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker, Topic
from faststream.kafka.message import KafkaMessage
from redis.exceptions import RedisError

from parlour_engine.failures import InfraError
from parlour_engine.games import discover
from parlour_engine.handler import production_rng, seeded_rng
from parlour_engine.health import HealthServer, Readiness, eviction_warnings
from parlour_engine.isolation import FailingBatches, process_one_by_one
from parlour_engine.kafka_consumer import (
    OffsetCommitter,
    RawCommand,
    batch_offsets,
    record_hops,
)
from parlour_engine.kafka_producer import KafkaSink
from parlour_engine.logging import get_logger
from parlour_engine.metrics import EngineMetrics, consumer_lag
from parlour_engine.redis_pool import engine_redis
from parlour_engine.rules import GameRegistry, RulesConfig
from parlour_engine.settings import EngineSettings
from parlour_engine.store import RoomStore
from parlour_engine.supervisor import Supervisor
from parlour_engine.timers import TimerLoop
from parlour_engine.worker import CommandProcessor
from parlour_protocol.v1 import GAMES, CommandEnvelope, encode
from parlour_runtime.event_loop import running_loop
from parlour_runtime.redis_client import AnyRedis

if TYPE_CHECKING:
    # what `broker.subscriber(..., batch=True)` returns; FastStream does not re-export it
    from faststream.kafka.subscriber.usecase import BatchSubscriber

_log = get_logger(__name__)
_GAUGE_SECONDS = 10.0


def rules_config(settings: EngineSettings, games: GameRegistry) -> RulesConfig:
    """The rules' settings, with the registry of the games this engine plays.

    `ENGINE_TURN_TIMEOUT_SECONDS` is the turn timer of a game without its own (30 s when
    unset); set explicitly, it also caps every game's own timer (tic-tac-toe's 60 s), so one
    setting shortens every game's turns."""
    turn_seconds = max(1, round(settings.engine_turn_timeout_seconds))
    explicit = "engine_turn_timeout_seconds" in settings.model_fields_set
    return RulesConfig(
        games=games,
        turn_timeout_seconds=turn_seconds,
        turn_timeout_cap_seconds=turn_seconds if explicit else None,
        disconnect_grace_seconds=max(1, round(settings.engine_disconnect_grace_seconds)),
        idle_room_seconds=settings.engine_idle_room_seconds,
        finished_room_seconds=settings.engine_finished_room_seconds,
    )


@dataclass
class Engine:
    settings: EngineSettings
    broker: KafkaBroker
    app: FastStream
    metrics: EngineMetrics
    redis: AnyRedis
    processor: CommandProcessor
    timers: TimerLoop
    health: HealthServer | None
    supervisor: Supervisor
    commands: BatchSubscriber
    """The commands topic's subscriber: its `consumer` (the aiokafka consumer, None until the
    broker starts it) gives the partitions this engine owns and their lag."""


def create_engine(settings: EngineSettings) -> Engine:
    """Build every part from the settings; nothing connects until the app starts."""
    topics = settings.topics
    metrics = EngineMetrics()
    broker = KafkaBroker(
        settings.bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        allow_auto_create_topics=False,
        max_batch_size=512 * 1024,
        client_id=f"parlour-engine-{settings.engine_group_id}",
        graceful_timeout=15.0,
        logger=None,
        security=settings.kafka_security(),
        # the broker's producer and the subscriber's consumer: the group re-checks the
        # commands topic's partition count on each refresh and rebalances onto new ones
        metadata_max_age_ms=settings.kafka_metadata_max_age_ms,
    )
    redis = engine_redis(settings, settings.redis_max_connections)
    # the one place the engine's games are discovered: the rules get the registry from here
    games = discover()
    if unknown := sorted(games.names - GAMES.keys()):
        raise ValueError(f"engine games without a protocol GameSpec (parlour.games): {unknown}")
    config = rules_config(settings, games)
    store = RoomStore(
        redis,
        settings.keys,
        applied_ttl_seconds=settings.engine_applied_ttl_seconds,
        ended_room_ttl_seconds=settings.engine_ended_room_ttl_seconds,
        applied_keep=settings.engine_applied_keep,
        chat_keep=config.chat_keep,
    )
    if settings.engine_rng_seed is not None:
        _log.warning(
            "TEST_ONLY_SEEDED_DICE",
            detail="ENGINE_RNG_SEED is set: every roll is predictable. Never in production.",
        )
        rng_for = seeded_rng(settings.engine_rng_seed)
    else:
        rng_for = production_rng()
    sink = KafkaSink(
        settings.bootstrap_servers,
        f"parlour-engine-{settings.engine_group_id}",
        {
            **settings.kafka_client_kwargs(),
            "metadata_max_age_ms": settings.kafka_metadata_max_age_ms,
        },
        topics=(topics.events, topics.commands_dlq),
    )
    processor = CommandProcessor(
        redis=redis,
        store=store,
        sink=sink,
        metrics=metrics,
        config=config,
        events_topic=topics.events,
        dlq_topic=topics.commands_dlq,
        max_tries=settings.engine_max_tries,
        rng_for=rng_for,
        concurrency=settings.redis_max_connections,
        max_rooms_per_host=settings.engine_max_rooms_per_host,
        max_rooms_per_user=settings.engine_max_rooms_per_user,
    )

    async def publish_command(envelope: CommandEnvelope) -> None:
        await broker.publish(encode(envelope), topic=topics.commands, key=envelope.key.encode())

    timers = TimerLoop(
        redis,
        settings.keys,
        publish_command,
        metrics,
        poll_seconds=settings.engine_timer_poll_seconds,
    )

    committer = OffsetCommitter(interval=settings.engine_commit_interval_seconds)
    failing = FailingBatches()

    commands_subscriber = broker.subscriber(
        Topic(topics.commands, declare=False),
        group_id=settings.engine_group_id,
        batch=True,
        max_records=settings.engine_batch_max,
        batch_timeout_ms=round(settings.engine_batch_timeout_seconds * 1000),
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        session_timeout_ms=round(settings.engine_session_timeout_seconds * 1000),
        fetch_max_wait_ms=round(settings.engine_fetch_max_wait_seconds * 1000),
        heartbeat_interval_ms=max(100, round(settings.engine_session_timeout_seconds * 1000) // 4),
        decoder=_itself,
    )
    _poll_without_idle_sleep(commands_subscriber)

    @commands_subscriber
    async def on_commands(body: Any) -> None:
        message = cast("KafkaMessage", body)  # what `_itself` decoded the batch to
        raw = message.raw_message
        records = raw if isinstance(raw, tuple) else (raw,)
        consumed_us = time.time_ns() // 1000
        batch = [
            RawCommand(
                key=(r.key or b"").decode("utf-8", "replace"),
                value=r.value or b"",
                topic=r.topic,
                partition=r.partition,
                offset=r.offset,
                hops=record_hops(r.headers, consumed_us),
            )
            for r in records
        ]
        commit, first = batch_offsets(records)
        consumer = message.consumer
        isolate = failing.isolate(first)
        try:
            if isolate:
                acks = await process_one_by_one(processor, batch, metrics)
            else:
                acks = await processor.process_batch_nowait(batch)
        except InfraError as exc:
            # an outage: nothing of this batch is committed; rewind and take it again, for
            # as long as it lasts
            _log.warning("batch_retry", error=str(exc), size=len(batch), isolated=isolate)
            committer.rewind(consumer, first)
            return
        except Exception as exc:  # noqa: BLE001 - never let a later commit skip this batch
            # rewound, but not forever: after a few failures at the same first offset the
            # batch is taken record by record and what still fails is dead-lettered
            failures = failing.failed(first)
            _log.error(
                "batch_failed",
                error_type=type(exc).__name__,
                error=f"{type(exc).__name__}: {exc}",
                failures=failures,
                exc_info=exc,
            )
            committer.rewind(consumer, first)
            return
        failing.succeeded(first)
        # the commit trails: the next poll starts while Kafka acknowledges these events
        await committer.enqueue(consumer, acks, commit, first)
        if processor.stopping:
            # the last batch before shutdown: commit while the consumer is still open
            await committer.drain()

    engine_ref: dict[str, Engine] = {}
    supervisor = Supervisor(metrics)

    async def ready() -> Readiness:
        checks = {"redis": False, "kafka": False}
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            checks["redis"] = bool(await asyncio.wait_for(redis.ping(), 2))
        with contextlib.suppress(KafkaError, OSError, TimeoutError):
            checks["kafka"] = await broker.ping(timeout=2)
        warnings: list[str] = []
        if checks["redis"]:
            warnings.extend(await eviction_warnings(redis, metrics))
        states = {name: state.value for name, state in supervisor.states().items()}
        return Readiness(checks=checks, tasks=states, warnings=warnings)

    health = (
        HealthServer(settings.engine_health_host, settings.engine_health_port, metrics, ready)
        if settings.engine_health_port
        else None
    )

    async def on_startup() -> None:
        await sink.start()

    async def after_startup() -> None:
        engine = engine_ref["engine"]
        if health is not None:
            await health.start()
        for warning in await eviction_warnings(redis, metrics):
            _log.warning("redis_evicts_keys", detail=warning)
        supervisor.start("timers", timers.tick, interval=timers.poll_seconds)
        supervisor.start("gauges", lambda: _sample_gauges(engine), interval=_GAUGE_SECONDS)
        _log.info(
            "engine_started",
            commands=topics.commands,
            group=settings.engine_group_id,
            health_port=health.port if health else None,
            event_loop=running_loop(),
        )

    async def on_shutdown() -> None:
        engine = engine_ref["engine"]
        processor.stopping = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(committer.drain(), 5)
        await engine.supervisor.stop()
        if health is not None:
            await health.stop()

    async def after_shutdown() -> None:
        # the consumer is closed by now: a last trailing commit fails harmlessly (its batch
        # is re-read as duplicates), but the chain must end before the loop does
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(committer.drain(), 5)
        await sink.stop()
        await redis.aclose()
        _log.info("engine_stopped")

    app = FastStream(
        broker,
        logger=None,
        on_startup=[on_startup],
        after_startup=[after_startup],
        on_shutdown=[on_shutdown],
        after_shutdown=[after_shutdown],
    )
    engine = Engine(
        settings=settings,
        broker=broker,
        app=app,
        metrics=metrics,
        redis=redis,
        processor=processor,
        timers=timers,
        health=health,
        supervisor=supervisor,
        commands=commands_subscriber,
    )
    engine_ref["engine"] = engine
    return engine


def _poll_without_idle_sleep(subscriber: BatchSubscriber) -> None:
    """FastStream's batch poll sleeps `batch_timeout_ms` more after a poll that found nothing,
    so at light load a command arriving during that sleep waited up to 5 ms (2.5 ms on
    average) before the engine even looked: most of the gap between the gateway's produce and
    the engine's consume in the per-hop table. aiokafka's `getmany` already returns as soon as
    any record is fetched and waits at most `timeout_ms` otherwise, so the poll here is just
    that, with no sleep after it."""
    wait_ms = max(1, subscriber.batch_timeout_ms)

    async def get_msg(consumer: Any) -> tuple[Any, ...]:
        batches = await consumer.getmany(timeout_ms=wait_ms, max_records=subscriber.max_records)
        return tuple(itertools.chain.from_iterable(batches.values()))

    # the consume loop calls `self.get_msg(consumer)`; the instance attribute takes precedence
    setattr(subscriber, "get_msg", get_msg)  # noqa: B010 - mypy refuses assigning a method


async def _itself(message: Any) -> Any:
    """The batch "decoded" to its own message: the handler reads the raw records
    (`message.raw_message`) and decodes each command itself (FastStream's default decoder
    would JSON-parse every record of the batch first, for nothing), and it gets the message
    as its body rather than through `Context("message")`: FastStream resolves a context
    parameter with a synchronous function that fast_depends runs in a worker thread, one
    thread round trip per batch (in the engine's profile: a worker thread woken per poll, and
    a GIL handoff before every batch even started)."""
    return message


async def _sample_gauges(engine: Engine) -> None:
    """One round of the gauge sampler (run by the engine's Supervisor). The consumer lag comes
    first and on its own: it needs no Redis, and a Redis outage is when it matters most."""
    try:
        lags = await consumer_lag(engine.commands.consumer, engine.settings.topics.commands)
    except Exception as exc:  # noqa: BLE001 - the room gauges and the next round go on
        _log.warning("consumer_lag_sample_failed", error_type=type(exc).__name__, error=str(exc))
    else:
        engine.metrics.set_consumer_lag(lags)
    keys = engine.settings.keys
    total = 0
    for game in GAMES:
        total += int(await engine.redis.scard(keys.rooms_by_game(game)))
    engine.metrics.active_rooms.set(total)
    engine.metrics.active_games.set(engine.processor.games_in_progress())
