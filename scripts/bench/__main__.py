"""`python scripts/bench [--quick] ...` (or `python -m bench` with scripts/ on the path)."""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:
    # run as a directory: put scripts/ (and the checkout, for tests.support) first instead of
    # scripts/bench/, whose module names would shadow top-level ones
    here = Path(__file__).resolve().parent
    sys.path[0] = str(here.parent)
    sys.path.insert(1, str(here.parent.parent))

from bench.run import main

if __name__ == "__main__":  # a spawned load generator imports this module as __mp_main__
    sys.exit(main())
