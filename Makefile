# LVV Exchange. Two commands matter on a fresh machine: `make demo` and `make test`.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
KAFKA  := deploy/kafka/kafka.sh

KAFKA_CLUSTER := deploy/kafka/cluster.sh

# `make test` runs its own brokers (tests/brokers.sh: a plaintext one, a secured one and a
# secured three-broker cluster) on other ports and data dirs, fresh, and removes them
# afterwards — also when tests fail — so development brokers are left alone.
# Set LVVX_KAFKA_BOOTSTRAP (and the other LVVX_KAFKA_* of `tests/brokers.sh env`) to test
# against brokers of your own instead.
# The 25 slowest tests are listed at the end of a run, so CI logs show where its time goes.
PYTEST_ARGS ?= --durations=25

.PHONY: install demo test test-unit lint format kafka-fetch kafka-up kafka-down kafka-status \
	kafka-secure-up kafka-secure-down kafka-cluster-up kafka-cluster-down kafka-cluster-status prometheus browser strace clean bench \
	bench-gateway soak test-faults fuzz

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

demo: install
	$(BIN)/lvvx demo

test: install kafka-fetch prometheus browser
	@if [ -n "$$LVVX_KAFKA_BOOTSTRAP" ]; then \
	  echo "make test: using Kafka at $$LVVX_KAFKA_BOOTSTRAP"; \
	  $(BIN)/pytest -m "not faults" $(PYTEST_ARGS); \
	else \
	  trap 'tests/brokers.sh down' EXIT; \
	  tests/brokers.sh down; \
	  tests/brokers.sh up || exit 1; \
	  env $$(tests/brokers.sh env) $(BIN)/pytest -m "not faults" $(PYTEST_ARGS); \
	fi

# The fast part only: no Kafka (tests marked `kafka` are deselected, not skipped).
test-unit: install prometheus browser
	$(BIN)/pytest -m "not kafka" $(PYTEST_ARGS)

# Reliability under faults (tests/faults/run.py): a three-broker secured cluster of its own
# (ports 39092-39094, data in .kafka/faults), gateway processes, 20,000 messages while leaders
# are killed, two brokers stopped and one paused; a checked history of every operation.
# Broker restarts dominate: about 35 minutes on a busy 2-core machine (FAULTS_* in
# tests/faults/run.py); FAULTS_MESSAGES=2000 FAULTS_ROUNDS=1 for a smaller run. Writes
# tests/faults/results/latest.{md,json}; exits non-zero on any loss, duplicate or reordering.
# First the pytest cases marked `faults` (every gateway crash point) on the test brokers.
test-faults: install kafka-fetch
	@trap 'tests/brokers.sh down' EXIT; \
	tests/brokers.sh down; \
	tests/brokers.sh up || exit 1; \
	env $$(tests/brokers.sh env) $(BIN)/pytest -m faults $(PYTEST_ARGS) || exit 1; \
	tests/brokers.sh down; \
	$(BIN)/python -m tests.faults

# A benchmark, not a test (bench/README.md): its own broker on port 19392, about 8 minutes;
# writes bench/results/latest.{md,json}. BENCH_ARGS="--quick" for a one-minute smoke run.
BENCH_ARGS ?=
bench: install kafka-fetch
	$(BIN)/python -m bench $(BENCH_ARGS)

# The user's path (bench/README.md): POST /v1/messages to a sending `lvvx gateway run`, the
# inbox of one or three receiving ones read and acknowledged, at fixed rates and flat out, on
# a broker of its own (port 19492) and on the embedded log; about 10 minutes. Writes
# bench/results/gateway-latest.{md,json}. BENCH_GATEWAY_ARGS="--quick" for a one-minute run.
BENCH_GATEWAY_ARGS ?=
bench-gateway: install kafka-fetch strace
	$(BIN)/python -m bench.gateway $(BENCH_GATEWAY_ARGS)

# A gateway's memory under steady load (bench/soak.py): 10 minutes by default.
SOAK_ARGS ?=
soak: install kafka-fetch
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# Fuzzing envelope opening (bench/fuzz_open.py): a million mutated envelopes, no Kafka; no
# crash, no forgery and bounded memory, else exit 1. Writes bench/results/fuzz-open-latest.{md,json}.
# FUZZ_ARGS="--inputs 100000" for a shorter run, "--minutes 20" to stop after that long.
FUZZ_ARGS ?=
fuzz: install
	$(BIN)/python -m bench.fuzz_open $(FUZZ_ARGS)

# ruff, then mypy --strict on the packages [tool.mypy] names in pyproject.toml (tests/ among them)
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/lint-imports --config tests/importlinter.toml

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

kafka-fetch:
	$(KAFKA) fetch

# Debian's packages the project needs, each installed only when its command is missing
APT_INSTALL = SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends

# Prometheus (prometheus, promtool) for the tests that scrape a gateway and check deploy/prometheus/.
prometheus:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || { \
	  echo "make: installing Debian's prometheus package (for the scrape and rules tests)"; \
	  $(APT_INSTALL) prometheus >/dev/null; }
	@command -v promtool >/dev/null || { echo "make: promtool is still missing" >&2; exit 1; }

# Chromium and its WebDriver (chromium, chromedriver) for the console's browser test
# (tests/unit/console/test_console_browser.py): selenium drives Debian's browser through Debian's
# driver, so nothing downloads a browser of its own.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "make: installing Debian's chromium and chromium-driver packages (for the console's browser test)"; \
	  $(APT_INSTALL) chromium chromium-driver >/dev/null; }
	@command -v chromedriver >/dev/null || { echo "make: chromedriver is still missing" >&2; exit 1; }

# strace, with which `make bench-gateway` counts the gateways' fsyncs; without it that
# benchmark still runs, and says they were not measured.
strace:
	@command -v strace >/dev/null || { \
	  echo "make: installing Debian's strace package (to count fsyncs in bench-gateway)"; \
	  $(APT_INSTALL) strace >/dev/null; } || \
	  echo "make: strace could not be installed: bench-gateway will not count fsyncs" >&2

kafka-up:
	$(KAFKA) up

kafka-down:
	$(KAFKA) down

kafka-status:
	$(KAFKA) status

# a secured single broker (mutual TLS 1.3, ACLs) on 127.0.0.1:9094, PKI in .kafka/pki
kafka-secure-up: install kafka-fetch
	KAFKA_SECURITY=tls $(KAFKA) up

kafka-secure-down:
	KAFKA_SECURITY=tls $(KAFKA) down

# three brokers (KRaft, RF 3, min ISR 2, TLS and ACLs) on 127.0.0.1:29092-29094
kafka-cluster-up: install kafka-fetch
	$(KAFKA_CLUSTER) up

kafka-cluster-down:
	$(KAFKA_CLUSTER) down

kafka-cluster-status:
	$(KAFKA_CLUSTER) status

clean:
	$(KAFKA) clean
	KAFKA_SECURITY=tls $(KAFKA) clean
	$(KAFKA_CLUSTER) clean
	rm -rf .lvvx .pytest_cache .mypy_cache .ruff_cache .hypothesis
