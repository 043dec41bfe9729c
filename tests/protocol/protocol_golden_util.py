"""Helpers shared by the protocol tests: the golden fixtures and the docs generator.

(Not a conftest: imported by name, which works because test folders have no __init__.py.)
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

GOLDEN_DIR = Path(__file__).parent / "golden"
REPO_ROOT = Path(__file__).resolve().parents[2]


def golden_messages() -> dict[str, Path]:
    """Fixture files of messages by `type` (envelopes and _fields.json excluded)."""
    return {p.stem: p for p in sorted(GOLDEN_DIR.glob("*.json")) if not p.name.startswith("_")}


def compact(data: Any) -> bytes:
    """The encoder's JSON form: compact separators, non-ASCII kept, key order as given."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


@functools.cache
def gen_docs() -> ModuleType:
    """scripts/gen_protocol_docs.py, loaded by path (scripts/ is not a package)."""
    path = REPO_ROOT / "scripts" / "gen_protocol_docs.py"
    spec = importlib.util.spec_from_file_location("gen_protocol_docs", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
