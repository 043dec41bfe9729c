"""Start, stop and inspect the Kafka broker and the Redis server Parlour needs locally.

    python scripts/infra.py up       # use what answers, start what is missing, create topics
    python scripts/infra.py status
    python scripts/infra.py down     # stop only what this checkout started

"Use what answers": when a working Kafka / Redis already answers at the target address
(given by the environment, or the default 127.0.0.1 ports), it is used as it is and left
alone by `down`. Only processes started from this checkout are recorded in `.infra/run/`
(pid files) and stopped by `down`.

Environment:
    KAFKA_BOOTSTRAP_SERVERS  use this broker (host:port[,host:port]) instead of the default
    KAFKA_PORT               port of the local broker (default 9092)
    KAFKA_CONTROLLER_PORT    KRaft controller port of the local broker (default 9093)
    KAFKA_HEAP_OPTS          JVM heap flags (default -Xms256m -Xmx512m)
    KAFKA_START_TIMEOUT      seconds to wait for the broker (default 120)
    REDIS_URL                use this Redis (redis://[:password@]host:port/db)
    REDIS_HOST, REDIS_PORT   same, as parts (default 127.0.0.1, 6379)

The local Redis keeps its data in an append-only file (AOF, fsync every second) under
.infra/redis/, so a Redis restart loses at most the last second of writes, not every game.
`status` says whether the Redis it finds persists.

Process management needs only the standard library; the Kafka round trip and the topics
(names from parlour_protocol) need the project's virtualenv (`make install`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / ".infra"
RUN_DIR = INFRA / "run"
LOG_DIR = INFRA / "logs"
KAFKA_DIR = INFRA / "kafka"
KAFKA_LIBS = KAFKA_DIR / "libs"
KAFKA_DATA = KAFKA_DIR / "data"
KAFKA_CONFIG = KAFKA_DIR / "server.properties"
KAFKA_PID = RUN_DIR / "kafka.pid"
REDIS_PID = RUN_DIR / "redis.pid"
REDIS_DATA = INFRA / "redis"  # the append-only file lives here (appendonlydir/)
ENV_FILE = RUN_DIR / "env"
KAFKA_SRC = ROOT / "scripts" / "kafka"

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
JAVA_MIN_MAJOR = 17  # Kafka 4.x brokers need Java 17+


class InfraError(Exception):
    """A problem the user can act on; printed as one line, without a traceback."""


def say(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- addresses


@dataclass(frozen=True)
class KafkaTarget:
    bootstrap: str
    host: str
    port: int
    from_env: bool

    @property
    def startable(self) -> bool:
        """Only a single loopback address can be started here."""
        return "," not in self.bootstrap and self.host in LOOPBACK


@dataclass(frozen=True)
class RedisTarget:
    host: str
    port: int
    username: str | None
    password: str | None
    db: int
    url: str
    from_env: bool

    @property
    def startable(self) -> bool:
        return self.host in LOOPBACK and self.password is None


def _env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise InfraError(f"{name}={raw!r} is not a TCP port")
    return int(raw)


def _split_host_port(address: str, default_port: int) -> tuple[str, int]:
    host, sep, port = address.strip().rpartition(":")
    if not sep:
        return address.strip(), default_port
    if not port.isdigit():
        raise InfraError(f"{address!r} is not host:port")
    return host.strip("[]"), int(port)


def kafka_target() -> KafkaTarget:
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if env:
        first = env.split(",")[0]
        host, port = _split_host_port(first, 9092)
        return KafkaTarget(env, host, port, from_env=True)
    port = _env_port("KAFKA_PORT", 9092)
    return KafkaTarget(f"127.0.0.1:{port}", "127.0.0.1", port, from_env=False)


def redis_target() -> RedisTarget:
    url = os.environ.get("REDIS_URL", "").strip()
    if url:
        parts = urlsplit(url)
        if parts.scheme not in {"redis", "rediss"}:
            raise InfraError(f"REDIS_URL={url!r}: only redis:// URLs are supported here")
        if parts.scheme == "rediss":
            raise InfraError("REDIS_URL uses TLS (rediss://); infra.py only checks plain Redis")
        db_text = parts.path.lstrip("/") or "0"
        password = unquote(parts.password) if parts.password else None
        return RedisTarget(
            host=parts.hostname or "127.0.0.1",
            username=unquote(parts.username) if parts.username else None,
            port=parts.port or 6379,
            password=password,
            db=int(db_text) if db_text.isdigit() else 0,
            url=url,
            from_env=True,
        )
    host = os.environ.get("REDIS_HOST", "").strip()
    port = _env_port("REDIS_PORT", 6379)
    from_env = bool(host) or "REDIS_PORT" in os.environ
    host = host or "127.0.0.1"
    return RedisTarget(host, port, None, None, 0, f"redis://{host}:{port}/0", from_env)


# --------------------------------------------------------------------------- small checks


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _resp_command(args: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def _read_reply(sock: socket.socket, buffer: bytearray) -> object:
    """One RESP2 reply: str for simple strings, bytes | None for bulk strings, int, list;
    an error reply becomes an InfraError."""

    def line() -> bytes:
        while b"\r\n" not in buffer:
            chunk = sock.recv(4096)
            if not chunk:
                raise OSError("connection closed")
            buffer.extend(chunk)
        end = buffer.index(b"\r\n")
        text = bytes(buffer[:end])
        del buffer[: end + 2]
        return text

    head = line()
    kind, rest = head[:1], head[1:]
    if kind == b"+":
        return rest.decode(errors="replace")
    if kind == b"-":
        raise InfraError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        while len(buffer) < size + 2:
            chunk = sock.recv(max(4096, size + 2 - len(buffer)))
            if not chunk:
                raise OSError("connection closed")
            buffer.extend(chunk)
        data = bytes(buffer[:size])
        del buffer[: size + 2]
        return data
    if kind == b"*":
        count = int(rest)
        return None if count < 0 else [_read_reply(sock, buffer) for _ in range(count)]
    raise OSError(f"unexpected reply {head[:80]!r}")


def redis_call(target: RedisTarget, *commands: list[str], timeout: float = 2.0) -> list[object]:
    """Send commands on one connection (after AUTH when the target has a password) and
    return their replies. Raises OSError when nothing answers, InfraError on an error reply."""
    with socket.create_connection((target.host, target.port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        buffer = bytearray()
        if target.password is not None:
            auth = ["AUTH", target.password]
            if target.username:
                auth.insert(1, target.username)
            sock.sendall(_resp_command([a.encode() for a in auth]))
            _read_reply(sock, buffer)
        if target.db:
            sock.sendall(_resp_command([b"SELECT", str(target.db).encode()]))
            _read_reply(sock, buffer)
        replies = []
        for command in commands:
            sock.sendall(_resp_command([a.encode() for a in command]))
            replies.append(_read_reply(sock, buffer))
        return replies


def redis_ping(target: RedisTarget, timeout: float = 2.0) -> str | None:
    """None when Redis answers PING with PONG; otherwise why not (one line)."""
    try:
        [reply] = redis_call(target, ["PING"], timeout=timeout)
    except OSError as exc:
        return f"no answer ({exc.strerror or exc})"
    except (InfraError, ValueError) as exc:
        return f"refused: {exc}"
    if reply == "PONG":
        return None
    return f"unexpected reply to PING: {reply!r:.80}"


def redis_persistence(target: RedisTarget) -> str:
    """One line on what survives a restart of the Redis at `target`: its AOF and RDB
    settings and its eviction policy, read with CONFIG GET."""
    wanted = ["appendonly", "appendfsync", "save", "maxmemory-policy", "dir"]
    try:
        replies = redis_call(target, *(["CONFIG", "GET", name] for name in wanted))
    except (OSError, InfraError, ValueError) as exc:
        return f"persistence unknown (CONFIG GET refused: {exc})"
    config: dict[str, str] = {}
    for reply in replies:
        if isinstance(reply, list) and len(reply) == 2:
            name, value = (
                v.decode(errors="replace") if isinstance(v, bytes) else "" for v in reply
            )
            config[name] = value
    if config.get("appendonly") == "yes":
        how = f"AOF on (appendfsync {config.get('appendfsync', '?')})"
    elif config.get("save"):
        how = f"AOF OFF, RDB snapshots only (save {config['save']}): a crash loses recent writes"
    else:
        how = "NO persistence (AOF off, no RDB): a restart loses every game"
    policy = config.get("maxmemory-policy", "?")
    if policy != "noeviction":
        policy += " (evicts keys: games can vanish)"
    return f"{how}; maxmemory-policy {policy}; dir {config.get('dir', '?')}"


def _quiet_aiokafka() -> None:
    # aiokafka logs every refused connection; infra.py says what matters itself
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL + 1)


def _need_aiokafka() -> None:
    try:
        import aiokafka  # noqa: F401
    except ImportError:
        raise InfraError(
            "aiokafka is not importable: run this with the project's virtualenv "
            "(`make install`, then `.venv/bin/python scripts/infra.py ...`)"
        ) from None


async def _round_trip(bootstrap: str) -> None:
    """Produce one record with acks=all and read it back through a consumer group."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from infra_topics import HEALTH_TOPIC

    await _ensure_topics(bootstrap, {HEALTH_TOPIC: 1}, quiet=True)
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


