"""configure_logging: off a terminal every stderr line is one JSON object, structlog's and
the libraries' (stdlib loggers such as aiokafka's) alike, with the bound context."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_PROGRAM = textwrap.dedent(
    """
    import logging
    import warnings

    import faststream  # installs a plain-text handler on the "faststream" logger
    import structlog

    from parlour_runtime import configure_logging, get_logger

    configure_logging("INFO", "auto")  # stderr is a pipe here: JSON
    structlog.contextvars.bind_contextvars(room_id="r1")
    get_logger("parlour_engine.worker").info("command_applied", msg_id="m1")
    logging.getLogger("aiokafka.consumer.group_coordinator").warning(
        "Heartbeat failed for group %s", "parlour-engine"
    )
    logging.getLogger("uvicorn.error").error("Exception in ASGI application")
    logging.getLogger("faststream").info("dropped: below WARNING")
    logging.getLogger("faststream.access.kafka").warning("consumer restarted")
    try:
        1 / 0
    except ZeroDivisionError:
        logging.getLogger("redis").exception("connection lost")
        get_logger("parlour_gateway.session").exception("handler_failed")
    warnings.warn("an old API", DeprecationWarning, stacklevel=1)
    raise RuntimeError("start-up failed")  # ends the process: its traceback is a line too
    """
)


def _lines(program: str) -> list[dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert lines, done.stderr
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}\n{done.stderr}") from None
    return parsed


def test_every_stderr_line_is_json_libraries_included() -> None:
    lines = _lines(_PROGRAM)
    by_event = {str(line["event"]): line for line in lines}
    ours = by_event["command_applied"]
    assert (ours["level"], ours["logger_name"]) == ("info", "parlour_engine.worker")
    assert (ours["room_id"], ours["msg_id"]) == ("r1", "m1")
    kafka = by_event["Heartbeat failed for group parlour-engine"]
    assert kafka["level"] == "warning"
    assert kafka["logger_name"] == "aiokafka.consumer.group_coordinator"
    assert kafka["room_id"] == "r1"  # bound context reaches library lines too
    assert "timestamp" in kafka
    assert by_event["Exception in ASGI application"]["level"] == "error"
    assert "dropped: below WARNING" not in by_event
    assert by_event["consumer restarted"]["logger_name"] == "faststream.access.kafka"
    assert "ZeroDivisionError" in str(by_event["connection lost"]["exception"])
    assert "ZeroDivisionError" in str(by_event["handler_failed"]["exception"])
    assert any("an old API" in str(line["event"]) for line in lines)
    uncaught = by_event["uncaught_exception"]
    assert uncaught["level"] == "critical"
    assert "RuntimeError: start-up failed" in str(uncaught["exception"])


def test_a_forced_console_format_is_not_json() -> None:
    program = (
        "from parlour_runtime import configure_logging, get_logger\n"
        "configure_logging('INFO', 'console')\n"
        "get_logger('x').info('hello')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert "hello" in done.stderr
    assert not done.stderr.lstrip().startswith("{")
