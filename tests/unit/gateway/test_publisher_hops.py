"""The command publisher stamps `gp` after the session's `gr` (per-hop timestamps, see
parlour_protocol.v1.records), and adds no header when hops are off."""

from __future__ import annotations

import time
from typing import Any, cast

from parlour_gateway.metrics import Metrics
from parlour_gateway.publisher import CommandPublisher
from parlour_protocol.v1 import Actor, CommandEnvelope
from parlour_protocol.v1.games.bigger_dice import Roll
from parlour_protocol.v1.records import H_HOPS, hop, parse_hops


class Producer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_and_wait(self, topic: str, value: bytes, **kwargs: Any) -> None:
        self.sent.append({"topic": topic, "value": value, **kwargs})


def _envelope() -> CommandEnvelope:
    return CommandEnvelope(
        type="games.command.bigger_dice.roll",
        key="r1",
        room_id="r1",
        actor=Actor(user_id="u1", username="u1"),
        payload=Roll(room_id="r1"),
    )


async def test_hops_are_stamped_only_when_given() -> None:
    producer = Producer()
    publisher = CommandPublisher(cast(Any, producer), "commands", 5.0, Metrics())
    await publisher.publish(_envelope())
    received = time.time_ns() // 1000
    await publisher.publish(_envelope(), hop("", "gr", received))
    assert producer.sent[0]["headers"] is None
    [(name, value)] = producer.sent[1]["headers"]
    assert name == H_HOPS
    stamps = parse_hops(value)
    assert [n for n, _ in stamps] == ["gr", "gp"]
    assert stamps[0][1] == received <= stamps[1][1]
