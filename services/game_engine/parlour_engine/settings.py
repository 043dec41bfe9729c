"""The engine's configuration: read once from the environment in the app factory and passed
down. A bad value fails start-up with a message that names the environment variable."""

from __future__ import annotations

from typing import Any, Literal

from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from parlour_protocol.v1 import RedisKeys, Topics
from parlour_protocol.v1.limits import DEFAULT_MAX_ROOMS_PER_HOST, DEFAULT_MAX_ROOMS_PER_USER
from parlour_runtime import KafkaSecuritySettings


class SettingsError(Exception):
    """The environment holds an unusable engine setting; the message names it."""


class EngineSettings(KafkaSecuritySettings, BaseSettings):
    """Every field maps to the environment variable of the same name in upper case; the
    KAFKA_SECURITY_PROTOCOL/KAFKA_SASL_*/KAFKA_SSL_* ones come from `KafkaSecuritySettings`."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # --- Redis ---
    redis_url: str | None = Field(default=None, description="wins over REDIS_HOST/REDIS_PORT")
    redis_host: str = "127.0.0.1"
    redis_port: int = Field(default=6379, ge=1, le=65535)
    redis_key_prefix: str = ""
    redis_max_connections: int = Field(
        default=64, ge=2, le=10_000, description="pool size; commands wait for a free one"
    )

    # --- Kafka ---
    kafka_bootstrap_servers: str | None = Field(
        default=None, description="comma-separated host:port list; wins over KAFKA_HOST/PORT"
    )
    kafka_host: str = "127.0.0.1"
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    kafka_topic_prefix: str = ""
    engine_group_id: str = Field(default="parlour-engine", min_length=1)

    # --- processing ---
    engine_session_timeout_ms: int = Field(
        default=10_000,
        ge=1_000,
        description="Kafka group session: how soon a dead engine's partitions move to another",
    )
    engine_max_tries: int = Field(default=3, ge=1, le=100, description="tries before the DLQ")
    engine_batch_max: int = Field(
        default=500, ge=1, le=10_000, description="most commands taken from Kafka in one poll"
    )
    engine_fetch_max_wait_ms: int = Field(
        default=10,
        ge=1,
        le=500,
        description="broker long-poll bound: a fetch waiting on idle partitions also delays "
        "the next fetch of busy ones, so keep it short for latency",
    )
    engine_batch_timeout_ms: int = Field(default=5, ge=0, le=1_000)
    engine_applied_ttl_seconds: int = Field(
        default=24 * 3600, ge=60, description="how long a command's msg_id is remembered"
    )
    engine_applied_keep: int = Field(
        default=1000, ge=10, description="msg_id records kept per room (newest)"
    )
    engine_ended_room_ttl_seconds: int = Field(
        default=600, ge=1, description="how long a removed room's replay stream is kept"
    )
    engine_timer_poll_ms: int = Field(default=200, ge=10, le=10_000)

    # --- rules ---
    engine_turn_timeout_seconds: float = Field(default=30.0, gt=0)
    engine_disconnect_grace_seconds: float = Field(default=30.0, gt=0)
    engine_idle_room_seconds: int = Field(
        default=600, ge=1, description="a waiting room whose members are all gone is removed"
    )
    engine_finished_room_seconds: int = Field(
        default=300, ge=1, description="a finished room is removed this long after its end"
    )
    engine_max_rooms_per_host: int = Field(
        default=DEFAULT_MAX_ROOMS_PER_HOST, ge=1, le=1_000, description="active rooms per host"
    )
    engine_max_rooms_per_user: int = Field(
        default=DEFAULT_MAX_ROOMS_PER_USER,
        ge=1,
        le=1_000,
        description="rooms one user may be a member of at once",
    )

    # --- ops ---
    engine_health_host: str = "0.0.0.0"  # probes come from outside the pod
    engine_health_port: int = Field(default=9996, ge=0, le=65535, description="0 = disabled")
    engine_log_level: str = "INFO"
    engine_log_format: Literal["auto", "json", "console"] = "auto"
    engine_rng_seed: int | None = Field(
        default=None,
        description="TEST ONLY: seeds the dice so a run is reproducible. Never set it in "
        "production: anyone who knows the seed knows every future roll.",
    )

    @field_validator("engine_log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value.upper()

    @model_validator(mode="after")
    def _bootstrap_is_usable(self) -> EngineSettings:
        if self.kafka_bootstrap_servers is not None and not self.bootstrap_servers:
            raise ValueError("KAFKA_BOOTSTRAP_SERVERS is empty")
        if self.redis_url is not None and not self.redis_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ValueError("REDIS_URL must start with redis://, rediss:// or unix://")
        return self

    def kafka_security(self) -> BaseSecurity | None:
        """FastStream's security object for the KafkaBroker (None = plaintext)."""
        protocol = self.kafka_security_protocol
        if protocol == "PLAINTEXT":
            return None
        context = self.kafka_ssl_context()
        if protocol == "SSL":
            return BaseSecurity(ssl_context=context, use_ssl=True)
        use_ssl = protocol == "SASL_SSL"
        username = self.kafka_sasl_username or ""
        password = self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else ""
        sasl = {
            "PLAIN": SASLPlaintext,
            "SCRAM-SHA-256": SASLScram256,
            "SCRAM-SHA-512": SASLScram512,
        }
        return sasl[self.kafka_sasl_mechanism](
            username, password, ssl_context=context, use_ssl=use_ssl
        )

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """The same security as aiokafka keyword arguments, for every Kafka client the engine
        opens itself (the event producer): FastStream's own translation, so the broker and
        the producer can never disagree."""
        return parse_security(self.kafka_security())

    @property
    def bootstrap_servers(self) -> list[str]:
        if self.kafka_bootstrap_servers is not None:
            return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]
        return [f"{self.kafka_host}:{self.kafka_port}"]

    @property
    def redis_dsn(self) -> str:
        return self.redis_url or f"redis://{self.redis_host}:{self.redis_port}/0"

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.kafka_topic_prefix)

    @property
    def keys(self) -> RedisKeys:
        return RedisKeys(prefix=self.redis_key_prefix)


def load_settings() -> EngineSettings:
    """Build the settings from the environment, turning a validation failure into one
    `SettingsError` that names each bad variable."""
    try:
        return EngineSettings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            name = "_".join(str(part) for part in error["loc"]).upper() or "(settings)"
            problems.append(f"{name}: {error['msg']}")
        raise SettingsError("invalid engine settings: " + "; ".join(problems)) from None
