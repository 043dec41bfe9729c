"""Socket holders: a process that opens many authenticated `ParlourClient`s on one gateway,
keeps them idle (heartbeating as the welcome asks) and counts the chat lines they receive.
Used for the connections phase (how many, how fast, how much memory on the gateway) and the
fan-out phase (deliveries per second into big rooms)."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import resource
import time
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from parlour_client import Frame, ParlourClient

CHAT = "games.event.chat_message"


def raise_fd_limit() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Holder:
    def __init__(self) -> None:
        self.clients: list[ParlourClient] = []
        self.received = 0
        self.last = 0.0
        self.latencies: list[float] = []
        self.failures = 0

    def on_frame(self, frame: Frame, _at: float) -> None:
        if frame.get("type") != CHAT:
            return
        now = time.time()
        self.received += 1
        self.last = now
        if self.received % 10 == 0:  # a sample is enough, and parsing every stamp costs
            sent = datetime.fromisoformat(str(frame["timestamp"]).replace("Z", "+00:00"))
            self.latencies.append((now - sent.timestamp()) * 1000.0)

    async def open(self, url: str, tokens: list[str], concurrency: int) -> float:
        sem = asyncio.Semaphore(concurrency)

        async def one(token: str) -> None:
            async with sem:
                for attempt in range(3):
                    try:
                        client = await ParlourClient.connect(
                            url, token=token, on_frame=self.on_frame, timeout=60
                        )
                    except (OSError, TimeoutError) as exc:
                        if attempt == 2:
                            self.failures += 1
                            print(f"holder: connect failed: {type(exc).__name__}: {exc}")
                            return
                        await asyncio.sleep(1 + attempt)
                    else:
                        self.clients.append(client)
                        return

        started = time.perf_counter()
        await asyncio.gather(*(one(t) for t in tokens))
        return time.perf_counter() - started


async def _serve(pipe: Connection, url: str, tokens: list[str], concurrency: int) -> None:
    raise_fd_limit()
    holder = Holder()
    try:
        took = await holder.open(url, tokens, concurrency)
        pipe.send({"open": len(holder.clients), "failures": holder.failures, "seconds": took})
        while True:
            step = await asyncio.to_thread(pipe.recv)
            if step[0] == "stop":
                break
            if step[0] == "reset":
                holder.received, holder.last, holder.latencies = 0, 0.0, []
            pipe.send(
                {"received": holder.received, "last": holder.last, "latencies_ms": holder.latencies}
            )
    finally:
        sem = asyncio.Semaphore(500)

        async def close(client: ParlourClient) -> None:
            async with sem:
                await client.close()

        await asyncio.gather(*(close(c) for c in holder.clients), return_exceptions=True)


def holder_main(pipe: Connection, url: str, tokens: list[str], concurrency: int) -> None:
    try:
        asyncio.run(_serve(pipe, url, tokens, concurrency))
    except Exception as exc:  # noqa: BLE001 - reported to the coordinator
        pipe.send({"error": f"{type(exc).__name__}: {exc}"})


class Holders:
    """The coordinator's handle on one holder process."""

    def __init__(self, url: str, tokens: list[str], concurrency: int = 100) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipe, theirs = ctx.Pipe()
        self.proc = ctx.Process(
            target=holder_main, args=(theirs, url, tokens, concurrency), daemon=True
        )
        self.proc.start()

    def ask(self, step: tuple[str, ...], within: float = 600) -> dict[str, Any]:
        if step[0] != "opened":
            self.pipe.send(step)
        if not self.pipe.poll(within):
            raise TimeoutError(f"socket holder {self.proc.pid} did not answer in {within}s")
        answer: dict[str, Any] = self.pipe.recv()
        if "error" in answer:
            raise RuntimeError(f"socket holder {self.proc.pid}: {answer['error']}")
        return answer

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.pipe.send(("stop",))
        self.proc.join(60)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