def kafka_check(bootstrap: str, timeout: float = 20.0) -> str | None:
    """None when a produce/consume round trip works; otherwise why not (one line)."""
    _need_aiokafka()
    _quiet_aiokafka()

    async def run() -> None:
        await asyncio.wait_for(_round_trip(bootstrap), timeout)

    try:
        asyncio.run(run())
    except TimeoutError:
        return f"no produce/consume round trip within {timeout:.0f}s"
    except Exception as exc:  # noqa: BLE001 - any client failure means "not usable yet"
        return f"{type(exc).__name__}: {exc}".strip()
    return None


async def _ensure_topics(
    bootstrap: str, topics: dict[str, int], *, quiet: bool = False
) -> list[str]:
    """Create the missing topics, wait until every partition has a leader; returns the
    names that were created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(n, p, 1) for n, p in topics.items() if n not in existing]
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


def _service_topics() -> dict[str, int]:
    # imported late: it needs the project installed, which `down` and `status` do not
    from infra_topics import TOPICS

    return dict(TOPICS)


def ensure_topics(bootstrap: str) -> list[str]:
    _need_aiokafka()
    _quiet_aiokafka()
    return asyncio.run(_ensure_topics(bootstrap, _service_topics()))


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


# --------------------------------------------------------------------------- processes


def _cmdline(pid: int) -> list[str]:
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


def _is_our_kafka(pid: int) -> bool:
    cmd = _cmdline(pid)
    return "kafka.Kafka" in cmd and str(KAFKA_CONFIG) in cmd


def _is_our_redis(pid: int) -> bool:
    # a daemonized redis rewrites its command line; it runs in the --dir we gave it (RUN_DIR
    # for a Redis started before it kept an append-only file)
    cmd = _cmdline(pid)
    return bool(cmd) and "redis-server" in cmd[0] and _cwd(pid) in (REDIS_DATA, RUN_DIR)


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
    pid = our_pid(pid_file, is_ours)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        say(f"{name:<6} nothing to stop (not started by this checkout)")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while is_ours(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    how = "stopped"
    if is_ours(pid):
        os.kill(pid, signal.SIGKILL)
        how = f"killed after {grace:.0f}s"
        while is_ours(pid):
            time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
    # a daemon's parent is init, which reaps it a moment later: wait, so that nothing of
    # ours (not even a zombie) is listed once `down` returns
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    say(f"{name:<6} {how} (pid {pid})")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:])


def _rotate_log(path: Path) -> None:
    if path.exists():
        path.replace(path.with_name(path.name + ".1"))


# --------------------------------------------------------------------------- kafka


def _java_major() -> int:
    java = shutil.which("java")
    if java is None:
        raise InfraError(
            "java not found: the local Kafka broker needs Java 17+ "
            "(e.g. `apt-get install openjdk-17-jre-headless`), "
            "or set KAFKA_BOOTSTRAP_SERVERS to a running broker"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise InfraError(f"cannot tell the Java version from `java -version`: {out.stderr!r}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _kafka_jars() -> None:
    """Fetch the broker's jars with Maven once; re-fetch when scripts/kafka/pom.xml changes."""
    pom = KAFKA_SRC / "pom.xml"
    stamp = KAFKA_LIBS / ".pom.sha256"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text().strip() == digest:
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise InfraError(
            "mvn not found: Maven fetches the Kafka broker's jars once "
            "(e.g. `apt-get install maven`), or set KAFKA_BOOTSTRAP_SERVERS to a running broker"
        )
    say("kafka  fetching broker jars with Maven (once; cached in .infra/kafka/libs) ...")
    if KAFKA_LIBS.exists():
        shutil.rmtree(KAFKA_LIBS)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={KAFKA_LIBS}",
        "-DincludeScope=runtime",
    ]
    if repo := os.environ.get("PARLOUR_MAVEN_REPO"):
        cmd.append(f"-Dmaven.repo.local={repo}")
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        errors = [ln for ln in result.stdout.splitlines() if "ERROR" in ln][:5]
        raise InfraError("Maven could not fetch the Kafka jars:\n" + "\n".join(errors))
    stamp.write_text(digest + "\n")


