"""The Prometheus alert rules load, each alert fires on the series it is meant for and stays
quiet on healthy ones (promtool's own rule tests), and both shipped scrape configurations
(docker compose, Kubernetes) pass `promtool check config` with the rules they load. Every
alert is explained in docs/operations.md. Skipped only without promtool
(Debian: `apt-get install --no-install-recommends prometheus`), and never in CI, which installs
it: there a missing promtool fails the tests instead of hiding them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.support.paths import REPO_ROOT

_DIR = REPO_ROOT / "deploy" / "prometheus"
_RULES = _DIR / "parlour-alerts.yml"
_TESTS = _DIR / "parlour-alerts.test.yml"
_COMPOSE = _DIR / "prometheus.compose.yml"
_K8S = _DIR / "prometheus.k8s.yml"
_OPERATIONS = REPO_ROOT / "docs" / "operations.md"
_MOUNTED_RULES = "/etc/prometheus/parlour-alerts.yml"
"""Where both scrape configurations expect the rules: the compose file mounts
parlour-alerts.yml there, and a Prometheus in Kubernetes gets it there from a ConfigMap."""
_PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(
    _PROMTOOL is None and os.environ.get("CI") != "true", reason="promtool is not installed"
)


def _promtool(*args: str, cwd: Path = _DIR) -> subprocess.CompletedProcess[str]:
    assert _PROMTOOL is not None
    return subprocess.run(
        [_PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def _yaml() -> YAML:
    return YAML(typ="safe", pure=True)


def _beside_the_rules(config: Path, directory: Path) -> Path:
    """A copy of `config` in `directory`, the rules copied beside it and its rule_files
    pointing there: `promtool check config` opens the rule files it names, and the shipped
    path exists only inside the container."""
    text = config.read_text(encoding="utf-8")
    assert _MOUNTED_RULES in text, f"{config.name} does not load {_MOUNTED_RULES}"
    shutil.copy(_RULES, directory / _RULES.name)
    copy = directory / config.name
    copy.write_text(text.replace(_MOUNTED_RULES, _RULES.name), encoding="utf-8")
    return copy


def _checked(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS: 1 rule files found" in output, output
    alerts = _RULES.read_text(encoding="utf-8").count("- alert: ")
    assert f"SUCCESS: {alerts} rules found" in output, output
    return output


def test_deploy_prometheus_rules_are_valid() -> None:
    result = _promtool("check", "rules", _RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_deploy_prometheus_rule_tests_pass() -> None:
    result = _promtool("test", "rules", _TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_deploy_prometheus_every_alert_is_tested() -> None:
    alerts = set(re.findall(r"^\s+- alert: (\w+)$", _RULES.read_text(), re.M))
    tested = set(re.findall(r"^\s+alertname: (\w+)$", _TESTS.read_text(), re.M))
    assert alerts, "no alerts found"
    assert alerts - tested == set()


def test_deploy_prometheus_compose_config_is_valid(tmp_path: Path) -> None:
    _checked(_promtool("check", "config", str(_beside_the_rules(_COMPOSE, tmp_path))))


def test_deploy_prometheus_compose_config_scrapes_both_services() -> None:
    config: dict[str, Any] = _yaml().load(_COMPOSE.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["parlour-gateway"]["static_configs"] == [{"targets": ["gateway:9997"]}]
    # every replica of the compose service `engine`, each its own target
    assert jobs["parlour-engine"]["dns_sd_configs"] == [
        {"names": ["engine"], "type": "A", "port": 9996, "refresh_interval": "15s"}
    ]
    for name in ("parlour-gateway", "parlour-engine"):
        assert jobs[name].get("metrics_path", "/metrics") == "/metrics"


_KUBERNETES_SD_KEYS = frozenset({"role", "namespaces", "selectors", "attach_metadata"})
_KUBERNETES_ROLES = frozenset({"pod", "service", "endpoints", "endpointslice", "node", "ingress"})


def test_deploy_prometheus_k8s_config_is_valid(tmp_path: Path) -> None:
    """The whole file through promtool. Where promtool lacks Kubernetes discovery (Debian's),
    each `kubernetes_sd_configs` is checked here against the fields Prometheus documents and
    then swapped for a file_sd_configs, so promtool still checks everything else: the
    relabel rules (their regexes and actions), the globals and the rule files."""
    config = _beside_the_rules(_K8S, tmp_path)
    direct = _promtool("check", "config", str(config))
    output = direct.stdout + direct.stderr
    if direct.returncode == 0:
        _checked(direct)
        return
    assert "field kubernetes_sd_configs not found" in output, output
    loaded: dict[str, Any] = _yaml().load(config.read_text(encoding="utf-8"))
    swapped = 0
    for job in loaded["scrape_configs"]:
        for sd in job.pop("kubernetes_sd_configs", []):
            assert set(sd) <= _KUBERNETES_SD_KEYS, f"{job['job_name']}: {set(sd)}"
            assert sd["role"] in _KUBERNETES_ROLES, sd["role"]
            names = sd.get("namespaces", {}).get("names", [])
            assert all(isinstance(n, str) and n for n in names), names
            (tmp_path / "targets.json").write_text("[]", encoding="utf-8")
            job.setdefault("file_sd_configs", []).append({"files": ["targets.json"]})
            swapped += 1
    assert swapped, "prometheus.k8s.yml discovers nothing through the Kubernetes API"
    config.write_text(json.dumps(loaded), encoding="utf-8")  # JSON is YAML
    _checked(_promtool("check", "config", str(config), cwd=tmp_path))


def test_deploy_prometheus_k8s_config_keeps_the_job_names_the_alerts_match() -> None:
    """The alerts match job="parlour-gateway" and job="parlour-engine": the Kubernetes job
    takes them from the pods' app.kubernetes.io/name label."""
    config: dict[str, Any] = _yaml().load(_K8S.read_text(encoding="utf-8"))
    [job] = config["scrape_configs"]
    relabel = job["relabel_configs"]
    name_label = "__meta_kubernetes_pod_label_app_kubernetes_io_name"
    assert {
        "source_labels": [name_label],
        "regex": "parlour-(gateway|engine)",
        "action": "keep",
    } in relabel
    assert {"source_labels": [name_label], "target_label": "job"} in relabel
    alerts = _RULES.read_text(encoding="utf-8")
    assert 'job=~"parlour-(engine|gateway)"' in alerts


def test_deploy_prometheus_every_alert_is_explained_in_operations_md() -> None:
    alerts = set(re.findall(r"^\s+- alert: (\w+)$", _RULES.read_text(), re.M))
    rows = set(re.findall(r"^\| `(Parlour\w+)` \|", _OPERATIONS.read_text(), re.M))
    assert alerts - rows == set(), "alerts without a row in docs/operations.md"
    assert rows - alerts == set(), "docs/operations.md explains alerts that do not exist"
