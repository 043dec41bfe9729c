"""The gateway's configuration, `GatewaySettings`: read once from the environment at start-up
(``parlour_runtime.load(GatewaySettings)``) and passed down. A bad value fails start-up with a
message that names the environment variable. Kafka, Redis and logging settings come from the
mixins of :mod:`parlour_runtime`, shared with the engine.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from parlour_protocol.v1 import RedisKeys, Topics
from parlour_protocol.v1.limits import MAX_FRAME_BYTES, TOKEN_MAX_LENGTH
from parlour_runtime import (
    EventLoopSettings,
    KafkaSettings,
    LogFormat,
    LoggingSettings,
    LogLevel,
    RedisSettings,
    ServiceSettings,
    log_format_field,
    log_level_field,
    renamed,
)

_ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _default_gateway_id() -> str:
    host = "".join(c if c.isalnum() or c in "-_." else "-" for c in socket.gethostname())
    return f"{host[:40] or 'gw'}-{secrets.token_hex(3)}"


class GatewaySettings(
    KafkaSettings, RedisSettings, LoggingSettings, EventLoopSettings, ServiceSettings
):
    """Every field maps to the environment variable of the same name in upper case; the
    KAFKA_*, REDIS_* and LOG_* ones come from the mixins of :mod:`parlour_runtime`. A field
    with ``validation_alias`` also reads a deprecated old name."""

    gateway_id: str = Field(
        default_factory=_default_gateway_id,
        pattern=r"^[A-Za-z0-9_.:@-]+$",
        description="this process's id in presence records and logs (`[A-Za-z0-9_.:@-]+`); "
        "unset: `<hostname>-<6 hex>`",
    )

    # --- listeners (unset: 0.0.0.0, or 127.0.0.1 with AUTH_DEV_MODE; see `bind_host`) ---
    ws_host: str | None = Field(
        default=None,
        description="WebSocket (`/ws`) and browser-client listener address; unset: `0.0.0.0` "
        "(`127.0.0.1` with `AUTH_DEV_MODE=true`)",
    )
    ws_port: int = Field(default=9998, ge=0, le=65535, description="its port")
    ws_health_host: str | None = Field(
        default=None,
        description="operations listener address (`/health`, `/ready`, `/metrics`); unset: "
        "`0.0.0.0` (`127.0.0.1` with `AUTH_DEV_MODE=true`)",
    )
    ws_health_port: int = Field(default=9997, ge=0, le=65535, description="its port")

    # --- auth ---
    jwt_public_key_path: Path | None = Field(
        default=None,
        description="PEM public key that verifies tokens; required unless `AUTH_DEV_MODE=true`",
    )
    jwt_algorithms: str = Field(
        default="RS256",
        description="comma-separated allow-list; only RS/PS/ES 256/384/512 are accepted (no "
        "HS*, no `none`)",
    )
    jwt_issuer: str | None = Field(default=None, description="when set, the `iss` claim must match")
    jwt_audience: str | None = Field(
        default=None, description="when set, the `aud` claim must match"
    )
    jwt_max_token_bytes: int = Field(
        default=TOKEN_MAX_LENGTH,
        ge=256,
        le=TOKEN_MAX_LENGTH,
        description=f"longest token accepted (256..{TOKEN_MAX_LENGTH})",
    )
    auth_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        validation_alias=renamed("auth_timeout_seconds", "auth_timeout"),
        description="seconds a new socket has to authenticate",
    )
    auth_max_failures: int = Field(
        default=3,
        ge=1,
        description="failed `system.authenticate` attempts before the socket is closed",
    )
    auth_reauth_grace_seconds: float = Field(
        default=30.0,
        gt=0,
        validation_alias=renamed("auth_reauth_grace_seconds", "auth_reauth_grace_secs"),
        description="after a token expires, seconds to send a fresh one (`system.reauth_required`)",
    )
    auth_dev_mode: bool = Field(
        default=False,
        description="token-less logins with a client-chosen user id: local development only; "
        "listens on 127.0.0.1 unless `WS_HOST`/`WS_HEALTH_HOST` are set; refused (start-up "
        "fails) together with `JWT_PUBLIC_KEY_PATH`",
    )

    # --- heartbeat ---
    ws_heartbeat_interval_seconds: int = Field(
        default=15,
        ge=1,
        validation_alias=renamed("ws_heartbeat_interval_seconds", "ws_heartbeat_interval_secs"),
        description="heartbeat interval announced in `system.welcome`; presence records live "
        "3x this",
    )
    ws_heartbeat_timeout_seconds: float = Field(
        default=45.0,
        gt=0,
        validation_alias=renamed("ws_heartbeat_timeout_seconds", "ws_heartbeat_timeout_secs"),
        description="a socket silent this long is closed (4030)",
    )
    ws_ping_interval_seconds: float | None = Field(
        default=20.0,
        gt=0,
        validation_alias=renamed("ws_ping_interval_seconds", "ws_ping_interval_secs"),
        description="uvicorn's WebSocket ping interval",
    )
    ws_ping_timeout_seconds: float | None = Field(
        default=20.0,
        gt=0,
        validation_alias=renamed("ws_ping_timeout_seconds", "ws_ping_timeout_secs"),
        description="uvicorn's WebSocket pong timeout",
    )

    # --- limits ---
    allowed_origins: str = Field(
        default="",
        description="comma-separated browser origins allowed to open `/ws`; empty = any "
        "origin (set it in production)",
    )
    ws_max_message_size: int = Field(
        default=MAX_FRAME_BYTES,
        ge=1024,
        description="largest client frame in bytes; larger ones get `message_too_large` "
        "(beyond twice this uvicorn closes with 1009)",
    )
    ws_per_message_deflate: bool = Field(default=False, description="WebSocket compression")
    gateway_hop_timestamps: bool = Field(
        default=False,
        description="stamp per-hop timestamps (Kafka header `p-hops`, see "
        "parlour_protocol.v1.records) on every command this gateway publishes, for latency "
        "breakdowns (`parlour_gateway_hop_seconds`); costs about a microsecond per command",
    )
    ws_rate_limit_per_sec: float = Field(
        default=50.0, gt=0, description="token-bucket refill per socket (frames/s)"
    )
    ws_rate_limit_burst: int = Field(default=100, ge=1, description="token-bucket size per socket")
    ws_rate_limit_strikes: int = Field(
        default=20, ge=1, description="dropped frames in a row before the socket is closed"
    )
    ws_max_connections_per_user: int = Field(
        default=5, ge=1, description="open sockets per user, across gateways"
    )
    ws_max_connections: int = Field(
        default=20_000,
        ge=1,
        description="authenticated sockets per gateway process (checked at the handshake and "
        "at authentication: 1013)",
    )
    ws_max_unauthenticated: int = Field(
        default=2_000,
        ge=1,
        description="sockets not yet authenticated per gateway process, a cap of their own so "
        "they never take the places of authenticated users (1013 at the handshake)",
    )
    ws_ip_handshakes_per_sec: float = Field(
        default=10.0,
        gt=0,
        description="handshake token-bucket refill per client address; over it HTTP 429",
    )
    ws_ip_handshake_burst: int = Field(
        default=200, ge=1, description="handshake token-bucket size per client address"
    )
    ws_ip_max_unauthenticated: int = Field(
        default=100,
        ge=1,
        description="open unauthenticated sockets per client address; over it HTTP 429",
    )
    ws_ip_table_max: int = Field(
        default=20_000,
        ge=100,
        description="client addresses whose handshake bucket is remembered (least recently "
        "used forgotten first; about 300 bytes each)",
    )
    ws_trusted_proxies: str = Field(
        default="",
        description="comma-separated addresses/CIDRs of proxies whose `X-Forwarded-For` is "
        "believed; empty: the socket's peer is the client address",
    )
    ws_direct_messages_per_minute: int = Field(
        default=30,
        ge=1,
        description="`chat.command.send_message` per user on one gateway; over it "
        "`rate_limited` and not sent",
    )
    ws_send_queue_max: int = Field(
        default=256,
        ge=1,
        description="queued outgoing events per socket before it is closed as slow",
    )
    ws_send_queue_max_bytes: int = Field(
        default=1024 * 1024,
        ge=64 * 1024,
        description="memory of queued outgoing events per socket before it is closed as slow "
        "(4031); one event of any size fits an empty queue",
    )
    ws_task_stall_seconds: float = Field(
        default=60.0,
        gt=0,
        validation_alias=renamed("ws_task_stall_seconds", "ws_task_stall_secs"),
        description="a background loop without a completed round this long (at least 4 of "
        "its intervals) makes `/ready` 503",
    )
    ws_close_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        validation_alias=renamed("ws_close_timeout_seconds", "ws_close_timeout_secs"),
        description="how long a close handshake may take",
    )
    ws_resume_hold_seconds: float = Field(
        default=2.0,
        ge=0,
        validation_alias=renamed("ws_resume_hold_seconds", "ws_resume_hold_secs"),
        description="after authenticate, live events of the rooms the user was already in are "
        "held until the client's `rejoin_room` (replay first), a `room_state`, or this many "
        "seconds; 0 turns the hold off",
    )

    # --- Kafka (addresses and security: KafkaSettings) ---
    kafka_publish_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        validation_alias=renamed("kafka_publish_timeout_seconds", "kafka_publish_timeout_secs"),
        description="a command not acknowledged by Kafka within this gets `service_unavailable`",
    )

    # --- Redis (address: RedisSettings) ---
    presence_sweep_seconds: float = Field(
        default=5.0,
        gt=0,
        validation_alias=renamed("presence_sweep_seconds", "presence_sweep_secs"),
        description="how often dead sockets of crashed gateways are swept",
    )

    # --- ops ---
    shutdown_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        validation_alias=renamed("shutdown_timeout_seconds", "shutdown_timeout_secs"),
        description="hard deadline for a SIGTERM shutdown",
    )
    log_level: LogLevel = log_level_field("GATEWAY_LOG_LEVEL")
    log_format: LogFormat = log_format_field("GATEWAY_LOG_FORMAT")

    @field_validator("jwt_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: str) -> str:
        names = [name.strip().upper() for name in value.split(",") if name.strip()]
        if not names:
            raise ValueError("needs at least one algorithm")
        bad = [name for name in names if name not in _ASYMMETRIC]
        if bad:
            raise ValueError(f"only asymmetric algorithms are allowed, not {', '.join(bad)}")
        return ",".join(names)

    @field_validator("ws_trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        _parse_networks(value)
        return value

    @model_validator(mode="after")
    def _key_readable(self) -> GatewaySettings:
        if self.auth_dev_mode and self.jwt_public_key_path is not None:
            # a dev-mode gateway accepts anyone as anyone: never beside a real key, where it
            # would silently turn a production gateway into an open one
            raise ValueError(
                "AUTH_DEV_MODE=true and JWT_PUBLIC_KEY_PATH are both set; token-less dev "
                "logins are for local development only: unset AUTH_DEV_MODE (production) or "
                "JWT_PUBLIC_KEY_PATH (local development)"
            )
        if self.auth_dev_mode:
            return self
        if self.jwt_public_key_path is None:
            raise ValueError(
                "JWT_PUBLIC_KEY_PATH is not set (set it to the RSA public key PEM, or "
                "AUTH_DEV_MODE=true for token-less local development)"
            )
        try:
            text = self.jwt_public_key_path.read_text()
        except OSError as exc:
            raise ValueError(
                f"JWT_PUBLIC_KEY_PATH={self.jwt_public_key_path} cannot be read: {exc.strerror}"
            ) from None
        if "PUBLIC KEY" not in text:
            raise ValueError(f"JWT_PUBLIC_KEY_PATH={self.jwt_public_key_path} is not a PEM key")
        return self

    # --- derived ---
    @property
    def bind_host(self) -> str:
        """WS_HOST; unset, all interfaces, except in dev mode: a gateway that accepts anyone
        as anyone listens on loopback unless told otherwise."""
        return self.ws_host or ("127.0.0.1" if self.auth_dev_mode else "0.0.0.0")

    @property
    def health_bind_host(self) -> str:
        return self.ws_health_host or ("127.0.0.1" if self.auth_dev_mode else "0.0.0.0")

    @property
    def trusted_proxies(self) -> tuple[IpNetwork, ...]:
        return _parse_networks(self.ws_trusted_proxies)

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """The keyword arguments every aiokafka client of the gateway shares (producer and
        consumer): security, and the metadata refresh interval (the events consumer takes new
        partitions of the events topic on a refresh). The password leaves its SecretStr only
        here."""
        protocol = self.kafka_security_protocol
        kwargs: dict[str, Any] = {
            "security_protocol": protocol,
            "metadata_max_age_ms": self.kafka_metadata_max_age_ms,
        }
        if protocol.endswith("SSL"):
            kwargs["ssl_context"] = self.kafka_ssl_context()
        if protocol.startswith("SASL_"):
            assert self.kafka_sasl_password is not None  # checked at start-up
            kwargs["sasl_mechanism"] = self.kafka_sasl_mechanism
            kwargs["sasl_plain_username"] = self.kafka_sasl_username
            kwargs["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        return kwargs

    @property
    def algorithms(self) -> list[str]:
        return self.jwt_algorithms.split(",")

    @property
    def public_key(self) -> str | None:
        return None if self.jwt_public_key_path is None else self.jwt_public_key_path.read_text()

    @property
    def origins(self) -> frozenset[str]:
        return frozenset(
            o.strip().rstrip("/").lower() for o in self.allowed_origins.split(",") if o.strip()
        )

    @property
    def kafka_servers(self) -> str:
        """`bootstrap_servers` as one comma-separated string."""
        return ",".join(self.bootstrap_servers)

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.kafka_topic_prefix)

    @property
    def keys(self) -> RedisKeys:
        return RedisKeys(prefix=self.redis_key_prefix)

    @property
    def socket_ttl_seconds(self) -> int:
        """A socket's presence record outlives three missed heartbeats, no more."""
        return 3 * self.ws_heartbeat_interval_seconds

    @property
    def server_max_frame(self) -> int:
        """uvicorn's own frame cap: above the app's, so the app can answer message_too_large
        for frames between the two; beyond it the server closes with 1009."""
        return self.ws_max_message_size * 2


def _parse_networks(value: str) -> tuple[IpNetwork, ...]:
    try:
        return tuple(
            ipaddress.ip_network(item.strip(), strict=False)
            for item in value.split(",")
            if item.strip()
        )
    except ValueError as exc:
        raise ValueError(f"not an address or CIDR list: {exc}") from None
