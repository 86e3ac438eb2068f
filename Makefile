# marketflow — `make` prints this help.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The hot path compiled by mypyc, in place beside its source (marketflow/native.py lists
# the modules; docs/design.md, "Compiled core"); rebuilt when one of them changes.
COMPILED := build/.compiled
COMPILED_SRC := $(shell $(PYTHON) -c 'import runpy; print(" ".join("services/" + m.replace(".", "/") + ".py" for m in runpy.run_path("services/marketflow/native.py")["MODULES"]))')

.DEFAULT_GOAL := help
.PHONY: help setup compile interpreted test test-unit test-interpreted test-integration lint schemas dashboards vendor demo bench soak up down clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24,<27"
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,bench,embedded]'
	@touch $(STAMP)

setup: $(STAMP) $(COMPILED) ## Create .venv, install marketflow with its dev, bench and embedded extras (pinned by constraints.txt), compile the hot path

# A failed build (no C compiler or Python headers) leaves the source to run interpreted:
# same results, slower; the next make tries again.
$(COMPILED): $(STAMP) setup.py services/marketflow/native.py $(COMPILED_SRC)
	@echo "compiling the hot path with mypyc (about a minute)"
	@if MARKETFLOW_COMPILE=1 $(BIN)/python setup.py --quiet build_ext --inplace > build.log 2>&1; then \
	  find services -name '*.so' -exec touch {} + && rm -f build.log && mkdir -p build && touch $(COMPILED); \
	else \
	  tail -20 build.log; find services -name '*.so' -delete; \
	  echo "WARNING: mypyc build failed (build.log): the hot path runs interpreted"; \
	fi
	@# (a build's extensions are touched: mypyc leaves an unchanged build's files with
	@# their old times, and marketflow.native.stale() compares the build's with the source's)

compile: $(COMPILED) ## Compile the hot path with mypyc (make setup does it; MARKETFLOW_INTERPRETED=1 runs the source)

interpreted: ## Remove the compiled hot path: the source runs interpreted until `make compile`
	find services -name '*.so' -delete
	rm -f $(COMPILED)

test: $(COMPILED) ## Run every test (unit, integration on a real broker and Redis, e2e), then the core's unit tests interpreted
	$(BIN)/pytest -q
	$(MAKE) --no-print-directory test-interpreted

test-unit: $(COMPILED) ## Unit tests only (no I/O)
	$(BIN)/pytest -q tests/unit

test-interpreted: $(STAMP) ## The unit tests of the compiled modules, on their source interpreted
	MARKETFLOW_INTERPRETED=1 $(BIN)/pytest -q tests/unit/core tests/unit/stream tests/unit/ingest tests/unit/alerts/test_history.py

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check services tests
	$(BIN)/mypy

schemas: $(STAMP) ## Regenerate the JSON Schema made from the code (schemas/rules.schema.json)
	$(BIN)/python -m tests.schemas

dashboards: $(STAMP) ## Regenerate the Grafana dashboards (deploy/grafana/dashboards/*.json) from deploy/grafana/dashboards.py
	$(BIN)/python deploy/grafana/dashboards.py

vendor: ## Fetch the board's chart library (uPlot) again with npm into web/static/vendor
	services/marketflow/web/vendor.sh

demo: $(COMPILED) ## Replay 24 Nov 2025 through the whole stack, live on the market board (URL printed first)
	$(BIN)/marketflow demo $(ARGS)

bench: $(COMPILED) ## Benchmarks: throughput, latency, RSS, recovery -> bench-report.json
	$(BIN)/python -m tests.bench.run $(ARGS)

soak: $(COMPILED) ## One worker fed for 10 min at 50k ticks/s: lag, RSS, errors -> PASS/FAIL (ARGS="--minutes 1 --rate 20000")
	$(BIN)/python -m tests.soak.run $(ARGS)

COMPOSE ?= docker compose
COMPOSE_FILE := deploy/compose/compose.yaml

up: ## The production-like stack with Docker: Kafka, Redis, Prometheus, Alertmanager, Grafana, marketflow
	@command -v docker >/dev/null || { echo "make up needs Docker (docker compose v2)"; exit 1; }
	@mkdir -p deploy/compose/secrets && chmod 700 deploy/compose/secrets
	@cd deploy/compose/secrets && umask 077 && \
	  { [ -s redis-password ] || head -c 24 /dev/urandom | base64 | tr -d '/+=' > redis-password; } && \
	  { [ -s grafana-admin-password ] || head -c 18 /dev/urandom | base64 | tr -d '/+=' > grafana-admin-password; } && \
	  { [ -s slack-webhook-url ] || printf '%s' "$${MARKETFLOW_SLACK_WEBHOOK_URL:-http://127.0.0.1:9/slack-webhook-not-set}" > slack-webhook-url; }
	$(COMPOSE) -f $(COMPOSE_FILE) up --build --detach
	@echo "Grafana http://127.0.0.1:3000 (admin / deploy/compose/secrets/grafana-admin-password)," \
	  "Prometheus http://127.0.0.1:9090, Alertmanager http://127.0.0.1:9093"

down: ## Stop the compose stack and remove its containers and volumes
	$(COMPOSE) -f $(COMPOSE_FILE) down --volumes

clean: ## Remove .venv, caches and the embedded stack's state
	-$(BIN)/marketflow stack down 2>/dev/null
	rm -rf $(VENV) .marketflow .pytest_cache .mypy_cache .ruff_cache build
	find services -name '*.so' -delete
