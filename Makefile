# Parlour developer commands. `make help` lists them.
#
# Everything runs from the project's virtualenv in .venv/ (created by `make install` with
# python3.11, packages pinned by constraints.txt) and the local Kafka + Redis that
# `make infra-up` starts or finds (scripts/infra/; state in .infra/).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ASYNCAPI_CHECK := scripts/asyncapi_check/node_modules/.installed
# `down` and `status` must work before (or without) the virtualenv
INFRA_PY = $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
# TOPOLOGY=cluster: infra-up starts 3 Kafka brokers and a Redis Cluster (6 nodes) instead of
# the single broker and Redis; infra-status shows the one started last unless TOPOLOGY says,
# infra-down stops both unless TOPOLOGY says
TOPOLOGY ?=
TOPOLOGY_ARG = $(if $(TOPOLOGY),--topology $(TOPOLOGY))

# the packages mypy checks, as configured in pyproject.toml, minus any without a module yet
# (mypy refuses a directory with no .py file in it)
PACKAGES := libs/client/parlour_client libs/protocol/parlour_protocol libs/runtime/parlour_runtime \
            services/gateway/parlour_gateway services/game_engine/parlour_engine
MYPY_PACKAGES = $(foreach p,$(PACKAGES),$(if $(shell find $(p) -name '*.py' -print -quit 2>/dev/null),$(p)))
# the infra scripts and test support, type-checked with them
MYPY_EXTRA := scripts/infra scripts/protocol_docs scripts/gen_settings_docs.py scripts/gen_prometheusrule.py \
              tests/conftest.py tests/integration/conftest.py tests/integration/infra/test_infra.py \
              tests/integration/infra/test_cluster.py \
              tests/support/service_spec.py tests/support/deploy.py tests/support/k8s.py \
              tests/unit/deploy \
              scripts/bench scripts/bench_support.py scripts/bench_engine.py scripts/bench_gateway.py \
              scripts/bench_protocol.py tests/unit/client scripts/soak tests/integration/soak

.PHONY: help install lock lint test test-cluster test-tools run infra-up infra-down infra-status clean chaos \
        bench bench-quick soak

help:
	@echo "make run           install, start Kafka + Redis, run gateway and engine (Ctrl-C stops)"
	@echo "make test          install (chromium, promtool, node too), start Kafka + Redis, lint,"
	@echo "                   check the AsyncAPI document, run every test, then test-cluster"
	@echo "make test-cluster  start the cluster topology (infra-up TOPOLOGY=cluster) and run the"
	@echo "                   integration subset CLUSTER_TESTS on it (rooms, games, chat, presence,"
	@echo "                   resume, failover); infra-down stops it"
	@echo "make chaos         every fault test under 20 concurrent games (tests/integration/chaos),"
	@echo "                   the cluster topology started if needed; the table of results is"
	@echo "                   printed and written to .infra/chaos/results.{md,json}"
	@echo "make bench         the benchmark suite on a local stack (scripts/bench; a quiet machine,"
	@echo "                   ~15 min): results, table and plots in docs/benchmarks/"
	@echo "make bench-quick   the same, small (<= 3 min; part of make test): proves the harness"
	@echo "                   works and prints figures, written to /tmp/parlour-bench-quick/"
	@echo "make soak          10 min, 5,000 connections on 2 gateways and 2 engines (scripts/soak),"
	@echo "                   the cluster topology started if needed: RSS and Redis memory every"
	@echo "                   30 s, keys left once everyone left; docs/soak/latest.{md,json}"
	@echo "                   (TOPOLOGY=single, SOAK_ARGS=\"--minutes 1 --connections 300\")"
	@echo "make install       create .venv/ and install the pinned dependencies"
	@echo "make lint          ruff check, ruff format --check, mypy"
	@echo "make infra-up      start (or reuse) Kafka on 127.0.0.1:9092 and Redis on :6379"
	@echo "                   TOPOLOGY=cluster: 3 Kafka brokers on :19092-19094 and a Redis"
	@echo "                   Cluster (3 masters, 3 replicas) on :17000-17005 instead"
	@echo "make infra-status  say what runs where (each node of a cluster)"
	@echo "make infra-down    stop what infra-up started from this checkout"
	@echo "make lock          re-resolve dependencies and rewrite constraints.txt"
	@echo "make clean         infra-down, then remove .venv/ .infra/ and caches"

install: $(STAMP)

# Re-installs when pyproject.toml or constraints.txt change. PIP_CONSTRAINT (not -c) so the
# pins also hold inside pip's isolated build environment (hatchling).
$(STAMP): pyproject.toml constraints.txt
	@if [ ! -x $(BIN)/python ]; then \
	  command -v $(PYTHON) >/dev/null || { echo "install: $(PYTHON) not found (set PYTHON=...)"; exit 1; }; \
	  echo "install: creating $(VENV) with $$($(PYTHON) --version)"; \
	  $(PYTHON) -m venv $(VENV); \
	fi
	@echo "install: pinned dependencies from constraints.txt ..."
	@PIP_CONSTRAINT="$(CURDIR)/constraints.txt" $(BIN)/python -m pip install -q \
	  --disable-pip-version-check -e '.[dev]'
	@touch $@

