"""`parlour-engine`: run one engine process until SIGTERM/SIGINT."""

from __future__ import annotations

import gc
import sys

from parlour_engine.app import create_engine
from parlour_engine.kafka_consumer import fit_session_timeout
from parlour_engine.logging import get_logger
from parlour_engine.settings import EngineSettings
from parlour_runtime import (
    SettingsError,
    configure_logging,
    load,
    log_deprecated_in_use,
    run_on,
)


def main() -> None:
    try:
        settings = load(EngineSettings)
    except SettingsError as exc:
        print(f"parlour-engine: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    log_deprecated_in_use(EngineSettings)
    # a session shorter than the brokers allow would make the group join fail
    settings = run_on(fit_session_timeout(settings), settings.event_loop)
    engine = create_engine(settings)
    # long-lived start-up objects (modules, models, schemas) leave the collector's scans,
    # and young collections run less often: both shorten the pauses behind p99 latency
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)
    get_logger(__name__).info(
        "engine_starting",
        kafka=settings.bootstrap_servers,
        kafka_security=settings.kafka_security_protocol,
        topic_prefix=settings.kafka_topic_prefix,
        key_prefix=settings.redis_key_prefix,
    )
    # FastStream installs the SIGINT/SIGTERM handlers: the subscriber finishes its current
    # batch, the producer flushes, then the shutdown hooks run
    run_on(engine.app.run(), settings.event_loop)


if __name__ == "__main__":
    main()
