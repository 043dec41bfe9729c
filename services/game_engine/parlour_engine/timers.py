"""The timer loop: due entries of the timers sorted set become `games.command.timer_fired`
commands on the commands topic.

An entry is published first and removed only after Kafka acknowledged it, so a crash between
the two re-publishes it rather than losing it. The command's msg_id is derived from the entry,
so two engines racing on one entry publish the same msg_id and the room store applies it once;
the rules ignore a timer whose token no longer matches the room.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from parlour_engine.logging import get_logger
from parlour_engine.metrics import EngineMetrics
from parlour_protocol.v1 import SYSTEM_ACTOR, CommandEnvelope, RedisKeys
from parlour_protocol.v1.internal import TimerFired, TimerKind
from parlour_runtime.redis_client import AnyRedis

TIMER_NAMESPACE = uuid.UUID("6f0c3d1e-43b5-4d4e-9a55-1f6c1d9a7e21")
"""uuid5 namespace of timer msg_ids (fixed forever: engines of every version must agree)."""

_BATCH = 500
_log = get_logger(__name__)

PublishCommand = Callable[[CommandEnvelope], Awaitable[None]]


def timer_member(room_id: str, kind: TimerKind | str, token: str) -> str:
    return f"{room_id}|{TimerKind(kind).value}|{token}"


def parse_member(member: str) -> tuple[str, TimerKind, str]:
    """Split `<room_id>|<kind>|<token>`; ids and kinds hold no `|`, tokens may."""
    room_id, kind, token = member.split("|", 2)
    return room_id, TimerKind(kind), token


def timer_command(member: str) -> CommandEnvelope:
    room_id, kind, token = parse_member(member)
    return CommandEnvelope(
        msg_id=uuid.uuid5(TIMER_NAMESPACE, member),
        type="games.command.timer_fired",
        key=room_id,
        room_id=room_id,
        actor=SYSTEM_ACTOR,
        payload=TimerFired(room_id=room_id, kind=kind, token=token),
    )


class TimerLoop:
    def __init__(
        self,
        redis: AnyRedis,
        keys: RedisKeys,
        publish: PublishCommand,
        metrics: EngineMetrics,
        *,
        poll_seconds: float,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._publish = publish
        self._metrics = metrics
        self.poll_seconds = poll_seconds

    async def tick(self) -> float:
        """One round for the engine's `Supervisor`, which runs it forever and survives
        whatever it raises (a Kafka publish error included). Returns the pause before the
        next round: none while a full batch was due (a backlog drains at once)."""
        fired = await self.fire_due()
        return 0.0 if fired >= _BATCH else self.poll_seconds

    async def fire_due(self, now_ms: int | None = None) -> int:
        """Publish every due entry (up to one batch) and remove the published ones."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        key = self._keys.timers()
        raw: list[bytes | str] = await self._redis.zrangebyscore(  # type: ignore[assignment]
            key, "-inf", now, start=0, num=_BATCH
        )
        done: list[bytes | str] = []
        envelopes: list[CommandEnvelope] = []
        for member in raw:
            text = member.decode() if isinstance(member, bytes) else member
            try:
                envelopes.append(timer_command(text))
            except ValueError as exc:
                # an entry no engine can turn into a command would be retried forever
                _log.error("timer_entry_invalid", member=text, error=str(exc))
            done.append(member)
        # all or nothing: if one publish fails, every entry stays and is published again
        await asyncio.gather(*(self._publish(envelope) for envelope in envelopes))
        self._metrics.timers_fired.inc(len(envelopes))
        if done:
            await self._redis.zrem(key, *done)
        return len(raw)
