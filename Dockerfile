# syntax=docker/dockerfile:1.7
#
# One image for both Parlour services; the command picks the service:
#
#   docker build -t parlour:dev .
#   docker run --rm parlour:dev parlour-gateway      # WebSocket gateway + browser client: 9998, ops 9997
#   docker run --rm parlour:dev parlour-engine       # game engine, ops 9996
#
# Configuration is the services' own environment variables (README "Settings"); nothing is
# baked in. deploy/compose/docker-compose.yml runs it with Kafka and Redis; deploy/k8s/ on a
# cluster. Checked without a Docker engine by tests/unit/deploy/test_image.py.
#
# BuildKit is required (Docker 23+ uses it by default): the healthcheck script below is a
# heredoc, and `COPY --chmod` sets its mode.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: the wheel of this repository, installed into a venv with pinned dependencies ---
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src

# PIP_CONSTRAINT (not -c) so the pins also hold in pip's isolated build environment, where
# hatchling builds the wheel: the image gets exactly the versions `make install` tests.
COPY constraints.txt ./
ENV PIP_CONSTRAINT=/src/constraints.txt

# pyproject's readme (README.md) is part of the wheel's metadata, so hatchling needs it
COPY pyproject.toml README.md ./
COPY libs/ libs/
COPY services/ services/
COPY clients/ clients/

# The runtime dependencies only: the wheel is installed without extras, so the `dev` extra
# (pytest, mypy, playwright, testcontainers...) never reaches the image. The venv is made
# without pip and setuptools; the builder's pip installs into it (`--python`), so neither
# ships in the runtime image.
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv --without-pip /opt/parlour \
 && pip --python /opt/parlour/bin/python install /wheels/parlour-*.whl

# Fail the build, not the first page load, when the wheel lacks the browser client (clients/web/,
# package data of parlour_gateway in the wheel) or a console script.
RUN /opt/parlour/bin/python -c "\
from parlour_gateway.webclient import WEBCLIENT_DIR as d; \
assert d.parent.name == 'parlour_gateway', f'browser client not from the wheel: {d}'; \
missing = [n for n in ('index.html', 'app.js', 'protocol.js', 'games/bigger_dice.js', 'style.css') if not (d / n).is_file()]; \
assert not missing, f'browser client missing from the wheel: {missing}'" \
 && test -x /opt/parlour/bin/parlour-gateway \
 && test -x /opt/parlour/bin/parlour-engine

# --- runtime ---
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="parlour" \
      org.opencontainers.image.description="Parlour game backend: parlour-gateway or parlour-engine" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
# /var/lib/parlour is the one writable place the image offers (compose keeps dev JWT keys in
# a volume there); the root filesystem can be mounted read-only.
RUN groupadd --system --gid 10001 parlour \
 && useradd --system --uid 10001 --gid parlour --home-dir /var/lib/parlour --no-create-home \
      --shell /usr/sbin/nologin parlour \
 && install -d -o parlour -g parlour -m 0750 /var/lib/parlour

COPY --from=builder /opt/parlour /opt/parlour

# The Docker health check, for both services. Exit 0 when one of the URLs answers 2xx:
# its arguments, else PARLOUR_HEALTH_URL (space-separated), else the default ops ports of
# the gateway (9997) and the engine (9996), whichever runs here. A service with a moved
# ops port (WS_HEALTH_PORT, ENGINE_HEALTH_PORT) needs PARLOUR_HEALTH_URL or a healthcheck
# command naming the URL. Standard library only; proxies are ignored (the target is local).
COPY --chmod=0755 <<"EOF" /usr/local/bin/parlour-healthcheck
#!/opt/parlour/bin/python
"""Docker HEALTHCHECK of the Parlour image: exit 0 if a health URL answers 2xx, else 1."""

import os
import sys
import urllib.request

DEFAULT_URLS = ("http://127.0.0.1:9997/health", "http://127.0.0.1:9996/health")
TIMEOUT_SECONDS = 3.0


def answers(opener: urllib.request.OpenerDirector, url: str) -> bool:
    try:
        with opener.open(url, timeout=TIMEOUT_SECONDS) as response:
            return 200 <= response.status < 300
    except (OSError, ValueError):  # refused, timed out, HTTP 4xx/5xx, malformed URL
        return False


def main() -> int:
    urls = sys.argv[1:] or os.environ.get("PARLOUR_HEALTH_URL", "").split() or DEFAULT_URLS
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return 0 if any(answers(opener, url) for url in urls) else 1


if __name__ == "__main__":
    sys.exit(main())
EOF

ENV PATH=/opt/parlour/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /var/lib/parlour
USER 10001:10001

# 9998 WebSocket + browser client, 9997 gateway ops, 9996 engine ops (/health /ready /metrics)
EXPOSE 9998 9997 9996

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["parlour-healthcheck"]

# No ENTRYPOINT: the command is the console script of the service (or a one-off `python`).
# The console script is PID 1 and gets SIGTERM itself: both services drain on it (give
# SHUTDOWN_TIMEOUT_SECONDS plus a margin as the stop timeout).
CMD ["parlour-gateway"]
