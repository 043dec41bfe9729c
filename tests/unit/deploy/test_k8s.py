"""The Kubernetes manifests (deploy/k8s/): the example overlay renders with `kubectl kustomize`
and every object validates offline against the Kubernetes API schemas (kubernetes-validate,
strict: an unknown or misspelled field fails). Then what a cluster would only reveal once the
pods run is checked against the code: every variable set is one the settings classes read,
with a value they accept; probes, scrape annotations and the ServiceMonitor point at paths
the services serve; the engines fit the commands topic's partitions; the gateway's grace
period covers its drain; every container runs non-root on a read-only root filesystem; only
the gateway's WebSocket port is open beyond the namespace. Each check also runs on an overlay
broken on purpose, and must catch it.

Skipped only without kubectl, and never in CI (CI=true), where a missing kubectl fails."""

from __future__ import annotations

import asyncio
import copy
import datetime
import os
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from kubernetes_validate.utils import (  # type: ignore[import-untyped]
    SchemaNotFoundError,
    ValidationError,
    latest_version,
    validate,
)
from pydantic_settings import BaseSettings

from parlour_engine.health import HealthServer, Readiness
from parlour_engine.metrics import EngineMetrics
from parlour_engine.settings import EngineSettings
from parlour_gateway.app import create_ops_app
from parlour_gateway.gateway import Gateway
from parlour_gateway.metrics import Metrics as GatewayMetrics
from parlour_gateway.settings import GatewaySettings
from parlour_protocol.v1 import Topics
from parlour_runtime import load
from parlour_runtime.settings import env_names
from tests.support import k8s
from tests.support.k8s import EXAMPLE_OVERLAY, K8S_DIR, Manifest, find, only_container
from tests.support.service_spec import current_variables

pytestmark = pytest.mark.skipif(
    k8s.kubectl() is None and os.environ.get("CI") != "true", reason="kubectl is not installed"
)

# The oldest Kubernetes the manifests support (the kubelet's preStop `sleep` action is on by
# default from 1.30) and the newest kubernetes-validate carries (an API removed since fails).
KUBERNETES_VERSIONS = ("1.30.0", latest_version())
# kinds whose schema kubernetes-validate lacks (CRDs): checked by hand below
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}  # the component's Operator CRDs
SETTINGS: dict[str, type[BaseSettings]] = {
    "parlour-gateway": GatewaySettings,
    "parlour-engine": EngineSettings,
}
# the `job` names deploy/prometheus/parlour-alerts.yml matches
ALERT_JOBS = {"parlour-gateway", "parlour-engine"}
MONITORING_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
}
SAME_NAMESPACE_PEER: dict[str, Any] = {"podSelector": {}}


# --- reading the manifests ---


def _deployments(objects: list[Manifest]) -> dict[str, Manifest]:
    """Deployments by their container's console script."""
    return {only_container(d)["command"][0]: d for d in find(objects, "Deployment")}


def _settings_class(deployment: Manifest) -> type[BaseSettings]:
    return SETTINGS[only_container(deployment)["command"][0]]


def _pod(deployment: Manifest) -> Manifest:
    pod: Manifest = deployment["spec"]["template"]["spec"]
    return pod


def _labels(deployment: Manifest) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def _ops_port(deployment: Manifest, objects: list[Manifest]) -> int:
    field = {GatewaySettings: "ws_health_port", EngineSettings: "engine_health_port"}
    return int(_effective(deployment, objects, field[_settings_class(deployment)]))


def _port(container: Manifest, port: int | str) -> int:
    """A port as a number: named ports resolve through the container's own ports."""
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    if port not in named:
        raise AssertionError(f"container {container['name']} has no port named {port!r}")
    return int(named[port])


def _all_variables(settings: type[BaseSettings]) -> set[str]:
    """Every variable it reads, deprecated names included."""
    return {v for name, field in settings.model_fields.items() for v in env_names(name, field)}


