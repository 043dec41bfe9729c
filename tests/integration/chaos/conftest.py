"""The chaos tests: every test here is marked `chaos`. The short ones (marked `chaos_short`)
run in plain `pytest` too; the others only when PARLOUR_CHAOS=1 (`make chaos` sets it), since
they take minutes or need the cluster topology. The verdicts of the session are printed as a
markdown table at the end and written to .infra/chaos/results.json and results.md."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.chaos import RESULTS, RESULTS_DIR, ChaosStack, write_results

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # a conftest hook sees every collected item, not only those below it
    everything = os.environ.get("PARLOUR_CHAOS") == "1"
    keep, dropped = [], []
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.chaos)
            if not everything and item.get_closest_marker("chaos_short") is None:
                dropped.append(item)
                continue
        keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RESULTS:
        return
    table = write_results(RESULTS)
    terminalreporter.section("chaos results")
    terminalreporter.write(table)
    terminalreporter.write_line(f"(written to {RESULTS_DIR}/results.json and results.md)")
    for result in RESULTS:
        for problem in result.problems[:20]:
            terminalreporter.write_line(f"{result.fault}: {problem}")


@pytest.fixture
async def chaos_stack(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[ChaosStack]:
    """2 engines and 2 gateways on the session's Kafka and Redis, started."""
    stack = ChaosStack(
        bootstrap=kafka_bootstrap, redis_url=redis_url, prefix=topic_prefix, log_dir=tmp_path
    )
    try:
        await stack.start()
        yield stack
    finally:
        await stack.stop()
