"""The lighter receive queue, write flag and send queue behave like the asyncio ones they
replace (FIFO, wake-ups, join, bounded put)."""

from __future__ import annotations

import asyncio

import pytest

from parlour_gateway.connection import Outgoing, SendQueue
from parlour_gateway.wsproto import _ReceiveQueue, _Writable


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
