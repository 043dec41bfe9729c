"""Per-hop timestamps, when the stack carries them.

The services may add, on an event frame, a `trace` object of wall-clock times (seconds or
milliseconds since the epoch, or RFC 3339 strings) named by hop. Everything that knows the
shape lives in `hop_times()`, so a change of field name or unit is one edit here; the report
prints a per-hop table only when some frame carried them.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

HOPS = (
    "gateway_received",
    "produced",
    "engine_consumed",
    "committed",
    "events_produced",
    "gateway_consumed",
    "frame_written",
)
"""The path of a command, in order; a hop is the time from one stamp to the next."""


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) / 1000.0 if value > 1e11 else float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def hop_times(frame: dict[str, Any]) -> dict[str, float] | None:
    """The frame's hop stamps as epoch seconds, or None when it carries none."""
    trace = frame.get("trace")
    if not isinstance(trace, dict):
        return None
    stamps = {name: s for name in HOPS if (s := _seconds(trace.get(name))) is not None}
    return stamps or None


def hop_durations(
    stamps: dict[str, float], sent_at: float | None, received_at: float | None
) -> dict[str, float]:
    """Milliseconds between consecutive stamps (`client -> gateway_received` and
    `frame_written -> client` too when the client's own wall-clock times are given)."""
    points: list[tuple[str, float]] = []
    if sent_at is not None:
        points.append(("client_sent", sent_at))
    points += [(name, stamps[name]) for name in HOPS if name in stamps]
    if received_at is not None:
        points.append(("client_received", received_at))
    return {f"{a} -> {b}": (tb - ta) * 1000.0 for (a, ta), (b, tb) in itertools.pairwise(points)}
