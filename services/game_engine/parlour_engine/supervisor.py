"""Background loops that cannot die silently.

Every periodic job of the engine (the timer loop, the gauge sampler) is a `tick` coroutine run
by one `Supervisor`. A tick that raises anything is logged with its exception type, counted,
and tried again after a growing pause; a tick that hangs is cancelled after `stale_after`. The
supervisor records each job's last good tick, and `/ready` fails while a job's task has ended
or its last good tick is older than `stale_after` (it keeps failing, or it hangs), naming the
job. A single failed tick never flips readiness: only a job that stays bad does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from parlour_engine.logging import get_logger
from parlour_engine.metrics import EngineMetrics

Tick = Callable[[], Awaitable[float | None]]
"""One round of a job; returns the seconds until the next round (None: the job's interval)."""

_MAX_BACKOFF_SECONDS = 5.0
_MIN_STALE_SECONDS = 10.0
_log = get_logger(__name__)


class TaskState(StrEnum):
    OK = "ok"
    STUCK = "stuck"
    """No good tick for `stale_after`: it keeps failing, or a tick hangs."""
    DEAD = "dead"
    """Its asyncio task ended (only cancellation or a BaseException can do that)."""


@dataclass
class _Job:
    name: str
    tick: Tick
    interval: float
    stale_after: float
    last_ok: float
    failures: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervisor:
    def __init__(self, metrics: EngineMetrics, *, clock: Callable[[], float] = time.monotonic):
        self._metrics = metrics
        self._clock = clock
        self._jobs: dict[str, _Job] = {}
        self._stopping = asyncio.Event()

    def start(
        self, name: str, tick: Tick, *, interval: float, stale_after: float | None = None
    ) -> None:
        """Run `tick` every `interval` seconds until `stop()`, whatever it raises."""
        if name in self._jobs:
            raise ValueError(f"background job {name!r} started twice")
        stale = stale_after if stale_after is not None else max(5 * interval, _MIN_STALE_SECONDS)
        job = _Job(name, tick, interval, stale, last_ok=self._clock())
        job.task = asyncio.create_task(self._run(job), name=f"supervised:{name}")
        self._jobs[name] = job
        self._metrics.task_last_ok.labels(task=name).set_to_current_time()

    def states(self) -> dict[str, TaskState]:
        """Each job's state now; `/ready` fails unless every one is OK."""
        now = self._clock()
        states: dict[str, TaskState] = {}
        for name, job in self._jobs.items():
            if job.task is None or job.task.done():
                states[name] = TaskState.DEAD
            elif now - job.last_ok > job.stale_after:
                states[name] = TaskState.STUCK
            else:
                states[name] = TaskState.OK
        return states

    async def stop(self) -> None:
        self._stopping.set()
        tasks = [job.task for job in self._jobs.values() if job.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, job: _Job) -> None:
        while not self._stopping.is_set():
            try:
                delay = await asyncio.wait_for(job.tick(), job.stale_after)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the job must outlive any error
                delay = self._failed(job, exc)
            else:
                job.last_ok = self._clock()
                job.failures = 0
                self._metrics.task_last_ok.labels(task=job.name).set_to_current_time()
                if delay is None:
                    delay = job.interval
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
            else:
                await asyncio.sleep(0)  # let the rest of the engine run between full rounds

    def _failed(self, job: _Job, exc: Exception) -> float:
        job.failures += 1
        self._metrics.task_failures.labels(task=job.name).inc()
        delay: float = min(
            max(job.interval, _MAX_BACKOFF_SECONDS), job.interval * 2.0 ** min(job.failures, 16)
        )
        _log.error(
            "background_task_failed",
            task=job.name,
            error_type=type(exc).__name__,
            error=str(exc) or repr(exc),
            failures=job.failures,
            retry_in=round(delay, 3),
            # the traceback once per streak: an outage must not flood the log
            exc_info=exc if job.failures == 1 else None,
        )
        return delay
