# The README's two commands: `make run` starts the broker, `make test` installs
# everything and runs every check. Both work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the tests talk to: real clients (and a real broker) we did not write.
DEB_PACKAGES := mosquitto mosquitto-clients
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# MQTT.js (npm `mqtt`), the browsers' client library, run under Node by the WebSocket tests.
NODE_DIR := tests/interop/js

.PHONY: run test lint typecheck pytest bench deps-debian deps-node venv clean

run: $(BIN)/.installed
	$(BIN)/roost broker $(ARGS)

test: deps-debian deps-node $(BIN)/.installed-dev lint typecheck pytest

lint: $(BIN)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed-dev
	$(BIN)/mypy

pytest: $(BIN)/.installed-dev
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(BIN)/.installed-dev
	$(BIN)/python -m bench $(ARGS)

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

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(BIN)/.installed: $(VENV)/bin/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[fast]'
	touch $@

$(BIN)/.installed-dev: $(VENV)/bin/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(BIN)/.installed

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
	rm -rf $(NODE_DIR)/node_modules
