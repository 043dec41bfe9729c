"""Per-hop times of a command's path, when the stack carries them; the report prints a
per-hop table only when some came. Two sources, each read in one place here:

- the gateways' `parlour_gateway_hop_seconds` histogram (`scrape()`), filled when a gateway
  runs with GATEWAY_HOP_TIMESTAMPS on: the suite turns it on for the gateways it starts and
  reads each gateway's /metrics before and after every load step;
- a `trace` object on the event frame (`hop_times()`): wall-clock stamps named by hop, in
  seconds or milliseconds since the epoch or RFC 3339, should the services ever send them.
"""

from __future__ import annotations

import itertools
import re
from datetime import datetime
from typing import Any

HOPS = (
    "gateway_received",
    "produced",
    "engine_consumed",
    "committed",
    "events_produced",
    "gateway_consumed",
    "frame_written",
)
"""The path of a command, in order; a hop is the time from one stamp to the next."""


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) / 1000.0 if value > 1e11 else float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def hop_times(frame: dict[str, Any]) -> dict[str, float] | None:
    """The frame's hop stamps as epoch seconds, or None when it carries none."""
    trace = frame.get("trace")
    if not isinstance(trace, dict):
        return None
    stamps = {name: s for name in HOPS if (s := _seconds(trace.get(name))) is not None}
    return stamps or None


def hop_durations(
    stamps: dict[str, float], sent_at: float | None, received_at: float | None
) -> dict[str, float]:
    """Milliseconds between consecutive stamps (`client -> gateway_received` and
    `frame_written -> client` too when the client's own wall-clock times are given)."""
    points: list[tuple[str, float]] = []
    if sent_at is not None:
        points.append(("client_sent", sent_at))
    points += [(name, stamps[name]) for name in HOPS if name in stamps]
    if received_at is not None:
        points.append(("client_received", received_at))
    return {f"{a} -> {b}": (tb - ta) * 1000.0 for (a, ta), (b, tb) in itertools.pairwise(points)}


# --- from the gateways' metrics ---------------------------------------------------------------
# A gateway with GATEWAY_HOP_TIMESTAMPS on carries `p-hops` (gr, gp, ec, ek, ep, then gc and fw
# on the event) and observes each step in the histogram below, labelled `<from>-<to>` (and
# `total`). The suite reads it before and after each load step; the difference is that step's.

HOP_METRIC = "parlour_gateway_hop_seconds"
HOP_NAMES = {
    "gr": "gateway received",
    "gp": "produced",
    "ec": "engine consumed",
    "ek": "committed",
    "ep": "events produced",
    "gc": "gateway consumed",
    "fw": "frame written",
}
_BUCKET = re.compile(
    HOP_METRIC + r'_bucket\{(?=[^}]*hop="([^"]+)")(?=[^}]*le="([^"]+)")[^}]*\} ([0-9.eE+-]+)'
)

Histograms = dict[str, dict[float, float]]
"""hop label -> bucket upper bound (seconds) -> cumulative count."""


def scrape(metrics_text: str) -> Histograms:
    """The hop histogram's buckets from one Prometheus text exposition."""
    out: Histograms = {}
    for match in _BUCKET.finditer(metrics_text):
        label, le, count = match.groups()
        out.setdefault(label, {})[float(le)] = float(count)
    return out


def add(total: Histograms, more: Histograms) -> Histograms:
    """Buckets of several gateways summed."""
    out = {label: dict(buckets) for label, buckets in total.items()}
    for label, buckets in more.items():
        mine = out.setdefault(label, {})
        for le, count in buckets.items():
            mine[le] = mine.get(le, 0.0) + count
    return out


def _quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Like PromQL's histogram_quantile: linear within the bucket that holds the quantile."""
    total = buckets[-1][1]
    rank = q * total
    lower_le, lower_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return lower_le
            span = count - lower_count
            return lower_le + (le - lower_le) * ((rank - lower_count) / span if span else 1.0)
        lower_le, lower_count = le, count
    return lower_le


def hop_table_from_metrics(before: Histograms, after: Histograms) -> dict[str, dict[str, float]]:
    """p50/p99 in ms per hop observed between two scrapes; empty when nothing was."""
    table: dict[str, dict[str, float]] = {}
    for label, buckets in after.items():
        diff = sorted(
            (le, count - before.get(label, {}).get(le, 0.0)) for le, count in buckets.items()
        )
        if not diff or diff[-1][1] <= 0:
            continue
        table[_readable(label)] = {
            "p50_ms": _quantile(diff, 0.5) * 1000.0,
            "p99_ms": _quantile(diff, 0.99) * 1000.0,
            "samples": diff[-1][1],
        }
    order = {
        f"{HOP_NAMES[a]} -> {HOP_NAMES[b]}": i
        for i, (a, b) in enumerate(itertools.pairwise(HOP_NAMES))
    }
    return dict(sorted(table.items(), key=lambda item: order.get(item[0], len(order))))


def _readable(label: str) -> str:
    start, _, end = label.partition("-")
    if start in HOP_NAMES and end in HOP_NAMES:
        return f"{HOP_NAMES[start]} -> {HOP_NAMES[end]}"
    return label
