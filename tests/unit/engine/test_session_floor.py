"""The engine's group session against the brokers' floor (`group.min.session.timeout.ms`):
a broker refuses a shorter session and the engine's join would fail, so the engine uses the
floor instead (and says so); when the floor cannot be read it keeps its setting."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from parlour_engine import kafka_consumer
from parlour_engine.kafka_consumer import fit_session_timeout
from parlour_engine.settings import EngineSettings


def _floor(result: int | BaseException | None) -> Any:
    async def floor(bootstrap: list[str], kwargs: dict[str, Any]) -> int | None:
        if isinstance(result, BaseException):
            raise result
        return result

    return floor


@pytest.mark.parametrize(
    ("floor", "wanted", "used"),
    [
        (6000, 4.0, 6.0),  # Kafka's default floor: raised
        (2000, 4.0, 4.0),  # allowed: kept
        (4000, 4.0, 4.0),  # exactly the floor: kept
        (None, 4.0, 4.0),  # no broker told (no DescribeConfigs permission): kept
        (KafkaConnectionError(), 4.0, 4.0),  # no broker yet: kept, the engine waits as before
    ],
)
async def test_session_timeout_fits_the_brokers(
    monkeypatch: pytest.MonkeyPatch, floor: Any, wanted: float, used: float
) -> None:
    monkeypatch.setattr(kafka_consumer, "brokers_session_floor_ms", _floor(floor))
    settings = EngineSettings(engine_session_timeout_seconds=wanted)
    fitted = await fit_session_timeout(settings)
    assert fitted.engine_session_timeout_seconds == used
    assert settings.engine_session_timeout_seconds == wanted  # a copy, not changed in place
