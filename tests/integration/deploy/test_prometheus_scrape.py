"""A real Prometheus (Debian's `prometheus` package) started with the shipped compose scrape
configuration scrapes a real gateway and a real engine, reports both targets up, loads the
Parlour alert rules, evaluates every one of them without error, and reports the engine down
once it is stopped.

Only the addresses change: the copy points the jobs at the loopback ports of the processes
this test starts (compose's `gateway:9997` and the `engine` A records exist only on the
compose network) and `rule_files` at the repository's parlour-alerts.yml (the compose file
mounts it at /etc/prometheus/). Job names, metrics paths, intervals and the rules are the
shipped ones. Skipped only without the binary, and never in CI, which installs it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from ruamel.yaml import YAML

from parlour_protocol.v1 import Topics
from tests.support.engine_harness import EngineProcess, free_port
from tests.support.gateway_harness import GatewayProc, Keys
from tests.support.paths import REPO_ROOT
from tests.support.stack import Player

if TYPE_CHECKING:  # the fixture's type only
    from tests.integration.conftest import CreateTopics

_PROMETHEUS = shutil.which("prometheus")
_SHIPPED = REPO_ROOT / "deploy" / "prometheus" / "prometheus.compose.yml"
_RULES = REPO_ROOT / "deploy" / "prometheus" / "parlour-alerts.yml"
_SCRAPED_JOBS = ("parlour-gateway", "parlour-engine")
_TARGETS_DEADLINE = 60.0
"""The shipped scrape interval is 15 s and the first scrape of a target waits a random part
of it, so both targets are up well within a minute of Prometheus starting."""
_RULES_DEADLINE = 60.0
"""Rules are evaluated every 15 s (evaluation_interval): two rounds after the targets are up."""

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.slow,
    pytest.mark.skipif(
        _PROMETHEUS is None and os.environ.get("CI") != "true",
        reason="Debian's prometheus package is not installed",
    ),
]


def _local_config(directory: Path, ports: dict[str, int], own_port: int) -> Path:
    """The shipped compose configuration with each job's targets moved to loopback."""
    yaml = YAML(typ="safe", pure=True)
    config: dict[str, Any] = yaml.load(_SHIPPED.read_text(encoding="utf-8"))
    assert config["rule_files"] == ["/etc/prometheus/parlour-alerts.yml"]
    config["rule_files"] = [str(_RULES)]
    local = {**ports, "prometheus": own_port}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(local), f"rewrite the new jobs too: {sorted(jobs)}"
    for name, job in jobs.items():
        for discovery in [key for key in job if key.endswith("_sd_configs")]:
            del job[discovery]  # the engine's A-record lookup of `engine`
        job["static_configs"] = [{"targets": [f"127.0.0.1:{local[name]}"]}]
    path = directory / "prometheus.yml"
    with path.open("w", encoding="utf-8") as out:
        yaml.dump(config, out)
    return path


class _Prometheus:
    """Debian's prometheus binary on a loopback port, its data and log in `directory`."""

    def __init__(self, binary: str, config: Path, directory: Path, port: int) -> None:
        self.api = f"http://127.0.0.1:{port}/api/v1"
        self._log_path = directory / "prometheus.log"
        with self._log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={directory / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def problem(self) -> str | None:
        """None while it runs; else its exit code and the end of its log."""
        if self._proc.poll() is None:
            return None
        tail = self._log_path.read_text(errors="replace")[-3000:]
        return f"prometheus exited {self._proc.returncode}: {tail}"

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)


async def _poll(
    url: str,
    done: Callable[[dict[str, Any]], bool],
    *,
    within: float,
    what: str,
    alive: Callable[[], str | None],
) -> dict[str, Any]:
    """GET `url` until `done(body["data"])`; fail after `within` seconds with the last body."""
    deadline = time.monotonic() + within
    last: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            if (problem := alive()) is not None:
                raise AssertionError(f"{what}: {problem}")
            with contextlib.suppress(httpx.HTTPError):
                response = await client.get(url)
                if response.status_code == 200:
                    last = response.json()["data"]
                    if done(last):
                        return last
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not within {within:.0f}s; last answer: {last}")
            await asyncio.sleep(0.5)


def _targets_up(data: dict[str, Any]) -> bool:
    healthy = {t["labels"]["job"] for t in data["activeTargets"] if t["health"] == "up"}
    return set(_SCRAPED_JOBS) <= healthy


