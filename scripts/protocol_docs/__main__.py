"""`python scripts/protocol_docs --write | --check` (or `python -m protocol_docs`)."""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:
    # run as a directory: Python put scripts/protocol_docs/ first on the path, where the
    # package's module names would shadow top-level ones; import it from scripts/ instead
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from protocol_docs.files import main

sys.exit(main())
