"""The suite's output: `results.json`, `results.md` (absolute figures with the ratios
Parlour/peer and Parlour/floor beside them) and PNG plots, stamped with the machine and date."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import statistics
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.support import ROOT, percentile
from parlour_runtime import EventLoop, loop_in_use

CPU_TARGETS_MS = {"engine": 0.25, "gateway": 0.15}
"""Issue 11: CPU per command, the events it causes included, summed over the processes."""
LIGHT_TARGET = 2.5
"""Issue 11: roll -> `rolled` p50 at light load at most this many times the floor's p50."""
TARGET_STEPS = ("200/s offered", "500/s offered", "1000/s offered")
"""The loads (besides the 20- and 50-room closed loops) the CPU targets are judged over."""


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
        # what a local stack's services start on (EVENT_LOOP, default auto), and the peer:
        # uvicorn.run's default loop is uvloop whenever it is installed
        "event_loop": {
            "parlour": loop_in_use(_event_loop_setting()),
            "peer": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        },
    }


def _event_loop_setting() -> EventLoop:
    value = os.environ.get("EVENT_LOOP", "auto").strip().lower()
    return value if value in ("auto", "uvloop", "asyncio") else "auto"  # type: ignore[return-value]


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


def _cpu(step: dict[str, Any], role: str) -> str:
    return _f((step.get("cpu_ms_per_command") or {}).get(role), 3)


def _idle(parlour: dict[str, Any], peer: dict[str, Any]) -> str:
    def busy(figures: dict[str, Any] | None) -> str:
        return ", ".join(f"{role} {_f(v)}%" for role, v in (figures or {}).items()) or "-"

    return (
        "Idle (rooms open, no rolls), CPU in % of one core summed over the processes: Parlour "
        f"{busy(parlour.get('idle_cpu_pct'))}; peer {busy(peer.get('idle_cpu_pct'))}."
    )


