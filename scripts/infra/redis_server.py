"""The local Redis: redis-server installed with apt-get when missing, its command line
(append-only file, no eviction), start-up."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from infra.addresses import RedisTarget, port_open
from infra.apt import Need, apt_install
from infra.console import InfraError
from infra.paths import LOG_DIR, REDIS_DATA, REDIS_PID
from infra.processes import cmdline, is_our_redis, our_pid, rotate_log
from infra.redis_probe import redis_ping


def _redis_server() -> str:
    need = Need("redis-server", "redis-server", "the local Redis")
    return apt_install(need, instead="set REDIS_URL to a running Redis")[need.command]


def redis_command(
    server: str, port: int, *, data_dir: Path, log: Path, pid_file: Path, daemonize: bool = True
) -> list[str]:
    """The redis-server command line of the local Redis: loopback only, every write appended
    to an AOF in `data_dir` and fsynced once a second (a crash loses at most about a second),
    no RDB snapshots besides, never evicting keys (a game must not silently vanish)."""
    return [
        server,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--maxmemory-policy",
        "noeviction",
        "--daemonize",
        "yes" if daemonize else "no",
        "--pidfile",
        str(pid_file),
        "--logfile",
        str(log),
        "--dir",
        str(data_dir),
    ]


def redis_up(target: RedisTarget) -> tuple[str, bool]:
    pid = our_pid(REDIS_PID, is_our_redis)
    why = redis_ping(target)
    if why is None:
        if pid is not None:
            return f"already running (started by this checkout, pid {pid})", True
        return "already running (not started by this checkout)", True
    if pid is not None:
        match = re.search(r":(\d+)\b", " ".join(cmdline(pid)))  # "redis-server 127.0.0.1:6379"
        if match and int(match.group(1)) != target.port:
            raise InfraError(
                f"the redis-server this checkout started (pid {pid}) listens on port "
                f"{match.group(1)}, not {target.port}: run `make infra-down` first"
            )
    if pid is None and port_open(target.host, target.port):
        raise InfraError(f"something answers on {target.host}:{target.port} but not Redis: {why}")
    if pid is None:
        if not target.startable:
            raise InfraError(f"no Redis answers at {target.url}: {why}")
        server = _redis_server()
        log = LOG_DIR / "redis.log"
        rotate_log(log)
        REDIS_DATA.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            redis_command(server, target.port, data_dir=REDIS_DATA, log=log, pid_file=REDIS_PID),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise InfraError(f"redis-server did not start: {result.stderr.strip()}")
    started = time.monotonic()
    while time.monotonic() - started < 15:
        why = redis_ping(target)
        if why is None:
            pid = our_pid(REDIS_PID, is_our_redis)
            return f"started (pid {pid})", False
        time.sleep(0.1)
    raise InfraError(f"Redis did not answer within 15s ({why}); see .infra/logs/redis.log")
