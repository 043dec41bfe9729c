"""The soak's command line: the run (default) and its load processes (`load`)."""

from __future__ import annotations

import argparse
import asyncio
import sys

import soak
from soak import load
from soak.services import APPLIED_TTL_SECONDS, ENDED_ROOM_TTL_SECONDS, ROOM_SECONDS


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python scripts/soak",
        description=soak.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "The soak's engines run with ENGINE_IDLE_ROOM_SECONDS=ENGINE_FINISHED_ROOM_SECONDS="
            f"{ROOM_SECONDS}, ENGINE_ENDED_ROOM_TTL_SECONDS={ENDED_ROOM_TTL_SECONDS} and "
            f"ENGINE_APPLIED_TTL_SECONDS={APPLIED_TTL_SECONDS} (its minimum), so everything a "
            "room leaves behind goes within about a minute of the last user leaving."
        ),
    )
    p.add_argument("--minutes", type=float, default=10.0, help="load duration (default 10)")
    p.add_argument("--connections", type=int, default=5_000, help="sockets (default 5,000)")
    p.add_argument(
        "--topology",
        choices=("single", "cluster"),
        default="cluster",
        help="cluster: 3 brokers on :19092-19094 and the Redis Cluster on :17000-17005 "
        "(the services get REDIS_CLUSTER_NODES); single: Kafka 127.0.0.1:9092 and Redis "
        ":6379; started with scripts/infra when they do not answer (default cluster)",
    )
    p.add_argument("--load-processes", type=int, default=2, help="load generators (default 2)")
    p.add_argument("--players", type=float, default=0.1, help="share playing (default 0.1)")
    p.add_argument("--chatters", type=float, default=0.05, help="share chatting (default 0.05)")
    p.add_argument("--listers", type=float, default=0.05, help="share listing (default 0.05)")
    p.add_argument(
        "--think", type=float, default=1.0, help="seconds between a pair's rolls (default 1)"
    )
    p.add_argument(
        "--finish-timeout",
        type=float,
        default=120.0,
        help="at the end, seconds the games in progress get to finish before their players "
        "leave anyway (default 120)",
    )
    p.add_argument(
        "--cleanup-timeout",
        type=float,
        default=150.0,
        help="seconds to wait for the engine's clean-up once everyone left (default 150)",
    )
    p.add_argument(
        "--until-empty",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="wait until no key is left (default), or only until the keys left all expire "
        "by themselves (--no-until-empty: a short run)",
    )
    p.add_argument("--json", help="write the result here (default: the run's directory)")
    p.add_argument("--markdown", help="write the summary here (default: the run's directory)")
    p.add_argument("--workdir", help="logs and the key pair (default: a new temp directory)")
    p.add_argument("--kafka", help="bootstrap servers instead of the topology's")
    p.add_argument("--redis", help="a Redis URL instead of the topology's")
    p.add_argument(
        "--keep-keys", action="store_true", help="leave the soak's keys in Redis afterwards"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["load"]:
        lp = argparse.ArgumentParser(prog="python scripts/soak load", description=load.__doc__)
        load.add_arguments(lp)
        return load.main(lp.parse_args(argv[1:]))
    args = parser().parse_args(argv)
    from soak.run import main_async

    try:
        return asyncio.run(main_async(args))
    except KeyboardInterrupt:
        return 130
