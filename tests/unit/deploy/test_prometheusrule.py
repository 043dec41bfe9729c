"""The Prometheus Operator's PrometheusRule (deploy/k8s/components/servicemonitor/) carries
exactly the alert groups of deploy/prometheus/parlour-alerts.yml, and the example overlay
renders it in Parlour's namespace."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML, through kubernetes-validate

from tests.support import k8s
from tests.support.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "gen_prometheusrule.py"
ALERTS = REPO_ROOT / "deploy" / "prometheus" / "parlour-alerts.yml"


def _alert_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(ALERTS.read_text())["groups"]
    return groups


def test_the_committed_prometheusrule_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(k8s.kubectl() is None, reason="no kustomize (make test-tools installs one)")
def test_the_overlay_renders_the_alerts_as_a_prometheusrule() -> None:
    rules = k8s.find(k8s.rendered(), "PrometheusRule")
    assert len(rules) == 1, rules
    rule = rules[0]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == "parlour"
    assert rule["spec"]["groups"] == _alert_groups()
    names = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert "ParlourServiceDown" in names
    assert len(names) == len(set(names)), names
