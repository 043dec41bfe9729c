"""A redis-server process owned by one test, started with the command line `make infra-up`
runs (append-only file, fsync every second), for tests that restart or kill Redis: the shared
one must never be restarted."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis.asyncio as aioredis

from tests.support.engine_harness import free_port
from tests.support.paths import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
from infra.redis_server import redis_command


class OwnRedis:
    """A redis-server process of this test: the infra's flags, data in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        server = shutil.which("redis-server")
        assert server is not None, "redis-server is not on PATH (apt-get install redis-server)"
        directory.mkdir(parents=True, exist_ok=True)
        self.argv = redis_command(
            server,
            self.port,
            data_dir=directory,
            log=directory / "redis.log",
            pid_file=directory / "redis.pid",
            daemonize=False,
        )

    def spawn(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL)

    async def start(self) -> None:
        """Start it and wait until it answers (after replaying its AOF)."""
        self.spawn()
        assert self.proc is not None
        deadline = time.monotonic() + 15
        client = aioredis.from_url(self.url)
        try:
            while True:
                assert self.proc.poll() is None, f"redis exited: {self.log_tail()}"
                with contextlib.suppress(OSError, aioredis.RedisError):
                    if await client.ping():
                        return
                assert time.monotonic() < deadline, f"redis not up: {self.log_tail()}"
                await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    def stop(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(15)

    def log_tail(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"