def _rules(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {rule["name"]: rule for group in data["groups"] for rule in group["rules"]}


def _rules_evaluated_and_quiet(data: dict[str, Any]) -> bool:
    """Every rule evaluated without error, and the availability alerts see both services
    (an evaluation before the first scrape may have set ParlourNoEngine pending: wait for
    the next one)."""
    rules = _rules(data)
    return (
        bool(rules)
        and all(rule["health"] == "ok" for rule in rules.values())
        and rules["ParlourServiceDown"]["state"] == "inactive"
        and rules["ParlourNoEngine"]["state"] == "inactive"
    )


def _engine_reported_down(data: dict[str, Any]) -> bool:
    alerts = _rules(data)["ParlourServiceDown"]["alerts"]
    return any(a["labels"]["job"] == "parlour-engine" for a in alerts)


async def test_prometheus_scrapes_gateway_and_engine_with_the_shipped_config(
    kafka_bootstrap: str,
    redis_url: str,
    topic_prefix: str,
    create_topics: CreateTopics,
    tmp_path: Path,
) -> None:
    assert _PROMETHEUS is not None, "install Debian's prometheus package"
    await create_topics(kafka_bootstrap, Topics(prefix=topic_prefix).with_partitions())
    keys = Keys(tmp_path / "jwt")
    engine = EngineProcess.configure(
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=topic_prefix,
        log_dir=tmp_path,
    )
    engine.start()
    gateway = GatewayProc(
        bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=topic_prefix,
        key_prefix=topic_prefix,
        public_key=keys.public_path,
        log_dir=tmp_path,
    )
    prometheus: _Prometheus | None = None
    player: Player | None = None
    try:
        await engine.wait_ready()
        await asyncio.to_thread(gateway.wait_ready)

        port = free_port()
        config = _local_config(
            tmp_path,
            {"parlour-gateway": gateway.health_port, "parlour-engine": engine.health_port},
            port,
        )
        prometheus = _Prometheus(_PROMETHEUS, config, tmp_path, port)
        alive = prometheus.problem
        api = prometheus.api
        targets = await _poll(
            f"{api}/targets",
            _targets_up,
            within=_TARGETS_DEADLINE,
            what="both Parlour targets up",
            alive=alive,
        )
        scraped = {
            t["labels"]["job"]: t["scrapeUrl"]
            for t in targets["activeTargets"]
            if t["labels"]["job"] in _SCRAPED_JOBS
        }
        assert scraped == {
            "parlour-gateway": f"http://127.0.0.1:{gateway.health_port}/metrics",
            "parlour-engine": f"http://127.0.0.1:{engine.health_port}/metrics",
        }

        # the rules file is the shipped one, every group and rule of it; each rule's
        # expression evaluates against the scraped series without error, and the `up` alerts
        # find both services under the job names the scrape configuration gives them
        rules = await _poll(
            f"{api}/rules",
            _rules_evaluated_and_quiet,
            within=_RULES_DEADLINE,
            what="every Parlour rule evaluated, no service reported down",
            alive=alive,
        )
        groups = {group["name"]: group for group in rules["groups"]}
        assert set(groups) == {"parlour-availability", "parlour-engine", "parlour-gateway"}
        loaded = sum(len(group["rules"]) for group in groups.values())
        assert loaded == _RULES.read_text(encoding="utf-8").count("- alert: ")

        # the scraped values are the services' own: a socket opened on the gateway shows up
        user = f"u{uuid.uuid4().hex[:6]}"
        player = Player(user, keys.token(user))
        await player.connect(gateway.url)
        query = f"{api}/query?query=parlour_gateway_connections_current"
        await _poll(
            query,
            lambda data: any(float(r["value"][1]) >= 1 for r in data["result"]),
            within=_TARGETS_DEADLINE,
            what="the open socket in parlour_gateway_connections_current",
            alive=alive,
        )

        # and a service that goes away is reported: the engine's scrape fails, and
        # ParlourServiceDown turns pending (it fires after its `for: 1m`) for that engine
        assert engine.stop() == 0, engine.log_tail()
        await _poll(
            f"{api}/rules",
            _engine_reported_down,
            within=_RULES_DEADLINE,
            what="ParlourServiceDown for the stopped engine",
            alive=alive,
        )
    finally:
        if player is not None:
            await player.close()
        if prometheus is not None:
            prometheus.stop()
        gateway.terminate()
        engine.stop()
