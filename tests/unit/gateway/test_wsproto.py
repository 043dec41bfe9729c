"""The lighter receive queue, write flag and send queue behave like the asyncio ones they
replace (FIFO, wake-ups, join, bounded put)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from parlour_gateway.connection import Outgoing, SendQueue
from parlour_gateway.wsproto import SEND_TEXTS, LightWebSocketProtocol, _ReceiveQueue, _Writable


async def test_receive_queue_is_fifo_and_wakes_its_reader() -> None:
    queue = _ReceiveQueue()
    reader = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not reader.done()
    queue.put_nowait({"n": 1})
    queue.put_nowait({"n": 2})
    assert await reader == {"n": 1}
    assert await queue.get() == {"n": 2}
    assert queue.empty()


async def test_writable_blocks_only_while_cleared() -> None:
    flag = _Writable()
    flag.set()
    assert await flag.wait()
    flag.clear()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(2)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.gather(*waiters) == [True, True]
    flag.clear()
    cancelled = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    flag.set()


async def test_send_queue_bounds_and_joins() -> None:
    queue = SendQueue(2)
    queue.put_nowait(Outgoing("a"))
    queue.put_nowait(Outgoing("b"))
    with pytest.raises(asyncio.QueueFull):
        queue.put_nowait(Outgoing("c"))
    joiner = asyncio.create_task(queue.join())
    assert (await queue.get()).text == "a"
    queue.task_done()
    await asyncio.sleep(0)
    assert not joiner.done()
    assert queue.get_nowait().text == "b"
    queue.task_done()
    await asyncio.wait_for(joiner, 1)
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait(Outgoing("d"))
    assert (await getter).text == "d"


async def test_send_queue_is_bounded_in_bytes_too() -> None:
    big = "x" * 40_000
    queue = SendQueue(1000, max_bytes=100_000)
    queue.put_nowait(Outgoing(big))
    queue.put_nowait(Outgoing(big))
    assert queue.nbytes > 80_000
    with pytest.raises(asyncio.QueueFull):  # a third would pass 100 kB, though 997 slots are free
        queue.put_nowait(Outgoing(big))
    assert queue.qsize() == 2
    queue.get_nowait()
    queue.task_done()
    queue.put_nowait(Outgoing(big))  # room again once the writer took one
    while not queue.empty():
        await queue.get()
        queue.task_done()
    assert queue.nbytes == 0


def test_send_queue_takes_one_frame_over_the_byte_bound_when_empty() -> None:
    queue = SendQueue(10, max_bytes=65_536)
    queue.put_nowait(Outgoing("y" * 200_000))  # a reading client still gets a large snapshot
    with pytest.raises(asyncio.QueueFull):
        queue.put_nowait(Outgoing("z"))


async def test_send_queue_wait_times_out_and_on_put_fires_only_without_a_waiter() -> None:
    queue = SendQueue(4)
    puts: list[int] = []
    queue.on_put = lambda: puts.append(queue.qsize())
    assert await queue.wait(0.01) is False  # nothing came
    waiter = asyncio.create_task(queue.wait(5))
    await asyncio.sleep(0)
    queue.put_nowait(Outgoing("a"))  # a waiter takes it: no on_put
    assert await waiter is True
    assert puts == []
    queue.put_nowait(Outgoing("b"))  # nobody waits: the owner is told
    assert puts == [2]
    assert await queue.wait(0) is True  # frames queued: no wait at all


async def test_an_accepted_socket_keeps_no_handshake_headers() -> None:
    """Through a real uvicorn server on the gateway's protocol: once the app accepted, the
    handshake's request and response and the scope's header list are let go (about 4 KB per
    socket), while the app could read the headers before it accepted; and the scope offers
    `parlour.send_texts`, whose frames the client receives in order."""
    import gc

    import uvicorn
    import websockets
    from websockets.typing import Origin

    seen: dict[str, object] = {}
    looked = asyncio.Event()

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        assert scope["type"] == "websocket"
        seen["before"] = dict(cast("list[tuple[bytes, bytes]]", scope["headers"]))
        await cast(Any, receive)()  # websocket.connect
        await cast(Any, send)({"type": "websocket.accept"})
        seen["after"] = list(cast("list[object]", scope["headers"]))
        protocols = [o for o in gc.get_objects() if isinstance(o, LightWebSocketProtocol)]
        seen["requests"] = [p.request for p in protocols]
        seen["responses"] = [p.response for p in protocols]
        extensions = cast("dict[str, Any]", scope["extensions"])
        await extensions[SEND_TEXTS](["one", "two", "three"])  # one write, three frames
        looked.set()
        await cast(Any, receive)()  # until the client closes

    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, ws=LightWebSocketProtocol, lifespan="off", log_level="error"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn has no event for it
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        origin = Origin("http://x.test")
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", origin=origin) as ws:
            await ws.send("hi")
            await asyncio.wait_for(looked.wait(), 10)
            seen["frames"] = [await asyncio.wait_for(ws.recv(), 10) for _ in range(3)]
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
    assert cast(dict[bytes, bytes], seen["before"])[b"origin"] == b"http://x.test"
    assert seen["after"] == []
    assert seen["requests"] == [None]
    assert seen["responses"] == [None]
    assert seen["frames"] == ["one", "two", "three"]
