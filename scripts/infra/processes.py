"""The processes this checkout started: finding them by pid file or by looking, stopping
them, and their log files."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from infra.console import say
from infra.paths import KAFKA_CONFIG, REDIS_DATA, RUN_DIR


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def is_our_kafka(pid: int) -> bool:
    cmd = cmdline(pid)
    return "kafka.Kafka" in cmd and str(KAFKA_CONFIG) in cmd


def is_our_redis(pid: int) -> bool:
    # a daemonized redis rewrites its command line; it runs in the --dir we gave it (RUN_DIR
    # for a Redis started before it kept an append-only file)
    cmd = cmdline(pid)
    return bool(cmd) and "redis-server" in cmd[0] and _cwd(pid) in (REDIS_DATA, RUN_DIR)


def is_kafka_on(config: Path) -> Callable[[int], bool]:
    """Is a pid the broker JVM started on this config file (a node of the cluster)."""

    def check(pid: int) -> bool:
        cmd = cmdline(pid)
        return "kafka.Kafka" in cmd and str(config) in cmd

    return check


def is_redis_in(data_dir: Path) -> Callable[[int], bool]:
    """Is a pid the redis-server running in `data_dir` (a node of the cluster)."""

    def check(pid: int) -> bool:
        cmd = cmdline(pid)
        return bool(cmd) and "redis-server" in cmd[0] and _cwd(pid) == data_dir

    return check


def _all_pids() -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def our_pid(pid_file: Path, is_ours: Callable[[int], bool]) -> int | None:
    """The pid of the process this checkout started, from its pid file or, if that was
    lost, by looking for it; None when there is none."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file.read_text().strip())
        if is_ours(pid):
            return pid
    for pid in _all_pids():
        if is_ours(pid):
            return pid
    return None


def stop(name: str, pid_file: Path, is_ours: Callable[[int], bool], grace: float) -> None:
    stop_all([(name, pid_file, is_ours)], grace)


def stop_all(processes: Sequence[tuple[str, Path, Callable[[int], bool]]], grace: float) -> None:
    """SIGTERM every process of ours at once, then wait for them together (the nodes of a
    cluster: stopped one by one, the last brokers would wait for a quorum already gone);
    SIGKILL what still runs after `grace` seconds."""
    running: list[tuple[str, Path, Callable[[int], bool], int]] = []
    for name, pid_file, is_ours in processes:
        pid = our_pid(pid_file, is_ours)
        if pid is None:
            pid_file.unlink(missing_ok=True)
            say(f"{name:<6} nothing to stop (not started by this checkout)")
            continue
        os.kill(pid, signal.SIGTERM)
        running.append((name, pid_file, is_ours, pid))
    deadline = time.monotonic() + grace
    while any(is_ours(pid) for _, _, is_ours, pid in running) and time.monotonic() < deadline:
        time.sleep(0.2)
    for name, pid_file, is_ours, pid in running:
        how = "stopped"
        if is_ours(pid):
            os.kill(pid, signal.SIGKILL)
            how = f"killed after {grace:.0f}s"
            while is_ours(pid):
                time.sleep(0.1)
        pid_file.unlink(missing_ok=True)
        # a daemon's parent is init, which reaps it a moment later: wait, so that nothing of
        # ours (not even a zombie) is listed once `down` returns
        reaped = time.monotonic() + 5
        while Path(f"/proc/{pid}").exists() and time.monotonic() < reaped:
            time.sleep(0.1)
        say(f"{name:<6} {how} (pid {pid})")


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:])


def rotate_log(path: Path) -> None:
    if path.exists():
        path.replace(path.with_name(path.name + ".1"))
