"""The Kafka topics `scripts/infra up` creates, with their partition counts.

The names and counts belong to the protocol (`parlour_protocol.v1.topics`), which the
services use too; this module only adds the topic of the infra health check.
"""

from __future__ import annotations

from typing import Final

from parlour_protocol.v1.topics import PARTITIONS

#: topic name -> partition count, for everything the services need
TOPICS: Final[dict[str, int]] = dict(PARTITIONS)

#: used by the readiness check of the infra package only; services never read it
HEALTH_TOPIC: Final = "parlour.infra.health"
