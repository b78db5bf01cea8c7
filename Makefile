# stock_analytics: `make demo` sets everything up and runs the pipeline on the bundled sample;
# `make test` runs the test suite against throwaway databases. `make help` lists the rest.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAMPLE := data/sample
# Every recipe that talks to the database gets the same libpq variables as `make env` prints:
# the owner's, or (AS_<ROLE>) those of the component role that does that job.
WITH_DB_ENV := eval "$$(bash scripts/db.sh env)" &&
AS_LOADER := eval "$$(bash scripts/db.sh env loader)" &&
AS_TRANSFORMER := eval "$$(bash scripts/db.sh env transformer)" &&
DBT := $(AS_TRANSFORMER) $(BIN)/dbt
AS_READER := eval "$$(bash scripts/db.sh env reader)" &&
AS_STREAMER := eval "$$(bash scripts/db.sh env streamer)" &&
WITH_STREAM_ENV := eval "$$(bash scripts/stream.sh env)" &&
LOADER := $(AS_LOADER) $(BIN)/python loader/copy_csv.py
ROLE ?=
# REPLICA=<n>: make psql and make report read from that replica (make replica-up) instead.
REPLICA ?=
DB_ENV_AS := $(if $(REPLICA),bash scripts/replica.sh env $(REPLICA),bash scripts/db.sh env)
DB_ENV = $(DB_ENV_AS) $(ROLE)
# make test: extra pytest arguments for both passes (e.g. PYTEST_ARGS="-k hypertable -x").
PYTEST_ARGS ?=
# The apache-licensed cluster `make test` runs the edition-specific tests on, next to the
# project cluster when that one is the community edition (.ci/run picks a free port).
APACHE_STATE_DIR := $(CURDIR)/.local/apache
STOCK_ANALYTICS_APACHE_PG_PORT ?= 55433
AS_APACHE_CLUSTER := unset PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE && \
	export STOCK_ANALYTICS_STATE_DIR="$(APACHE_STATE_DIR)" STOCK_ANALYTICS_PG_PORT="$(STOCK_ANALYTICS_APACHE_PG_PORT)" &&
PYTHON_DIRS := loader tests scripts bench api report stream devtools warehouse_connection

.PHONY: help venv db-up db-down db-status env psql load build refresh demo test test-apache db-down-apache lint docs \
	docs-generate bench bench-incremental clean backup restore dump pitr pitr-down maintenance api bench-api report \
	replica-up replica-down replica-status \
	stream-up stream-down stream-status consume publish bench-stream bench-stream-kills

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# pyproject.toml too: the editable install's package list and entry points are read from it.
$(VENV)/.installed: requirements.txt pyproject.toml
	@bash scripts/ensure_python_venv.sh "$(PYTHON)" "$(VENV)"
	@echo "[venv] installing requirements.txt into $(VENV) ..."
	@$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	@echo "[venv] installing the project (editable: loader, api, report, stream, ...) into $(VENV) ..."
	@$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

# dbt's packages (the local incremental engine): dbt deps links them into dbt_packages/.
dbt_packages/.installed: $(VENV)/.installed packages.yml package-lock.yml
	@echo "[venv] dbt deps (packages.yml) ..."
	@DBT_PROFILES_DIR=$(CURDIR) $(BIN)/dbt deps --quiet
	@touch $@

venv: $(VENV)/.installed dbt_packages/.installed ## create .venv with the pinned Python packages, install dbt's packages

db-up: ## install PostgreSQL + TimescaleDB if missing, start the project database
	@bash scripts/db.sh up

db-down: ## stop the project database (its data is kept)
	@bash scripts/db.sh down

db-status: ## say where the database is and whether it answers
	@bash scripts/db.sh status

env: ## print export lines for your shell: eval "$(make -s env)"; a role's: make -s env ROLE=reader
	@bash scripts/db.sh env $(ROLE)

psql: ## open psql on the project database (ROLE=reader: as that role; REPLICA=<n>: on that replica)
	@eval "$$($(DB_ENV))" && exec psql

load: venv db-up ## load the bundled sample with the loader
	@$(LOADER) $(SAMPLE) --summary-json target/load_summary.json || [ $$? -eq 2 ]

build: venv db-up ## dbt build: models, seeds, snapshots and tests
	@$(DBT) build

