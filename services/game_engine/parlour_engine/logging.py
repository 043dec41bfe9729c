"""structlog set-up for the engine: JSON lines off a terminal, a console renderer on one.

Context (`msg_id`, `room_id`, `user_id`, `type`) is bound with contextvars per handled message,
so every line of that message carries it. Nothing logged here may contain a token, a password
or chat content: callers log ids, types, outcomes and timings only.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import structlog
from structlog.typing import FilteringBoundLogger

LogFormat = Literal["auto", "json", "console"]


def configure_logging(level: str = "INFO", fmt: LogFormat = "auto") -> None:
    """Configure structlog (and the stdlib root logger it feeds) once per process."""
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"ENGINE_LOG_LEVEL: unknown level {level!r}")
    use_console = sys.stderr.isatty() if fmt == "auto" else fmt == "console"
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # libraries (aiokafka, faststream) log through the stdlib: keep them quiet unless warning
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)


def get_logger(name: str) -> FilteringBoundLogger:
    logger: FilteringBoundLogger = structlog.get_logger(logger_name=name)
    return logger