def _effective(deployment: Manifest, objects: list[Manifest], field: str) -> str:
    """A setting's value in the pod: its variable from the environment, else the default."""
    settings = _settings_class(deployment)
    env = k8s.container_env(objects, only_container(deployment))
    variable = env_names(field, settings.model_fields[field])[0]
    return env.get(variable, str(settings.model_fields[field].default))


def _overlay(tmp_path: Path, body: str) -> Path:
    """An overlay on top of the example one, with `body` appended: to break it on purpose."""
    base = os.path.relpath(EXAMPLE_OVERLAY, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(f"resources:\n  - {base}\n{body}")
    return tmp_path


# --- the checks, each a list of problems (empty: fine) ---


def env_problems(objects: list[Manifest]) -> list[str]:
    """Every variable a Deployment's container gets (its ConfigMaps' keys and its `env`) is
    one its service's settings read under the current name, set in one place only; every
    ConfigMap is used."""
    problems: list[str] = []
    configmaps = {c["metadata"]["name"]: c for c in find(objects, "ConfigMap")}
    used: set[str] = set()
    for deployment in find(objects, "Deployment"):
        container = only_container(deployment)
        settings = _settings_class(deployment)
        current, every = current_variables(settings), _all_variables(settings)
        seen: dict[str, str] = {}
        sources: list[tuple[str, list[str]]] = []
        for source in container.get("envFrom", []):
            kind = "ConfigMap" if "configMapRef" in source else "Secret"
            ref = source.get("configMapRef") or source.get("secretRef")
            used.add(ref["name"])
            data = configmaps[ref["name"]].get("data", {}) if ref["name"] in configmaps else {}
            sources.append((f"{kind} {ref['name']}", list(data)))
        sources.append(("env", [var["name"] for var in container.get("env", [])]))
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("configMapKeyRef")
            if ref is not None:
                used.add(ref["name"])
        for where, names in sources:
            for variable in names:
                label = f"{deployment['metadata']['name']}: {variable} ({where})"
                if variable in seen:
                    problems.append(f"{label} is also set by {seen[variable]}")
                seen[variable] = where
                if variable in every - current:
                    problems.append(f"{label} is a deprecated name")
                elif variable not in current:
                    problems.append(f"{label} is not read by {settings.__name__}")
    problems += [f"ConfigMap {name} is used by no Deployment" for name in configmaps.keys() - used]
    return problems


def security_problems(objects: list[Manifest]) -> list[str]:
    """Every container: non-root, no privilege escalation, no capabilities, RuntimeDefault
    seccomp, a read-only root filesystem with a writable /tmp; no API token, no service
    links in the environment."""
    problems: list[str] = []
    for deployment in find(objects, "Deployment"):
        name = deployment["metadata"]["name"]
        pod = _pod(deployment)
        pod_ctx = pod.get("securityContext", {})
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{name}: automountServiceAccountToken is not false")
        if pod.get("enableServiceLinks") is not False:
            problems.append(f"{name}: enableServiceLinks is not false")
        empty_dirs = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for container in pod["containers"] + pod.get("initContainers", []):
            ctx = container.get("securityContext", {})
            where = f"{name}/{container['name']}"

            def either(key: str, ctx: Manifest = ctx, pod_ctx: Manifest = pod_ctx) -> Any:
                return ctx.get(key, pod_ctx.get(key))

            if either("runAsNonRoot") is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if either("runAsUser") in (0, None):
                problems.append(f"{where}: no non-zero runAsUser")
            if (either("seccompProfile") or {}).get("type") != "RuntimeDefault":
                problems.append(f"{where}: seccompProfile is not RuntimeDefault")
            if ctx.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if ctx.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem is not true")
            if ctx.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: capabilities do not drop ALL")
            if ctx.get("capabilities", {}).get("add") or ctx.get("privileged"):
                problems.append(f"{where}: adds capabilities or is privileged")
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            if not tmp or tmp[0]["name"] not in empty_dirs:
                problems.append(f"{where}: /tmp is not a writable emptyDir")
    return problems


def engine_problems(objects: list[Manifest]) -> list[str]:
    """Engines, the rolling update's surge pod included, never outnumber the commands
    topic's partitions (an engine beyond that gets no partition), and nothing scales them
    automatically past it."""
    topics = Topics()
    partitions = topics.with_partitions()[topics.commands]
    engine = _deployments(objects)["parlour-engine"]
    replicas = int(engine["spec"].get("replicas", 1))
    surge = engine["spec"].get("strategy", {}).get("rollingUpdate", {}).get("maxSurge", 0)
    problems = []
    if not isinstance(surge, int):
        problems.append(f"parlour-engine: maxSurge {surge!r} must be a number of pods")
    elif replicas + surge > partitions:
        problems.append(
            f"parlour-engine: {replicas} replicas + maxSurge {surge} > {partitions} partitions "
            f"of {topics.commands}"
        )
    for hpa in find(objects, "HorizontalPodAutoscaler"):
        if hpa["spec"]["scaleTargetRef"]["name"] == engine["metadata"]["name"]:
            problems.append(f"HorizontalPodAutoscaler {hpa['metadata']['name']} scales engines")
    return problems


def _selects(selector: Manifest, labels: dict[str, str]) -> bool:
    if "matchExpressions" in selector:
        raise AssertionError("matchExpressions are not checked here: use matchLabels")
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def network_problems(objects: list[Manifest]) -> list[str]:
    """What NetworkPolicy lets in: a default deny, the gateway's WebSocket port from
    anywhere, every other port only from this namespace or the monitoring namespace."""
    problems: list[str] = []
    policies = find(objects, "NetworkPolicy")
    if not any(
        p["spec"]["podSelector"] == {}
        and "Ingress" in p["spec"].get("policyTypes", [])
        and not p["spec"].get("ingress")
        for p in policies
    ):
        problems.append("no default-deny ingress NetworkPolicy")
    expected_open = {"parlour-gateway": {"ws"}, "parlour-engine": set()}
    for script, deployment in _deployments(objects).items():
        container = only_container(deployment)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        ports = {_port(container, p["name"]) for p in container.get("ports", [])}
        open_to_all: set[int] = set()
        reachable: set[int] = set()
        for policy in policies:
            if not _selects(policy["spec"]["podSelector"], labels):
                continue
            for rule in policy["spec"].get("ingress", []):
                rule_ports = {_port(container, p["port"]) for p in rule.get("ports", [])} or ports
                reachable |= rule_ports
                peers = rule.get("from", [])
                if not peers:
                    open_to_all |= rule_ports
                for peer in peers:
                    if peer not in (SAME_NAMESPACE_PEER, MONITORING_PEER):
                        problems.append(f"{script}: unexpected ingress peer {peer}")
        wanted = {_port(container, name) for name in expected_open[script]}
        if open_to_all != wanted:
            problems.append(f"{script}: open to any source: {sorted(open_to_all)}, not {wanted}")
        if reachable != ports:
            problems.append(f"{script}: ports {sorted(ports - reachable)} are unreachable")
    return problems


# --- rendering and schemas ---


@pytest.fixture(scope="module")
def objects() -> list[Manifest]:
    return k8s.rendered()


def test_the_example_overlay_renders_every_part(objects: list[Manifest]) -> None:
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        [
            *("Namespace", "NetworkPolicy", "NetworkPolicy", "NetworkPolicy"),
            *("ConfigMap", "ConfigMap", "ConfigMap", "Deployment", "Deployment"),
            *("Service", "Service", "Service", "Ingress", "HorizontalPodAutoscaler"),
            *("PodDisruptionBudget", "PodDisruptionBudget", "ServiceMonitor", "PrometheusRule"),
        ]
    )
    namespaced = [o for o in objects if o["kind"] != "Namespace"]
    assert {o["metadata"].get("namespace") for o in namespaced} == {"parlour"}
    assert find(objects, "Namespace", "parlour")


