"""The engine's configuration, `EngineSettings`: read once from the environment at start-up
(``parlour_runtime.load(EngineSettings)``) and passed down. A bad value fails start-up with a
message that names the environment variable. Kafka, Redis and logging settings come from the
mixins of :mod:`parlour_runtime`, shared with the gateway.
"""

from __future__ import annotations

from typing import Any

from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import Field

from parlour_protocol.v1 import RedisKeys, Topics
from parlour_protocol.v1.limits import DEFAULT_MAX_ROOMS_PER_HOST, DEFAULT_MAX_ROOMS_PER_USER
from parlour_runtime import (
    EventLoopSettings,
    KafkaSettings,
    LogFormat,
    LoggingSettings,
    LogLevel,
    RedisSettings,
    ServiceSettings,
    deprecated_millis,
    log_format_field,
    log_level_field,
)


class EngineSettings(
    KafkaSettings, RedisSettings, LoggingSettings, EventLoopSettings, ServiceSettings
):
    """Every field maps to the environment variable of the same name in upper case; the
    KAFKA_*, REDIS_* and LOG_* ones come from the mixins of :mod:`parlour_runtime`. The
    ``*_ms`` fields only read the deprecated millisecond variables of their ``*_seconds``
    replacements."""

    # --- Redis (address: RedisSettings) ---
    redis_max_connections: int = Field(
        default=64,
        ge=2,
        le=10_000,
        description="Redis pool size; commands wait for a free connection",
    )

    # --- Kafka (addresses and security: KafkaSettings) ---
    engine_group_id: str = Field(
        default="parlour-engine",
        min_length=1,
        description="Kafka consumer group shared by all engines",
    )

    # --- processing ---
    engine_session_timeout_seconds: float = Field(
        default=4.0,
        ge=1.0,
        description="group session: how soon a dead engine's partitions move to another (a "
        "crashed engine's rooms wait this plus up to a quarter of it, the heartbeat "
        "interval). Below 6 s the brokers must allow it (`group.min.session.timeout.ms`, Kafka's "
        "default 6000): an engine finding a higher floor there uses the floor, and says so",
    )
    engine_session_timeout_ms: int | None = deprecated_millis("engine_session_timeout_seconds")
    engine_max_tries: int = Field(
        default=3,
        ge=1,
        le=100,
        description="tries of a failing command before it goes to the dead-letter topic",
    )
    engine_batch_max: int = Field(
        default=500, ge=1, le=10_000, description="most commands taken from Kafka in one poll"
    )
    engine_fetch_max_wait_seconds: float = Field(
        default=0.01,
        ge=0.001,
        le=0.5,
        description="broker long-poll bound: a fetch waiting on idle partitions also delays "
        "the next fetch of busy ones, so keep it short for latency (aiokafka takes whole "
        "milliseconds)",
    )
    engine_fetch_max_wait_ms: int | None = deprecated_millis("engine_fetch_max_wait_seconds")
    engine_batch_timeout_seconds: float = Field(
        default=0.005,
        ge=0,
        le=1.0,
        description="how long a poll of the commands topic waits while none are there (it "
        "returns as soon as any arrive, with what has arrived)",
    )
    engine_batch_timeout_ms: int | None = deprecated_millis("engine_batch_timeout_seconds")
    engine_commit_interval_seconds: float = Field(
        default=0.05,
        ge=0,
        le=5.0,
        description="how long the offsets of processed commands may wait to be committed with "
        "later ones (one commit request per interval instead of per poll); a crash or "
        "rebalance re-reads up to this much more, answered as duplicates. 0 commits each poll",
    )
    engine_applied_ttl_seconds: int = Field(
        default=24 * 3600,
        ge=60,
        description="the idempotency horizon: how long after a room's last command its msg_id "
        "records and its offset watermark live (a Kafka redelivery of any command of the room "
        "is a no-op within it)",
    )
    engine_applied_keep: int = Field(
        default=1000,
        ge=10,
        description="msg_id records kept per room (newest): the window for a gateway re-send "
        "of the same command, which reaches Kafka at a new offset (16 once the room is "
        "removed)",
    )
    engine_ended_room_ttl_seconds: int = Field(
        default=600, ge=1, description="how long a removed room's replay stream is kept"
    )
    engine_timer_poll_seconds: float = Field(
        default=0.2, ge=0.01, le=10.0, description="how often the due-timer set is polled"
    )
    engine_timer_poll_ms: int | None = deprecated_millis("engine_timer_poll_seconds")

    # --- rules ---
    engine_turn_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="a turn's deadline for a game without its own timer (Bigger Dice); "
        "then the game plays or forfeits the turn (rounded to whole seconds, at least 1). Set "
        "explicitly, it also caps every game's own timer (tic-tac-toe's 60 s)",
    )
    engine_disconnect_grace_seconds: float = Field(
        default=30.0,
        gt=0,
        description="how long a disconnected player is waited for before a vote-kick is allowed",
    )
    engine_idle_room_seconds: int = Field(
        default=600,
        ge=1,
        description="a waiting room whose members are all gone, or a running game whose players "
        "are all disconnected, is removed after this",
    )
    engine_finished_room_seconds: int = Field(
        default=300,
        ge=1,
        description="a finished room is removed this long after its game ended",
    )
    engine_max_rooms_per_host: int = Field(
        default=DEFAULT_MAX_ROOMS_PER_HOST,
        ge=1,
        le=1_000,
        description="active rooms one user may host at once (`too_many_rooms` beyond)",
    )
    engine_max_rooms_per_user: int = Field(
        default=DEFAULT_MAX_ROOMS_PER_USER,
        ge=1,
        le=1_000,
        description="rooms one user may be a member of at once",
    )

    # --- ops ---
    engine_health_host: str = Field(
        default="0.0.0.0",  # probes come from outside the pod
        description="operations listener address: `/health`, `/ready`, `/metrics`",
    )
    engine_health_port: int = Field(
        default=9996, ge=0, le=65535, description="its port; `0` disables it"
    )
    log_level: LogLevel = log_level_field("ENGINE_LOG_LEVEL")
    log_format: LogFormat = log_format_field("ENGINE_LOG_FORMAT")
    engine_rng_seed: int | None = Field(
        default=None,
        description="TEST ONLY: seeds the dice so a run is reproducible; never in production "
        "(anyone who knows the seed knows every future roll)",
    )

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
    def topics(self) -> Topics:
        return Topics(prefix=self.kafka_topic_prefix)

    @property
    def keys(self) -> RedisKeys:
        return RedisKeys(prefix=self.redis_key_prefix)
