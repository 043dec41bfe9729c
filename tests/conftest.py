"""Settings shared by the whole test suite (unit and integration)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# fixtures several test packages share: the browser stack, the websockets stack, a SASL broker
pytest_plugins = ["tests.support.browser", "tests.support.stack", "tests.support.kafka_sasl"]

# CI runs on a shared 2-core machine next to Kafka and Redis: a slow example there is load,
# not a bug, so CI drops hypothesis' per-example deadline and its too-slow health check.
settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
if os.environ.get("CI"):
    settings.load_profile("ci")
