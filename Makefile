# One set of targets for developers, the README and CI (.ci/run calls `make check`).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
SHARED_DIR ?= $(abspath $(CURDIR)/../shared)
PYTEST_ARGS ?=
ARGS ?=

export TIPLINE_TEST_CHROMIUM ?= /usr/bin/chromium
export TIPLINE_TEST_PRISM ?= $(CURDIR)/node_modules/.bin/prism
export TIPLINE_TEST_AXE ?= $(CURDIR)/node_modules/axe-core/axe.min.js
export TIPLINE_TEST_TWILIO_SPEC ?= $(SHARED_DIR)/twilio/twilio_api_v2010.trimmed.json
export TIPLINE_TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: venv run system-deps services lint test check bench fuzz clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "tipline needs Python 3.11 or newer")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,dev]'
	@touch $@

venv: $(VENV)/.installed

## The embedded default: SQLite, embedded broker/worker/scheduler, demo data. No services.
run: venv
	$(VENV)/bin/tipline run $(ARGS)

system-deps:
	@bash scripts/install-system-deps.sh

services:
	@bash scripts/ensure-services.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: venv system-deps services
	@test -f "$(TIPLINE_TEST_TWILIO_SPEC)" || { echo "Twilio contract not found at $(TIPLINE_TEST_TWILIO_SPEC) (set SHARED_DIR)"; exit 1; }
	@$(VENV)/bin/pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the suite is broken"; exit 1; fi; \
	  exit $$rc

## What CI runs: lint, then the whole suite.
check: lint test

bench: venv
	$(PY) -m bench $(ARGS)

## A long fuzz campaign over every route as each role (PostgreSQL); counts by status.
## `make fuzz ARGS="--requests 50000"`. CI runs the bounded tests/web/test_fuzz.py instead.
fuzz: venv services
	$(PY) -m bench fuzz $(ARGS)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
