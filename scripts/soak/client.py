"""The soak's users: one `parlour_client.ParlourClient` each (libs/client), no frame kept,
every frame counted, and the newest turn frame per room remembered for the players."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import InvalidStatus

from parlour_client import AuthenticationFailed, ClientClosed, CommandRejected, ParlourClient

Frame = dict[str, Any]

TURN = "games.event.turn_changed"
GAME_OVER = "games.event.bigger_dice.game_over"
TIMEOUT = 20.0
"""seconds an answer or an expected event may take before it counts as a timeout"""


@dataclass
class Counters:
    """What every user of one load process adds to (one event loop: no locks)."""

    commands: int = 0
    """client commands sent, heartbeats not counted"""
    frames_in: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    """system.error frames by `code`"""
    timeouts: Counter[str] = field(default_factory=Counter)
    """answers or events that did not come in time, by step"""
    closes: Counter[str] = field(default_factory=Counter)
    """sockets the gateway closed (or that dropped), by close code"""
    connect_failures: Counter[str] = field(default_factory=Counter)


class Conn:
    """One authenticated user."""

    def __init__(self, user_id: str, counters: Counters) -> None:
        self.user_id = user_id
        self.counters = counters
        self.client: ParlourClient | None = None
        self.turns: dict[str, Frame] = {}
        """room id -> the newest turn_changed / game_over frame"""
        self.turn_changed = asyncio.Event()

    @property
    def open(self) -> bool:
        return self.client is not None and not self.client.closed

    def _on_frame(self, frame: Frame, _received_at: float) -> None:
        self.counters.frames_in += 1
        kind = frame.get("type")
        if kind == "system.error":
            self.counters.errors[str(frame.get("code"))] += 1
        elif kind in (TURN, GAME_OVER):
            room = str(frame.get("room_id"))
            old = self.turns.get(room)
            if old is None or old["type"] != GAME_OVER:
                self.turns[room] = frame
                self.turn_changed.set()

    async def connect(self, url: str, token: str) -> bool:
        """Open and authenticate (the client heartbeats from then on); False, counted, when
        that failed."""
        client = ParlourClient(url, token=token, timeout=30, on_frame=self._on_frame)
        try:
            await client.open()
        except InvalidStatus as exc:
            self.counters.connect_failures[f"HTTP {exc.response.status_code}"] += 1
        except AuthenticationFailed as exc:
            self.counters.connect_failures[f"authenticate: {exc}"[:80]] += 1
        except (OSError, TimeoutError, ClientClosed) as exc:
            self.counters.connect_failures[type(exc).__name__] += 1
        else:
            self.client = client
            return True
        await client.close()
        return False

    def expect(self, match: Any) -> asyncio.Future[Frame]:
        """The future of the first frame from now on that `match` accepts."""
        assert self.client is not None
        return self.client.expect(match)

    async def wait(self, future: asyncio.Future[Frame], step: str) -> Frame | None:
        """The frame `future` brings, None (a timeout is counted under `step`) otherwise."""
        try:
            return await asyncio.wait_for(future, TIMEOUT)
        except TimeoutError:
            self.counters.timeouts[step] += 1
        except ClientClosed:
            pass
        return None

    async def request(self, message: Frame) -> Frame | None:
        """Send with a request_id: the gateway's ack or error, or None (a timeout, counted
        under the command's name, or a closed socket)."""
        if not self.open:
            return None
        assert self.client is not None
        self.counters.commands += 1
        try:
            return await self.client.command(message, within=TIMEOUT)
        except CommandRejected as exc:
            return exc.frame
        except TimeoutError:
            self.counters.timeouts[str(message["type"]).rsplit(".", 1)[-1]] += 1
        except ClientClosed:
            pass
        return None

    async def command(self, message: Frame) -> bool:
        """`request`, True when it was acknowledged."""
        frame = await self.request(message)
        return frame is not None and frame["type"] == "system.ack"

    async def next_turn(self, room_id: str, after: int, within: float) -> Frame | None:
        """The room's newest turn_changed with a seq past `after`, or its game_over; None on
        timeout (counted) or close."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            frame = self.turns.get(room_id)
            if frame is not None and (
                frame["type"] == GAME_OVER or (frame.get("seq") or 0) > after
            ):
                return frame
            if not self.open:
                return None
            left = deadline - loop.time()
            if left <= 0:
                self.counters.timeouts["turn_changed"] += 1
                return None
            self.turn_changed.clear()
            # a close is noticed within a second
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.turn_changed.wait(), min(left, 1.0))

    def forget_room(self, room_id: str) -> None:
        self.turns.pop(room_id, None)

    async def close(self) -> None:
        if self.client is None:
            return
        if self.client.closed:  # the gateway closed it (or it dropped) before the user did
            code = self.client.close_code
            self.counters.closes["dropped" if code is None else str(code)] += 1
        await self.client.close()
