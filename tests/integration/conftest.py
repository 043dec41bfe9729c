"""Real Kafka and Redis for integration tests.

Where the services come from, first match wins, separately for Kafka and for Redis:

1. the environment, read by the services' own parser (`parlour_runtime.ServiceAddresses`):
   KAFKA_BOOTSTRAP_SERVERS or KAFKA_HOST/KAFKA_PORT; REDIS_URL (redis://, rediss://,
   unix://) or REDIS_HOST/REDIS_PORT/REDIS_DB/REDIS_PASSWORD. Any of them set: that service
   must answer, or the tests fail;
2. testcontainers, when a Docker engine answers (its socket or DOCKER_HOST);
3. the native services of `make infra-up` (127.0.0.1:9092 and 127.0.0.1:6379), when they
   answer.

When none works, every test that needs the service fails with a message saying what to do.
They never skip: a green run means the integration tests ran.

Fixtures:
    kafka_bootstrap  str, session: "host:port" of a working broker
    redis_url        str, session: the Redis URL ("redis://host:port/db", or the
                     environment's rediss:// or unix:// one)
    redis_client     redis.asyncio.Redis (RedisCluster when REDIS_CLUSTER_NODES is set),
                     per test, closed afterwards
    topic_prefix     "t<8 hex>." unique per test: prefix every topic and key you create
    create_topics    async (bootstrap, names, partitions=1) -> full names; creates this
                     test's topics (names get `topic_prefix` in front), waits until every
                     partition has a leader, deletes them after the test
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis

from parlour_runtime import ServiceAddresses, SettingsError, load
from parlour_runtime.redis_client import redis_client as redis_client_for

_HERE = Path(__file__).resolve().parent


class CreateTopics(Protocol):
    """The type of the `create_topics` fixture."""

    async def __call__(
        self, bootstrap: str, names: Iterable[str] | Mapping[str, int], partitions: int = 1
    ) -> list[str]: ...


_HOW_TO = (
    "Start the services with `make infra-up`, or run a Docker engine (testcontainers), "
    "or point KAFKA_BOOTSTRAP_SERVERS / REDIS_URL at running ones."
)


def _addresses() -> ServiceAddresses:
    """The Kafka and Redis the environment names, parsed as the services parse them."""
    try:
        return load(ServiceAddresses)
    except SettingsError as exc:
        pytest.fail(str(exc), pytrace=False)


def _redis_where(addresses: ServiceAddresses) -> str:
    """The Redis address for a message: the URL without its password."""
    where = addresses.redis_address
    scheme = "rediss" if where.tls else "redis"
    if where.path is not None:
        return f"unix://{where.path} (db {where.db})"
    return f"{scheme}://{where.host}:{where.port}/{where.db}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # a conftest hook sees every collected item, not only those below it
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)


# --------------------------------------------------------------------------- probes


def _run(coro: Coroutine[Any, Any, None]) -> None:
    # a private loop that never becomes the thread's current loop, which pytest-asyncio owns
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        runner.run(coro)


def _docker_answers() -> bool:
    """True when a Docker engine answers /_ping; testcontainers is imported only then."""
    host = os.environ.get("DOCKER_HOST", "").strip()
    if host.startswith("tcp://"):
        parts = urlsplit(host)
        address: Any = (parts.hostname or "127.0.0.1", parts.port or 2375)
        family = socket.AF_INET
    elif host and not host.startswith("unix://"):
        return True  # ssh:// and friends: let testcontainers try
    else:
        candidates = [host.removeprefix("unix://")] if host else []
        candidates += [
            "/var/run/docker.sock",
            os.path.expanduser("~/.docker/run/docker.sock"),
            os.path.join(os.environ.get("XDG_RUNTIME_DIR", "/nonexistent"), "docker.sock"),
        ]
        sockets = [path for path in candidates if os.path.exists(path)]
        if not sockets:
            return False
        address, family = sockets[0], socket.AF_UNIX
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in sock.recv(128)
    except OSError:
        return False


def _kafka_problem(bootstrap: str, timeout: float = 10.0) -> str | None:
    """None when the broker answers a metadata request; otherwise why not."""
    from aiokafka.admin import AIOKafkaAdminClient

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL + 1)

    async def probe() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000)
        try:
            await admin.start()
            await admin.list_topics()
        finally:
            await admin.close()

    try:
        _run(asyncio.wait_for(probe(), timeout))
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable"
        return f"{type(exc).__name__}: {exc}".strip()
    finally:
        logging.getLogger("aiokafka").setLevel(logging.NOTSET)
    return None


def _redis_problem(url: str, timeout: float = 5.0) -> str | None:
    async def probe() -> None:
        client = aioredis.from_url(url, socket_connect_timeout=timeout)
        try:
            await client.ping()
        finally:
            await client.aclose()

    try:
        _run(asyncio.wait_for(probe(), timeout + 1))
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}".strip()
    return None


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- services


@pytest.fixture(scope="session")
def _docker() -> bool:
    return _docker_answers()


@pytest.fixture(scope="session")
def kafka_bootstrap(_docker: bool) -> Iterator[str]:
    """Bootstrap address of a working Kafka broker for the whole session."""
    addresses = _addresses()
    native = ",".join(addresses.bootstrap_servers)
    if addresses.kafka_address_from_env:
        if problem := _kafka_problem(native):
            pytest.fail(
                f"The Kafka the environment names ({native}) does not work: {problem}",
                pytrace=False,
            )
        yield native
        return
    if _docker:
        with _kafka_container() as bootstrap:
            yield bootstrap
        return
    if not _port_open(addresses.kafka_host, addresses.kafka_port):
        pytest.fail(
            f"No Kafka for the integration tests: nothing on {native}. {_HOW_TO}", pytrace=False
        )
    if problem := _kafka_problem(native):
        pytest.fail(f"The Kafka on {native} does not work: {problem}. {_HOW_TO}", pytrace=False)
    yield native


@pytest.fixture(scope="session")
def redis_url(_docker: bool) -> Iterator[str]:
    """URL of a working Redis for the whole session (share it: use unique keys)."""
    addresses = _addresses()
    native = addresses.redis_dsn
    if addresses.redis_address_from_env:
        if problem := _redis_problem(native):
            where = _redis_where(addresses)
            pytest.fail(
                f"The Redis the environment names ({where}) does not work: {problem}",
                pytrace=False,
            )
        yield native
        return
    if _docker:
        with _redis_container() as url:
            yield url
        return
    if not _port_open(addresses.redis_host, addresses.redis_port):
        pytest.fail(
            f"No Redis for the integration tests: nothing on {native}. {_HOW_TO}", pytrace=False
        )
    if problem := _redis_problem(native):
        pytest.fail(f"The Redis at {native} does not work: {problem}. {_HOW_TO}", pytrace=False)
    yield native


@contextlib.contextmanager
def _kafka_container() -> Iterator[str]:
    try:
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:  # testcontainers < 4.14 kept the modules at the top level
        from testcontainers.kafka import KafkaContainer
    image = os.environ.get("PARLOUR_TC_KAFKA_IMAGE", "confluentinc/cp-kafka:7.6.0")
    try:  # even the constructor talks to the Docker engine
        container = KafkaContainer(image).with_kraft()
        container.with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
        # the engines' group sessions (ENGINE_SESSION_TIMEOUT_SECONDS, 4 s) are below Kafka's
        # default floor of 6 s; scripts/kafka/server.properties allows them the same way
        container.with_env("KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS", "2000")
        container.start(timeout=120)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"Docker answers but the Kafka container ({image}) did not start: {exc}")
    try:
        yield container.get_bootstrap_server()
    finally:
        container.stop()


@contextlib.contextmanager
def _redis_container() -> Iterator[str]:
    try:
        from testcontainers.community.redis import RedisContainer
    except ImportError:
        from testcontainers.redis import RedisContainer
    image = os.environ.get("PARLOUR_TC_REDIS_IMAGE", "redis:7")
    try:
        container = RedisContainer(image)
        container.start()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"Docker answers but the Redis container ({image}) did not start: {exc}")
    try:
        host = container.get_container_host_ip()
        yield f"redis://{host}:{container.get_exposed_port(6379)}/0"
    finally:
        container.stop()


# --------------------------------------------------------------------------- per test


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A redis.asyncio client on this test's event loop, closed after the test; a
    `RedisCluster` when REDIS_CLUSTER_NODES is set (`make test-cluster`), as the services
    then use (typed as `Redis`: the tests use the commands both clients have)."""
    addresses = _addresses()
    client: Any = (
        redis_client_for(addresses, max_connections=64)
        if addresses.redis_is_cluster
        else aioredis.from_url(redis_url)
    )
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def topic_prefix() -> str:
    """`t<8 hex>.`: unique per test, so tests sharing a broker never see each other's data."""
    return f"t{uuid.uuid4().hex[:8]}."


