"""The one place a service builds its Redis client: a `Redis` on one server, or a
`RedisCluster` when ``REDIS_CLUSTER_NODES`` is set (`RedisSettings`), with the same bounds.

Business code types its client as `AnyRedis` and sticks to what both clients do alike: single
key commands, Lua scripts whose keys share one hash slot, and non-transactional pipelines
(the cluster client splits those per node). `run_scripts` runs many calls of one script in one
pipeline on either client and recovers from NOSCRIPT (each cluster node, and a replica promoted
by a failover, has its own script cache).

On a cluster, redis-py re-reads the topology and retries a command a few times on MOVED, ASK,
CLUSTERDOWN, TRYAGAIN and connection errors (`_CLUSTER_RETRIES`); a master that dies stays
unreachable for its slots until its replica is promoted (about the cluster's
``cluster-node-timeout`` plus an election), longer than those retries last, so the callers
treat `REDIS_OUTAGE_ERRORS` as an outage to wait out, like a single Redis restarting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import (
    ClusterDownError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from parlour_runtime.redis_settings import RedisSettings

AnyRedis: TypeAlias = aioredis.Redis | RedisCluster
"""A service's Redis client: one server or a cluster."""

REDIS_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,  # CLUSTERDOWN (and MASTERDOWN): a master failed, no replica promoted yet
    TryAgainError,  # TRYAGAIN: a slot is being migrated
    SlotNotCoveredError,  # the client's map has no node for the slot (mid-failover)
    OSError,
)
"""Redis did not answer (or the cluster is between masters): retry later, never the
command's fault."""

REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException)
"""Any failure of a Redis call, on either client: the cluster client also raises
`RedisClusterException`s that are not `RedisError`s (a slot with no node, a topology it
cannot read while a failover is under way)."""

_CLUSTER_RETRIES = 5
"""How often the cluster client re-reads the topology and retries one command (or one
pipeline) before it raises; redis-py's default is 3."""

ScriptCall: TypeAlias = tuple[Sequence[str], Sequence[str | int]]
"""KEYS and ARGV of one script run."""


def redis_client(
    settings: RedisSettings,
    *,
    max_connections: int,
    blocking_timeout: float | None = None,
    connection_class: type[Connection] | None = None,
    **connection_kwargs: Any,
) -> AnyRedis:
    """The client of `settings`: at most `max_connections` connections (per node on a
    cluster). `blocking_timeout` (one server only): a command waits that long for a free
    connection instead of failing at once; the cluster client has no waiting pool, so it
    fails with MaxConnectionsError past the bound. `connection_class`: the connection
    class (e.g. one that packs commands with hiredis), on both clients."""
    if not settings.redis_is_cluster:
        pool_class = (
            aioredis.ConnectionPool if blocking_timeout is None else aioredis.BlockingConnectionPool
        )
        extra: dict[str, Any] = dict(connection_kwargs)
        if blocking_timeout is not None:
            extra["timeout"] = blocking_timeout
        if connection_class is not None:
            extra["connection_class"] = connection_class
        pool = pool_class.from_url(settings.redis_dsn, max_connections=max_connections, **extra)
        return aioredis.Redis.from_pool(pool)  # closes the pool with the client
    address = settings.redis_address
    if address.path is not None:
        raise ValueError("REDIS_CLUSTER_NODES: a Redis Cluster has no unix sockets (REDIS_URL)")
    if address.db != 0:
        raise ValueError("REDIS_CLUSTER_NODES: a Redis Cluster has database 0 only (REDIS_DB)")
    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in settings.redis_cluster_seeds],
        username=address.username,
        password=address.password,
        ssl=address.tls,
        max_connections=max_connections,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=_CLUSTER_RETRIES),
        **connection_kwargs,
    )
    if connection_class is not None and not address.tls:
        # RedisCluster has no connection_class argument: its nodes take the class from these
        # kwargs (nodes found later) and from their own attribute (the seeds, built already)
        client.connection_kwargs["connection_class"] = connection_class
        for node in client.startup_nodes:
            node.connection_class = connection_class
    return client


async def run_scripts(
    redis: AnyRedis, script: AsyncScript, calls: Sequence[ScriptCall]
) -> list[Any]:
    """Run `script` once per call in one non-transactional pipeline (split per node on a
    cluster), by EVALSHA; calls the server answered NOSCRIPT (a restart, SCRIPT FLUSH, a node
    that never ran it, a promoted replica) did not run at all: load the script (on every
    master of a cluster) and run those again. Each result is the script's reply or its error
    (never raised here; connection errors of the whole pipeline are)."""
    results = await _evalsha_all(redis, script, calls)
    missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
    if missing:
        await redis.script_load(script.script)
        again = await _evalsha_all(redis, script, [calls[i] for i in missing])
        for i, result in zip(missing, again, strict=True):
            results[i] = result
    return results


async def _evalsha_all(
    redis: AnyRedis, script: AsyncScript, calls: Sequence[ScriptCall]
) -> list[Any]:
    async with redis.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            # by name: redis-py's cluster pipeline refuses its `evalsha` method (it cannot load
            # scripts for you) but routes the command by its KEYS like any keyed command
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        results: list[Any] = await pipe.execute(raise_on_error=False)
    return results
