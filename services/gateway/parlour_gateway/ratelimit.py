"""Token buckets and the per-address tables of the handshake limits; pure, the clock is
passed in."""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    rate: float
    """tokens added per second"""
    burst: int
    """bucket size"""
    tokens: float = field(default=-1.0)
    updated: float = 0.0

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = float(self.burst)

    def take(self, now: float) -> bool:
        """Take one token at time `now` (monotonic seconds); False when the bucket is empty."""
        elapsed = max(0.0, now - self.updated)
        self.updated = now
        self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class KeyedBuckets:
    """A token bucket per key (client address, user id) in a table of at most `max_keys`
    entries; the least recently used key is forgotten first. A forgotten key starts again
    with a full bucket, which is what any new key gets anyway: an attacker with many keys can
    churn the table, never grow it, and gains no more than the keys it already has."""

    def __init__(self, rate: float, burst: int, max_keys: int) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, now: float) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(rate=self.rate, burst=self.burst, updated=now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now)


class Tally:
    """Open things per key (unauthenticated sockets per client address). A key leaves the
    table when its count drops to zero, so the table never holds more keys than there are
    open things, which have their own cap."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._counts)

    def get(self, key: str) -> int:
        return self._counts.get(key, 0)

    def add(self, key: str) -> None:
        self._counts[key] = self._counts.get(key, 0) + 1

    def remove(self, key: str) -> None:
        left = self._counts.get(key, 0) - 1
        if left > 0:
            self._counts[key] = left
        else:
            self._counts.pop(key, None)


def client_key(
    peer: str | None,
    forwarded_for: str | None,
    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
) -> str:
    """The address the per-IP limits count for one handshake.

    The socket's peer, unless the peer is a trusted proxy: then the right-most
    X-Forwarded-For entry that is not itself a trusted proxy (everything left of it is the
    client's own claim and may be forged). IPv6 clients count by their /64, because one host
    commonly holds a whole /64; an IPv4-mapped IPv6 address counts as its IPv4 address."""
    address = _parse(peer)
    if address is None:
        return peer or "-"
    if trusted and forwarded_for and any(address in net for net in trusted):
        for item in reversed(forwarded_for.split(",")):
            hop = _parse(item.strip())
            if hop is None:
                break  # a malformed hop: the last trusted proxy is the best we know
            address = hop
            if not any(hop in net for net in trusted):
                break
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _parse(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