@pytest.fixture
async def create_topics(topic_prefix: str) -> AsyncIterator[CreateTopics]:
    """Create this test's topics and wait until they can be used; delete them afterwards.

        [commands] = await create_topics(kafka_bootstrap, ["games.command.v1"], 6)
        # commands == "t1a2b3c4d.games.command.v1"
        await create_topics(kafka_bootstrap, Topics(prefix=topic_prefix).with_partitions())

    Names without `topic_prefix` get it put in front. A mapping {name: partitions} gives
    each topic its own partition count (`partitions` is then ignored).
    """
    created: dict[str, list[str]] = {}

    async def create(
        bootstrap: str, names: Iterable[str] | Mapping[str, int], partitions: int = 1
    ) -> list[str]:
        wanted = dict(names) if isinstance(names, Mapping) else dict.fromkeys(names, partitions)
        full = {
            (n if n.startswith(topic_prefix) else topic_prefix + n): count
            for n, count in wanted.items()
        }
        await _create_and_wait(bootstrap, full)
        created.setdefault(bootstrap, []).extend(full)
        return list(full)

    yield create

    for bootstrap, topics in created.items():
        with contextlib.suppress(Exception):  # cleanup only; the broker may be gone
            await asyncio.wait_for(_delete(bootstrap, topics), 15)


_TOPIC_READY_TIMEOUT = 30.0


async def _create_and_wait(bootstrap: str, topics: dict[str, int]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(n, p, 1) for n, p in topics.items()])
        for name, code, message in (t[:3] for t in response.topic_errors):
            if code not in (0, 36):  # 36: TOPIC_ALREADY_EXISTS
                pytest.fail(f"creating topic {name} failed: Kafka error {code} {message}")
        deadline = time.monotonic() + _TOPIC_READY_TIMEOUT
        while True:
            described = await admin.describe_topics(list(topics))
            unready = [
                t["topic"]
                for t in described
                if t["error_code"] != 0
                or len(t["partitions"]) != topics[t["topic"]]
                or any(p["error_code"] != 0 or p["leader"] < 0 for p in t["partitions"])
            ]
            if not unready:
                return
            if time.monotonic() > deadline:
                pytest.fail(
                    f"topics not usable after {_TOPIC_READY_TIMEOUT:.0f}s: {', '.join(unready)}"
                )
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def _delete(bootstrap: str, topics: list[str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        await admin.delete_topics(topics)
    finally:
        await admin.close()
