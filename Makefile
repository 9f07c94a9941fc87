# Mostro node on Django. `make help` lists the targets.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.DEFAULT_GOAL := help

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## Create the virtual environment and install everything

test-relays: ## Install the second, independent test relay (PyPI nostr-relay) in .venv-relay
	bash scripts/setup_test_relays.sh

test-browser: ## Install the browser-test prerequisites (Debian chromium, npm playwright-core)
	@bash scripts/setup_browser.sh || { [ "$$CI" != "true" ] && echo "WARNING: browser tests will be skipped"; }

test: install test-relays test-browser ## Run the whole test suite (SQLite, then PostgreSQL)
	bash scripts/run_tests.sh

run: install ## Set up and run a complete local node (SQLite, local relay, simulated Lightning)
	bash scripts/run_local.sh

screenshots: install test-relays test-browser ## Demo node, a trade and a dispute with chat: every page into docs/screens/
	$(PY) scripts/screenshots.py

lint: install ## ruff format check + lint + import contracts + mypy (what make test checks first)
	bash scripts/static_checks.sh

typecheck: install ## mypy with django-stubs (strict on nostrbridge/protocol and lightning)
	$(VENV)/bin/mypy

fmt: install ## Format and autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install ## Run the benchmark scripts
	$(PY) benchmarks/bench_protocol.py
	$(PY) benchmarks/bench_lightning.py

.PHONY: help install test-relays test-browser test run screenshots lint typecheck fmt bench
