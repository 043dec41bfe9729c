"""One socket's state, free of I/O: identity, bounded send queue, per-room seq dedup and the
hold of live room events while a replay runs. The socket task drains `queue`.

Resume order: a socket that authenticates while its user is in rooms (`user_rooms`) holds
those rooms' live events (`hold_rooms`) until the room is opened on this socket, so a client's
`rejoin_room {last_seq}` replay is never overtaken by a newer live event. A room opens by the
end of a replay (`end_hold`), by a `room_state` for it (whose `last_seq` covers older events),
or by `release_auth_holds` when the client never rejoins (the session's hold timeout). Rooms
the user was not in at authentication are never held: normal play adds no latency."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from parlour_gateway.auth import Identity
from parlour_protocol.v1 import CloseCode

_ABOVE_FLOOR_MAX = 1024
_HELD_MAX = 4096
"""Most live events one room holds for a socket during a replay or resync; a client that
reads so slowly that more pile up is closed as a slow consumer."""


class CloseRequest(StrEnum):
    """Why the socket task was asked to close (metric label)."""

    SLOW_CONSUMER = "slow_consumer"
    RATE_LIMITED = "rate_limited"
    AUTH_TIMEOUT = "auth_timeout"
    AUTH_FAILED = "auth_failed"
    TOKEN_EXPIRED = "token_expired"
    HEARTBEAT_TIMEOUT = "heartbeat_timeout"
    SHUTDOWN = "shutdown"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    GATEWAY_FULL = "gateway_full"


REWIND_SKEW_SECONDS = 2.0
"""How much later than the newest event a socket has than an already-seen seq must be stamped
to count as a restarted room sequence (engines' clocks may differ by less)."""
REWIND_GAP = 64
"""How far below the newest seq an already-seen seq stamped later than it counts as a
restarted room sequence, however small the time difference."""


@dataclass
class SeqTracker:
    """Which seqs of one room a socket has been given: all up to `floor`, plus `above`; and
    the newest seq it has (given or vouched for by a room_state) with that event's time."""

    floor: int = 0
    above: set[int] = field(default_factory=set)
    newest: int = 0
    newest_ts: float | None = None
    """epoch seconds of the envelope that brought `newest` (None: not known)"""

    def seen(self, seq: int) -> bool:
        return seq <= self.floor or seq in self.above

    def mark(self, seq: int, ts: float | None = None) -> None:
        self.above.add(seq)
        while self.floor + 1 in self.above:
            self.floor += 1
            self.above.discard(self.floor)
        if len(self.above) > _ABOVE_FLOOR_MAX:  # a socket that joined mid-stream: bound memory
            self.raise_floor(min(self.above))
        self._newest(seq, ts)

    def raise_floor(self, floor: int, ts: float | None = None) -> None:
        if floor > self.floor:
            self.floor = floor
            self.above = {s for s in self.above if s > floor}
            while self.floor + 1 in self.above:
                self.floor += 1
                self.above.discard(self.floor)
        self._newest(floor, ts)

    def _newest(self, seq: int, ts: float | None) -> None:
        if seq >= self.newest:
            self.newest = seq
            if ts is not None and (self.newest_ts is None or ts > self.newest_ts):
                self.newest_ts = ts

    def later(self, ts: float | None, margin: float = 0.0) -> bool:
        """Stamped more than `margin` after the newest event this socket has."""
        return ts is not None and self.newest_ts is not None and ts > self.newest_ts + margin

    def rewound(self, seq: int, ts: float | None) -> bool:
        """An already-seen `seq` that is not a redelivery: stamped clearly after the newest
        event given (a redelivered event keeps its first stamp), or later and far below it.
        The room's sequence restarted lower (Redis lost writes)."""
        return self.later(ts, REWIND_SKEW_SECONDS) or (
            self.later(ts) and self.newest - seq > REWIND_GAP
        )


@dataclass
class Outgoing:
    text: str
    event_ts: float | None = None
    """epoch seconds of the event's timestamp, for the delivery latency metric"""
    hops: str | None = None
    """the event's per-hop timestamps with the gateway's `gc` (parlour_protocol.v1.records):
    the writer adds `fw` and observes each hop. One frame object goes to every socket the
    event is for, and the first writer clears this: the chain is observed once per event
    (the steps before `fw` are the same for every socket), not once per socket written,
    which cost 7 histogram observations per frame"""


def _expire(getter: asyncio.Future[bool]) -> None:
    if not getter.done():
        getter.set_result(False)


class SendQueue:
    """A socket's bounded FIFO of frames with the few `asyncio.Queue` methods the session uses
    (put_nowait, get, get_nowait, task_done, join). An idle socket holds an empty list and
    nothing else: `asyncio.Queue` costs three deques and an Event (about 3 KB) per socket.

    Bounded twice: `maxsize` frames and `max_bytes` of memory (the frames' `sys.getsizeof`),
    so a client that stops reading pins at most `max_bytes` however large the events are. An
    empty queue takes any one frame: a frame larger than the byte bound alone still goes to a
    client that reads."""

    __slots__ = (
        "_bytes",
        "_getter",
        "_items",
        "_joiners",
        "_unfinished",
        "max_bytes",
        "maxsize",
        "on_put",
    )

    def __init__(self, maxsize: int, max_bytes: int | None = None) -> None:
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self._items: list[Outgoing] = []
        self._bytes = 0
        self._unfinished = 0
        self._getter: asyncio.Future[bool] | None = None
        self._joiners: list[asyncio.Future[None]] | None = None
        self.on_put: Callable[[], None] | None = None
        """called after a frame is queued while no `get`/`wait` waits for one: the session
        starts its writer then (an idle socket has none)"""

    def qsize(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        """Memory held by the queued frames."""
        return self._bytes

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Outgoing) -> None:
        if len(self._items) >= self.maxsize:
            raise asyncio.QueueFull
        size = sys.getsizeof(item.text)
        if self.max_bytes is not None and self._items and self._bytes + size > self.max_bytes:
            raise asyncio.QueueFull
        self._items.append(item)
        self._bytes += size
        self._unfinished += 1
        getter = self._getter
        if getter is not None:
            if not getter.done():
                getter.set_result(True)
        elif self.on_put is not None:
            self.on_put()

    def _pop(self) -> Outgoing:
        item = self._items.pop(0)
        self._bytes -= sys.getsizeof(item.text)
        return item

    def take(self, most: int) -> list[Outgoing]:
        """Up to `most` frames from the front (none when empty); `task_done` once for each."""
        items = self._items[:most]
        del self._items[:most]
        for item in items:
            self._bytes -= sys.getsizeof(item.text)
        return items

    def get_nowait(self) -> Outgoing:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._pop()

    async def get(self) -> Outgoing:
        while not self._items:
            await self.wait(None)
        return self._pop()

    async def wait(self, within: float | None) -> bool:
        """Wait until a frame is queued: True, or False after `within` seconds without one
        (the queue may have been filled since: check `empty()` before acting on False). A
        timer, not `asyncio.timeout`: this runs once per frame on a busy socket."""
        if self._items:
            return True
        loop = asyncio.get_running_loop()
        getter: asyncio.Future[bool] = loop.create_future()
        self._getter = getter
        timer = None if within is None else loop.call_later(within, _expire, getter)
        try:
            return await getter
        finally:
            self._getter = None
            if timer is not None:
                timer.cancel()

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0 and self._joiners:
            for joiner in self._joiners:
                if not joiner.done():
                    joiner.set_result(None)
            self._joiners = None

    async def join(self) -> None:
        if self._unfinished == 0:
            return
        joiner = asyncio.get_running_loop().create_future()
        if self._joiners is None:
            self._joiners = []
        self._joiners.append(joiner)
        await joiner


class Flag:
    """A set-once boolean with `asyncio.Event`'s `is_set`; nothing waits on it (the session is
    told through `Connection.listener`), so it needs no waiter deque."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


@dataclass
class _Held:
    seq: int | None
    out: Outgoing
    floor: int | None


class Connection:
    def __init__(
        self, connection_id: str, queue_max: int, queue_max_bytes: int | None = None
    ) -> None:
        self.connection_id = connection_id
        self.identity: Identity | None = None
        self.queue = SendQueue(queue_max, queue_max_bytes)
        self.seqs: dict[str, SeqTracker] = {}
        self._holding: dict[str, list[_Held]] = {}
        self._auth_held: set[str] = set()
        """rooms held since authentication, waiting for the client's rejoin (no replay yet)"""
        self.close_code: CloseCode | None = None
        self.close_reason = ""
        self.close_kind: CloseRequest | None = None
        self.closing = Flag()
        self.active = False
        """a frame arrived since the presence refresher last wrote `last_seen`"""
        self.listener: Callable[[], None] | None = None
        """called when a close is requested: the socket task ends its session"""
        self.on_rewind: Callable[[str], None] | None = None
        """called with a room id when that room's seq went backwards for this socket"""

    @property
    def user_id(self) -> str | None:
        return None if self.identity is None else self.identity.user_id

    def request_close(self, kind: CloseRequest, code: CloseCode, reason: str) -> None:
        """Ask the socket task to close; the first request wins."""
        if self.close_code is None:
            self.close_code, self.close_reason, self.close_kind = code, reason, kind
            self.closing.set()
            if self.listener is not None:
                self.listener()

    def offer(self, out: Outgoing) -> bool:
        """Queue a frame; a full queue means the client stopped reading: ask to close."""
        if self.close_code is not None:
            return False
        try:
            self.queue.put_nowait(out)
        except asyncio.QueueFull:
            self.request_close(
                CloseRequest.SLOW_CONSUMER, CloseCode.SLOW_CONSUMER, "send queue full"
            )
            return False
        return True

    def deliver(
        self, room_id: str | None, seq: int | None, out: Outgoing, floor: int | None = None
    ) -> bool:
        """Deliver one event: held while the room replays, dropped when its seq was already
        given to this socket. `floor` (a room_state's last_seq) marks older seqs as covered.

        A room whose seq went backwards (`SeqTracker.rewound`, or a room_state with a lower
        last_seq stamped after the newest event given) starts a new tracker instead of
        dropping every new event as a duplicate; on an event, `on_rewind` is told so the
        session can hold the room and ask for a fresh room_state."""
        return self._deliver(room_id, seq, out, floor, released=False)

    def _deliver(
        self,
        room_id: str | None,
        seq: int | None,
        out: Outgoing,
        floor: int | None,
        *,
        released: bool,
    ) -> bool:
        if room_id is not None and room_id in self._holding:
            if floor is not None and room_id in self._auth_held:
                # a room snapshot opens a room held since authentication (or since its seq
                # went backwards): it goes first and its last_seq drops the held events it
                # already covers
                held = self._holding.pop(room_id)
                self._auth_held.discard(room_id)
                sent = self._deliver(room_id, seq, out, floor, released=released)
                for item in held:
                    self._deliver(room_id, item.seq, item.out, item.floor, released=True)
                return sent
            held_now = self._holding[room_id]
            if len(held_now) >= _HELD_MAX:
                self.request_close(
                    CloseRequest.SLOW_CONSUMER, CloseCode.SLOW_CONSUMER, "too many held events"
                )
                return False
            held_now.append(_Held(seq, out, floor))
            return True
        if room_id is not None and seq is not None:
            tracker = self.seqs.setdefault(room_id, SeqTracker())
            if tracker.seen(seq):
                if not tracker.rewound(seq, out.event_ts):
                    return False
                self.seqs[room_id] = tracker = SeqTracker()
                if self.on_rewind is not None:
                    self.on_rewind(room_id)
                if room_id in self._holding:
                    return self._deliver(room_id, seq, out, floor, released=released)
            tracker.mark(seq, out.event_ts)
        if room_id is not None and floor is not None:
            tracker = self.seqs.setdefault(room_id, SeqTracker())
            if not released and tracker.newest > floor and tracker.rewound(floor, out.event_ts):
                # a newer snapshot of an older seq: the room restarted lower; this snapshot
                # is the fresh state, and what the socket was given before no longer counts
                self.seqs[room_id] = tracker = SeqTracker()
            tracker.raise_floor(floor, out.event_ts)
        return self.offer(out)

    # --- replay ---
    def hold_rooms(self, room_ids: Iterable[str]) -> None:
        """At authentication: hold the live events of the rooms the user is in until the
        client rejoins them (or a room_state / `release_auth_holds` opens them)."""
        for room_id in room_ids:
            if room_id not in self._holding:
                self._holding[room_id] = []
                self._auth_held.add(room_id)

    @property
    def auth_holds(self) -> int:
        return len(self._auth_held)

    def release_auth_holds(self) -> int:
        """Open every room still held since authentication (the client did not rejoin it in
        time); returns how many held events went out."""
        rooms, self._auth_held = self._auth_held, set()
        return sum(self.end_hold(room_id) for room_id in sorted(rooms))

    def begin_hold(self, room_id: str, last_seq: int) -> None:
        """From now on live events of the room wait until `end_hold`; the client says it has
        every seq up to `last_seq`. Events held since authentication stay held and go out
        after the replay, deduplicated by seq."""
        self._auth_held.discard(room_id)
        self._holding.setdefault(room_id, [])
        self.seqs.setdefault(room_id, SeqTracker()).raise_floor(last_seq)

    def holding(self, room_id: str) -> bool:
        return room_id in self._holding

    def backlogged(self) -> bool:
        """The send queue is past half of either bound: a replay waits before adding more."""
        queue = self.queue
        if queue.qsize() * 2 >= queue.maxsize:
            return True
        return queue.max_bytes is not None and queue.nbytes * 2 >= queue.max_bytes

    def deliver_replayed(
        self, room_id: str, seq: int, out: Outgoing, ts: float | None = None
    ) -> bool:
        """One event from the room's replay stream (`ts`: its envelope's time)."""
        tracker = self.seqs.setdefault(room_id, SeqTracker())
        if tracker.seen(seq):
            return False
        tracker.mark(seq, ts)
        return self.offer(out)

    def end_hold(self, room_id: str) -> int:
        """Release the held live events (deduplicated against the replay); returns how many
        went out."""
        self._auth_held.discard(room_id)
        held = self._holding.pop(room_id, [])
        sent = 0
        for item in held:
            # a held room_state older than the replayed events is the late answer to this
            # rejoin, not a restarted sequence: the client knows it asked
            sent += self._deliver(room_id, item.seq, item.out, item.floor, released=True)
        return sent