def test_the_base_renders_without_the_servicemonitor() -> None:
    # a cluster without the Prometheus Operator's CRDs uses the base (or an overlay
    # without the component): it must not need them
    objects = k8s.rendered(K8S_DIR / "base")
    assert find(objects, "Deployment")
    assert not find(objects, "ServiceMonitor")
    assert not find(objects, "PrometheusRule")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_validates_against_the_kubernetes_schemas(
    objects: list[Manifest], version: str
) -> None:
    unchecked = set()
    for obj in objects:
        try:
            validate(obj, version, strict=True)
        except SchemaNotFoundError:
            unchecked.add(obj["kind"])
        except ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} ({version}): {path}: {exc}")
    assert unchecked == CUSTOM_KINDS  # a built-in kind without a schema would go unchecked


def test_a_misspelled_field_fails_schema_validation(objects: list[Manifest]) -> None:
    deployment = copy.deepcopy(_deployments(objects)["parlour-gateway"])
    container = only_container(deployment)
    container["readinessprobe"] = container.pop("readinessProbe")
    with pytest.raises(ValidationError):
        validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_the_servicemonitor_scrapes_both_services_metrics(objects: list[Manifest]) -> None:
    # no schema for this CRD here: its shape by hand, as the Prometheus Operator reads it
    (monitor,) = find(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    spec = monitor["spec"]
    assert set(spec) <= {"jobLabel", "selector", "endpoints", "namespaceSelector"}
    services = [
        s for s in find(objects, "Service") if _selects(spec["selector"], s["metadata"]["labels"])
    ]
    deployments = _deployments(objects)
    # one Service per service, named by the job the alert rules match
    assert {s["metadata"]["labels"][spec["jobLabel"]] for s in services} == ALERT_JOBS
    (endpoint,) = spec["endpoints"]
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout"}
    for service in services:
        deployment = deployments[service["metadata"]["labels"]["app.kubernetes.io/name"]]
        assert _selects({"matchLabels": service["spec"]["selector"]}, _labels(deployment))
        (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
        assert service["spec"].get("clusterIP") == "None"  # each pod scraped on its own
        assert _port(only_container(deployment), port["targetPort"]) == _ops_port(
            deployment, objects
        )
    assert endpoint["path"] == "/metrics"


# --- environment ---


def test_every_variable_is_one_the_settings_read(objects: list[Manifest]) -> None:
    assert env_problems(objects) == []


def test_a_variable_the_settings_do_not_read_is_caught(tmp_path: Path) -> None:
    overlay = _overlay(
        tmp_path,
        "configMapGenerator:\n"
        "  - name: parlour-gateway\n    behavior: merge\n"
        "    literals: [WS_HEARTBEAT_INTERVAL=10, AUTH_TIMEOUT=5, ENGINE_GROUP_ID=x]\n",
    )
    problems = env_problems(k8s.rendered(overlay))

    def about(variable: str) -> list[str]:
        return [p.split(") ", 1)[1] for p in problems if f": {variable} (ConfigMap " in p]

    assert about("WS_HEARTBEAT_INTERVAL") == ["is not read by GatewaySettings"]
    assert about("AUTH_TIMEOUT") == ["is a deprecated name"]
    assert about("ENGINE_GROUP_ID") == ["is not read by GatewaySettings"]  # the engine's
    assert len(problems) == 3


def _public_key_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _ca_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "parlour test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


# the files of the Secrets an operator creates (deploy/k8s/README.md), by Secret and key
SECRET_FILES = {
    "parlour-jwt": {"public.pem": _public_key_pem},
    "parlour-kafka-ca": {"ca.crt": _ca_pem},
}


def _load_each_service(
    overlay: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    secrets: k8s.Secrets | None = None,
) -> dict[str, BaseSettings]:
    """Each service's settings, built as at start-up from exactly the environment its
    Deployment gives it; a file in a Secret's mount is read from a local copy."""
    specs = k8s.deployment_specs(overlay, secrets)
    mounts = k8s.secret_mounts(overlay)
    deployments = {k8s.component(d): d for d in find(k8s.rendered(overlay), "Deployment")}
    for secret, files in SECRET_FILES.items():
        (tmp_path / secret).mkdir(parents=True)
        for key, make in files.items():
            (tmp_path / secret / key).write_bytes(make())
    loaded: dict[str, BaseSettings] = {}
    for name, spec in specs.items():
        settings_cls = _settings_class(deployments[name])
        with monkeypatch.context() as env:
            for variable in _all_variables(settings_cls):
                env.delenv(variable, raising=False)
            for variable, value in spec.env.items():
                for mount, secret in mounts[name].items():
                    if value.startswith(mount + "/"):
                        value = str(tmp_path / secret / value.removeprefix(mount + "/"))
                env.setenv(variable, value)
            loaded[name] = load(settings_cls)
    return loaded


def test_each_deployment_environment_loads_its_settings(
    objects: list[Manifest], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The values, not only the names: each service builds its settings from what its
    Deployment gives it."""
    loaded = _load_each_service(EXAMPLE_OVERLAY, tmp_path, monkeypatch)
    assert set(loaded) == {"gateway", "engine"}
    deployments = _deployments(objects)
    gateway, engine = loaded["gateway"], loaded["engine"]
    assert isinstance(gateway, GatewaySettings)
    assert isinstance(engine, EngineSettings)
    container = only_container(deployments["parlour-gateway"])
    # the key file the Secret parlour-jwt provides
    assert gateway.jwt_public_key_path == tmp_path / "parlour-jwt" / "public.pem"
    assert gateway.ws_port == _port(container, "ws")
    assert gateway.ws_health_port == _port(container, "health")
    assert gateway.origins  # a production gateway names its browser origins
    assert engine.engine_health_port == _port(
        only_container(deployments["parlour-engine"]), "health"
    )
    for settings in (gateway, engine):
        assert settings.log_format == "json"
        assert settings.bootstrap_servers == ["parlour-kafka-bootstrap.kafka.svc:9092"]


def test_the_kafka_sasl_ssl_component(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Strimzi's TLS listener with SCRAM logins: the component's objects are valid, its
    variables are the settings', and both services accept them with the operator's Secrets."""
    component = os.path.relpath(K8S_DIR / "components" / "kafka-sasl-ssl", tmp_path / "overlay")
    (tmp_path / "overlay").mkdir()
    overlay = _overlay(tmp_path / "overlay", f"components:\n  - {component}\n")
    objects = k8s.rendered(overlay)
    for obj in objects:
        if obj["kind"] not in CUSTOM_KINDS:
            validate(obj, KUBERNETES_VERSIONS[0], strict=True)
    assert env_problems(objects) == []
    assert security_problems(objects) == []
    with pytest.raises(k8s.ManifestError, match="parlour-kafka-user"):
        k8s.deployment_specs(overlay)  # the password's Secret is required
    secrets = {"parlour-kafka-user": {"password": "scram-secret"}}
    loaded = _load_each_service(overlay, tmp_path / "files", monkeypatch, secrets)
    for settings in loaded.values():
        assert isinstance(settings, GatewaySettings | EngineSettings)
        assert settings.kafka_security_protocol == "SASL_SSL"
        assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
        assert settings.kafka_sasl_password is not None
        assert settings.kafka_sasl_password.get_secret_value() == "scram-secret"
        assert settings.kafka_ssl_cafile == str(tmp_path / "files" / "parlour-kafka-ca" / "ca.crt")


def test_deployment_specs_give_each_service_its_console_script() -> None:
    specs = k8s.deployment_specs()
    assert specs["gateway"].command == ("parlour-gateway",)
    assert specs["engine"].command == ("parlour-engine",)
    for spec in specs.values():
        # from the overlay's ConfigMap, merged over the base's
        assert spec.env["KAFKA_BOOTSTRAP_SERVERS"] == "parlour-kafka-bootstrap.kafka.svc:9092"
        assert "REDIS_PASSWORD" not in spec.env  # optional Secret, not in the manifests
    assert (
        specs["gateway"]
        .env["JWT_PUBLIC_KEY_PATH"]
        .startswith(next(iter(k8s.secret_mounts()["gateway"])) + "/")
    )


# --- probes, scraping ---


class _OpsGateway:
    """What the gateway's operations app uses of a gateway, all healthy."""

    settings = SimpleNamespace(gateway_id="gw-test")
    metrics = GatewayMetrics()

    async def readiness(self) -> dict[str, bool]:
        return {"redis": True}

    def task_problems(self) -> dict[str, str]:
        return {}


def _gateway_statuses(paths: set[str]) -> dict[str, int]:
    client = TestClient(create_ops_app(cast(Gateway, _OpsGateway())))
    return {path: client.get(path).status_code for path in paths}


async def _engine_statuses(paths: set[str]) -> dict[str, int]:
    async def ready() -> Readiness:
        return Readiness(checks={"kafka": True, "redis": True})

    server = HealthServer("127.0.0.1", 0, EngineMetrics(), ready)
    await server.start()
    try:
        statuses = {}
        for path in paths:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: probe\r\n\r\n".encode())
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), 5)
            statuses[path] = int(status_line.split()[1])
            writer.close()
        return statuses
    finally:
        await server.stop()


def _probe_targets(deployment: Manifest) -> Iterator[tuple[str, int | str, str]]:
    container = only_container(deployment)
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        if probe in container:
            get = container[probe]["httpGet"]
            yield probe, get["port"], get["path"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    yield "prometheus.io", int(annotations["prometheus.io/port"]), annotations["prometheus.io/path"]


def test_probes_and_scrape_annotations_point_at_served_paths(objects: list[Manifest]) -> None:
    for script, deployment in _deployments(objects).items():
        container = only_container(deployment)
        targets = list(_probe_targets(deployment))
        assert {t[0] for t in targets} >= {"readinessProbe", "livenessProbe", "prometheus.io"}
        for what, port, _ in targets:
            assert _port(container, port) == _ops_port(deployment, objects), (script, what)
        paths = {path for _, _, path in targets}
        if script == "parlour-gateway":
            statuses = _gateway_statuses(paths)
        else:
            statuses = asyncio.run(_engine_statuses(paths))
        assert statuses == dict.fromkeys(paths, 200), script
        # readiness is the check that knows about Kafka and Redis; liveness must not be
        # (an outage would restart every pod)
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"


def test_a_probe_on_an_unserved_path_is_caught() -> None:
    assert _gateway_statuses({"/healthz"}) == {"/healthz": 404}
    assert asyncio.run(_engine_statuses({"/livez"})) == {"/livez": 404}


# --- shutdown, scaling ---


def test_the_gateway_grace_period_covers_its_drain(objects: list[Manifest]) -> None:
    gateway = _deployments(objects)["parlour-gateway"]
    pod = _pod(gateway)
    pre_stop = only_container(gateway)["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(_effective(gateway, objects, "shutdown_timeout_seconds"))
    grace = pod["terminationGracePeriodSeconds"]
    # SIGTERM comes after preStop; the gateway's hard deadline ends it within the drain
    # timeout; the kubelet's SIGKILL must come later, but not so late that a stuck pod
    # holds a rollout for long
    assert pre_stop + drain < grace <= pre_stop + drain + 15, (pre_stop, drain, grace)
    assert pre_stop >= 2  # endpoints and the Ingress need a moment to drop the pod


def test_engines_fit_the_commands_partitions(objects: list[Manifest], tmp_path: Path) -> None:
    assert engine_problems(objects) == []
    too_many = _overlay(
        tmp_path,
        "replicas:\n  - name: parlour-engine\n    count: 6\n",  # 6 + the surge pod > 6
    )
    assert engine_problems(k8s.rendered(too_many))


def test_the_gateway_scales_by_its_autoscaler(objects: list[Manifest]) -> None:
    gateway = _deployments(objects)["parlour-gateway"]
    (hpa,) = find(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": gateway["metadata"]["name"],
    }
    assert "replicas" not in gateway["spec"]  # an apply would reset the autoscaler's count
    assert hpa["spec"]["minReplicas"] >= 2  # a restarting gateway leaves one for its clients
    assert gateway["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_disruption_budgets_and_services_select_the_pods(objects: list[Manifest]) -> None:
    deployments = _deployments(objects)
    budgets = {p["metadata"]["name"]: p for p in find(objects, "PodDisruptionBudget")}
    assert set(budgets) == set(deployments)
    for name, budget in budgets.items():
        assert _selects(budget["spec"]["selector"], _labels(deployments[name]))
        assert budget["spec"]["maxUnavailable"] == 1
    for service in find(objects, "Service"):
        selected = [
            d
            for d in deployments.values()
            if _selects({"matchLabels": service["spec"]["selector"]}, _labels(d))
        ]
        assert len(selected) == 1, service["metadata"]["name"]
        container = only_container(selected[0])
        for port in service["spec"]["ports"]:
            _port(container, port["targetPort"])  # a named port the container has


def test_the_ingress_keeps_websockets_open(objects: list[Manifest]) -> None:
    (ingress,) = find(objects, "Ingress")
    annotations = ingress["metadata"]["annotations"]
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{timeout}"]) >= 3600
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")  # /ws and the client
    backend = path["backend"]["service"]
    (service,) = find(objects, "Service", backend["name"])
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == backend["port"]["name"]]
    gateway = _deployments(objects)["parlour-gateway"]
    ws_port = int(_effective(gateway, objects, "ws_port"))
    assert _port(only_container(gateway), port["targetPort"]) == ws_port
    assert rule["host"] in ingress["spec"]["tls"][0]["hosts"]


# --- security ---


def test_every_container_is_locked_down(objects: list[Manifest]) -> None:
    assert security_problems(objects) == []
    namespace = find(objects, "Namespace", "parlour")[0]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_a_container_that_may_write_its_root_filesystem_is_caught(tmp_path: Path) -> None:
    overlay = _overlay(
        tmp_path,
        "patches:\n"
        "  - target: {kind: Deployment, name: parlour-engine}\n"
        "    patch: |-\n"
        "      - op: remove\n"
        "        path: /spec/template/spec/containers/0/securityContext/readOnlyRootFilesystem\n",
    )
    assert security_problems(k8s.rendered(overlay)) == [
        "parlour-engine/engine: readOnlyRootFilesystem is not true"
    ]


def test_only_the_websocket_port_is_open_to_the_world(objects: list[Manifest]) -> None:
    assert network_problems(objects) == []


def test_an_engine_open_to_the_world_is_caught(tmp_path: Path) -> None:
    overlay = _overlay(
        tmp_path,
        "patches:\n"
        "  - target: {kind: NetworkPolicy, name: parlour-engine}\n"
        "    patch: |-\n"
        "      - op: remove\n"
        "        path: /spec/ingress/0/from\n",
    )
    assert network_problems(k8s.rendered(overlay)) == [
        "parlour-engine: open to any source: [9996], not set()"
    ]


def test_images_are_pinned_and_no_secret_is_committed(objects: list[Manifest]) -> None:
    for deployment in find(objects, "Deployment"):
        image = only_container(deployment)["image"]
        assert re.fullmatch(r"ghcr\.io/parlour/parlour(:[\w.-]+|@sha256:[0-9a-f]{64})", image)
        assert not image.endswith(":latest")
    assert not find(objects, "Secret")  # keys and passwords are created in the cluster only
    # the README's command creates the Secret and key the gateway mounts
    gateway = _deployments(objects)["parlour-gateway"]
    (volume,) = [v for v in _pod(gateway)["volumes"] if "secret" in v]
    (item,) = volume["secret"]["items"]
    command = f"create secret generic {volume['secret']['secretName']} --from-file={item['key']}="
    assert command in (K8S_DIR / "README.md").read_text()
    assert command in (EXAMPLE_OVERLAY / "kustomization.yaml").read_text()
