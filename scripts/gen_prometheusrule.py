"""Generate the Prometheus Operator's PrometheusRule from deploy/prometheus/parlour-alerts.yml,
so a cluster running kube-prometheus-stack gets the same alerts as a plain Prometheus, and the
two cannot drift apart.

    .venv/bin/python scripts/gen_prometheusrule.py           # print the manifest
    .venv/bin/python scripts/gen_prometheusrule.py --write   # rewrite it in deploy/k8s
    .venv/bin/python scripts/gen_prometheusrule.py --check   # exit 1 when it is stale

The manifest sits in the optional `servicemonitor` component (deploy/k8s/components/), next to
the ServiceMonitor, since both need the monitoring.coreos.com CRDs.
tests/unit/deploy/test_prometheusrule.py fails when it is stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML, through kubernetes-validate

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "deploy" / "prometheus" / "parlour-alerts.yml"
TARGET = ROOT / "deploy" / "k8s" / "components" / "servicemonitor" / "prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/parlour-alerts.yml by scripts/gen_prometheusrule.py --write:
# edit the alerts file and regenerate, never this one (a test fails when they differ).
# kube-prometheus-stack's Prometheus selects rules by its Helm release label by default: add
# `release: <your release>` to the labels in an overlay, or install the chart with
# prometheus.prometheusSpec.ruleSelectorNilUsesHelmValues=false.
"""


def manifest(alerts: Path = ALERTS) -> dict[str, Any]:
    rules = yaml.safe_load(alerts.read_text())
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "parlour-alerts", "labels": {"app.kubernetes.io/part-of": "parlour"}},
        "spec": {"groups": rules["groups"]},
    }


def render(alerts: Path = ALERTS) -> str:
    body: str = yaml.safe_dump(manifest(alerts), sort_keys=False, width=100, allow_unicode=True)
    return HEADER + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"rewrite {TARGET.relative_to(ROOT)}")
    mode.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        TARGET.write_text(text)
        print(f"wrote {TARGET.relative_to(ROOT)}")
        return 0
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(
                f"{TARGET.relative_to(ROOT)} is stale: run "
                "`.venv/bin/python scripts/gen_prometheusrule.py --write`",
                file=sys.stderr,
            )
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
