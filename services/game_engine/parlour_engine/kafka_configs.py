"""Reading Kafka configuration values with an admin client, once at start-up: the brokers'
`group.min.session.timeout.ms` (kafka_consumer.fit_session_timeout) and the topics'
`max.message.bytes` (kafka_producer.KafkaSink)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType


async def numeric_configs(
    bootstrap_servers: list[str],
    client_kwargs: dict[str, Any],
    kind: ConfigResourceType,
    names: Sequence[str] | None,
    config: str,
) -> list[int]:
    """`config` of each resource of `kind` named in `names` (None: every broker), for the
    resources that answer; one without DescribeConfigs permission answers an error and is
    left out."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        client_id="parlour-engine-probe",
        request_timeout_ms=5000,
        **client_kwargs,
    )
    await admin.start()
    try:
        if names is None:
            cluster = await admin.describe_cluster()
            names = [str(b["node_id"]) for b in cluster["brokers"]]
        responses = await admin.describe_configs(
            [ConfigResource(kind, name, {config: None}) for name in names]
        )
    finally:
        await admin.close()
    return [
        int(entry[1])
        for response in responses
        for resource in response.resources
        if resource[0] == 0  # no error for this resource
        for entry in resource[4]
        if entry[0] == config and entry[1] is not None
    ]
