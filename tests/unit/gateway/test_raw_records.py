"""The gateway's events consumer gets aiokafka's parsed records (no `ConsumerRecord` per
event) and every other consumer gets what aiokafka gives, checked against the installed
aiokafka's own record batches and fetcher internals (raw_records.py leans on them)."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition
from aiokafka.consumer import fetcher
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import ConsumerRecord

from parlour_gateway import raw_records

TP = TopicPartition("events", 3)
HEADERS = [("p-to", b"room:alice,bob"), ("p-ev", b"t=x&r=room1&s=7")]


def _batch(first_offset: int, values: list[bytes]) -> MemoryRecords:
    builder = DefaultRecordBatchBuilder(
        2, 0, is_transactional=0, producer_id=-1, producer_epoch=-1, base_sequence=0,
        batch_size=1 << 20,
    )  # fmt: skip
    for n, value in enumerate(values):
        builder.append(n, timestamp=None, key=b"room1", value=value, headers=HEADERS)
    buffer = bytearray(builder.build())
    # the broker assigns the base offset; the builder writes 0 (first 8 bytes, big-endian)
    buffer[0:8] = first_offset.to_bytes(8, "big")
    return MemoryRecords(bytes(buffer))


def _read(value_deserializer: Any, fetch_offset: int = 40) -> list[Any]:
    records = fetcher.PartitionRecords(
        TP, _batch(40, [b"a", b"b", b"c"]), [], fetch_offset, None, value_deserializer, True, 0
    )
    return list(records)


def test_the_marked_consumer_gets_parsed_records() -> None:
    assert raw_records.install()
    assert raw_records.install()  # idempotent
    got = _read(raw_records.raw_records)
    assert not any(isinstance(r, ConsumerRecord) for r in got)
    assert [(r.offset, r.value, list(r.headers)) for r in got] == [
        (40, b"a", HEADERS),
        (41, b"b", HEADERS),
        (42, b"c", HEADERS),
    ]


def test_other_consumers_get_consumer_records_as_before() -> None:
    raw_records.install()
    got = _read(None)
    assert all(isinstance(r, ConsumerRecord) for r in got)
    assert [(r.topic, r.partition, r.offset, r.key, r.value) for r in got] == [
        ("events", 3, 40, b"room1", b"a"),
        ("events", 3, 41, b"room1", b"b"),
        ("events", 3, 42, b"room1", b"c"),
    ]
    assert got[0].headers == tuple(HEADERS)


def test_the_fetch_position_still_moves_past_what_was_read() -> None:
    """aiokafka tracks the next offset to fetch in PartitionRecords; skipping records below
    the fetch offset and moving it on must work as before."""
    raw_records.install()
    records = fetcher.PartitionRecords(
        TP, _batch(40, [b"a", b"b", b"c"]), [], 41, None, raw_records.raw_records, True, 0
    )
    assert [r.offset for r in records] == [41, 42]
    assert records.next_fetch_offset == 43


def test_the_marker_alone_is_the_identity() -> None:
    """Without the installed subclass (another aiokafka), the marker deserializes to the same
    bytes: ConsumerRecords, correct, only slower."""
    assert raw_records.raw_records(b"frame") == b"frame"
    assert raw_records.raw_records(None) is None
