"""Which asyncio event loop a service runs on: `EventLoopSettings` (EVENT_LOOP) and `run`.

Both services spend a large share of their CPU in the event loop itself: at light load a
command costs an engine about ten loop wake-ups (a Kafka fetch, the Redis commit, the produce
acknowledgement, the offset commit, ...), and each wake-up runs the loop's Python code. uvloop
(libuv, written in C) runs the same asyncio programs with a loop that costs less per wake-up
and per socket write. Measured end to end (`make bench`'s e2e phase, two pairs of runs):
CPU per command 5-20 % lower in the engine and in the gateways, and a gateway delivered
18 % more events per second in the fan-out phase; memory per idle socket was the same.

``auto`` (the default) uses uvloop where it is installed (it is a dependency on Linux and
macOS) and the standard library's loop elsewhere (Windows); ``uvloop`` refuses to start
without it; ``asyncio`` always uses the standard library's loop (e.g. to rule the loop out
while chasing a problem).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, field_validator

EventLoop = Literal["auto", "uvloop", "asyncio"]

T = TypeVar("T")


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


class EventLoopSettings(BaseModel):
    """The event loop a process runs on. Inherit it before `ServiceSettings`."""

    event_loop: EventLoop = Field(
        default="auto",
        description="`auto`: uvloop when it is installed (a dependency on Linux and macOS), "
        "else the standard library's loop; `uvloop`: refuse to start without it; `asyncio`: "
        "always the standard library's loop",
    )

    @field_validator("event_loop", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("event_loop")
    @classmethod
    def _installed(cls, value: EventLoop) -> EventLoop:
        if value == "uvloop" and not uvloop_available():
            raise ValueError("uvloop is not installed (pip install uvloop), or use auto")
        return value


def loop_in_use(choice: EventLoop) -> Literal["uvloop", "asyncio"]:
    """The loop `run` starts for `choice`."""
    if choice == "asyncio" or (choice == "auto" and not uvloop_available()):
        return "asyncio"
    return "uvloop"


def loop_factory(choice: EventLoop) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A new-loop factory for `asyncio.Runner` (None: the standard library's loop)."""
    if loop_in_use(choice) == "asyncio":
        return None
    import uvloop

    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def running_loop() -> Literal["uvloop", "asyncio"]:
    """The loop this coroutine runs on, as the start-up logs name it."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.split(".")[0] == "uvloop" else "asyncio"


def run(main: Coroutine[Any, Any, T], choice: EventLoop) -> T:
    """`asyncio.run(main)` on the loop `choice` names."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)
