# LVV Exchange. Two commands matter on a fresh machine: `make demo` and `make test`.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
KAFKA  := deploy/kafka/kafka.sh

# `make test` runs its own broker on other ports and its own data dir, started fresh and
# removed afterwards, so a development broker from `make kafka-up` is left alone.
# Set LVVX_KAFKA_BOOTSTRAP to test against a Kafka of your own instead.
TEST_KAFKA_ENV := LVVX_KAFKA_PORT=19092 KAFKA_CONTROLLER_PORT=19093 KAFKA_DATA_DIR=$(CURDIR)/.kafka/test
PYTEST_ARGS ?=

.PHONY: install demo test test-unit lint format kafka-fetch kafka-up kafka-down kafka-status prometheus clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

demo: install
	$(BIN)/lvvx demo

test: install kafka-fetch prometheus
	@if [ -n "$$LVVX_KAFKA_BOOTSTRAP" ]; then \
	  echo "make test: using Kafka at $$LVVX_KAFKA_BOOTSTRAP"; \
	  $(BIN)/pytest $(PYTEST_ARGS); \
	else \
	  trap '$(TEST_KAFKA_ENV) $(KAFKA) clean >/dev/null' EXIT; \
	  $(TEST_KAFKA_ENV) $(KAFKA) clean >/dev/null; \
	  $(TEST_KAFKA_ENV) $(KAFKA) up || exit 1; \
	  LVVX_KAFKA_BOOTSTRAP=127.0.0.1:19092 $(BIN)/pytest $(PYTEST_ARGS); \
	fi

# The fast part only: no Kafka (tests marked `kafka` are deselected, not skipped).
test-unit: install prometheus
	$(BIN)/pytest -m "not kafka" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

kafka-fetch:
	$(KAFKA) fetch

# Debian's Prometheus (prometheus, promtool) for the tests that scrape a gateway and check
# deploy/prometheus/; installed only when missing.
prometheus:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || { \
	  echo "make: installing Debian's prometheus package (for the scrape and rules tests)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@command -v promtool >/dev/null || { echo "make: promtool is still missing" >&2; exit 1; }

kafka-up:
	$(KAFKA) up

kafka-down:
	$(KAFKA) down

kafka-status:
	$(KAFKA) status

clean:
	$(KAFKA) clean
	rm -rf .lvvx .pytest_cache .mypy_cache .ruff_cache .hypothesis
