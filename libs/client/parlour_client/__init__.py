"""A small asyncio client of the Parlour protocol (v1) for bots, load generators, tests and
scripts against a deployment.

    async with await ParlourClient.connect(url, token=token) as client:
        ack = await client.command({"type": "games.command.create_room", ...})
        state = await client.wait_for(lambda f: f["type"] == "games.event.room_state")

Frames are plain dicts (`json.loads` of the text frame): the hot path does no validation.
`parse()` turns one into the protocol's pydantic model when a caller wants it checked.
"""

from __future__ import annotations

from parlour_client.client import (
    Frame,
    FrameHandler,
    ParlourClient,
    parse,
    room_of,
)
from parlour_client.errors import (
    AuthenticationFailed,
    ClientClosed,
    CommandRejected,
    ParlourClientError,
)

__all__ = [
    "AuthenticationFailed",
    "ClientClosed",
    "CommandRejected",
    "Frame",
    "FrameHandler",
    "ParlourClient",
    "ParlourClientError",
    "parse",
    "room_of",
]
