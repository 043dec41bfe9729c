"""The services as the deployment files run them: the command and environment of the gateway
and engine, read from deploy/compose/docker-compose.yml and from the Deployments that
`kustomize build deploy/k8s/overlays/example` renders, start the real services natively here
and a whole game is played through them.

Only what a container gets from its platform is rewritten: Kafka and Redis addresses to the
local ones, listen hosts to 127.0.0.1, ports to free ones, a Secret-mounted key file to a
generated one, and a topic/key prefix and group id of the test's own (so it cannot touch other
tests' data). Everything else is passed as the file sets it, and nothing of the test's own
environment but PATH and HOME: a misspelt variable name, a bad value or a wrong console script
fails here (the unit tests in tests/unit/deploy check the same names and more)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from parlour_protocol.v1 import Topics
from tests.support import k8s
from tests.support.deploy import compose_services
from tests.support.engine_harness import free_port
from tests.support.gateway_harness import Keys
from tests.support.service_spec import ServiceSpec, current_variables, settings_of
from tests.support.stack import Player, play_turns, start_game

if TYPE_CHECKING:  # the fixture's type only
    from tests.integration.conftest import CreateTopics

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

# what names a Kafka or Redis address: replaced by the local services' addresses
ADDRESS_VARS = frozenset(
    {
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_HOST",
        "KAFKA_PORT",
        "REDIS_URL",
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_DB",
        "REDIS_PASSWORD",
    }
)
READY_WITHIN = 60.0


def _compose() -> tuple[dict[str, ServiceSpec], dict[str, str]]:
    return compose_services(), {}


def _k8s() -> tuple[dict[str, ServiceSpec], dict[str, str]]:
    # a Secret-mounted file (the JWT public key) is a path inside the pod: map each mount to
    # the component's mount path so the test can put its own file there
    mounts = {path: component for component, m in k8s.secret_mounts().items() for path in m}
    return k8s.deployment_specs(), mounts


SOURCES: dict[str, Callable[[], tuple[dict[str, ServiceSpec], dict[str, str]]]] = {
    "compose": _compose,
    "k8s": _k8s,
}


@dataclass
class Running:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    health_port: int
    ws_port: int | None = None

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _console_script(command: tuple[str, ...]) -> list[str]:
    script = Path(sys.executable).parent / command[0]
    assert script.exists(), f"{command[0]}: no such console script in the project's venv"
    return [str(script), *command[1:]]


def native_env(
    spec: ServiceSpec,
    *,
    kafka: str,
    redis_url: str,
    prefix: str,
    secret_paths: dict[str, Path],
) -> tuple[dict[str, str], int, int | None]:
    """The environment to run `spec` with here, its health port and (gateway) its WS port."""
    env = {name: value for name, value in spec.env.items() if name not in ADDRESS_VARS}
    for name, value in env.items():
        for mount, local in secret_paths.items():
            if value.startswith(mount.rstrip("/") + "/"):
                env[name] = str(local / value[len(mount.rstrip("/")) + 1 :])
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=kafka,
        REDIS_URL=redis_url,
        KAFKA_TOPIC_PREFIX=prefix,
        REDIS_KEY_PREFIX=prefix,
    )
    health = free_port()
    ws: int | None = None
    if spec.command[0] == "parlour-gateway":
        ws = free_port()
        env.update(
            WS_HOST="127.0.0.1",
            WS_PORT=str(ws),
            WS_HEALTH_HOST="127.0.0.1",
            WS_HEALTH_PORT=str(health),
            GATEWAY_ID=f"{prefix}gw",
        )
    else:
        group = env.get("ENGINE_GROUP_ID", "parlour-engine")
        env.update(
            ENGINE_HEALTH_HOST="127.0.0.1",
            ENGINE_HEALTH_PORT=str(health),
            ENGINE_GROUP_ID=f"{prefix}{group}",
        )
    env.update({k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ})
    return env, health, ws


async def _wait_ready(service: Running) -> None:
    deadline = time.monotonic() + READY_WITHIN
    async with httpx.AsyncClient() as client:
        while True:
            if service.proc.poll() is not None:
                raise AssertionError(
                    f"{service.name} exited {service.proc.returncode}:\n{service.tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                url = f"http://127.0.0.1:{service.health_port}/ready"
                if (await client.get(url, timeout=2)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{service.name} not ready in {READY_WITHIN}s:\n{service.tail()}"
                )
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def _running(
    specs: dict[str, ServiceSpec],
    mounts: dict[str, str],
    *,
    kafka: str,
    redis_url: str,
    prefix: str,
    keys: Keys,
    log_dir: Path,
) -> AsyncIterator[dict[str, Running]]:
    # every Secret mount gets a directory holding what the overlay's README creates in it
    secret_paths = {}
    for mount in mounts:
        local = log_dir / "secrets" / mount.strip("/").replace("/", "_")
        local.mkdir(parents=True, exist_ok=True)
        (local / "public.pem").write_bytes(keys.public_path.read_bytes())
        secret_paths[mount] = local
    started: dict[str, Running] = {}
    try:
        for name in ("engine", "gateway"):
            spec = specs[name]
            env, health, ws = native_env(
                spec, kafka=kafka, redis_url=redis_url, prefix=prefix, secret_paths=secret_paths
            )
            log = log_dir / f"{name}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(  # noqa: ASYNC220 - started once, not awaited on
                    _console_script(spec.command), env=env, stdout=out, stderr=subprocess.STDOUT
                )
            started[name] = Running(name, proc, log, health, ws)
        for service in started.values():
            await _wait_ready(service)
        yield started
    finally:
        for service in started.values():
            if service.proc.poll() is None:
                service.proc.send_signal(signal.SIGTERM)
        for service in started.values():
            try:
                service.proc.wait(30)
            except subprocess.TimeoutExpired:
                service.proc.kill()
                service.proc.wait(5)


@pytest.mark.parametrize("source", sorted(SOURCES))
async def test_services_run_as_the_deployment_files_say_and_play_a_game(
    source: str,
    kafka_bootstrap: str,
    redis_url: str,
    topic_prefix: str,
    create_topics: CreateTopics,
    tmp_path: Path,
) -> None:
    specs, mounts = SOURCES[source]()
    assert {"gateway", "engine"} <= specs.keys(), sorted(specs)
    assert specs["gateway"].command[0] == "parlour-gateway"
    assert specs["engine"].command[0] == "parlour-engine"
    for spec in (specs["gateway"], specs["engine"]):
        # a misspelt name would be ignored by the service (settings ignore unknown variables)
        unread = sorted(set(spec.env) - current_variables(settings_of(spec)))
        assert unread == [], f"{source} {spec.name} sets variables its settings never read"
    await create_topics(kafka_bootstrap, Topics(prefix=topic_prefix).with_partitions())
    keys = Keys(tmp_path / "jwt")
    async with _running(
        specs,
        mounts,
        kafka=kafka_bootstrap,
        redis_url=redis_url,
        prefix=topic_prefix,
        keys=keys,
        log_dir=tmp_path,
    ) as services:
        gateway = services["gateway"]
        signed = "JWT_PUBLIC_KEY_PATH" in specs["gateway"].env
        tag = uuid.uuid4().hex[:6]
        host, guest = (
            Player(f"{n}{tag}", keys.token(f"{n}{tag}") if signed else None) for n in ("h", "g")
        )
        url = f"ws://127.0.0.1:{gateway.ws_port}/ws"
        await host.connect(url)
        await guest.connect(url)
        room_id = await start_game(host, guest, f"Deployed {source} {tag}")
        _, over = await play_turns(room_id, {host.user_id: host, guest.user_id: guest}, host)
        assert over, "the game did not finish"
        await host.close()
        await guest.close()
        # both services drain and exit cleanly on SIGTERM, as the platforms stop them
    for service in services.values():
        assert service.proc.returncode == 0, f"{service.name}: {service.tail()}"
