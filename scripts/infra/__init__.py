"""Start, stop and inspect the Kafka broker and the Redis server Parlour needs locally.

    python scripts/infra up       # use what answers, start what is missing, create topics
    python scripts/infra status
    python scripts/infra down     # stop only what this checkout started
    python scripts/infra tools    # install what `make test` needs besides Kafka and Redis
    python scripts/infra up --topology cluster   # 3 Kafka brokers and a 6-node Redis Cluster
    python scripts/infra kill-node kafka-2       # SIGKILL one cluster node (fault tests)
    python scripts/infra start-node kafka-2      # start it again, wait for the whole cluster

"Use what answers": when a working Kafka / Redis already answers at the target address
(given by the environment, or the default 127.0.0.1 ports), it is used as it is and left
alone by `down`. Only processes started from this checkout are recorded in `.infra/run/`
(pid files) and stopped by `down`.

Environment (the addresses read as the services read them, by parlour_runtime):
    KAFKA_BOOTSTRAP_SERVERS  use this broker (host:port[,host:port]) instead of the default
    KAFKA_HOST, KAFKA_PORT   same, as parts (default 127.0.0.1, 9092)
    KAFKA_CONTROLLER_PORT    KRaft controller port of the local broker (default 9093)
    KAFKA_HEAP_OPTS          JVM heap flags (default -Xms256m -Xmx512m)
    KAFKA_START_TIMEOUT      seconds to wait for the broker (default 120)
    REDIS_URL                use this Redis (redis://[user:password@]host:port/db)
    REDIS_HOST, REDIS_PORT, REDIS_DB, REDIS_PASSWORD   same, as parts (default 127.0.0.1:6379/0)

The cluster topology (`--topology cluster`; `status` shows the topology `up` started last,
`down` stops both unless told which) runs three KRaft brokers and a Redis Cluster of three
masters with a replica each, all started here (nothing found is reused), on their own ports:
    CLUSTER_KAFKA_PORT             first broker port (default 19092; the others follow)
    CLUSTER_KAFKA_CONTROLLER_PORT  first controller port (default 19192)
    CLUSTER_REDIS_PORT             first Redis node port (default 17000; bus ports +10000)
Its env file names KAFKA_BOOTSTRAP_SERVERS (the three brokers) and REDIS_CLUSTER_NODES.

The local Redis keeps its data in an append-only file (AOF, fsync every second) under
.infra/redis/, so a Redis restart loses at most the last second of writes, not every game.
`status` says whether the Redis it finds persists.

`down` and `tools` need only the standard library; `up` and `status` (the addresses, the
Kafka round trip, the topics' names from parlour_protocol) need the project's virtualenv
(`make install`).

One module per concern: `paths` (the .infra/ layout), `console` (errors and output),
`addresses` (where Kafka and Redis are), `redis_probe` / `kafka_probe` (is it usable),
`processes` (what this checkout started), `apt` (installing Debian packages), `kafka_broker`,
`redis_server`, `kafka_cluster` / `redis_cluster` / `cluster` (the cluster topology),
`topics`, `tools` (what the tests need), and `commands` (up, status, down).
"""
