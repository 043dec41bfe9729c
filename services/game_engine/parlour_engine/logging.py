"""The engine's loggers: `get_logger` of :mod:`parlour_runtime.logs`, which holds the one
structlog set-up of both services (``configure_logging``: JSON lines off a terminal, library
loggers included; a console renderer on one).

Context (`msg_id`, `room_id`, `user_id`, `type`) is bound with contextvars per handled message,
so every line of that message carries it. Nothing logged here may contain a token, a password
or chat content: callers log ids, types, outcomes and timings only.
"""

from __future__ import annotations

from parlour_runtime.logs import get_logger

__all__ = ["get_logger"]
