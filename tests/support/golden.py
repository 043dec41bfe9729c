"""Helpers shared by the protocol tests: the golden fixtures.

(Not a conftest: imported by name, which works because test folders have no __init__.py.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.paths import REPO_ROOT

GOLDEN_DIR = REPO_ROOT / "tests" / "unit" / "protocol" / "golden"


def golden_messages() -> dict[str, Path]:
    """Fixture files of messages by `type` (envelopes and _fields.json excluded)."""
    return {p.stem: p for p in sorted(GOLDEN_DIR.glob("*.json")) if not p.name.startswith("_")}


def compact(data: Any) -> bytes:
    """The encoder's JSON form: compact separators, non-ASCII kept, key order as given."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
