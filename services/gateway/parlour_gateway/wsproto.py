"""uvicorn's `websockets-sansio` protocol with lighter per-socket state.

uvicorn gives every socket an unbounded `asyncio.Queue` for received frames and an
`asyncio.Event` for write flow control: four deques (about 3 KB) per socket that mostly sit
empty. They are swapped here for list/future based equivalents with the same methods the
protocol calls (`put_nowait`, `get`, `empty`; `set`, `clear`, `wait`, `is_set`).

Once the handshake is accepted, the protocol lets go of the handshake's request and response
and of the scope's header list (about 4 KB per socket, read by nobody afterwards: the gateway
reads the headers it needs before it accepts, without caching them on the `WebSocket`).
It also offers the gateway a way to write several text frames at once, `send_texts`, as the
ASGI scope extension `parlour.send_texts` (uvicorn's `send` writes each frame with its own
transport write, one syscall each; a socket's writer that finds several frames queued writes
them together). Nothing else of the protocol changes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

SEND_TEXTS = "parlour.send_texts"
"""The scope extension: an `async (texts: Sequence[str]) -> None` writing the frames in one
transport write (see `LightWebSocketProtocol.send_texts`)."""


class _ReceiveQueue:
    """Unbounded FIFO with one consumer (the ASGI app's `receive`)."""

    __slots__ = ("_getter", "_items")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._getter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    async def get(self) -> Any:
        while not self._items:
            getter = asyncio.get_running_loop().create_future()
            self._getter = getter
            try:
                await getter
            finally:
                self._getter = None
        return self._items.pop(0)


class _Writable:
    """`asyncio.Event` for flow control; waiters (rare: only while the transport is paused)
    are kept in a list created on demand."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class LightWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _ReceiveQueue()  # type: ignore[assignment]
        writable = _Writable()
        writable.set()
        self.writable = writable  # type: ignore[assignment]

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # none when the handshake was refused
        if scope is not None:
            scope["extensions"][SEND_TEXTS] = self.send_texts

    async def send_texts(self, texts: Sequence[str]) -> None:
        """Text frames, in order, in one transport write; what `send` does for one
        "websocket.send" each. Raises ClientDisconnected once the socket is gone or closing."""
        await self.writable.wait()
        if self.disconnected or self.close_sent or not self.handshake_complete:
            raise ClientDisconnected()
        conn = self.conn
        try:
            for text in texts:
                conn.send_text(text.encode())
        except InvalidState:
            raise ClientDisconnected() from None
        self.transport.write(b"".join(conn.data_to_send()))

    async def send(self, message: Any) -> None:
        await super().send(message)
        kind = message["type"]
        if kind == "websocket.accept" and self.handshake_complete:
            # the request also stays referenced by the parser generator of `self.conn` for
            # the socket's life: empty its headers in place
            self.request.headers.clear()
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]
            self.scope["headers"] = []
        elif kind == "websocket.http.response.body" and not message.get("more_body"):
            # a handshake refused with an HTTP response (429) is complete: without this,
            # uvicorn logs "returned without completing handshake" at error level for each
            # refusal, one log line per hostile handshake
            self.handshake_complete = True
