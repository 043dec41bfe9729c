"""The gateway against a Kafka that demands SASL: the broker of tests/support/kafka_sasl.py (its
own KRaft node, ~12 s to start), whose SASL_PLAINTEXT listener is the only one the gateway is
given. A command goes out through the gateway's producer and an event comes back through its
consumer; a wrong password stops start-up and never reaches the log."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from parlour_protocol.v1 import Topics
from tests.support.gateway_harness import Client, GatewayProc, Kafka, Keys, chat_event
from tests.support.kafka_sasl import PASSWORD, USER, SaslBroker

if TYPE_CHECKING:  # the fixture's type only
    from tests.integration.conftest import CreateTopics


def _security(password: str) -> dict[str, str]:
    return {
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "PLAIN",
        "KAFKA_SASL_USERNAME": USER,
        "KAFKA_SASL_PASSWORD": password,
        "KAFKA_PUBLISH_TIMEOUT_SECONDS": "5",
    }


async def test_gateway_publishes_and_consumes_through_a_sasl_kafka(
    sasl_broker: SaslBroker,
    redis_url: str,
    topic_prefix: str,
    create_topics: CreateTopics,
    tmp_path: Path,
) -> None:
    await create_topics(sasl_broker.plain, Topics(prefix=topic_prefix).with_partitions())
    keys = Keys(tmp_path / "jwt")

    def gateway(password: str) -> GatewayProc:
        return GatewayProc(
            bootstrap=sasl_broker.sasl,
            redis_url=redis_url,
            topic_prefix=topic_prefix,
            key_prefix=topic_prefix,
            public_key=keys.public_path,
            log_dir=tmp_path,
            env=_security(password),
        )

    # a wrong password: start-up fails (the producer cannot bootstrap), naming the cause;
    # the password itself is not in the log
    wrong = f"wrong-{uuid.uuid4().hex}"
    refused = gateway(wrong)
    code = await asyncio.to_thread(_wait_exit, refused, 90)
    assert code == 3
    log = refused.log_path.read_text(errors="replace")
    assert "SaslAuthenticationFailed" in log
    assert wrong not in log

    proc = gateway(PASSWORD)
    kafka = Kafka(sasl_broker.plain, topic_prefix)  # the test's own, plaintext listener
    try:
        await asyncio.to_thread(proc.wait_ready, 60)
        await kafka.start()
        client = await Client.open(proc.url)
        await client.authenticate(keys.token("sasl-1"))
        room = uuid.uuid4().hex
        await client.send(
            {
                "type": "games.command.send_chat",
                "room_id": room,
                "channel": "lobby",
                "content": "through SASL",
                "request_id": "s1",
            }
        )
        ack = await client.expect(lambda f: f.get("request_id") == "s1", within=20)
        assert ack["type"] == "system.ack"
        await kafka.command(lambda e: e.get("request_id") == "s1")
        await kafka.publish(chat_event(room, ["sasl-1"], None, "back through SASL"))
        frame = await client.expect(lambda f: f.get("content") == "back through SASL", within=20)
        assert frame["room_id"] == room
        await client.close()
    finally:
        await kafka.stop()
        proc.terminate()
    assert PASSWORD not in proc.log_path.read_text(errors="replace")


def _wait_exit(proc: GatewayProc, within: float) -> int:
    try:
        return proc.proc.wait(within)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"gateway did not give up: {proc.logs()[-2000:]}") from None
    finally:
        proc.terminate()
