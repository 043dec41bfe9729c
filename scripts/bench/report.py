"""The suite's output: `results.json`, `results.md` (absolute figures with the ratios
Parlour/peer and Parlour/floor beside them) and PNG plots, stamped with the machine and date."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.support import ROOT, percentile


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model or platform.processor(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "commit": commit,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def summary(latencies: list[float]) -> dict[str, float]:
    """p50/p95/p99/max of latencies in ms (NaN when there are none)."""
    return {
        "samples": len(latencies),
        "p50_ms": percentile(latencies, 0.5),
        "p95_ms": percentile(latencies, 0.95),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies) if latencies else float("nan"),
    }


def hop_table(hops: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """p50/p99 per hop over the samples that carried it; empty when none did."""
    names: list[str] = []
    for sample in hops:
        names += [n for n in sample if n not in names]
    return {
        name: {
            "p50_ms": percentile(values, 0.5),
            "p99_ms": percentile(values, 0.99),
            "samples": len(values),
        }
        for name in names
        if (values := [s[name] for s in hops if name in s])
    }


def _f(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _ratio(a: Any, b: Any) -> str:
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not b or a != a:
        return "-"
    return f"{a / b:.2f}x"


def _lat(s: dict[str, Any]) -> str:
    return " / ".join(_f(s.get(k)) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms"))


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    out = [
        f"# Parlour benchmark ({result['mode']} run)",
        "",
        f"{m['date']}, commit {m['commit']}: {m['nproc']} CPUs ({m['cpu']}), "
        f"{m['memory_gib']} GiB, Python {m['python']}, load average at the start "
        f"{', '.join(str(x) for x in m['load_average'])}. Target: {result['target']}.",
        "",
        "Latencies in ms as p50 / p95 / p99 / max. Ratios compare p50 latency (lower is "
        "better for Parlour) or commands/s (higher is better).",
        "",
    ]
    floor = result.get("floor", {})
    e2e = result.get("e2e", {})
    parlour, peer = e2e.get("parlour", {}), e2e.get("peer", {})
    if parlour:
        out += [
            "## End to end: roll until both players see `rolled`",
            "",
            "| load | Parlour latency | Parlour cmd/s | peer latency | peer cmd/s "
            "| Parlour/peer p50 | Parlour/peer cmd/s | Parlour/floor p50 |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for key, step in parlour.get("steps", {}).items():
            other = peer.get("steps", {}).get(key, {})
            missed = f" ({step['missed']} missed)" if step.get("missed") else ""
            out.append(
                f"| {key} | {_lat(step)} | {_f(step.get('rate'), 0)}{missed} | "
                f"{_lat(other) if other else '-'} | {_f(other.get('rate'), 0)} | "
                f"{_ratio(step.get('p50_ms'), other.get('p50_ms'))} | "
                f"{_ratio(step.get('rate'), other.get('rate'))} | "
                f"{_ratio(step.get('p50_ms'), floor.get('p50_ms'))} |"
            )
        out += [
            "",
            f"Highest sustainable rate (closed loop, {parlour.get('max_rooms')} rooms): "
            f"Parlour {_f(parlour.get('max_sustainable'), 0)} commands/s, peer "
            f"{_f(peer.get('max_sustainable'), 0)} commands/s "
            f"({_ratio(parlour.get('max_sustainable'), peer.get('max_sustainable'))}).",
            "",
        ]
        errors = {
            k: s.get("errors") for k, s in parlour.get("steps", {}).items() if s.get("errors")
        }
        if errors:
            out += [f"Rolls refused or lost: {errors}.", ""]
    if floor:
        out += [
            "## Floor (2 Kafka produce->consume hops + 1 Redis round trip, one at a time)",
            "",
            f"{_lat(floor)} over {floor.get('samples')} samples.",
            "",
        ]
    hops = result.get("hops", {})
    if hops:
        out += [
            "## Per hop",
            "",
            "From the gateways' `parlour_gateway_hop_seconds` (GATEWAY_HOP_TIMESTAMPS: every "
            "event a command causes, not only `rolled`; quantiles interpolated within buckets) "
            "or the frames' `trace`.",
            "",
        ]
        for load, table in hops.items():
            out += [f"### {load}", "", "| hop | p50 ms | p99 ms | samples |", "|---|---|---|---|"]
            out += [
                f"| {name} | {_f(v['p50_ms'], 2)} | {_f(v['p99_ms'], 2)} | {int(v['samples']):,} |"
                for name, v in table.items()
            ]
            out.append("")
    conns = result.get("connections", [])
    if conns:
        out += [
            "## Idle authenticated connections",
            "",
            "| gateway | sockets | failures | handshakes/s | RSS before MiB | RSS after MiB "
            "| KiB per connection |",
            "|---|---|---|---|---|---|---|",
        ]
        out += [
            f"| {c['gateway']} | {c['sockets']} | {c['failures']} | "
            f"{_f(c['handshakes_per_s'], 0)} | {_f(c.get('rss_before_mib'))} | "
            f"{_f(c.get('rss_after_mib'))} | {_f(c.get('kib_per_connection'))} |"
            for c in conns
        ]
        out.append("")
    fan = result.get("fanout")
    if fan:
        out += [
            f"## Fan-out: rooms of {fan['players']} players and {fan['spectators']} spectators",
            "",
            f"{fan['rooms']} rooms ({fan['sockets']} sockets on one gateway), {fan['events']} "
            f"events produced from another process: {fan['deliveries']:,} of "
            f"{fan['expected']:,} deliveries, **{_f(fan['deliveries_per_s'], 0)} deliveries/s**, "
            f"delivery latency p50 {_f(fan['p50_ms'])} ms, p99 {_f(fan['p99_ms'])} ms.",
            "",
        ]
    engine = result.get("engine")
    if engine:
        out += [
            "## Engine alone (Kafka in, Redis, Kafka out; no gateway)",
            "",
            "| measure | value | target |",
            "|---|---|---|",
            f"| commands/s, one process ({_f(engine.get('rooms'), 0)} rooms, closed loop) | "
            f"{_f(engine.get('commands_per_s'), 0)} | >= 5,000 |",
            f"| engine CPU per command (ms) | {_f(engine.get('cpu_ms_per_command'), 3)} | "
            "<= 0.25 |",
            f"| p50 / p99 at half that load (ms) | {_f(engine.get('half_p50_ms'), 2)} / "
            f"{_f(engine.get('half_p99_ms'), 2)} | p99 <= 10 |",
            "",
        ]
    skipped = result.get("skipped", {})
    if skipped:
        out += ["## Not measured in this run", ""]
        out += [f"- {phase}: {why}" for phase, why in skipped.items()]
        out.append("")
    return "\n".join(out)


def plots(result: dict[str, Any], samples: dict[str, dict[str, list[float]]], out: Path) -> None:
    """`latency_distribution.png` (the CDF of each load, Parlour and the peer) and
    `latency_vs_load.png` (p50 and p99 against the achieved rate)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stamp = f"{result['machine']['date']}, {result['machine']['nproc']} CPUs, {result['mode']}"
    fig, ax = plt.subplots(figsize=(9, 5.5))
    loads = list(dict.fromkeys([*samples.get("parlour", {}), *samples.get("peer", {})]))
    colours = plt.get_cmap("tab10")
    for system, style in (("parlour", "-"), ("peer", "--")):
        for load, values in samples.get(system, {}).items():
            if not values:
                continue
            ordered = sorted(values)
            ys = [(i + 1) / len(ordered) for i in range(len(ordered))]
            colour = colours(loads.index(load) % 10)
            ax.plot(ordered, ys, style, color=colour, label=f"{system} {load}")
    ax.set_xscale("log")
    ax.set_xlabel("roll -> both players see the result (ms, log scale)")
    ax.set_ylabel("fraction of rolls")
    ax.set_title(f"Latency distribution ({stamp})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "latency_distribution.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 5.5))
    e2e = result.get("e2e", {})
    for system, color in (("parlour", "tab:blue"), ("peer", "tab:orange")):
        steps = e2e.get(system, {}).get("steps", {})
        fixed = sorted(
            (s for s in steps.values() if s.get("samples") and s.get("offered")),
            key=lambda s: s["offered"],
        )
        closed = [(k, s) for k, s in steps.items() if s.get("samples") and not s.get("offered")]
        if fixed:
            rates = [s["rate"] for s in fixed]
            ax.plot(rates, [s["p50_ms"] for s in fixed], "o-", color=color, label=f"{system} p50")
            ax.plot(rates, [s["p99_ms"] for s in fixed], "s--", color=color, label=f"{system} p99")
        for label, s in closed:
            ax.plot([s["rate"]], [s["p50_ms"]], "D", color=color, markerfacecolor="none")
            ax.annotate(
                label.replace("closed loop, ", ""),
                (s["rate"], s["p50_ms"]),
                fontsize=7,
                textcoords="offset points",
                xytext=(4, 4),
            )
    floor = result.get("floor", {})
    if floor.get("p50_ms"):
        ax.axhline(floor["p50_ms"], color="grey", linestyle=":", label="floor p50")
    ax.set_yscale("log")
    ax.set_xlabel(
        "commands/s achieved (lines: fixed offered loads; hollow diamonds: p50 of the closed loops)"
    )
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title(f"Latency against load ({stamp})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "latency_vs_load.png", dpi=110)
    plt.close(fig)


def write(result: dict[str, Any], samples: dict[str, dict[str, list[float]]], out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(result)
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / "results.md").write_text(text + "\n")
    plots(result, samples, out)
    return text


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")
