"""Where things are, for tests and their harnesses: the repository's root."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
