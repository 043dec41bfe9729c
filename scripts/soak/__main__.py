"""`python scripts/soak [options]` (or `python -m soak` with scripts/ on the path)."""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:
    # run as a directory: Python put scripts/soak/ first on the path, where the package's
    # module names would shadow top-level ones; import the package from scripts/ instead
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from soak.cli import main

sys.exit(main())
