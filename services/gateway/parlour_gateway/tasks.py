"""The gateway's background loops under supervision: any exception is logged, the loop backs
off and starts again, and `problems()` names every loop that is failing, dead or stalled, so
`/ready` can fail while one is.

A loop body takes a `beat` callable and calls it after each completed round; a loop counts as
failing from its exception until its first round after the restart completes, and as stalled
when no round completed within its `stall_after`."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from parlour_gateway.logs import get_logger
from parlour_gateway.metrics import Metrics

log = get_logger("parlour_gateway.tasks")

Beat = Callable[[], None]
LoopBody = Callable[[Beat], Awaitable[None]]

_FIRST_BACKOFF = 0.5
_MAX_BACKOFF = 30.0
_CALM_AFTER = 60.0
"""a loop that ran this long before failing starts again from the first backoff"""


@dataclass
class _Loop:
    name: str
    stall_after: float
    clock: Callable[[], float]
    last_beat: float
    failing: str | None = None
    """the exception type of the failure not yet followed by a completed round"""
    task: asyncio.Task[None] | None = None

    def beat(self) -> None:
        self.last_beat = self.clock()
        self.failing = None


class Supervisor:
    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self._clock = clock
        self._loops: dict[str, _Loop] = {}

    def spawn(self, name: str, body: LoopBody, *, stall_after: float) -> None:
        loop = _Loop(name, stall_after, self._clock, self._clock())
        loop.task = asyncio.create_task(self._run(loop, body), name=name)
        self._loops[name] = loop

    async def _run(self, loop: _Loop, body: LoopBody) -> None:
        backoff = _FIRST_BACKOFF
        while True:
            started = self._clock()
            try:
                await body(loop.beat)
                raise RuntimeError("the loop returned")  # a loop body never ends on its own
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any fault: log, back off, go on
                if self._clock() - started > _CALM_AFTER:
                    backoff = _FIRST_BACKOFF
                loop.failing = type(exc).__name__
                self._metrics.task_failures.labels(loop.name).inc()
                log.exception("background_task_failed", task=loop.name, retry_in=round(backoff, 2))
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, _MAX_BACKOFF)
            loop.last_beat = max(loop.last_beat, self._clock())  # the stall clock restarts

    def problems(self) -> dict[str, str]:
        """Loop name -> what is wrong with it, for every loop that is not healthy."""
        now = self._clock()
        found: dict[str, str] = {}
        for name, loop in self._loops.items():
            if loop.task is None or loop.task.done():
                found[name] = "dead"
            elif loop.failing is not None:
                found[name] = f"failing: {loop.failing}"
            elif now - loop.last_beat > loop.stall_after:
                found[name] = f"stalled for {now - loop.last_beat:.0f}s"
        return found

    async def stop(self) -> None:
        tasks = [loop.task for loop in self._loops.values() if loop.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loops.clear()
