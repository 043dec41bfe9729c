"""Where Kafka is, read the same way by every process: `KafkaAddressSettings` (the broker
list alone, for tools and test fixtures) and `KafkaSettings` (address, TLS/SASL from
:mod:`parlour_runtime.kafka_security`, topic prefix: what a service inherits).

``KAFKA_BOOTSTRAP_SERVERS`` (``host:port[,host:port...]``) wins over ``KAFKA_HOST`` and
``KAFKA_PORT``; set to blanks it counts as unset, set to commas only it is refused.

``KAFKA_METADATA_MAX_AGE_SECONDS`` is how often every Kafka client of both services re-reads
the cluster's metadata (aiokafka's ``metadata_max_age_ms``, 5 minutes by default there). It
bounds how long partitions added to a topic go unnoticed: until then the gateways do not read
a new partition of the events topic (they read it from its beginning once they do, so nothing
is lost, only late), the engines' group does not rebalance onto new partitions of the
commands topic, and producers keep sending to the old partition count.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, Field, field_validator, model_validator

from parlour_runtime.kafka_security import KafkaSecuritySettings


class KafkaAddressSettings(BaseModel):
    """The brokers to bootstrap from."""

    kafka_bootstrap_servers: str | None = Field(
        default=None,
        description="comma-separated `host:port` list; wins over `KAFKA_HOST`/`KAFKA_PORT`",
    )
    kafka_host: str = Field(default="127.0.0.1", description="the broker, as parts")
    kafka_port: int = Field(default=9092, ge=1, le=65535, description="its port")

    @field_validator("kafka_bootstrap_servers", mode="before")
    @classmethod
    def _blank_kafka_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @model_validator(mode="after")
    def _kafka_servers_listed(self) -> Self:
        if self.kafka_bootstrap_servers is not None and not self.bootstrap_servers:
            raise ValueError("KAFKA_BOOTSTRAP_SERVERS names no server")
        return self

    @property
    def bootstrap_servers(self) -> list[str]:
        """The effective broker list: KAFKA_BOOTSTRAP_SERVERS, else KAFKA_HOST:KAFKA_PORT."""
        if self.kafka_bootstrap_servers is not None:
            return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]
        return [f"{self.kafka_host}:{self.kafka_port}"]

    @property
    def kafka_address_from_env(self) -> bool:
        """True when any of the address variables was set (not all defaults)."""
        return bool(self.model_fields_set & set(KafkaAddressSettings.model_fields))


class KafkaSettings(KafkaAddressSettings, KafkaSecuritySettings):
    """Everything a service's Kafka clients share. Inherit it before `ServiceSettings`."""

    kafka_topic_prefix: str = Field(
        default="",
        description="prefix of every topic name (tests use one per test); the gateways' and "
        "the engines' must match",
    )
    kafka_metadata_max_age_seconds: float = Field(
        default=30.0,
        ge=0.5,
        le=3600.0,
        description="how often every Kafka client re-reads the cluster metadata: partitions "
        "added to a topic are used by producers, read by gateways and taken by the engines' "
        "group within this, with no restart",
    )

    @property
    def kafka_metadata_max_age_ms(self) -> int:
        """`KAFKA_METADATA_MAX_AGE_SECONDS` as aiokafka's `metadata_max_age_ms`."""
        return round(self.kafka_metadata_max_age_seconds * 1000)
