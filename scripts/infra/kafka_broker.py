"""The local Kafka broker: Java check, its jars fetched with Maven, KRaft storage, start-up."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import string
import subprocess
import time
import uuid
from pathlib import Path

from infra.addresses import KafkaTarget, env_port, port_open
from infra.console import InfraError, say
from infra.kafka_probe import kafka_check
from infra.paths import (
    KAFKA_CONFIG,
    KAFKA_DATA,
    KAFKA_DIR,
    KAFKA_LIBS,
    KAFKA_PID,
    KAFKA_SRC,
    LOG_DIR,
)
from infra.processes import is_our_kafka, our_pid, rotate_log, tail

JAVA_MIN_MAJOR = 17  # Kafka 4.x brokers need Java 17+


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


def new_cluster_id() -> str:
    """A Kafka Uuid: 16 random bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def format_storage(config: Path, data_dir: Path, cluster_id: str) -> None:
    """Format the KRaft storage of one node once (a formatted `data_dir` is left alone)."""
    if (data_dir / "meta.properties").exists():
        return
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
            str(config),
            "--ignore-formatted",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise InfraError(f"formatting Kafka storage failed: {result.stderr.strip()[-500:]}")


def ensure_java_and_jars() -> None:
    """Java 17+ is installed and the broker's jars are in .infra/kafka/libs."""
    major = _java_major()
    if major < JAVA_MIN_MAJOR:
        raise InfraError(f"java is version {major}; the Kafka 4 broker needs Java 17+")
    _kafka_jars()


def spawn_broker(
    config: Path, cwd: Path, log: Path, pid_file: Path, heap: str
) -> subprocess.Popen[bytes]:
    """Start one broker JVM on `config` in its own session; its pid goes to `pid_file`."""
    rotate_log(log)
    cmd = [
        "java",
        *os.environ.get("KAFKA_HEAP_OPTS", heap).split(),
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={KAFKA_SRC / 'log4j2.properties'}",
        "-cp",
        f"{KAFKA_LIBS}/*",  # the JVM expands this wildcard itself
        "kafka.Kafka",
        str(config),
    ]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,  # outlives `make infra-up`, not killed by its Ctrl-C
        )
    pid_file.write_text(f"{proc.pid}\n")
    return proc


def _start_kafka(target: KafkaTarget) -> subprocess.Popen[bytes]:
    ensure_java_and_jars()
    controller_port = env_port("KAFKA_CONTROLLER_PORT", 9093)
    if controller_port == target.port:
        raise InfraError("KAFKA_CONTROLLER_PORT must differ from the broker port")
    if port_open(target.host, controller_port):
        raise InfraError(
            f"the controller port {controller_port} is taken by another process; "
            "set KAFKA_CONTROLLER_PORT"
        )
    KAFKA_DIR.mkdir(parents=True, exist_ok=True)
    _write_kafka_config("127.0.0.1", target.port, controller_port)
    format_storage(KAFKA_CONFIG, KAFKA_DATA, new_cluster_id())
    return spawn_broker(
        KAFKA_CONFIG, KAFKA_DIR, LOG_DIR / "kafka.log", KAFKA_PID, "-Xms256m -Xmx512m"
    )


def kafka_up(target: KafkaTarget) -> tuple[str, bool]:
    """Make the target broker usable; returns (how, already_up)."""
    pid = our_pid(KAFKA_PID, is_our_kafka)
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
            # not is_our_kafka: right after the fork the child still shows python's cmdline
            return proc.poll() is None
    else:
        our = pid

        def alive() -> bool:
            return is_our_kafka(our)

    started = time.monotonic()
    timeout = float(os.environ.get("KAFKA_START_TIMEOUT", "120"))
    why = "not started"
    while time.monotonic() - started < timeout:
        if not alive():
            KAFKA_PID.unlink(missing_ok=True)
            raise InfraError(
                f"the Kafka broker exited during start-up; last lines of "
                f".infra/logs/kafka.log:\n{tail(LOG_DIR / 'kafka.log')}"
            )
        if port_open(target.host, target.port):
            why = kafka_check(target.bootstrap, timeout=15) or ""
            if not why:
                return f"started (pid {pid}, ready in {time.monotonic() - started:.1f}s)", False
        time.sleep(0.5)
    raise InfraError(
        f"Kafka did not become usable within {timeout:.0f}s ({why}); "
        f"see .infra/logs/kafka.log:\n{tail(LOG_DIR / 'kafka.log')}"
    )
