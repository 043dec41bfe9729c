"""Settings both services share, read the same way by each: for now the Kafka TLS/SASL
settings (:mod:`parlour_runtime.kafka_security`).

A service's ``Settings(BaseSettings)`` inherits the mixins it needs, so every variable keeps
one name, one default and one start-up check in every process.
"""

from __future__ import annotations

from parlour_runtime.kafka_security import (
    KafkaSaslMechanism,
    KafkaSecurityProtocol,
    KafkaSecuritySettings,
)

__all__ = ["KafkaSaslMechanism", "KafkaSecurityProtocol", "KafkaSecuritySettings"]