# Without the unit tests: they pin the SQL on fixed inputs, so a daily run learns nothing from
# them (dbt Labs' advice: development and CI); make build, make demo and make test run them.
refresh: venv db-up ## the daily refresh: load DATA=<folder> (new and grown files only), then dbt build (new loads only)
	@test -n "$(DATA)" || { echo "usage: make refresh DATA=<folder or files>" >&2; exit 1; }
	@$(LOADER) $(DATA) || [ $$? -eq 2 ]
	@$(DBT) build --exclude-resource-type unit_test

demo: venv db-up ## set up everything and run the pipeline on the bundled sample
	@mkdir -p target
	@$(LOADER) $(SAMPLE) --summary-json target/load_summary.json || [ $$? -eq 2 ]
	@$(DBT) build --quiet || { echo "dbt build failed: see logs/dbt.log"; exit 1; }
	@$(AS_TRANSFORMER) $(BIN)/python scripts/demo_summary.py target/load_summary.json target/run_results.json
	@$(AS_READER) $(BIN)/python report/make_report.py --out target/report | sed 's|^|report : |'

# The whole suite on the project server; when that is the community edition, the tests whose
# results depend on the edition again on an apache-licensed cluster, at the same time: each pass
# keeps about one core busy (pytest, dbt and one server process take turns), so two passes side
# by side use the machine's two. Both always run; the apache pass's output follows the suite's.
# A test marked one_pass (its result is the same on both editions) runs in the apache pass only.
test: venv db-up ## run the test suite on both TimescaleDB editions (throwaway databases, never your data)
	@bash scripts/ensure_chromium.sh
	@bash scripts/stream.sh install
	@license="$$($(WITH_DB_ENV) psql -XAtq -c "select current_setting('timescaledb.license', true)")"; \
	status=0; apache_pass=; set --; \
	if [ "$$license" = timescale ]; then \
	  set -- -m "not one_pass"; \
	  mkdir -p "$(APACHE_STATE_DIR)"; \
	  echo "[test] the edition-specific tests on an apache-licensed cluster, alongside (output: .local/apache/test.log, shown at the end)"; \
	  $(MAKE) --no-print-directory test-apache > "$(APACHE_STATE_DIR)/test.log" 2>&1 & apache_pass=$$!; \
	fi; \
	echo "[test] the whole suite on the project server (TimescaleDB license $$license) ..."; \
	( $(WITH_DB_ENV) $(if $(TIMESCALEDB_SOURCE),STOCK_ANALYTICS_EXPECTED_LICENSE=timescale) \
	  $(BIN)/python -m pytest "$$@" $(PYTEST_ARGS) ) || status=$$?; \
	if [ -n "$$apache_pass" ]; then \
	  wait $$apache_pass || status=$$?; \
	  cat "$(APACHE_STATE_DIR)/test.log"; \
	fi; \
	exit $$status

test-apache: venv ## the edition-specific tests on an apache-licensed cluster of their own (.local/apache)
	@bash scripts/ensure_chromium.sh
	@bash scripts/stream.sh install
	@$(AS_APACHE_CLUSTER) trap 'bash scripts/db.sh down 2>/dev/null' EXIT && \
	STOCK_ANALYTICS_TIMESCALEDB_LICENSE=apache bash scripts/db.sh up && \
	eval "$$(bash scripts/db.sh env)" && \
	echo "[test] the edition-specific tests on an apache-licensed server (port $$PGPORT) ..." && \
	STOCK_ANALYTICS_EXPECTED_LICENSE=apache $(BIN)/python -m pytest -m "(editions or apache or one_pass) and not community" $(PYTEST_ARGS)

db-down-apache: ## stop the apache test cluster if it runs (make test stops it itself)
	@$(AS_APACHE_CLUSTER) bash scripts/db.sh down

lint: venv ## ruff on the Python code, sqlfluff on the SQL (no database needed)
	@$(BIN)/ruff check $(PYTHON_DIRS)
	@$(BIN)/ruff format --check $(PYTHON_DIRS)
	@$(BIN)/sqlfluff lint --processes 2 models analyses tests/dbt macros packages/timescale_incremental/integration_tests/models

docs-generate: venv db-up
	@$(DBT) docs generate

docs: docs-generate ## build the dbt docs and serve them on http://localhost:8080
	@$(DBT) docs serve --port 8080

backup: db-up ## base backup of the cluster into backups/base/ (PITR from it); the WAL archive pruned to the backups kept
	@bash scripts/pitr.sh backup

