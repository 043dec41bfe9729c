"""The Kafka TLS and SASL settings of every Kafka client, checked at start-up.

`KafkaSecuritySettings` is a mixin for a service's ``Settings(BaseSettings)``: its fields
map to ``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_MECHANISM``, ``KAFKA_SASL_USERNAME``,
``KAFKA_SASL_PASSWORD``, ``KAFKA_SSL_CAFILE``, ``KAFKA_SSL_CERTFILE`` and
``KAFKA_SSL_KEYFILE``, and an unusable combination fails validation with a message that
names the variable. How the settings become client arguments (aiokafka keywords, a
FastStream security object) stays with each service's wiring.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal, Self

from aiokafka.helpers import create_ssl_context
from pydantic import BaseModel, Field, SecretStr, model_validator

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
_SSL_FILES = ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")


class KafkaSecuritySettings(BaseModel):
    """How a service authenticates to Kafka and encrypts its connections. Inherit it first:
    ``class Settings(KafkaSecuritySettings, BaseSettings)``."""

    kafka_security_protocol: KafkaSecurityProtocol = Field(
        default="PLAINTEXT",
        description="`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`, for every Kafka "
        "client of the process; production Kafka must use `SSL` or `SASL_SSL`",
    )
    kafka_sasl_mechanism: KafkaSaslMechanism = Field(
        default="PLAIN",
        description="`PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (with `SASL_*`)",
    )
    kafka_sasl_username: str | None = Field(
        default=None, description="SASL user name, required with `SASL_*`"
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None, description="SASL password, required with `SASL_*`; never logged"
    )
    kafka_ssl_cafile: str | None = Field(
        default=None,
        description="PEM CA bundle the brokers' certificates are checked against (unset: "
        "the system CAs); host names are always checked",
    )
    kafka_ssl_certfile: str | None = Field(
        default=None,
        description="client certificate (PEM) for mutual TLS; the file must exist and a TLS "
        "protocol be set, or start-up fails",
    )
    kafka_ssl_keyfile: str | None = Field(
        default=None, description="its private key (PEM); needs `KAFKA_SSL_CERTFILE`"
    )

    @model_validator(mode="after")
    def _kafka_security_is_usable(self) -> Self:
        protocol = self.kafka_security_protocol
        if protocol.startswith("SASL_"):
            if not self.kafka_sasl_username:
                raise ValueError(f"KAFKA_SASL_USERNAME is required with {protocol}")
            if self.kafka_sasl_password is None or not self.kafka_sasl_password.get_secret_value():
                raise ValueError(f"KAFKA_SASL_PASSWORD is required with {protocol}")
        for name in _SSL_FILES:
            path = getattr(self, name)
            if path is None:
                continue
            if not protocol.endswith("SSL"):
                # a certificate that is silently not used is a plaintext connection someone
                # believes to be encrypted
                raise ValueError(
                    f"{name.upper()} is set but KAFKA_SECURITY_PROTOCOL={protocol} has no TLS"
                )
            if not Path(path).is_file():
                raise ValueError(f"{name.upper()}: no such file: {path}")
        if self.kafka_ssl_keyfile is not None and self.kafka_ssl_certfile is None:
            raise ValueError("KAFKA_SSL_KEYFILE is set without KAFKA_SSL_CERTFILE")
        if protocol.endswith("SSL"):
            try:
                self.kafka_ssl_context()
            except (ssl.SSLError, OSError) as exc:
                raise ValueError(
                    f"KAFKA_SSL_CAFILE/KAFKA_SSL_CERTFILE/KAFKA_SSL_KEYFILE unusable: {exc}"
                ) from None
        return self

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of every Kafka connection (None without TLS). Verifies the
        brokers' certificates and host names, against KAFKA_SSL_CAFILE or the system CAs."""
        if not self.kafka_security_protocol.endswith("SSL"):
            return None
        context: ssl.SSLContext = create_ssl_context(
            cafile=self.kafka_ssl_cafile,
            certfile=self.kafka_ssl_certfile,
            keyfile=self.kafka_ssl_keyfile,
        )
        return context