# Resolve afresh in a throw-away venv and pin everything it installed, the build backend too.
lock:
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/pip" install -q --disable-pip-version-check -e '.[dev]' hatchling; \
	{ echo "# Pinned versions for \`make install\` (PIP_CONSTRAINT). Rewrite with \`make lock\`."; \
	  echo "# Resolved with $$($$tmp/venv/bin/python --version) on $$(date -u +%F)."; \
	  "$$tmp/venv/bin/pip" freeze --exclude-editable --all | grep -v '^pip==' ; \
	} > constraints.txt
	@echo "lock: wrote constraints.txt ($$(grep -c '==' constraints.txt) pins)"
	@$(MAKE) install

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	MYPYPATH=scripts $(BIN)/mypy $(MYPY_PACKAGES) $(MYPY_EXTRA)

# chromium, promtool, node and npm: installed with apt-get as root, otherwise named with the
# command that installs them (scripts/infra/tools.py)
test: $(STAMP) test-tools $(ASYNCAPI_CHECK)
	@$(MAKE) infra-up
	@$(MAKE) lint
	@node scripts/asyncapi_check/check.mjs
	@set -a; . .infra/run/env; set +a; PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(BIN)/pytest
	@$(MAKE) bench-quick
	@$(MAKE) test-cluster

# The integration tests that run a second time on the cluster topology (3 brokers, a Redis
# Cluster of 3 masters + 3 replicas): the services get REDIS_CLUSTER_NODES and the three
# brokers from the cluster's env file, and the tests' own Redis reads use a cluster client
# (tests/integration/conftest.py). Rooms, names and indexes; games checked against the pure
# rules; chat; presence; resume with last_seq; gateway and engine failover; every Lua script
# on every master (tests/integration/cluster). About 3 minutes, the cluster's start included.
CLUSTER_TESTS := tests/integration/cluster \
                 tests/integration/infra/test_cluster.py \
                 tests/integration/engine/test_store.py \
                 tests/integration/engine/test_rooms.py \
                 tests/integration/engine/test_game.py::test_engine_full_game \
                 tests/integration/engine/test_failover.py::test_engine_failover_sigkill_mid_games \
                 tests/integration/stack/test_fullstack.py::test_gateway_fullstack_failover_resume_with_last_seq \
                 tests/integration/gateway/test_hardening.py::test_presence_refresh_recreates_expired_records

# The cluster's addresses are in `.infra/run/env.cluster` (infra-up TOPOLOGY=cluster writes it;
# `.infra/run/env` keeps naming the single node). The cluster stays up for `make infra-down`.
test-cluster: $(STAMP)
	@$(MAKE) infra-up TOPOLOGY=cluster
	@set -a; . .infra/run/env.cluster; set +a; PARLOUR_CLUSTER_TESTS=1 PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
	  $(BIN)/pytest -p no:cacheprovider $(CLUSTER_TESTS)

# Every chaos test, the long ones too (PARLOUR_CHAOS=1; `make test` runs the short ones). The
# single-node stores come from infra-up; the cluster tests start the cluster topology through
# scripts/infra's modules when a node is missing (without rewriting .infra/run/env).
chaos: $(STAMP)
	@$(MAKE) infra-up
	@rm -f .infra/chaos/results.md .infra/chaos/results.json
	@set -a; . .infra/run/env; set +a; status=0; PARLOUR_CHAOS=1 $(BIN)/pytest \
	  -p no:cacheprovider -m chaos tests/integration/chaos || status=$$?; \
	  if [ -f .infra/chaos/results.md ]; then echo; cat .infra/chaos/results.md; fi; exit $$status

# The benchmark suite (scripts/bench/run.py; README "Benchmarks"). Figures, never asserted.
# BENCH_ARGS passes options on, e.g. BENCH_ARGS="--phases e2e,peer --seconds 30".
bench: $(STAMP)
	@$(MAKE) infra-up
	@set -a; . .infra/run/env; set +a; $(BIN)/python scripts/bench $(BENCH_ARGS)

bench-quick: $(STAMP)
	@$(MAKE) infra-up
	@set -a; . .infra/run/env; set +a; $(BIN)/python scripts/bench --quick $(BENCH_ARGS)

test-tools: $(STAMP)
	@$(BIN)/python scripts/infra tools

# the official AsyncAPI parser, from scripts/asyncapi_check/package-lock.json (git-ignored)
$(ASYNCAPI_CHECK): scripts/asyncapi_check/package-lock.json | test-tools
	@echo "install: the AsyncAPI parser (npm ci) ..."
	@npm ci --prefix scripts/asyncapi_check --no-audit --no-fund --loglevel=error
	@touch $@

run: $(STAMP)
	@$(MAKE) infra-up
	@exec bash scripts/run.sh

infra-up: $(STAMP)
	@$(BIN)/python scripts/infra up $(TOPOLOGY_ARG)

infra-down:
	@$(INFRA_PY) scripts/infra down $(TOPOLOGY_ARG)

infra-status:
	@$(INFRA_PY) scripts/infra status $(TOPOLOGY_ARG)

# the soak on a quiet machine: its figures are only worth committing from one
SOAK_ARGS ?=
soak: $(STAMP)
	@$(BIN)/python scripts/soak $(TOPOLOGY_ARG) --json docs/soak/latest.json \
	  --markdown docs/soak/latest.md $(SOAK_ARGS)

clean: infra-down
	rm -rf $(VENV) .infra .mypy_cache .ruff_cache .pytest_cache .hypothesis \
	  scripts/asyncapi_check/node_modules
