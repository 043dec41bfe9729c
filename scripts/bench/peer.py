"""The peer Parlour is compared with: python-socketio's AsyncServer on uvicorn with
AsyncRedisManager (so several processes share rooms through Redis pub/sub), and a handler that
rolls a die and emits the result to the room. No durability, no turns, no auth: the floor of
what a conventional real-time stack does for the same exchange.

    python -m bench.peer --port 8765 --redis-url redis://127.0.0.1:6379/0 --channel x
"""

from __future__ import annotations

import argparse
import random
from typing import Any

import socketio  # type: ignore[import-untyped]
import uvicorn

REDIS_POOL = 2_000
"""Connections the manager's Redis client may open: every concurrent emit publishes on one,
and a pool smaller than the rooms in flight fails emits under load ("Too many connections")."""


def build(redis_url: str, channel: str) -> Any:
    manager = socketio.AsyncRedisManager(
        redis_url, channel=channel, redis_options={"max_connections": REDIS_POOL}
    )
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager, cors_allowed_origins=[])

    @sio.event  # type: ignore[untyped-decorator]
    async def join(sid: str, data: dict[str, Any]) -> str:
        await sio.enter_room(sid, data["room"])
        return "ok"

    @sio.event  # type: ignore[untyped-decorator]
    async def roll(sid: str, data: dict[str, Any]) -> None:
        await sio.emit(
            "rolled",
            {"room": data["room"], "n": data["n"], "by": sid, "roll": random.randint(1, 6)},
            room=data["room"],
        )

    return socketio.ASGIApp(sio)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--channel", required=True)
    args = parser.parse_args()
    uvicorn.run(
        build(args.redis_url, args.channel),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        ws="websockets-sansio",  # the implementation the gateway builds on
    )


if __name__ == "__main__":
    main()
