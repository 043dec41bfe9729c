"""`ServiceAddresses`: where Kafka and Redis are and nothing else, read exactly as the
services read them, for the tools around them (``scripts/infra``, the integration-test
fixtures) that must find the same Kafka and Redis as the services they start."""

from __future__ import annotations

from parlour_runtime.kafka_settings import KafkaAddressSettings
from parlour_runtime.redis_settings import RedisSettings
from parlour_runtime.settings import ServiceSettings


class ServiceAddresses(KafkaAddressSettings, RedisSettings, ServiceSettings):
    """``KAFKA_BOOTSTRAP_SERVERS``/``KAFKA_HOST``/``KAFKA_PORT`` and ``REDIS_URL``/
    ``REDIS_HOST``/``REDIS_PORT``/``REDIS_DB``/``REDIS_PASSWORD``: build it with
    ``parlour_runtime.load(ServiceAddresses)``; `bootstrap_servers` and `redis_dsn` are the
    effective addresses, `kafka_address_from_env`/`redis_address_from_env` say whether any
    of them was set."""
