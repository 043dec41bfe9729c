"""The health server answers probes from its ready check and serves the metrics; `/ready`
fails while a background task is dead or stuck, and warns when Redis may evict keys."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from parlour_engine.health import (
    HealthServer,
    Readiness,
    eviction_warnings,
    redis_eviction_policy,
)
from parlour_engine.metrics import CommandOutcome, EngineMetrics
from parlour_engine.supervisor import Supervisor, TaskState


async def _until(condition: Callable[[], bool], what: str, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_engine_health_server_reports_readiness() -> None:
    state = {"redis": True, "kafka": False}

    async def ready() -> Readiness:
        return Readiness(checks=dict(state), warnings=["redis evicts"])

    metrics = EngineMetrics()
    metrics.commands.labels(type="games.command.ready", outcome=CommandOutcome.APPLIED).inc()
    server = HealthServer("127.0.0.1", 0, metrics, ready)
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{base}/health")).json() == {"status": "ok"}
            not_ready = await client.get(f"{base}/ready")
            assert not_ready.status_code == 503
            assert not_ready.json()["checks"] == {"redis": True, "kafka": False}
            state["kafka"] = True
            ok = await client.get(f"{base}/ready")
            # a warning is reported but does not fail the probe
            assert ok.status_code == 200
            assert ok.json()["warnings"] == ["redis evicts"]
            text = (await client.get(f"{base}/metrics")).text
            assert (
                'parlour_engine_commands_total{outcome="applied",type="games.command.ready"} 1.0'
                in text
            )
            assert (await client.post(f"{base}/health")).status_code == 405
    finally:
        await server.stop()


async def test_engine_ready_fails_while_a_background_task_is_dead() -> None:
    metrics = EngineMetrics()
    supervisor = Supervisor(metrics)
    ticks = {"timers": 0, "gauges": 0}

    def counting(name: str) -> Callable[[], Any]:
        async def tick() -> None:
            ticks[name] += 1

        return tick

    supervisor.start("timers", counting("timers"), interval=0.02)
    supervisor.start("gauges", counting("gauges"), interval=0.02)

    async def ready() -> Readiness:
        tasks = {name: s.value for name, s in supervisor.states().items()}
        return Readiness(checks={"redis": True, "kafka": True}, tasks=tasks)

    server = HealthServer("127.0.0.1", 0, metrics, ready)
    await server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/ready"
        async with httpx.AsyncClient() as client:
            assert (await client.get(url)).status_code == 200
            # only cancellation (or a BaseException) can end a supervised task
            timers_task = supervisor._jobs["timers"].task
            assert timers_task is not None
            timers_task.cancel()
            await _until(timers_task.done, "the timers task to end")
            dead = await client.get(url)
            assert dead.status_code == 503
            assert dead.json()["status"] == "not_ready"
            assert dead.json()["tasks"] == {"timers": "dead", "gauges": "ok"}
    finally:
        await server.stop()
        await supervisor.stop()


async def test_engine_supervisor_outlives_errors_and_hangs() -> None:
    """Any exception and a hanging round are logged, counted, backed off and retried."""
    metrics = EngineMetrics()
    supervisor = Supervisor(metrics)
    rounds: list[str] = []
    script = ["raise", "hang", "raise", "ok"]

    async def tick() -> float:
        step = script.pop(0) if script else "ok"
        rounds.append(step)
        if step == "raise":
            raise RuntimeError("a bug in a round")
        if step == "hang":
            await asyncio.Event().wait()
        return 0.01

    supervisor.start("job", tick, interval=0.01, stale_after=0.3)
    try:
        await _until(lambda: rounds.count("ok") >= 2, "good rounds after the bad ones")
        assert rounds[:4] == ["raise", "hang", "raise", "ok"]
        assert metrics.task_failures.labels(task="job")._value.get() == 3
        assert supervisor.states() == {"job": TaskState.OK}
    finally:
        await supervisor.stop()


async def test_engine_supervisor_reports_stuck_then_recovers() -> None:
    metrics = EngineMetrics()
    supervisor = Supervisor(metrics)
    broken = {"on": False}

    async def tick() -> None:
        if broken["on"]:
            raise ConnectionError("down")

    supervisor.start("job", tick, interval=0.01, stale_after=0.2)
    try:
        assert supervisor.states() == {"job": TaskState.OK}
        broken["on"] = True
        await _until(lambda: supervisor.states()["job"] is TaskState.STUCK, "stuck")
        broken["on"] = False
        await _until(lambda: supervisor.states()["job"] is TaskState.OK, "ok again")
    finally:
        await supervisor.stop()


# --- Redis eviction ---------------------------------------------------------------------------


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    try:
        yield client
    finally:
        await client.aclose()


@pytest.mark.integration
async def test_engine_eviction_policy_from_real_redis(redis_client: aioredis.Redis) -> None:
    expected = (await redis_client.info("memory"))["maxmemory_policy"]
    assert await redis_eviction_policy(redis_client) == expected


class _NoConfigRedis:
    """A managed Redis that renamed CONFIG away: only INFO answers."""

    async def config_get(self, pattern: str) -> dict[str, str]:
        raise ResponseError("unknown command 'CONFIG'")

    async def info(self, section: str) -> dict[str, str]:
        assert section == "memory"
        return {"maxmemory_policy": "allkeys-lru", "used_memory": "1"}


async def test_engine_eviction_policy_falls_back_to_info() -> None:
    assert await redis_eviction_policy(_NoConfigRedis()) == "allkeys-lru"  # type: ignore[arg-type]


async def test_engine_eviction_warning_and_gauge() -> None:
    metrics = EngineMetrics()
    warnings = await eviction_warnings(_NoConfigRedis(), metrics)  # type: ignore[arg-type]
    assert len(warnings) == 1
    assert "allkeys-lru" in warnings[0]
    assert metrics.redis_evicting._value.get() == 1


@pytest.mark.integration
async def test_engine_no_eviction_warning_on_noeviction(redis_client: aioredis.Redis) -> None:
    metrics = EngineMetrics()
    metrics.redis_evicting.set(1)
    if await redis_eviction_policy(redis_client) != "noeviction":
        pytest.fail("the test Redis evicts keys: run it with maxmemory-policy noeviction")
    assert await eviction_warnings(redis_client, metrics) == []
    assert metrics.redis_evicting._value.get() == 0
