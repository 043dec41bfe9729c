"""EVENT_LOOP end to end: the services start on the loop the setting names and play a whole
Bigger Dice game either way. The rest of the suite runs both services on the default (auto:
uvloop, a dependency); here the engine and one gateway run on the standard library's loop
(EVENT_LOOP=asyncio, e.g. Windows, or an operator ruling the loop out) and the other gateway
on the default, so a game crosses both kinds of process."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.engine_harness import EngineProcess
from tests.support.gateway_harness import GatewayProc
from tests.support.stack import Player, assert_once_in_order, play_turns, running_stack, start_game

pytestmark = [pytest.mark.timeout(180)]


def _started(log: str, event: str) -> dict[str, Any] | None:
    for line in log.splitlines():
        if f'"{event}"' in line:
            record: dict[str, Any] = json.loads(line)
            return record
    return None


async def _logged(read: Any, event: str, within: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while (record := _started(read(), event)) is None:
        assert time.monotonic() < deadline, f"no {event} in {within}s:\n{read()[-2000:]}"
        await asyncio.sleep(0.1)
    return record


async def test_a_game_across_uvloop_and_asyncio_processes(
    kafka_bootstrap: str,
    redis_url: str,
    topic_prefix: str,
    create_topics: Any,
    tmp_path: Path,
) -> None:
    async with running_stack(
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=topic_prefix,
        create_topics=create_topics,
        tmp_path=tmp_path,
        gateways=2,
        engine_env={"EVENT_LOOP": "asyncio"},
        gateway_env=None,
    ) as (engine, gateways, keys):
        assert isinstance(engine, EngineProcess)
        engine_log = await _logged(engine.log_path.read_text, "engine_started")
        assert engine_log["event_loop"] == "asyncio"
        # the default gateway (auto) found uvloop
        assert (await _logged(gateways[0].logs, "gateway_started"))["event_loop"] == "uvloop"
        asyncio_gw = GatewayProc(
            bootstrap=kafka_bootstrap,
            redis_url=redis_url,
            topic_prefix=topic_prefix,
            key_prefix=topic_prefix,
            public_key=keys.public_path,
            log_dir=tmp_path,
            env={"EVENT_LOOP": "asyncio"},
        )
        try:
            await asyncio.to_thread(asyncio_gw.wait_ready)
            assert (await _logged(asyncio_gw.logs, "gateway_started"))["event_loop"] == "asyncio"
            tag = uuid.uuid4().hex[:6]
            host = Player(f"h{tag}", keys.token(f"h{tag}"))
            guest = Player(f"g{tag}", keys.token(f"g{tag}"))
            await host.connect(gateways[0].url)
            await guest.connect(asyncio_gw.url)
            room_id = await start_game(host, guest, f"loops {uuid.uuid4().hex[:6]}")
            _, over = await play_turns(
                room_id, {host.user_id: host, guest.user_id: guest}, host, max_turns=200
            )
            assert over
            await guest.wait(lambda f: f["type"] == "games.event.bigger_dice.game_over", within=10)
            for player in (host, guest):
                assert_once_in_order(player, room_id, from_one=False)
            await host.close()
            await guest.close()
        finally:
            asyncio_gw.terminate()
