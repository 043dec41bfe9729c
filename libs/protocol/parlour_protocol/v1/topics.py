"""Kafka topic names of protocol v1. Keys: room_id where a room exists, else the user id."""

from __future__ import annotations

from dataclasses import dataclass

COMMANDS = "games.command.v1"
EVENTS = "games.event.v1"
COMMANDS_DLQ = "games.command.v1.dlq"

PARTITIONS: dict[str, int] = {COMMANDS: 6, EVENTS: 6, COMMANDS_DLQ: 1}


@dataclass(frozen=True)
class Topics:
    """Topic names with an optional prefix (KAFKA_TOPIC_PREFIX), so tests share a broker."""

    prefix: str = ""

    @property
    def commands(self) -> str:
        return f"{self.prefix}{COMMANDS}"

    @property
    def events(self) -> str:
        return f"{self.prefix}{EVENTS}"

    @property
    def commands_dlq(self) -> str:
        return f"{self.prefix}{COMMANDS_DLQ}"

    def with_partitions(self) -> dict[str, int]:
        return {f"{self.prefix}{name}": count for name, count in PARTITIONS.items()}
