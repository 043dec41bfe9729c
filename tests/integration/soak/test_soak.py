"""`make soak` in small: the soak (scripts/soak) runs end to end on the single-node topology,
writes its report, and nothing it did is left in Redis once every user has left."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO_ROOT

PYTHON = (
    str(REPO_ROOT / ".venv" / "bin" / "python")
    if (REPO_ROOT / ".venv").exists()
    else (sys.executable)
)
CONNECTIONS = 300


def test_a_short_soak_reports_its_figures_and_leaves_no_key_behind(tmp_path: Path) -> None:
    """On the single-node topology of `make infra-up` (Kafka 127.0.0.1:9092, Redis :6379,
    started by the soak when they do not answer), whatever .infra/run/env names."""
    out = tmp_path / "soak.json"
    command = [
        PYTHON,
        str(REPO_ROOT / "scripts" / "soak"),
        "--minutes=0.5",
        f"--connections={CONNECTIONS}",
        "--topology=single",
        "--think=0.3",
        # a short run waits for the rooms to go, not for the 60 s idempotency records
        "--no-until-empty",
        "--cleanup-timeout=30",
        f"--workdir={tmp_path / 'run'}",
        f"--json={out}",
        f"--markdown={tmp_path / 'soak.md'}",
    ]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=150)
    assert out.exists(), f"no report ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr}"
    result = json.loads(out.read_text())

    # the report's structure: per process RSS at start and end, Redis memory, games, errors
    assert [p["name"] for p in result["processes"]] == [
        "engine1",
        "engine2",
        "gateway1",
        "gateway2",
    ]
    for process in result["processes"]:
        assert process["rss_start"] > 0, process
        assert process["rss_end"] > 0, process
        assert process["exit_code"] == 0, process
    memory = result["redis_memory"]
    assert memory["used_memory_start"] > 0
    assert memory["used_memory_end"] > 0
    assert result["redis_masters"] == 1
    assert next(s["label"] for s in result["samples"]) == "start"
    assert result["samples"][-1]["label"] == "cleaned up", result["cleanup"]
    assert isinstance(result["errors"], dict)
    assert isinstance(result["timeouts"], dict)
    assert result["load"]["connected_peak"] == CONNECTIONS
    assert result["games"]["finished"] > 0, result["games"]
    assert result["load"]["chat_lines"] > 0
    assert result["load"]["lists"] > 0
    assert (tmp_path / "soak.md").read_text().startswith("# Soak:")

    # once every user left: no room, index, presence or socket key of the run stays for good
    cleanup = result["cleanup"]
    assert cleanup["leaks"] == [], json.dumps(cleanup["keys_left"], indent=1)
    assert cleanup["rooms_left"] == {}
    for group in cleanup["keys_left"]:
        # expiring: a TTL within the documented bound of its kind (scripts/soak/sampler.py)
        assert group["verdict"] in ("expiring", "long-lived"), group
        if group["verdict"] == "expiring":
            assert group["without_ttl"] == 0, group
    assert result["ok"], result["problems"]
    assert done.returncode == 0, done.stdout[-3000:]
