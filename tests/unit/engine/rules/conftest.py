"""Fixtures of the rules tests; the table itself lives in tests/support/rules_table.py."""

from __future__ import annotations

import pytest

from tests.support.rules_table import Table


@pytest.fixture
def table() -> Table:
    return Table()
