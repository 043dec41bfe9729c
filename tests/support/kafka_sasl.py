"""A Kafka broker of a test's own that demands SASL (KRaft, one node, the jars `make infra-up`
fetched): the `sasl_broker` fixture and the credentials it accepts."""

from __future__ import annotations

import asyncio
import base64
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.support.engine_harness import free_port
from tests.support.paths import REPO_ROOT

if TYPE_CHECKING:  # the fixture's type only
    pass


_ROOT = REPO_ROOT


_LIBS = _ROOT / ".infra" / "kafka" / "libs"


_LOG4J = _ROOT / "scripts" / "kafka" / "log4j2.properties"


USER, PASSWORD = "engine", "engine-Pw-1"


_START_TIMEOUT = 60.0


_CONFIG = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller}
listeners=SASL_PLAINTEXT://127.0.0.1:{sasl},PLAINTEXT://127.0.0.1:{plain},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{sasl},PLAINTEXT://127.0.0.1:{plain}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=\
org.apache.kafka.common.security.plain.PlainLoginModule required \
user_{user}="{password}";
log.dirs={data}
num.network.threads=1
num.io.threads=1
num.recovery.threads.per.data.dir=1
background.threads=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
"""


@dataclass(frozen=True)
class SaslBroker:
    sasl: str
    """bootstrap of the SASL_PLAINTEXT listener (user `engine`)"""
    plain: str
    """bootstrap of the plaintext listener, for the test's own clients"""


async def answers(bootstrap: str, **security: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000, **security)
    try:
        await asyncio.wait_for(admin.start(), 5)
        await asyncio.wait_for(admin.list_topics(), 5)
        return True
    except Exception:  # noqa: BLE001 - not up yet: the caller polls until its deadline
        return False
    finally:
        await admin.close()


@pytest.fixture
async def sasl_broker(tmp_path: Path) -> AsyncIterator[SaslBroker]:
    java = shutil.which("java")
    if java is None or not any(_LIBS.glob("kafka_*.jar")):
        pytest.skip("needs java and the broker jars of `make infra-up` (.infra/kafka/libs)")
    ports = {"sasl": free_port(), "plain": free_port(), "controller": free_port()}
    config = tmp_path / "server.properties"
    config.write_text(_CONFIG.format(**ports, user=USER, password=PASSWORD, data=tmp_path / "data"))
    classpath = ["-cp", f"{_LIBS}/*", f"-Dlog4j2.configurationFile={_LOG4J}"]
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    formatting = await asyncio.create_subprocess_exec(
        *[java, *classpath, "kafka.tools.StorageTool", "format", "--cluster-id", cluster_id],
        *["--config", str(config)],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(formatting.communicate(), 60)
    assert formatting.returncode == 0, output.decode(errors="replace")[-2000:]
    log = tmp_path / "kafka.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *[java, "-Xms128m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"],
            *["-Djava.awt.headless=true", *classpath, "kafka.Kafka", str(config)],
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
        )
    broker = SaslBroker(f"127.0.0.1:{ports['sasl']}", f"127.0.0.1:{ports['plain']}")
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while not await answers(broker.plain):
            if proc.returncode is not None or time.monotonic() > deadline:
                pytest.fail(f"SASL test broker did not start: {log.read_text()[-3000:]}")
            await asyncio.sleep(0.3)
        yield broker
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 5)