def _write_kafka_config(host: str, port: int, controller_port: int) -> None:
    template = string.Template((KAFKA_SRC / "server.properties").read_text())
    KAFKA_CONFIG.write_text(
        template.substitute(
            host=host, port=port, controller_port=controller_port, data_dir=KAFKA_DATA
        )
    )


def _format_storage() -> None:
    if (KAFKA_DATA / "meta.properties").exists():
        return
    # a Kafka Uuid: 16 random bytes, URL-safe base64 without padding
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    result = subprocess.run(
        [
            "java",
            "-cp",
            f"{KAFKA_LIBS}/*",
            f"-Dlog4j2.configurationFile={KAFKA_SRC / 'log4j2.properties'}",
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            cluster_id,
            "--config",
            str(KAFKA_CONFIG),
            "--ignore-formatted",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise InfraError(f"formatting Kafka storage failed: {result.stderr.strip()[-500:]}")


def _start_kafka(target: KafkaTarget) -> subprocess.Popen[bytes]:
    major = _java_major()
    if major < JAVA_MIN_MAJOR:
        raise InfraError(f"java is version {major}; the Kafka 4 broker needs Java 17+")
    _kafka_jars()
    controller_port = _env_port("KAFKA_CONTROLLER_PORT", 9093)
    if controller_port == target.port:
        raise InfraError("KAFKA_CONTROLLER_PORT must differ from the broker port")
    if port_open(target.host, controller_port):
        raise InfraError(
            f"the controller port {controller_port} is taken by another process; "
            "set KAFKA_CONTROLLER_PORT"
        )
    KAFKA_DIR.mkdir(parents=True, exist_ok=True)
    _write_kafka_config("127.0.0.1", target.port, controller_port)
    _format_storage()
    log = LOG_DIR / "kafka.log"
    _rotate_log(log)
    heap = os.environ.get("KAFKA_HEAP_OPTS", "-Xms256m -Xmx512m").split()
    cmd = [
        "java",
        *heap,
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={KAFKA_SRC / 'log4j2.properties'}",
        "-cp",
        f"{KAFKA_LIBS}/*",  # the JVM expands this wildcard itself
        "kafka.Kafka",
        str(KAFKA_CONFIG),
    ]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=KAFKA_DIR,
            start_new_session=True,  # outlives `make infra-up`, not killed by its Ctrl-C
        )
    KAFKA_PID.write_text(f"{proc.pid}\n")
    return proc


def kafka_up(target: KafkaTarget) -> tuple[str, bool]:
    """Make the target broker usable; returns (how, already_up)."""
    pid = our_pid(KAFKA_PID, _is_our_kafka)
    if pid is not None:
        match = re.search(r"^listeners=PLAINTEXT://[^,]*:(\d+)", KAFKA_CONFIG.read_text(), re.M)
        if match and int(match.group(1)) != target.port:
            raise InfraError(
                f"the Kafka broker this checkout started (pid {pid}) listens on port "
                f"{match.group(1)}, not {target.port}: run `make infra-down` first"
            )
    if pid is None and port_open(target.host, target.port):
        why = kafka_check(target.bootstrap)
        if why is not None:
            raise InfraError(
                f"something answers on {target.bootstrap} but Kafka does not work there: {why}"
            )
        return "already running (not started by this checkout)", True
    if pid is not None and kafka_check(target.bootstrap, timeout=10) is None:
        return f"already running (started by this checkout, pid {pid})", True
    if pid is None:
        if not target.startable:
            raise InfraError(
                f"no Kafka answers at KAFKA_BOOTSTRAP_SERVERS={target.bootstrap} "
                "and only a single 127.0.0.1 address can be started here"
            )
        say(f"kafka  starting on {target.bootstrap} ...")
        proc = _start_kafka(target)
        pid = proc.pid

        def alive() -> bool:
            # not _is_our_kafka: right after the fork the child still shows python's cmdline
            return proc.poll() is None
    else:
        our = pid

        def alive() -> bool:
            return _is_our_kafka(our)

    started = time.monotonic()
    timeout = float(os.environ.get("KAFKA_START_TIMEOUT", "120"))
    why = "not started"
    while time.monotonic() - started < timeout:
        if not alive():
            KAFKA_PID.unlink(missing_ok=True)
            raise InfraError(
                f"the Kafka broker exited during start-up; last lines of "
                f".infra/logs/kafka.log:\n{_tail(LOG_DIR / 'kafka.log')}"
            )
        if port_open(target.host, target.port):
            why = kafka_check(target.bootstrap, timeout=15) or ""
            if not why:
                return f"started (pid {pid}, ready in {time.monotonic() - started:.1f}s)", False
        time.sleep(0.5)
    raise InfraError(
        f"Kafka did not become usable within {timeout:.0f}s ({why}); "
        f"see .infra/logs/kafka.log:\n{_tail(LOG_DIR / 'kafka.log')}"
    )


# --------------------------------------------------------------------------- redis


def _apt_lists_fresh(max_age: float = 24 * 3600) -> bool:
    lists = list(Path("/var/lib/apt/lists").glob("*_Packages*"))
    return bool(lists) and time.time() - max(p.stat().st_mtime for p in lists) < max_age


def _redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise InfraError(
            "redis-server not found: install it (`sudo apt-get install redis-server`), "
            "or set REDIS_URL to a running Redis"
        )
    say("redis  redis-server is missing; installing it with apt-get ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    update = ["apt-get", "update", "-q"]
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "redis-server"]

    def run(step: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(step, env=env, capture_output=True, text=True, check=False)

    updated = False
    if not _apt_lists_fresh():
        run(update)
        updated = True
    result = run(install)
    if result.returncode != 0 and not updated:  # the package lists may be stale after all
        run(update)
        result = run(install)
    if result.returncode != 0:
        raise InfraError(f"`{' '.join(install)}` failed: {result.stderr.strip()[-400:]}")
    found = shutil.which("redis-server")
    if found is None:
        raise InfraError("apt-get installed redis-server but it is not on PATH")
    return found


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
    pid = our_pid(REDIS_PID, _is_our_redis)
    why = redis_ping(target)
    if why is None:
        if pid is not None:
            return f"already running (started by this checkout, pid {pid})", True
        return "already running (not started by this checkout)", True
    if pid is not None:
        match = re.search(r":(\d+)\b", " ".join(_cmdline(pid)))  # "redis-server 127.0.0.1:6379"
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
        _rotate_log(log)
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
            pid = our_pid(REDIS_PID, _is_our_redis)
            return f"started (pid {pid})", False
        time.sleep(0.1)
    raise InfraError(f"Redis did not answer within 15s ({why}); see .infra/logs/redis.log")


# --------------------------------------------------------------------------- commands


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    """One `up`/`down` at a time per checkout."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with (RUN_DIR / "infra.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _write_env(kafka: KafkaTarget, redis: RedisTarget) -> None:
    ENV_FILE.write_text(
        "# written by scripts/infra.py up: the addresses the services should use\n"
        f"KAFKA_BOOTSTRAP_SERVERS={quote(kafka.bootstrap, safe=':,.[]')}\n"
        f"REDIS_URL={redis.url}\n"
    )


def _say_persistence(redis: RedisTarget) -> None:
    line = redis_persistence(redis)
    say(f"       {line}")
    pid = our_pid(REDIS_PID, _is_our_redis)
    ours = pid is not None and f":{redis.port}" in " ".join(_cmdline(pid))
    if not line.startswith("AOF on") and ours:
        # started by an infra.py from before the append-only file: `up` leaves it running
        say(
            "       (started without an append-only file by an older infra.py; "
            "`make infra-down && make infra-up` restarts it with one, empty)"
        )


def cmd_up() -> None:
    kafka, redis = kafka_target(), redis_target()
    with _lock():
        began = time.monotonic()
        redis_how, redis_was_up = redis_up(redis)
        say(f"redis  {redis.url:<28} {redis_how}")
        _say_persistence(redis)
        kafka_how, kafka_was_up = kafka_up(kafka)
        say(f"kafka  {kafka.bootstrap:<28} {kafka_how}")
        created = ensure_topics(kafka.bootstrap)
        say(
            "topics "
            + ", ".join(f"{name} ({n})" for name, n in _service_topics().items())
            + (f" - created {len(created)}" if created else " - all present")
        )
        _write_env(kafka, redis)
    if redis_was_up and kafka_was_up and not created:
        say("everything is already up")
    else:
        say(f"infra up in {time.monotonic() - began:.1f}s")
    say(f"use: KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap} REDIS_URL={redis.url}")


def cmd_status() -> int:
    kafka, redis = kafka_target(), redis_target()
    healthy = True
    rpid = our_pid(REDIS_PID, _is_our_redis)
    why = redis_ping(redis)
    owner = f"started by this checkout, pid {rpid}" if rpid else "not started by this checkout"
    say(f"redis  {redis.url:<28} " + (f"up ({owner})" if why is None else f"DOWN: {why}"))
    healthy &= why is None
    if why is None:
        _say_persistence(redis)
    kpid = our_pid(KAFKA_PID, _is_our_kafka)
    owner = f"started by this checkout, pid {kpid}" if kpid else "not started by this checkout"
    if port_open(kafka.host, kafka.port):
        why = kafka_check(kafka.bootstrap, timeout=15)
    else:
        why = "nothing listens" + (" (starting?)" if kpid else "")
    say(f"kafka  {kafka.bootstrap:<28} " + (f"up ({owner})" if why is None else f"DOWN: {why}"))
    healthy &= why is None
    if why is None:
        have = existing_topics(kafka.bootstrap) or set()
        missing = [t for t in _service_topics() if t not in have]
        say("topics " + ("all present" if not missing else "MISSING: " + ", ".join(missing)))
        healthy &= not missing
    return 0 if healthy else 1


def cmd_down() -> None:
    with _lock():
        stop("kafka", KAFKA_PID, _is_our_kafka, grace=45)
        stop("redis", REDIS_PID, _is_our_redis, grace=10)
        ENV_FILE.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            cmd_up()
        elif args.command == "down":
            cmd_down()
        else:
            return cmd_status()
    except InfraError as exc:
        print(f"infra {args.command}: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print(f"infra {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