pitr: ## recover a new cluster to TIME='2026-12-03 15:00:00+00' (or LSN=...; ROLE=reader); prints its export lines, for eval
	@ROLE="$(ROLE)" bash scripts/pitr.sh restore "$(if $(LSN),$(LSN),$(TIME))"

pitr-down: ## stop the clusters make pitr restored (their folders under .local/ stay)
	@bash scripts/pitr.sh down

dump: venv db-up ## logical backup of the project database into backups/ (pg_dump -Fc, one snapshot)
	@$(WITH_DB_ENV) $(BIN)/python scripts/backup.py backup $(if $(DIR),--dir "$(DIR)")

restore: venv db-up ## restore FILE=backups/<file>.dump (make dump) into an empty database (DB=<name>; default the project's)
	@test -n "$(FILE)" || { echo "usage: make restore FILE=backups/<file>.dump [DB=<database>]" >&2; exit 1; }
	@$(WITH_DB_ENV) $(BIN)/python scripts/backup.py restore "$(FILE)" $(if $(DB),--dbname "$(DB)")

replica-up: db-up ## start streaming replica REPLICA (default 1); the first time, pg_basebackup and a slot
	@bash scripts/replica.sh up $(REPLICA)

replica-down: ## stop replica REPLICA (default 1), keeping it; REMOVE=1 also drops its slot and folder
	@bash scripts/replica.sh $(if $(REMOVE),remove,down) $(REPLICA)

replica-status: ## one line per replica: port, state, lag (bytes, seconds), WAL its slot holds
	@bash scripts/replica.sh status

maintenance: venv db-up ## sizes, unused indexes, dead rows, chunks; VACUUM (ANALYZE) where it pays
	@$(WITH_DB_ENV) $(BIN)/python scripts/maintenance.py --vacuum

report: venv db-up ## HTML report into target/report (ARGS="--symbols AAPL AMD --start 2015-01-01"; REPLICA=<n>: from it)
	@eval "$$($(DB_ENV_AS) reader)" && $(BIN)/python report/make_report.py $(ARGS)

api: venv db-up ## serve the HTTP API on API_PORT (default 8000) as the read-only reader role
	@$(AS_READER) $(BIN)/python -m api $(API_ARGS)

bench-api: venv db-up ## API load benchmark on a throwaway copy of the sample (docs/api.md)
	@$(WITH_DB_ENV) $(BIN)/python bench/bench_api.py --sample-db

bench: venv db-up ## loader benchmark (see docs/benchmarks.md)
	@$(WITH_DB_ENV) $(BIN)/python bench/bench_loader.py

bench-incremental: venv db-up ## Kaggle-scale first build against its floors, daily refresh, correction, queries, API (~1.5 h; ARGS=...)
	@$(WITH_DB_ENV) $(BIN)/python bench/bench_incremental.py $(ARGS)

stream-up: ## start the feed's broker: Kafka (STREAM_BROKERS=3: a cluster; .local/kafka), or STOCK_ANALYTICS_BROKER=nats
	@bash scripts/stream.sh up

stream-down: ## stop the feed's broker (its topics are kept)
	@bash scripts/stream.sh down

stream-status: ## the broker's nodes: `node <id> pid <pid> port <port> up|down` (Kafka)
	@bash scripts/stream.sh status

consume: venv db-up stream-up ## the live feed's consumer, as the streamer role, until stopped (ARGS="--exit-when-idle 5")
	@$(AS_STREAMER) $(WITH_STREAM_ENV) $(BIN)/python stream/consume.py $(ARGS)

publish: venv stream-up ## publish a feed: ARGS="--replay data/sample --rate 1000" or ARGS="--random 100"
	@test -n "$(ARGS)" || { echo 'usage: make publish ARGS="--replay PATH [--rate N]" or ARGS="--random N_SYMBOLS"' >&2; exit 1; }
	@$(WITH_STREAM_ENV) $(BIN)/python stream/publish.py $(ARGS)

bench-stream: venv db-up ## live-feed benchmark: drain rate, lag at 8,000 symbols/s, freshness (ARGS=...)
	@$(WITH_DB_ENV) $(BIN)/python bench/bench_stream.py $(ARGS)

bench-stream-kills: venv db-up ## the Kafka feed's kill -9 test, 10 seeded runs (~30 min; ARGS="--runs N")
	@$(WITH_DB_ENV) $(BIN)/python bench/bench_stream_kills.py $(ARGS)

clean: ## remove build output (keeps the database and .venv)
	rm -rf target logs .pytest_cache .ruff_cache
