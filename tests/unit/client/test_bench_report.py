"""The benchmark suite's reading of what the client receives (scripts/bench): per-hop stamps
are parsed in one place and the report shows a per-hop table only when frames carried them."""

from __future__ import annotations

from typing import Any

from bench.hops import add, hop_durations, hop_table_from_metrics, hop_times, scrape
from bench.report import hop_table, markdown, summary, targets, targets_table


def test_frames_without_a_trace_have_no_hops() -> None:
    assert hop_times({"type": "games.event.bigger_dice.rolled", "seq": 3}) is None
    assert hop_times({"type": "x", "trace": {"unknown": 1.0}}) is None


def test_hop_stamps_in_seconds_milliseconds_or_rfc3339() -> None:
    frame = {
        "trace": {
            "gateway_received": 1_700_000_000.000,
            "produced": 1_700_000_000_001,  # milliseconds
            "engine_consumed": "2023-11-14T22:13:20.003Z",
        }
    }
    stamps = hop_times(frame)
    assert stamps is not None
    durations = hop_durations(stamps, sent_at=1_699_999_999.999, received_at=None)
    assert list(durations) == [
        "client_sent -> gateway_received",
        "gateway_received -> produced",
        "produced -> engine_consumed",
    ]
    assert [round(v, 3) for v in durations.values()] == [1.0, 1.0, 2.0]


def _result(**extra: Any) -> dict[str, Any]:
    step = {**summary([1.0, 2.0, 3.0]), "rate": 100.0, "missed": 0, "errors": 0}
    return {
        "mode": "quick",
        "target": "local",
        "machine": {
            "date": "2026-01-01 00:00 UTC",
            "commit": "abc",
            "nproc": 2,
            "cpu": "cpu",
            "memory_gib": 1.0,
            "python": "3.11",
            "load_average": [0.0, 0.0, 0.0],
        },
        "e2e": {
            "parlour": {"steps": {"200/s offered": step}, "max_rooms": 2, "max_sustainable": 9.0},
            "peer": {"steps": {"200/s offered": {**step, "p50_ms": 1.0}}, "max_sustainable": 3.0},
        },
        "floor": summary([0.5, 1.0]),
        **extra,
    }


def test_the_report_puts_ratios_beside_the_figures_and_hops_only_when_carried() -> None:
    text = markdown(_result())
    assert "| 200/s offered | 2.0 / 3.0 / 3.0 / 3.0 | 100 |" in text
    assert "2.00x" in text  # Parlour/peer p50
    assert "3.00x" in text  # Parlour/peer sustainable rate
    assert "Per hop" not in text
    hops = hop_table([{"gateway_received -> produced": 1.5}, {"gateway_received -> produced": 2.5}])
    with_hops = markdown(_result(hops={"200/s offered": hops}))
    assert "Per hop" in with_hops
    assert "| gateway_received -> produced |" in with_hops


_EXPOSITION = """
# TYPE parlour_gateway_hop_seconds histogram
parlour_gateway_hop_seconds_bucket{hop="gr-gp",le="0.001"} 8.0
parlour_gateway_hop_seconds_bucket{hop="gr-gp",le="0.002"} 10.0
parlour_gateway_hop_seconds_bucket{hop="gr-gp",le="+Inf"} 10.0
parlour_gateway_hop_seconds_bucket{le="0.001",hop="gp-ec"} 0.0
parlour_gateway_hop_seconds_bucket{le="0.002",hop="gp-ec"} 10.0
parlour_gateway_hop_seconds_bucket{le="+Inf",hop="gp-ec"} 10.0
parlour_gateway_hop_seconds_count{hop="gr-gp"} 10.0
"""


def test_the_gateways_hop_histograms_give_a_table_per_step() -> None:
    before = scrape(_EXPOSITION.replace(" 10.0", " 0.0").replace(" 8.0", " 0.0"))
    after = add(scrape(_EXPOSITION), {})
    table = hop_table_from_metrics(before, after)
    assert list(table) == ["gateway received -> produced", "produced -> engine consumed"]
    first = table["gateway received -> produced"]
    assert first["samples"] == 10
    assert 0.0 < first["p50_ms"] <= 1.0
    assert 1.0 < first["p99_ms"] <= 2.0
    assert 1.0 < table["produced -> engine consumed"]["p50_ms"] <= 2.0
    assert hop_table_from_metrics(after, after) == {}


def test_each_issue_target_is_judged_from_the_figures_not_written_by_hand() -> None:
    def step(p50: float, rate: float, engine: float, gateway: float) -> dict[str, Any]:
        cpu = {"engine": engine, "gateway": gateway}
        return {**summary([p50]), "rate": rate, "cpu_ms_per_command": cpu}

    steps = {
        "200/s offered": step(3.0, 200.0, 0.2, 0.1),
        "500/s offered": step(3.0, 500.0, 0.3, 0.1),  # the engine's worst: not met
        "closed loop, 20 rooms": step(3.0, 600.0, 0.2, 0.1),
        "closed loop, 50 rooms": step(6.0, 700.0, 0.2, 0.1),
    }
    peer = {
        "closed loop, 20 rooms": step(2.5, 900.0, 0.1, 0.1),
        "closed loop, 50 rooms": step(3.0, 1000.0, 0.1, 0.1),
    }
    result = _result(
        e2e={
            "parlour": {"steps": steps, "light": {"light, 1 room": step(2.0, 50.0, 1.0, 1.0)}},
            "peer": {"steps": peer},
        },
        floor=summary([1.0]),
        connections=[{"sockets": 100, "kib_per_connection": 25.0}],
    )
    met = {row["target"].split(",")[0].split(" (")[0]: row["met"] for row in targets(result)}
    assert met["roll -> `rolled` p50 at light load"] is True  # 2.0 ms = 2x a 1 ms floor
    assert met["engine CPU per command"] is False
    assert met["gateway CPU per command"] is True
    assert met["20 rooms closed loop"] is True  # 3.0 / 2.5 = 1.2x
    assert met["50 rooms closed loop"] is True  # 700 / 1000 = 0.7x
    assert met["gateway memory per idle authenticated connection"] is False
    assert met["one engine process"] is None  # the engine phase did not run
    table = "\n".join(targets_table(targets(result)))
    assert "| engine CPU per command, its events included | <= 0.25 ms |" in table
    assert table.count("| not measured |") >= 3
