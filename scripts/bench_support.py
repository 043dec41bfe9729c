"""Kept for the older single-purpose benchmarks: the shared helpers live in `bench.support`."""

from __future__ import annotations

from bench.support import (
    DEFAULT_KAFKA,
    DEFAULT_REDIS,
    PYTHON,
    ROOT,
    cpu_seconds,
    free_port,
    infra_env,
    kafka_bootstrap,
    percentile,
    redis_url,
    rss_bytes,
    stop,
)

__all__ = [
    "DEFAULT_KAFKA",
    "DEFAULT_REDIS",
    "PYTHON",
    "ROOT",
    "cpu_seconds",
    "free_port",
    "infra_env",
    "kafka_bootstrap",
    "percentile",
    "redis_url",
    "rss_bytes",
    "stop",
]
