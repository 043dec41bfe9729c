"""The settings and logging kit both services share, read the same way by each process:

- :mod:`parlour_runtime.settings`: `ServiceSettings` (the base of a service's settings),
  `load` (settings from the environment, or one `SettingsError` naming the variables);
- :mod:`parlour_runtime.kafka_settings`: `KafkaSettings` (brokers, topic prefix, and the
  TLS/SASL settings of :mod:`parlour_runtime.kafka_security`);
- :mod:`parlour_runtime.redis_settings`: `RedisSettings` and its one effective URL;
- :mod:`parlour_runtime.logs`: `LoggingSettings`, `configure_logging`, `get_logger`;
- :mod:`parlour_runtime.event_loop`: `EventLoopSettings` (uvloop or the standard library's
  loop) and `run_on`, the `asyncio.run` that honours it;
- :mod:`parlour_runtime.addresses`: `ServiceAddresses`, the Kafka and Redis addresses alone,
  for the infra scripts and the test fixtures.

A service's ``Settings`` inherits the mixins it needs, then `ServiceSettings`, so every
variable keeps one name, one default and one start-up check in every process.
"""

from __future__ import annotations

from parlour_runtime.addresses import ServiceAddresses
from parlour_runtime.event_loop import EventLoop, EventLoopSettings, loop_in_use, running_loop
from parlour_runtime.event_loop import run as run_on
from parlour_runtime.kafka_security import (
    KafkaSaslMechanism,
    KafkaSecurityProtocol,
    KafkaSecuritySettings,
)
from parlour_runtime.kafka_settings import KafkaAddressSettings, KafkaSettings
from parlour_runtime.logs import (
    LogFormat,
    LoggingSettings,
    LogLevel,
    configure_logging,
    get_logger,
    log_format_field,
    log_level_field,
)
from parlour_runtime.redis_settings import RedisAddress, RedisSettings
from parlour_runtime.settings import (
    ServiceSettings,
    SettingsError,
    deprecated_in_use,
    deprecated_millis,
    load,
    log_deprecated_in_use,
    renamed,
)

__all__ = [
    "EventLoop",
    "EventLoopSettings",
    "KafkaAddressSettings",
    "KafkaSaslMechanism",
    "KafkaSecurityProtocol",
    "KafkaSecuritySettings",
    "KafkaSettings",
    "LogFormat",
    "LogLevel",
    "LoggingSettings",
    "RedisAddress",
    "RedisSettings",
    "ServiceAddresses",
    "ServiceSettings",
    "SettingsError",
    "configure_logging",
    "deprecated_in_use",
    "deprecated_millis",
    "get_logger",
    "load",
    "log_deprecated_in_use",
    "log_format_field",
    "log_level_field",
    "loop_in_use",
    "renamed",
    "run_on",
    "running_loop",
]
