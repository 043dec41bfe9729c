"""The gateway's loggers: `get_logger` of :mod:`parlour_runtime.logs`, which holds the one
structlog set-up of both services (``configure_logging``: JSON lines off a terminal, library
loggers included; a console renderer on one).

Nothing logged by the gateway may contain a token, a password or chat text: callers log ids,
message types, outcomes and timings only (frames are never logged).
"""

from __future__ import annotations

from parlour_runtime.logs import get_logger

__all__ = ["get_logger"]
