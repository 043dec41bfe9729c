"""The events topic read without aiokafka's per-record `ConsumerRecord`.

Every gateway reads the whole events topic, so what it spends on a record bounds how far
gateways scale out (README "Benchmarks", the filter row). aiokafka parses each record in C
(`DefaultRecord`: offset, key, value, headers) and then wraps it in a `ConsumerRecord`
dataclass of eleven fields through a Python method, `PartitionRecords._consumer_record`: 0.8 us
of the 3.8-4.1 us a bare iteration costs per record on the benchmark machine. The gateway
reads only `value`, `headers` and `offset`, which the parsed record has already.

A consumer opts in by passing `value_deserializer=raw_records` (a marker; as a deserializer it
is the identity). `install()` puts a subclass of aiokafka's `PartitionRecords` in its fetcher
module whose `_consumer_record` hands such a consumer the parsed record itself; every other
consumer (no marker) gets aiokafka's `ConsumerRecord` exactly as before. This leans on an
internal of aiokafka (pinned in constraints.txt): `install` refuses quietly when the internal
is not there, and the marker alone then still gives correct records, only slower.
tests/unit/gateway/test_raw_records.py checks both paths against the installed aiokafka.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from aiokafka.consumer import fetcher as _fetcher

from parlour_gateway.logs import get_logger

log = get_logger("parlour_gateway.raw_records")


class EventRecord(Protocol):
    """What the gateway reads of an events-topic record (a `ConsumerRecord` has it too)."""

    @property
    def offset(self) -> int: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


def raw_records(value: bytes | None) -> bytes | None:
    """The marker a consumer passes as `value_deserializer` to get parsed records."""
    return value


_Base: Any = getattr(_fetcher, "PartitionRecords", None)


def install() -> bool:
    """Make consumers that pass the marker get parsed records (idempotent). False when this
    aiokafka has not the internal it relies on: those consumers get `ConsumerRecord`s."""
    current = getattr(_fetcher, "PartitionRecords", None)
    if current is _RawPartitionRecords:
        return True
    if _RawPartitionRecords is None or current is not _Base:
        log.warning("raw_records_unavailable", detail="aiokafka internals changed")
        return False
    _fetcher.PartitionRecords = _RawPartitionRecords
    return True


def _make() -> Any:
    if _Base is None or not callable(getattr(_Base, "_consumer_record", None)):
        return None

    class RawPartitionRecords(_Base):  # type: ignore[misc]
        def _consumer_record(self, tp: Any, record: Any) -> Any:
            if self._value_deserializer is raw_records:
                return record
            return super()._consumer_record(tp, record)

    return RawPartitionRecords


_RawPartitionRecords: Any = _make()
