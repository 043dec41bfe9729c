"""Fixtures of the rules tests; the helpers live in rules_table.py (a conftest module is not
importable by name once several conftest.py files are collected)."""

from __future__ import annotations

import pytest
from rules_table import Table


@pytest.fixture
def table() -> Table:
    return Table()
