"""Prometheus metrics of one gateway (a registry per instance, so tests can run several)."""

from __future__ import annotations

import itertools
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from parlour_protocol.v1 import ErrorCode
from parlour_protocol.v1.records import HOPS, parse_hops

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_HOP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
_HOP_NAMES = frozenset(HOPS)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge("parlour_gateway_connections_current", "open sockets", registry=r)
        self.unauthenticated = Gauge(
            "parlour_gateway_unauthenticated_current",
            "open sockets not yet authenticated",
            registry=r,
        )
        self.connections_total = Counter(
            "parlour_gateway_connections_total", "sockets by outcome", ["outcome"], registry=r
        )
        self.auth_failures = Counter(
            "parlour_gateway_auth_failures_total", "failed auth by reason", ["reason"], registry=r
        )
        self.messages_in = Counter(
            "parlour_gateway_messages_in_total", "client frames by type", ["type"], registry=r
        )
        self.messages_out = Counter(
            "parlour_gateway_messages_out_total", "events delivered by type", ["type"], registry=r
        )
        self.send_queue_closes = Counter(
            "parlour_gateway_send_queue_closes_total", "sockets closed as slow", registry=r
        )
        self.rate_limited = Counter(
            "parlour_gateway_rate_limited_total", "frames dropped by the rate limit", registry=r
        )
        self.direct_messages_throttled = Counter(
            "parlour_gateway_direct_messages_throttled_total",
            "direct messages refused by the per-user throttle",
            registry=r,
        )
        self.task_failures = Counter(
            "parlour_gateway_task_failures_total",
            "background loop failures (each followed by a restart)",
            ["task"],
            registry=r,
        )
        self.publish_latency = Histogram(
            "parlour_gateway_publish_seconds",
            "command publish latency",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.publish_failures = Counter(
            "parlour_gateway_publish_failures_total", "failed publishes", ["error"], registry=r
        )
        self.delivery_latency = Histogram(
            "parlour_gateway_delivery_seconds",
            "event timestamp to socket write",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.hop_latency = Histogram(
            "parlour_gateway_hop_seconds",
            "time between consecutive per-hop timestamps of an event (`p-hops`, see "
            "parlour_protocol.v1.records; only events of commands that carried them)",
            ["hop"],
            buckets=_HOP_BUCKETS,
            registry=r,
        )
        self._hop_children: dict[str, Any] = {}
        self.consumer_lag = Gauge(
            "parlour_gateway_consumer_lag", "events topic lag (messages)", registry=r
        )
        self.bad_events = Counter(
            "parlour_gateway_bad_events_total", "undecodable events skipped", registry=r
        )
        self.replayed = Counter(
            "parlour_gateway_replayed_events_total", "events replayed on resume", registry=r
        )
        self.errors_sent = Counter(
            "parlour_gateway_errors_sent_total",
            "system.error frames queued to clients, by code (the gateway's own and the "
            "engine's, delivered as events)",
            ["code"],
            registry=r,
        )
        for code in ErrorCode:
            # every code is a series from the start (a bounded set): rate() sees the first one
            self.errors_sent.labels(code=code.value)

    def observe_hops(self, hops: str) -> None:
        """Observe each step of a `p-hops` chain, `<from>-<to>`, plus `total` (first to last)."""
        stamps = [(name, at) for name, at in parse_hops(hops) if name in _HOP_NAMES]
        for (name, at), (next_name, next_at) in itertools.pairwise(stamps):
            self._hop(f"{name}-{next_name}").observe(max(0, next_at - at) / 1e6)
        if len(stamps) > 1:
            self._hop("total").observe(max(0, stamps[-1][1] - stamps[0][1]) / 1e6)

    def _hop(self, label: str) -> Any:
        child = self._hop_children.get(label)
        if child is None:
            child = self.hop_latency.labels(hop=label)  # known hop names only: bounded
            self._hop_children[label] = child
        return child
