"""How long a room stalls when its engine dies: two engines with the default group settings
share 12 running games, one is SIGKILLed, and the test prints, for the rooms the dead engine
served, the time from the kill to the room's next event (the survivor's first).

That time is the group session timeout (`ENGINE_SESSION_TIMEOUT_SECONDS`: the broker notices
the dead member only when its session expires) plus up to one heartbeat interval (the
survivor learns of the rebalance on its next heartbeat) plus the rebalance and one fetch. The
printed figure is the measurement; the assertion only checks that the dead engine's rooms
stalled and recovered within a bound far above the expected figure, so a slow machine does
not make it flaky."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from parlour_engine.settings import EngineSettings
from parlour_protocol.v1 import Topics
from tests.support.engine_harness import (
    Bus,
    EngineProcess,
    commands_handled,
    engines_named,
    start_games,
)

GAMES = 12

pytestmark = pytest.mark.slow


@pytest.mark.timeout(180)
async def test_engine_failover_time_is_printed(
    kafka_bootstrap: str,
    redis_url: str,
    topic_prefix: str,
    create_topics,
    tmp_path: Path,
) -> None:
    topics = Topics(prefix=topic_prefix)
    await create_topics(kafka_bootstrap, topics.with_partitions())
    default = EngineSettings.model_fields["engine_session_timeout_seconds"].default
    session = float(os.environ.get("ENGINE_SESSION_TIMEOUT_SECONDS", default))
    engines = engines_named(
        ("engine-a", "engine-b"),
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=topic_prefix,
        log_dir=tmp_path,
    )
    for engine in engines:
        engine.start()
    bus = Bus(kafka_bootstrap, topics)
    victim, survivor = engines
    try:
        await bus.start()
        for engine in engines:
            await engine.wait_ready()
        games = start_games(bus, GAMES, "fot", within=60)
        deadline = time.monotonic() + 60
        while True:  # both engines at work, every game past its start
            counts = [commands_handled(await e.metrics()) for e in engines]
            started = {e.room_id for e in bus.events if e.type == "games.event.game_started"}
            if min(counts) > 0 and len(started) == GAMES:
                break
            assert time.monotonic() < deadline, f"games did not get going: {counts}"
            for task in games:
                if task.done() and (error := task.exception()) is not None:
                    raise error
            await asyncio.sleep(0.05)
        killed_at = time.time()
        victim.kill()
        played = await asyncio.gather(*games)
    finally:
        await bus.stop()
        victim.kill()
        survivor.stop()

    session = _effective_session(victim, session)
    stalls: dict[str, float] = {}
    for game in played:
        after = [
            e.timestamp.timestamp() - killed_at
            for e in bus.by_room[game.room_id]
            if e.timestamp.timestamp() > killed_at
        ]
        if after:  # a game may have ended right before the kill
            stalls[game.room_id] = min(after)
    stalled = sorted(s for s in stalls.values() if s > 1.0)
    print(
        f"\nENGINE FAILOVER (SIGKILL, session timeout {session:g} s, heartbeat "
        f"{session / 4:g} s): {len(stalled)} of {len(stalls)} rooms stalled; "
        f"kill -> next event: max {max(stalled, default=0):.2f} s, "
        f"min {min(stalled, default=0):.2f} s"
    )
    assert stalled, "no room waited for the dead engine: did it own no partition?"
    assert max(stalled) < session + 10, f"failover took {max(stalled):.1f} s"


def _effective_session(engine: EngineProcess, wanted: float) -> float:
    """The session the engine used: raised to the brokers' floor when they refuse `wanted`
    (the engine logs `session_timeout_raised`)."""
    for line in engine.log_path.read_text(errors="replace").splitlines():
        if '"session_timeout_raised"' in line:
            return float(json.loads(line)["used_seconds"])
    return wanted
