"""The Grafana dashboard and the Prometheus alert rules only name metrics the services really
expose, the dashboard shows what an operator needs, and its datasource is the one the compose
provisioning creates.

No process is started: the metric names come from the services' own `Metrics` classes,
rendered with `generate_latest` exactly as their `/metrics` endpoints render them, so a
renamed metric fails here instead of leaving an empty panel or a silent alert."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from ruamel.yaml import YAML

from parlour_engine.failures import RECORD_STALL_MAX_SECONDS, DeadLetterReason
from parlour_engine.metrics import EngineMetrics
from parlour_gateway.metrics import Metrics as GatewayMetrics
from tests.support.paths import REPO_ROOT

_DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "parlour.json"
_DATASOURCES = REPO_ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
_PROVIDERS = REPO_ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "parlour.yml"
_ALERTS = REPO_ROOT / "deploy" / "prometheus" / "parlour-alerts.yml"
_OPERATIONS = REPO_ROOT / "docs" / "operations.md"

_NOT_FROM_THE_SERVICES = {
    "up": "Prometheus writes it for every target it scrapes (1 when the scrape worked)",
    "kafka_consumergroup_lag": "kafka-exporter's, optional: the broker's view of the engine lag",
}
"""Metric names the dashboard or the alerts may use that no Parlour service exposes, and
where they come from. Every entry must be used somewhere (checked below)."""

_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
}
"""The series a metric family of each type shows in the text format. A labelled family
with no child yet has no sample line, so its series are derived from its type."""


def _yaml(text: str) -> Any:
    # ruamel.yaml: typed, and already a dev dependency (check-jsonschema's YAML reader)
    return YAML(typ="safe", pure=True).load(text)


# --- what the services expose --------------------------------------------------------------


def _families(registry: CollectorRegistry) -> Iterator[tuple[str, str, set[str]]]:
    """(family name, type, series names) as a scrape of that registry reads them."""
    text = generate_latest(registry).decode()
    for family in text_string_to_metric_families(text):
        series = {sample.name for sample in family.samples}
        series.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
        yield family.name, family.type, series


@functools.cache
def _service_families() -> dict[str, tuple[str, frozenset[str]]]:
    """Family name -> (type, series) for a fresh gateway and a fresh engine, built the way
    each service builds its registry (one `Metrics` object per process)."""
    families: dict[str, tuple[str, frozenset[str]]] = {}
    for registry in (GatewayMetrics().registry, EngineMetrics().registry):
        for name, kind, series in _families(registry):
            families[name] = (kind, frozenset(series))
    # `<name>_created` is prometheus_client's creation time of each counter and histogram,
    # shown as a gauge family of its own; it is part of its parent, not a metric to document
    return {
        name: value
        for name, value in families.items()
        if not (name.endswith("_created") and name.removesuffix("_created") in families)
    }


def _exposed_series() -> frozenset[str]:
    series: set[str] = set()
    for _, names in _service_families().values():
        series.update(names)
    # the created-time gauges are real series a query could name
    series.update(
        f"{name}_created"
        for name, (kind, _) in _service_families().items()
        if kind in ("counter", "histogram")
    )
    return frozenset(series)


# --- metric names in PromQL ----------------------------------------------------------------

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.$])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "inf", "nan", "atan2"}
)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: label matchers, strings, ranges,
    grouping clauses, functions, keywords, numbers and Grafana `$variables` are not."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPING.sub("", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in _KEYWORDS}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up == 0", {"up"}),
        ('absent(up{job="parlour-engine"} == 1)', {"up"}),
        (
            'sum by (instance) (rate(a_total{x=~"b|c"}[5m])) / on (instance) b_count > 0.5',
            {"a_total", "b_count"},
        ),
        (
            "histogram_quantile(0.99, sum by (le) (rate(h_bucket[$__rate_interval])))",
            {"h_bucket"},
        ),
        ("time() - t_seconds > 60 and x offset 5m or y unless z", {"t_seconds", "x", "y", "z"}),
        ('label_replace(m, "dst", "$1", "src", "(.*)") > bool 1e3', {"m"}),
        ("sum(q) without (pod) / count(q)", {"q"}),
    ],
)
def test_metric_names_finds_the_selected_series_only(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


# --- the files -----------------------------------------------------------------------------


@functools.cache
def _dashboard() -> dict[str, Any]:
    loaded = json.loads(_DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _panels() -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included; rows themselves are not."""
    found: list[dict[str, Any]] = []
    for panel in _dashboard()["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def _dashboard_exprs() -> list[str]:
    exprs = [target["expr"] for panel in _panels() for target in panel.get("targets", [])]
    for variable in _dashboard().get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def _alert_rules() -> list[dict[str, Any]]:
    loaded = _yaml(_ALERTS.read_text(encoding="utf-8"))
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def _used_names(exprs: list[str]) -> set[str]:
    used: set[str] = set()
    for expr in exprs:
        used |= metric_names(expr)
    return used


# --- the checks ----------------------------------------------------------------------------


def test_the_services_expose_the_metrics_this_module_expects() -> None:
    """The registry rendering works, so an empty set cannot make the checks below pass."""
    series = _exposed_series()
    assert "parlour_gateway_connections_current" in series
    assert "parlour_gateway_delivery_seconds_bucket" in series
    assert "parlour_engine_commands_total" in series  # a labelled family with no child yet
    assert "parlour_engine_command_seconds_count" in series
    assert "parlour_engine_commands" not in series  # a counter is read with its _total


def test_every_metric_the_dashboard_uses_is_exposed() -> None:
    used = _used_names(_dashboard_exprs())
    unknown = used - _exposed_series() - set(_NOT_FROM_THE_SERVICES)
    assert not unknown, f"the dashboard queries metrics no service exposes: {sorted(unknown)}"


def test_every_metric_the_alerts_use_is_exposed() -> None:
    used = _used_names([str(rule["expr"]) for rule in _alert_rules()])
    assert len(_alert_rules()) >= 16
    unknown = used - _exposed_series() - set(_NOT_FROM_THE_SERVICES)
    assert not unknown, f"the alert rules query metrics no service exposes: {sorted(unknown)}"


def test_every_outside_metric_is_still_used() -> None:
    used = _used_names(_dashboard_exprs()) | _used_names(
        [str(rule["expr"]) for rule in _alert_rules()]
    )
    stale = set(_NOT_FROM_THE_SERVICES) - used
    assert not stale, f"_NOT_FROM_THE_SERVICES lists metrics nothing uses: {sorted(stale)}"


def test_every_panel_has_a_query_and_the_datasource_variable() -> None:
    panels = _panels()
    assert len(panels) >= 20
    ids = [panel["id"] for panel in _dashboard()["panels"]] + [
        panel["id"] for row in _dashboard()["panels"] for panel in row.get("panels", [])
    ]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels:
        title = panel.get("title")
        assert title, f"panel {panel['id']} has no title"
        assert panel.get("description"), f"{title}: no description"
        targets = panel.get("targets", [])
        assert targets, f"{title}: no query"
        for target in targets:
            assert str(target.get("expr", "")).strip(), f"{title}: an empty query"
            assert metric_names(target["expr"]), f"{title}: {target['expr']} selects no metric"
        for source in [panel.get("datasource"), *(t.get("datasource") for t in targets)]:
            assert source == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, title


def test_panels_fit_the_grid_without_overlapping() -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in _dashboard()["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0, panel["title"]
        assert 0 < pos["w"] <= 24 - pos["x"], panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    """Connections, messages in and out, command latency p50/p99, event delivery latency,
    consumer lag, DLQ, errors, background-task health."""
    exprs = _dashboard_exprs()
    used = _used_names(exprs)
    wanted = {
        "parlour_gateway_connections_current",
        "parlour_gateway_messages_in_total",
        "parlour_gateway_messages_out_total",
        "parlour_engine_command_seconds_bucket",
        "parlour_gateway_delivery_seconds_bucket",
        "parlour_gateway_consumer_lag",
        "parlour_engine_consumer_lag",
        "parlour_engine_stalled_records",
        "parlour_engine_dead_letters_total",
        "parlour_engine_dropped_commands_total",
        "parlour_engine_commands_total",
        "parlour_gateway_auth_failures_total",
        "parlour_gateway_publish_failures_total",
        "parlour_gateway_errors_sent_total",
        "parlour_engine_background_task_last_ok_timestamp_seconds",
        "parlour_engine_background_task_failures_total",
        "parlour_gateway_task_failures_total",
    }
    assert wanted <= used, f"the dashboard does not show {sorted(wanted - used)}"
    for histogram in ("parlour_engine_command_seconds", "parlour_gateway_delivery_seconds"):
        for quantile in ("0.5", "0.99"):
            pattern = rf"histogram_quantile\({re.escape(quantile)},.*{histogram}_bucket"
            assert any(re.search(pattern, e) for e in exprs), f"{histogram} p{quantile}"


def test_the_dashboard_is_a_recent_schema_with_a_stable_uid() -> None:
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] >= 36  # Grafana 9 and later
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"])
    assert dashboard["title"]


def test_the_datasource_variable_defaults_to_the_provisioned_prometheus() -> None:
    variables = {v["name"]: v for v in _dashboard()["templating"]["list"]}
    variable = variables["DS_PROMETHEUS"]
    assert variable["type"] == "datasource"
    assert variable["query"] == "prometheus"
    provisioned = _yaml(_DATASOURCES.read_text(encoding="utf-8"))
    assert provisioned["apiVersion"] == 1
    [source] = provisioned["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert variable["current"]["value"] == source["uid"] == "prometheus"


def test_the_provider_loads_the_dashboards_folder() -> None:
    provisioned = _yaml(_PROVIDERS.read_text(encoding="utf-8"))
    assert provisioned["apiVersion"] == 1
    [provider] = provisioned["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_alerts_the_dashboard_names_exist() -> None:
    alerts = {rule["alert"] for rule in _alert_rules()}
    named = set(re.findall(r"\bParlour[A-Z]\w+", _DASHBOARD.read_text(encoding="utf-8")))
    assert named, "the panel descriptions name no alert"
    assert named <= alerts, f"the dashboard names alerts that do not exist: {named - alerts}"


def test_operations_md_documents_every_metric() -> None:
    """Its metric tables list each family under the name a query uses (counters with
    `_total`, histograms by their base name), and no metric the services do not have."""
    text = _OPERATIONS.read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `(parlour_\w+)` \|", text, re.M))
    documented_as = {
        name + ("_total" if kind == "counter" else "")
        for name, (kind, _) in _service_families().items()
    }
    assert not documented_as - rows, f"not in docs/operations.md: {documented_as - rows}"
    assert not rows - documented_as, f"docs/operations.md lists unknown {rows - documented_as}"


def _doc_row(text: str, metric: str) -> str:
    [row] = [line for line in text.splitlines() if line.startswith(f"| `{metric}` |")]
    return row


def test_operations_md_metric_rows_state_the_codes_values() -> None:
    text = _OPERATIONS.read_text(encoding="utf-8")
    dead_letters = _doc_row(text, "parlour_engine_dead_letters_total")
    missing = [r.value for r in DeadLetterReason if f"`{r.value}`" not in dead_letters]
    assert not missing, f"the dead-letter reasons {missing} are not explained"
    stalled = _doc_row(text, "parlour_engine_stalled_records")
    assert f"after {RECORD_STALL_MAX_SECONDS:g} s" in stalled
