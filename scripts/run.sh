#!/usr/bin/env bash
# shellcheck disable=SC2317  # stop_all and on_signal run from traps
# Run the gateway and the game engine in the foreground, their logs interleaved with a
# [gateway] / [engine] prefix. Ctrl-C (or either service exiting) stops both.
# `make run` calls this after `make install` and `make infra-up`.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=.venv/bin
if [[ ! -x $BIN/python ]]; then
  echo "run: no virtualenv in .venv/; use \`make run\`" >&2
  exit 1
fi
# the addresses `make infra-up` found or started
if [[ -f .infra/run/env ]]; then
  set -a
  # shellcheck source=/dev/null
  . .infra/run/env
  set +a
fi

# local development: without a JWT public key the gateway accepts dev-mode logins
if [[ -z ${JWT_PUBLIC_KEY_PATH:-} && -z ${AUTH_DEV_MODE:-} ]]; then
  export AUTH_DEV_MODE=true
  echo "run: JWT_PUBLIC_KEY_PATH not set: AUTH_DEV_MODE=true (token-less local logins)"
fi
# a dev-mode gateway listens on 127.0.0.1 unless WS_HOST/WS_HEALTH_HOST say otherwise, and
# refuses to start when JWT_PUBLIC_KEY_PATH is set as well
if [[ ${AUTH_DEV_MODE:-} == true && -z ${WS_HOST:-} ]]; then
  echo "run: dev mode listens on 127.0.0.1 only (set WS_HOST to expose it)"
fi

pids=()
names=()

has_module() {
  "$BIN/python" - "$1" <<'PY' 2>/dev/null
import importlib.util, sys
try:
    found = importlib.util.find_spec(sys.argv[1]) is not None
except ImportError:  # the parent package does not exist yet
    found = False
sys.exit(0 if found else 1)
PY
}

start() {
  local name=$1 module=$2 script=$3
  if ! has_module "$module"; then
    echo "run: $module does not exist yet: $name not started"
    return 0
  fi
  # own process group (set -m): a Ctrl-C in the terminal reaches this script only,
  # which then stops each service once, with SIGTERM, instead of signalling them twice
  set -m
  # the prefixing sed ignores Ctrl-C so it still prints what the service says while stopping
  "$BIN/$script" > >(trap '' INT; exec sed -u "s/^/[$name] /") 2>&1 &
  set +m
  pids+=($!)
  names+=("$name")
  echo "run: $name started (pid $!)"
}

stop_all() {
  trap - INT TERM EXIT
  echo "run: stopping ${names[*]}"
  local pid i alive
  # the service first, alone: its log prefixer shares its process group and must live on
  # to print the shutdown lines
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for ((i = 0; i < 150; i++)); do  # up to 15 s for a graceful stop
    alive=0
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null && alive=1
    done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      echo "run: pid $pid ignored SIGTERM for 15 s; killing its process group"
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  echo "run: stopped"
}

start gateway parlour_gateway.main parlour-gateway
start engine parlour_engine.main parlour-engine

if ((${#pids[@]} == 0)); then
  echo "run: nothing to run yet (neither parlour_gateway.main nor parlour_engine.main exists)"
  exit 1
fi
on_signal() {
  stop_all
  exit 0
}
trap on_signal INT TERM
trap stop_all EXIT

echo "run: Parlour on http://127.0.0.1:9998/  (Kafka ${KAFKA_BOOTSTRAP_SERVERS:-?}, Redis ${REDIS_URL:-?}); Ctrl-C stops"
status=0
wait -n "${pids[@]}" || status=$?
echo "run: a service exited (status $status); stopping the rest"
exit "$status"
