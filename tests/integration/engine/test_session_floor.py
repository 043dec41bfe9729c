"""The engine reads the brokers' `group.min.session.timeout.ms` (DescribeConfigs) before it
joins its group: the broker of the tests answers with its floor, and a session asked below it
comes back raised to it."""

from __future__ import annotations

from parlour_engine.kafka_consumer import brokers_session_floor_ms, fit_session_timeout
from parlour_engine.settings import EngineSettings


async def test_brokers_tell_their_session_floor(kafka_bootstrap: str) -> None:
    floor = await brokers_session_floor_ms(kafka_bootstrap.split(","), {})
    assert floor is not None
    assert 0 < floor <= 6000  # Kafka's default, or lowered as scripts/kafka/*.properties do
    settings = EngineSettings(
        kafka_bootstrap_servers=kafka_bootstrap, engine_session_timeout_seconds=1.0
    )
    fitted = await fit_session_timeout(settings)
    assert fitted.engine_session_timeout_seconds == max(1.0, floor / 1000)
