"""The README's settings tables are the settings classes' own (scripts/gen_settings_docs.py):
a setting added, renamed or given a new default without its row fails here."""

from __future__ import annotations

import pytest
from gen_settings_docs import README, DocsError, _row, render, tables

from parlour_gateway.settings import GatewaySettings


def test_the_readme_tables_are_up_to_date() -> None:
    current = README.read_text()
    assert render(current) == current, (
        "README.md's settings tables are stale: run "
        ".venv/bin/python scripts/gen_settings_docs.py --write"
    )


def test_every_variable_has_a_row() -> None:
    text = "\n".join(tables().values())
    for name in ("REDIS_HOST", "REDIS_DB", "LOG_FORMAT", "WS_HEARTBEAT_INTERVAL_SECONDS"):
        assert f"| `{name}` |" in text
    assert "`ENGINE_SESSION_TIMEOUT_MS` (in milliseconds)" in text
    assert "| `ENGINE_SESSION_TIMEOUT_MS` |" not in text  # an old name is no row of its own


def test_a_setting_without_a_description_cannot_be_documented() -> None:
    class Undocumented(GatewaySettings):
        ws_secret_knob: int = 1

    with pytest.raises(DocsError, match="ws_secret_knob"):
        _row(Undocumented, "ws_secret_knob")
