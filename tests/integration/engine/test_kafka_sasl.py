"""The engine against a Kafka that demands SASL: a broker of its own for this test (KRaft,
one node, the jars `make infra-up` fetched), whose SASL_PLAINTEXT listener is the only one
the engine is given. The test itself uses a second, plaintext listener of the same broker.

A game whose turn times out exercises every Kafka client of the engine: the commands
consumer, the event producer (KafkaSink) and FastStream's producer (the timer command).
Starting the broker costs about 12 s on a loaded 2-core machine."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from parlour_protocol.v1 import Topics
from tests.support.engine_harness import Bus, EngineProcess, actor, start_game
from tests.support.kafka_sasl import PASSWORD, USER, SaslBroker, answers

if TYPE_CHECKING:  # the fixture's type only
    from tests.integration.conftest import CreateTopics


async def test_engine_plays_through_a_sasl_kafka(
    sasl_broker: SaslBroker,
    redis_url: str,
    topic_prefix: str,
    create_topics: CreateTopics,
    tmp_path: Path,
) -> None:
    # the listener really demands the password: a wrong one is refused
    wrong = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"}
    assert not await answers(
        sasl_broker.sasl, **wrong, sasl_plain_username=USER, sasl_plain_password="wrong"
    )
    topics = Topics(prefix=topic_prefix)
    await create_topics(sasl_broker.plain, topics.with_partitions())
    engine = EngineProcess.configure(
        kafka_bootstrap=sasl_broker.sasl,
        redis_url=redis_url,
        topic_prefix=topic_prefix,
        log_dir=tmp_path,
        extra={
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "PLAIN",
            "KAFKA_SASL_USERNAME": USER,
            "KAFKA_SASL_PASSWORD": PASSWORD,
            "ENGINE_TURN_TIMEOUT_SECONDS": "1",
            "ENGINE_TIMER_POLL_SECONDS": "0.05",
        },
    )
    engine.start()
    bus = Bus(sasl_broker.plain, topics)
    try:
        await bus.start()
        await engine.wait_ready(within=60)
        tag = uuid.uuid4().hex[:6]
        room_id, _ = await start_game(bus, [actor(0, tag), actor(1, tag)], room_name=f"s {tag}")
        # nobody rolls: the timer command goes out through FastStream's producer
        await bus.wait_for(
            lambda e: e.type == "games.event.bigger_dice.rolled" and e.payload.auto,  # type: ignore[attr-defined]
            room_id=room_id,
            within=30,
            what="a server roll after the turn timeout",
        )
    finally:
        await bus.stop()
        code = engine.stop()
    assert code == 0, f"engine did not stop cleanly ({code}): {engine.log_tail()}"
    assert PASSWORD not in engine.log_path.read_text(errors="replace")
