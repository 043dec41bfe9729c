"""Logging of every process: `LoggingSettings` (``LOG_LEVEL``, ``LOG_FORMAT``), the one
`configure_logging`, and `get_logger`.

Off a terminal every line on stderr is one JSON object, the libraries' lines included:
aiokafka, faststream, uvicorn and redis log through the stdlib, whose root handler renders
with structlog's `ProcessorFormatter`. On a terminal both render with the console renderer.
Context bound with ``structlog.contextvars`` (``conn_id``, ``room_id``, ``msg_id``...) lands
on every line, the libraries' too; so does the traceback of an exception that ends the
process (``uncaught_exception``). Nothing logged may contain a token, a password or chat
text: callers log ids, types, outcomes and timings only.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from types import TracebackType
from typing import Any, Literal, TextIO

import structlog
from pydantic import AliasChoices, BaseModel, Field, field_validator
from structlog.typing import FilteringBoundLogger, Processor

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["auto", "json", "console"]

# library loggers that install a plain-text handler of their own when imported (FastStream's
# "faststream": colourised text, not propagated) or when configured (uvicorn's, given a
# log_config; the gateway passes log_config=None): their lines go to the root handler instead
_SELF_HANDLED = ("faststream", "uvicorn", "uvicorn.error")


def log_level_field(*deprecated: str) -> Any:
    """The ``LOG_LEVEL`` field; a service passes its old variable (``GATEWAY_LOG_LEVEL``)."""
    return Field(
        default="INFO",
        validation_alias=AliasChoices("LOG_LEVEL", *deprecated),
        description="`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL` (library loggers: "
        "`WARNING` and above)",
    )


def log_format_field(*deprecated: str) -> Any:
    """The ``LOG_FORMAT`` field; a service passes its old variable (``GATEWAY_LOG_FORMAT``)."""
    return Field(
        default="auto",
        validation_alias=AliasChoices("LOG_FORMAT", *deprecated),
        description="`json`, `console`, or `auto` (console on a terminal, JSON otherwise, "
        "library lines included)",
    )


class LoggingSettings(BaseModel):
    """How a process logs. Inherit it before `ServiceSettings`."""

    log_level: LogLevel = log_level_field()
    log_format: LogFormat = log_format_field()

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value


def configure_logging(
    level: str = "INFO", fmt: LogFormat = "auto", *, stream: TextIO | None = None
) -> None:
    """Configure structlog and the stdlib root logger once per process, writing to `stream`
    (stderr). `level` is structlog's; library loggers pass WARNING and above, or `level`
    when it is higher."""
    out = sys.stderr if stream is None else stream
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"LOG_LEVEL: unknown level {level!r}")
    use_console = out.isatty() if fmt == "auto" else fmt == "console"
    renderer: Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,  # first: a call's own keys win
            structlog.processors.add_log_level,
            timestamper,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            _add_logger_name,
            timestamper,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.StackInfoRenderer(),
            # the console renderer prints tracebacks itself; JSON needs them as a string
            *([] if use_console else [structlog.processors.format_exc_info]),
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in root.handlers[:]:  # one handler: a second one would print lines twice
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(numeric, logging.WARNING))
    for name in _SELF_HANDLED:
        library = logging.getLogger(name)
        for old in library.handlers[:]:
            library.removeHandler(old)
        library.propagate = True
        library.setLevel(logging.NOTSET)
    logging.captureWarnings(True)  # warnings.warn() lines come out the same way
    sys.excepthook = _log_uncaught  # and the traceback of an exception that ends the process


def _log_uncaught(
    kind: type[BaseException], value: BaseException, traceback: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)
        return
    logging.getLogger("parlour_runtime.logs").critical(
        "uncaught_exception", exc_info=(kind, value, traceback)
    )


def _add_logger_name(
    logger: object, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A library line's logger under the key of our own lines (``logger_name``)."""
    record = event_dict.get("_record")
    if isinstance(record, logging.LogRecord):
        event_dict["logger_name"] = record.name
    return event_dict


def get_logger(name: str) -> FilteringBoundLogger:
    """A structlog logger whose lines carry ``logger_name``."""
    logger: FilteringBoundLogger = structlog.get_logger(logger_name=name)
    return logger
