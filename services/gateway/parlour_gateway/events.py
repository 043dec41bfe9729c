"""Events from Kafka to local sockets.

Every gateway needs every event and starts from the newest offset, so it uses no consumer
group: it assigns itself all partitions of the events topic at their end offsets. That avoids
group rebalances (which would pause delivery on every gateway each time one starts or stops)
and commits nothing; a restarted gateway has new sockets, and those resume through
`rejoin_room` + the room's replay stream, not through Kafka offsets.

Partitions added to the events topic while the gateway runs are taken on the consumer's next
metadata refresh (`KAFKA_METADATA_MAX_AGE_SECONDS`): a new partition is read from its
beginning, since engines may have produced to it before this gateway noticed it (those events
arrive late by up to the refresh interval, but they arrive), and the partitions already read
keep their positions. aiokafka's `assign` replaces the whole assignment, so the positions are
read before and sought again after.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from parlour_gateway.connection import Connection, Outgoing
from parlour_gateway.hub import Hub
from parlour_gateway.logs import get_logger
from parlour_gateway.metrics import Metrics
from parlour_gateway.raw_records import EventRecord
from parlour_protocol.v1 import AudienceKind, ErrorCode, ProtocolError, decode_event_envelope
from parlour_protocol.v1.records import (
    F_ERROR,
    F_FLOOR,
    F_ROOM,
    F_SEQ,
    F_TS,
    F_TYPE,
    H_EVENT,
    H_HOPS,
    H_TO,
    HOP_GATEWAY_CONSUMED,
    event_fields,
    hop,
)
from parlour_protocol.v1.system import Error

log = get_logger("parlour_gateway.events")
_ERROR_CODES = frozenset(code.value for code in ErrorCode)
_USER_KINDS = frozenset(
    kind.value.encode()
    for kind in AudienceKind
    if kind not in (AudienceKind.CONNECTION, AudienceKind.BROADCAST)
)
"""audience kinds resolved to `user_ids` (`p-users`)"""


class EventConsumer:
    def __init__(self, consumer: AIOKafkaConsumer, topic: str, hub: Hub, metrics: Metrics) -> None:
        self._consumer = consumer
        self._topic = topic
        self._hub = hub
        self._metrics = metrics
        self.assigned = asyncio.Event()
        self.healthy = False
        self.partitions: frozenset[int] = frozenset()
        """The partitions of the events topic this gateway reads."""

    async def assign(self, partitions: set[int]) -> None:
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the end offsets now, so events after start-up are never skipped
            await self._consumer.position(tp)
        self.partitions = frozenset(partitions)
        self.assigned.set()
        self.healthy = True

    async def take_new_partitions(self) -> set[int]:
        """Start reading the partitions the consumer's metadata knows and this gateway does
        not read yet (added to the topic since): each from its beginning, while the ones
        read so far keep their positions. Returns the partitions added."""
        known = self._consumer.partitions_for_topic(self._topic)
        new = set(known or ()) - self.partitions
        if not new:
            return set()
        positions = {
            tp: await self._consumer.position(tp)
            for tp in (TopicPartition(self._topic, p) for p in sorted(self.partitions))
        }
        added = [TopicPartition(self._topic, p) for p in sorted(new)]
        self._consumer.assign([*positions, *added])
        for tp, offset in positions.items():
            self._consumer.seek(tp, offset)
        await self._consumer.seek_to_beginning(*added)
        for tp in added:  # resolved now: a later seek_to_end could not skip what they hold
            await self._consumer.position(tp)
        self.partitions = self.partitions | new
        log.info("events_partitions_added", added=sorted(new), partitions=len(self.partitions))
        return new

    async def run(self, beat: Callable[[], None] = lambda: None) -> None:
        """Deliver events until cancelled; `beat` is called after every fetch (progress, for
        the supervisor's stall check)."""
        while True:
            beat()
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=2000)
            except KafkaError as exc:
                self.healthy = False
                log.warning("events_fetch_failed", error=type(exc).__name__)
                await asyncio.sleep(1)
                continue
            self.healthy = True
            lag = 0
            for tp, records in batches.items():
                self.handle_batch(records)
                if records:
                    high = self._consumer.highwater(tp)
                    if high is not None:
                        lag += max(0, high - (records[-1].offset + 1))
            if batches:
                self._metrics.consumer_lag.set(lag)
            try:
                await self.take_new_partitions()  # a dict lookup unless the topic grew
            except KafkaError as exc:
                # tried again after the next fetch; the partitions read so far go on
                log.warning("events_partitions_add_failed", error=type(exc).__name__)
            await asyncio.sleep(0)

    def handle_batch(self, records: Iterable[EventRecord]) -> int:
        """`handle_record` for each record of a fetch, with the common case inlined: an event
        whose users are none of this gateway's is dropped on its first header without a call
        (every gateway reads every event: this loop bounds how far gateways scale out).
        Returns the deliveries made."""
        local_users = self._hub.local_users
        delivered = 0
        for record in records:
            headers = record.headers
            if headers:
                first = headers[0]
                if first[0] == H_TO:
                    kind, _, to = first[1].partition(b":")
                    if kind in _USER_KINDS and local_users.isdisjoint(to.split(b",")):
                        continue
            delivered += self.handle_record(record.value or b"", headers)
        return delivered

    def handle_record(self, value: bytes, headers: Sequence[tuple[str, bytes]]) -> int:
        """One record of the events topic, routed on its headers: its value (the frame) is
        never parsed, and an event for no socket here is decided on the first header
        (parlour_protocol.v1.records). A record without it is the older envelope form."""
        if not headers:
            return self.handle(value)
        first = headers[0]
        if first[0] != H_TO:
            return self.handle(value)
        kind, _, to = first[1].partition(b":")
        if kind in _USER_KINDS and self._hub.local_users.isdisjoint(to.split(b",")):
            return 0
        h = dict(headers)
        try:
            targets = self._hub.route_targets(kind, to)
            if not targets:
                return 0
            return self._deliver_record(value, h, targets)
        except (KeyError, ValueError, UnicodeDecodeError) as exc:
            self._metrics.bad_events.inc()
            log.warning("event_headers_invalid", error=f"{type(exc).__name__}: {exc}")
            return 0
        except Exception as exc:
            # a fault in delivery code, not in the event: as in `handle`
            self._metrics.bad_events.inc()
            log.error(
                "event_dispatch_failed",
                headers=(h.get(H_EVENT) or b"").decode("utf-8", "replace")[:200],
                error=f"{type(exc).__name__}: {exc}",
                exc_info=exc,
            )
            return 0

    def _deliver_record(self, value: bytes, h: dict[str, bytes], targets: list[Connection]) -> int:
        fields = event_fields(h[H_EVENT])
        room_id, seq, snapshot = fields.get(F_ROOM), fields.get(F_SEQ), fields.get(F_FLOOR)
        floor = None
        if snapshot is not None:  # a room snapshot: its last_seq, and its room
            last_seq, _, snapshot_room = snapshot.partition(":")
            floor = int(last_seq)
            room_id = room_id or snapshot_room
        ts, raw_hops = fields.get(F_TS), h.get(H_HOPS)
        hops = None
        if raw_hops is not None:
            hops = hop(raw_hops.decode("ascii", "replace"), HOP_GATEWAY_CONSUMED)
        out = Outgoing(value.decode(), None if ts is None else int(ts) / 1e6, hops)
        delivered = self._hub.deliver_to(
            targets, room_id, None if seq is None else int(seq), out, floor
        )
        if delivered:
            self._metrics.messages_out.labels(fields[F_TYPE]).inc(delivered)
            code = fields.get(F_ERROR)
            if code is not None and code in _ERROR_CODES:  # the answer to a failed command
                self._metrics.errors_sent.labels(code=code).inc(delivered)
        return delivered

    def handle(self, value: bytes) -> int:
        try:
            envelope = decode_event_envelope(value)
        except ProtocolError as exc:
            self._metrics.bad_events.inc()
            log.warning("event_undecodable", reason=exc.code.value)
            return 0
        event_ts = envelope.timestamp.timestamp()
        try:
            delivered = self._hub.dispatch(envelope, event_ts)
        except Exception as exc:
            # a fault in delivery code, not in the event: counted and logged loudly, and the
            # fetched batch goes on (raising would drop every later record of this fetch,
            # since the consumer's position is already past them)
            self._metrics.bad_events.inc()
            log.error(
                "event_dispatch_failed",
                type=envelope.type,
                room_id=envelope.room_id,
                error=f"{type(exc).__name__}: {exc}",
                exc_info=exc,
            )
            return 0
        if delivered:
            self._metrics.messages_out.labels(envelope.type).inc(delivered)
            payload = envelope.payload
            if isinstance(payload, Error):  # the engine's answer to a command that failed
                self._metrics.errors_sent.labels(code=payload.code.value).inc(delivered)
        return delivered
