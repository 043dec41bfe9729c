"""The Prometheus alert rules load, and each alert fires on the series it is meant for and
stays quiet on healthy ones (promtool's own rule tests). Skipped only without promtool
(Debian: `apt-get install --no-install-recommends prometheus`), and never in CI, which installs
it: there a missing promtool fails the tests instead of hiding them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.support.paths import REPO_ROOT

_DIR = REPO_ROOT / "deploy" / "prometheus"
_RULES = _DIR / "parlour-alerts.yml"
_TESTS = _DIR / "parlour-alerts.test.yml"
_PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(
    _PROMTOOL is None and os.environ.get("CI") != "true", reason="promtool is not installed"
)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert _PROMTOOL is not None
    return subprocess.run(
        [_PROMTOOL, *args], cwd=_DIR, capture_output=True, text=True, timeout=60, check=False
    )


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
