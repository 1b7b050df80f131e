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

.PHONY: venv run system-deps services lint audit lock test check bench fuzz clean

# Every dependency comes from the lock, pinned and hash-checked (requirements/, made by
# `make lock`); tipline itself is installed on top without touching the dependencies.
$(VENV)/.installed: pyproject.toml requirements/dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "tipline needs Python 3.11 or newer")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/dev.txt
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
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

## Known vulnerabilities in the locked dependencies (pip-audit). Says loudly, and does not
## fail, when the vulnerability service cannot be reached: then nothing was checked.
audit: venv
	$(PY) scripts/audit_deps.py

## Re-resolve the lock files from pyproject.toml (docs/operations.md, "Updating dependencies").
LOCK_FLAGS := --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-find-links \
	--no-emit-index-url --no-emit-trusted-host $(LOCK_ARGS)
lock: venv
	$(VENV)/bin/pip-compile $(LOCK_FLAGS) -o requirements/runtime.txt pyproject.toml
	$(VENV)/bin/pip-compile $(LOCK_FLAGS) --extra test --extra dev -c requirements/runtime.txt \
	  -o requirements/dev.txt pyproject.toml
	$(VENV)/bin/pip-compile $(LOCK_FLAGS) -c requirements/dev.txt -o requirements/build.txt \
	  requirements/build.in

## What CI runs: lint, the dependency audit, then the whole suite.
check: lint audit test

bench: venv
	$(PY) -m bench $(ARGS)

## A long fuzz campaign over every route as each role (PostgreSQL); counts by status.
## `make fuzz ARGS="--requests 50000"`. CI runs the bounded tests/web/test_fuzz.py instead.
fuzz: venv services
	$(PY) -m bench fuzz $(ARGS)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
