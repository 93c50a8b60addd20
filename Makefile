# The README's two commands: `make run` starts the broker, `make test` installs
# everything and runs every check. Both work on a fresh machine, and both install
# exactly what uv.lock pins (see the README's Development section).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# uv itself lives in its own small venv, installed by pip from a hashed pin.
TOOLS := .tools
UV := $(TOOLS)/bin/uv
# uv uses the machine's Python (it may not download one) and puts the project in .venv.
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Debian packages the tests talk to: real clients (and a real broker) we did not write.
# Debian pins its own versions; the README lists the ones the suite last passed with.
DEB_PACKAGES := mosquitto mosquitto-clients gcc libpaho-mqtt-dev systemd chromium nats-server
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# MQTT.js (npm `mqtt`), the browsers' client library, run under Node by the WebSocket tests.
NODE_DIR := tests/interop/js

.PHONY: run test lint typecheck pytest bench deps-debian deps-node sync sync-dev \
	lock lock-uv clean

run: sync
	$(BIN)/roost broker $(ARGS)

test: deps-debian deps-node sync-dev lint typecheck pytest

lint: sync-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: sync-dev
	$(BIN)/mypy

pytest: sync-dev
	$(BIN)/pytest $(PYTEST_ARGS)

bench: sync-dev
	$(BIN)/python -m bench $(ARGS)

# --locked: install exactly uv.lock, and stop with an error if it no longer matches
# pyproject.toml, rather than resolving anything anew. A no-op when nothing changed.
# `run` leaves the development tools out (--no-dev), and --inexact keeps them when
# they are already there from `make test`.
sync: $(UV)
	$(UV) sync --locked --quiet --extra fast --extra http --no-dev --inexact

sync-dev: $(UV)
	$(UV) sync --locked --quiet --extra fast --extra http

# Move every locked Python package to the newest release that pyproject.toml allows.
# Then run `make test`: a new lock is accepted when the whole suite passes with it.
lock: $(UV)
	$(UV) lock --upgrade

# Move the pinned uv to the version in tools/uv-requirements.in (and set the same
# version as required-version in pyproject.toml).
lock-uv: $(UV)
	$(UV) pip compile --quiet --generate-hashes --custom-compile-command "make lock-uv" \
	  tools/uv-requirements.in -o tools/uv-requirements.txt

$(UV): tools/uv-requirements.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --require-hashes --no-deps \
	  -r tools/uv-requirements.txt
	touch $@

deps-debian:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

deps-node: $(NODE_DIR)/node_modules/.installed

$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund
	touch $@

clean:
	rm -rf $(VENV) $(TOOLS) build .mypy_cache .ruff_cache .pytest_cache
	rm -rf $(NODE_DIR)/node_modules