def _light(parlour: dict[str, Any], peer: dict[str, Any], floor: dict[str, Any]) -> list[str]:
    light = parlour.get("light") or {}
    if not light:
        return []
    out = [
        "## Light load: one roll at a time per room, the next as soon as the turn is known",
        "",
        f"Target: Parlour's p50 <= {LIGHT_TARGET}x the floor's p50 measured in the same run "
        f"({_f(floor.get('p50_ms'), 2)} ms).",
        "",
        "| load | Parlour latency | Parlour cmd/s | engine / gateway CPU ms/cmd | peer latency "
        "| Parlour/floor p50 | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, step in light.items():
        other = (peer.get("light") or {}).get(key, {})
        ratio = _div(step.get("p50_ms"), floor.get("p50_ms"))
        out.append(
            f"| {key} | {_lat(step)} | {_f(step.get('rate'), 0)} | {_cpu(step, 'engine')} / "
            f"{_cpu(step, 'gateway')} | {_lat(other) if other else '-'} | "
            f"{_ratio(step.get('p50_ms'), floor.get('p50_ms'))} | "
            f"{_met(None if ratio is None else ratio <= LIGHT_TARGET)} |"
        )
    out.append("")
    return out


def _ramps(parlour: dict[str, Any], peer: dict[str, Any]) -> list[str]:
    ramps: list[tuple[str, dict[str, Any]]] = [
        (name, e["ramp"]) for name, e in (("Parlour", parlour), ("peer", peer)) if e.get("ramp")
    ]
    best, other = parlour.get("max_sustainable"), peer.get("max_sustainable")
    if not ramps and best is None:
        return []
    out = [
        "## Highest sustainable rate",
        "",
        f"Parlour {_f(best, 0)} commands/s, peer {_f(other, 0)} commands/s "
        f"(Parlour/peer {_ratio(best, other)}).",
        "",
    ]
    if not ramps:
        return out
    first = ramps[0][1]
    out += [
        "Offered loads grow step by step until one is not sustained (p99 above "
        f"{_f(first['p99_bound_ms'], 0)} ms, or fewer than "
        f"{_f(100 * first['completed_bound'], 0)}% of the offered rolls completed), then one "
        "step between the last sustained load and that one (when even the first step failed: "
        "up to two steps below it); the rate is the completed one at the highest sustained "
        "step.",
        "",
    ]
    for name, r in ramps:
        out.append(
            f"- **{name}: {_f(r.get('sustainable_rate'), 0)} commands/s** completed at "
            f"{_f(r.get('sustainable_offered'), 0)}/s offered (p99 "
            f"{_f(r.get('sustainable_p99_ms'))} ms); stopped by: {r.get('stopped_by')}."
        )
    out += [
        "",
        "| system | offered/s | completed/s | completed | latency | CPU ms/cmd | sustained |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in ramps:
        for row in r["steps"]:
            cpu = " / ".join(
                f"{role} {_f(v, 3)}" for role, v in (row.get("cpu_ms_per_command") or {}).items()
            )
            out.append(
                f"| {name} | {_f(row.get('offered'), 0)} | {_f(row.get('rate'), 0)} | "
                f"{_f(100 * row['completed_fraction'], 0)}% | {_lat(row)} | {cpu or '-'} | "
                f"{'yes' if row['sustained'] else 'no: ' + row['why']} |"
            )
    out.append("")
    return out


def _div(a: Any, b: Any) -> float | None:
    ok = isinstance(a, int | float) and isinstance(b, int | float)
    if not ok or not b or a != a or b != b:
        return None
    return float(a) / float(b)


def _met(ok: bool | None) -> str:
    return "not measured" if ok is None else ("yes" if ok else "no")


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return float(value)


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per issue-11 target: the goal, what this run measured, and whether it is met
    (None: this run did not measure it). Computed from the figures, never written by hand."""
    e2e = result.get("e2e", {})
    parlour, peer = e2e.get("parlour", {}), e2e.get("peer", {})
    steps, peer_steps = parlour.get("steps", {}), peer.get("steps", {})
    floor = _num(result.get("floor", {}).get("p50_ms"))
    engine = result.get("engine") or {}
    rows: list[dict[str, Any]] = []

    def row(target: str, goal: str, measured: str, met: bool | None) -> None:
        rows.append({"target": target, "goal": goal, "measured": measured, "met": met})

    light = parlour.get("light") or {}
    ratios = {k: _div(s.get("p50_ms"), floor) for k, s in light.items()}
    known = [r for r in ratios.values() if r is not None]
    row(
        "roll -> `rolled` p50 at light load (1-5 rooms), against the floor of the same run",
        f"<= {LIGHT_TARGET}x floor",
        "; ".join(
            f"{k}: {_f(light[k].get('p50_ms'), 2)} ms = {_f(r, 2)}x" for k, r in ratios.items()
        )
        + (f" (floor p50 {_f(floor, 2)} ms)" if floor else " (no floor measured)"),
        (max(known) <= LIGHT_TARGET) if known and len(known) == len(ratios) else None,
    )
    judged = [k for k in (*TARGET_STEPS, "closed loop, 20 rooms", "closed loop, 50 rooms")]
    for role in ("engine", "gateway"):
        values = {
            k: v
            for k in judged
            if (v := _num((steps.get(k, {}).get("cpu_ms_per_command") or {}).get(role))) is not None
        }
        goal = CPU_TARGETS_MS[role]
        if values:
            worst = max(values, key=lambda k: values[k])
            best = min(values, key=lambda k: values[k])
            measured = (
                f"{_f(values[best], 3)} ms ({best}) to {_f(values[worst], 3)} ms ({worst}), "
                f"end to end over {len(values)} loads"
            )
        else:
            measured = "not measured (no local processes to read)"
        if role == "engine" and _num(engine.get("cpu_ms_per_command")) is not None:
            measured += f"; engine alone {_f(engine['cpu_ms_per_command'], 3)} ms"
        row(
            f"{role} CPU per command, its events included",
            f"<= {goal} ms",
            measured,
            max(values.values()) <= goal if values else None,
        )
    rate = _num(engine.get("commands_per_s"))
    row(
        "one engine process, commands/s",
        ">= 5,000",
        f"{_f(rate, 0)} ({_f(engine.get('rooms'), 0)} rooms)" if rate else "not measured",
        rate >= 5000 if rate is not None else None,
    )
    p99 = _num(engine.get("half_p99_ms"))
    row(
        "one engine process, p99 at half that load",
        "<= 10 ms",
        f"{_f(p99, 2)} ms at {_f(engine.get('half_rate'), 0)} commands/s"
        if p99 is not None
        else "not measured",
        p99 <= 10 if p99 is not None else None,
    )
    ours, theirs = (
        steps.get("closed loop, 20 rooms", {}),
        peer_steps.get("closed loop, 20 rooms", {}),
    )
    ratio = _div(ours.get("p50_ms"), theirs.get("p50_ms"))
    row(
        "20 rooms closed loop, p50 against the peer's",
        "<= 1.5x",
        f"{_f(ours.get('p50_ms'))} ms vs {_f(theirs.get('p50_ms'))} ms = {_f(ratio, 2)}x"
        if ratio is not None
        else "not measured",
        ratio <= 1.5 if ratio is not None else None,
    )
    ours, theirs = (
        steps.get("closed loop, 50 rooms", {}),
        peer_steps.get("closed loop, 50 rooms", {}),
    )
    ratio = _div(ours.get("rate"), theirs.get("rate"))
    row(
        "50 rooms closed loop, commands/s against the peer's",
        ">= 0.6x",
        f"{_f(ours.get('rate'), 0)} vs {_f(theirs.get('rate'), 0)} = {_f(ratio, 2)}x"
        if ratio is not None
        else "not measured",
        ratio >= 0.6 if ratio is not None else None,
    )
    conns = [c for c in result.get("connections", []) if _num(c.get("kib_per_connection"))]
    worst_kib = max((float(c["kib_per_connection"]) for c in conns), default=None)
    row(
        "gateway memory per idle authenticated connection",
        "<= 20 KiB",
        f"{_f(worst_kib)} KiB (worst gateway, "
        f"{_f(min(c['sockets'] for c in conns), 0)}+ sockets each)"
        if worst_kib is not None
        else "not measured",
        worst_kib <= 20 if worst_kib is not None else None,
    )
    fan = result.get("fanout") or {}
    per_s = _num(fan.get("deliveries_per_s"))
    row(
        "event deliveries/s from one gateway process, load from another process",
        ">= 50,000",
        f"{_f(per_s, 0)} ({_f(fan.get('deliveries'), 0)} deliveries)" if per_s else "not measured",
        per_s >= 50_000 if per_s is not None else None,
    )
    filtered = result.get("filter") or {}
    us = _num(filtered.get("gateway, record form (headers)"))
    bare = _num(filtered.get("bare aiokafka iteration"))
    row(
        "gateway CPU per event meant for sockets it does not hold",
        "<= 4 us",
        (
            f"{_f(us, 2)} us (a bare aiokafka iteration of the same records: {_f(bare, 2)} us; "
            f"{_f(filtered.get('events'), 0)} events)"
            if us is not None
            else "not measured"
        ),
        us <= 4.0 if us is not None else None,
    )
    return rows


def targets_table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "## Issue 11 targets",
        "",
        "| target | goal | measured | met |",
        "|---|---|---|---|",
    ]
    out += [f"| {r['target']} | {r['goal']} | {r['measured']} | {_met(r['met'])} |" for r in rows]
    out.append("")
    return out


def _loops(m: dict[str, Any]) -> str:
    loops = m.get("event_loop")
    if not loops:
        return ""
    return f" Event loop: Parlour {loops['parlour']}, peer {loops['peer']}."


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    out = [
        f"# Parlour benchmark ({result['mode']} run)",
        "",
        f"{m['date']}, commit {m['commit']}: {m['nproc']} CPUs ({m['cpu']}), "
        f"{m['memory_gib']} GiB, Python {m['python']}, load average at the start "
        f"{', '.join(str(x) for x in m['load_average'])}. Target: {result['target']}." + _loops(m),
        "",
        "Latencies in ms as p50 / p95 / p99 / max. Ratios compare p50 latency (lower is "
        "better for Parlour) or commands/s (higher is better).",
        "",
    ]
    if result.get("targets"):
        out += targets_table(result["targets"])
    floor = result.get("floor", {})
    e2e = result.get("e2e", {})
    parlour, peer = e2e.get("parlour", {}), e2e.get("peer", {})
    if parlour:
        out += [
            "## End to end: roll until both players see `rolled`",
            "",
            "CPU ms per command: the CPU seconds every engine (every gateway, every peer "
            "server) process used over the step, divided by the rolls completed; the events a "
            "roll causes are in it. Targets: engine <= "
            f"{CPU_TARGETS_MS['engine']} ms, gateway <= {CPU_TARGETS_MS['gateway']} ms.",
            "",
            "| load | Parlour latency | Parlour cmd/s | engine CPU ms/cmd (target "
            f"<= {CPU_TARGETS_MS['engine']}) | gateway CPU ms/cmd (target <= "
            f"{CPU_TARGETS_MS['gateway']}) | peer latency | peer cmd/s | peer server CPU ms/cmd "
            "| Parlour/peer p50 | Parlour/peer cmd/s | Parlour/floor p50 |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for key, step in parlour.get("steps", {}).items():
            other = peer.get("steps", {}).get(key, {})
            missed = f" ({step['missed']} missed)" if step.get("missed") else ""
            out.append(
                f"| {key} | {_lat(step)} | {_f(step.get('rate'), 0)}{missed} | "
                f"{_cpu(step, 'engine')} | {_cpu(step, 'gateway')} | "
                f"{_lat(other) if other else '-'} | {_f(other.get('rate'), 0)} | "
                f"{_cpu(other, 'server')} | "
                f"{_ratio(step.get('p50_ms'), other.get('p50_ms'))} | "
                f"{_ratio(step.get('rate'), other.get('rate'))} | "
                f"{_ratio(step.get('p50_ms'), floor.get('p50_ms'))} |"
            )
        out += [
            "",
            f"Closed loop over the whole pool ({parlour.get('max_rooms')} rooms): Parlour "
            f"{_f(parlour.get('closed_pool_rate'), 0)} commands/s, peer "
            f"{_f(peer.get('closed_pool_rate'), 0)} commands/s "
            f"({_ratio(parlour.get('closed_pool_rate'), peer.get('closed_pool_rate'))}).",
            "",
            _idle(parlour, peer),
            "",
        ]
        out += _light(parlour, peer, floor)
        out += _ramps(parlour, peer)
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
            "| KiB per connection | s until closed |",
            "|---|---|---|---|---|---|---|---|",
        ]
        out += [
            f"| {c['gateway']} | {c['sockets']} | {c['failures']} | "
            f"{_f(c['handshakes_per_s'], 0)} | {_f(c.get('rss_before_mib'))} | "
            f"{_f(c.get('rss_after_mib'))} | {_f(c.get('kib_per_connection'))} | "
            f"{_f(c.get('settle_seconds'))} |"
            for c in conns
        ]
        out += [
            "",
            "s until closed: after the clients closed, how long until the gateway's open-socket "
            "gauge (a socket counts until its presence clean-up ran) was back to 0; the next "
            "phase starts then.",
            "",
        ]
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
    laps = result.get("phase_seconds") or {}
    if laps:
        out += [
            "Time taken, s: "
            + ", ".join(f"{phase} {_f(float(sec), 0)}" for phase, sec in laps.items())
            + f"; {_f(result.get('seconds'), 0)} in all.",
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
        ramp = (e2e.get(system, {}).get("ramp") or {}).get("steps", [])
        fixed = sorted(
            (s for s in [*steps.values(), *ramp] if s.get("samples") and s.get("offered")),
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
        "commands/s achieved (lines: fixed offered loads and the ramp; hollow diamonds: p50 of "
        "the closed loops)"
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
    result["targets"] = targets(result)
    text = markdown(result)
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / "results.md").write_text(text + "\n")
    plots(result, samples, out)
    return text


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")
