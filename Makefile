# The Sparkify warehouse. Two commands on a fresh machine:
#   make run    sample data -> raw load -> dbt build -> docs -> report -> mart counts
#   make test   every test: pytest, dbt build with all data and unit tests, lint,
#               and the Spark pass (make test-spark)
#   make test-fast   the tests that need no server, in under a minute
#   make run-spark   the same job on Apache Spark (docs/spark.md)
#
# With PGHOST unset, every target runs against the embedded PostgreSQL in .pgdata/
# (started on first use, reused after, stopped by `make stop`). With PGHOST set,
# the server named by PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE is used instead.
# PGDATABASE (default sparkify) picks the database either way; the embedded server
# creates it when it is missing. `make help` lists the variables you can set.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= data/sample
DOCS_PORT ?= 8080
REPORT ?= reports/index.html

export DO_NOT_TRACK := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export DBT_PROFILES_DIR := $(CURDIR)/.dbt
# Runs a command with the PG* variables pointing at the chosen server.
WITH_PG := $(BIN)/python -m sparkify.embedded_pg exec --
# The second PostgreSQL that make test also runs the suite on (Debian's postgresql-15).
PG15_BIN ?= /usr/lib/postgresql/15/bin
# Each test pass's pytest folders (make pytest, make test-spark).
PYTEST_TMP := $(CURDIR)/.pytest-tmp

.PHONY: help venv data load build docs docs-build report browser counts run test test-fast pytest \
	dbt-test lint \
	bench bench-latency roles pg15 test-pg15 test-pg15-if-present stop status clean \
	java spark-deps load-lake build-spark counts-spark run-spark test-spark bench-spark \
	spark-jars spark-start spark-stop spark-status orchestrator-deps serve stop-serve serve-status

help: ## list the targets and the variables you can set
	@echo "targets:"
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo ""
	@echo "variables (make run DATA_DIR=data/big, or set in the environment):"
	@printf '  %-24s %s\n' \
	  "DATA_DIR=$(DATA_DIR)" "the feed to load (song_data/, log_data/); make data generates it if missing" \
	  "" "or s3://bucket/prefix (AWS_PROFILE, AWS_ENDPOINT_URL...: docs/operations.md)" \
	  "PGDATABASE=sparkify" "the database; the embedded server creates it if missing, so" \
	  "" "PGDATABASE=feed2 DATA_DIR=data/feed2 make run keeps a second feed apart" \
	  "PGHOST= PGPORT= PGUSER=" "another PostgreSQL instead of the embedded one (password: PGPASSWORD" \
	  "" "or ~/.pgpass)" \
	  "REPORT=$(REPORT)" "where make report writes the HTML report" \
	  "DOCS_PORT=$(DOCS_PORT)" "the port make docs serves on" \
	  "BENCH_ARGS=" "options for make bench, e.g. BENCH_ARGS=\"--events 10000000\"" \
	  "LATENCY_ARGS=" "options for make bench-latency, e.g. LATENCY_ARGS=\"--delay-ms 60\"" \
	  "SPARKIFY_*_ROLE=" "the LOADER, TRANSFORMER and ANALYST role names (make roles, dbt's grants)" \
	  "SPARKIFY_*_PASSWORD=" "their passwords, for make roles (docs/operations.md, Roles)" \
	  "PG15_BIN=$(PG15_BIN)" "the PostgreSQL 15 of make test-pg15" \
	  "PYTEST_WORKERS=$(PYTEST_WORKERS)" "the processes of make pytest (pytest-xdist; 0: one, no workers)" \
	  "LAKE=$(LAKE)" "the lake (a folder or s3://) make run-spark lands Iceberg tables in (docs/spark.md)" \
	  "SPARKIFY_LAKE_CATALOG_DB=" "the PostgreSQL database of the Iceberg catalog (sparkify_lake_catalog)" \
	  "SPARK_DIR=$(SPARK_DIR)" "the Spark cluster's state, logs and warehouse (SPARK_DIR/cluster/)" \
	  "" "and the lake of make run-spark (SPARK_DIR/lake)" \
	  "SPARKIFY_SPARK_THRIFT_HOST=" "another Spark Thrift server (EMR...) instead of the project's cluster" \
	  "" "(with SPARKIFY_SPARK_THRIFT_PORT; docs/spark.md)" \
	  "SPARKIFY_SPARK_*_PORT=" "the cluster's ports: MASTER 7077, MASTER_UI 8090, WORKER_UI 8091" \
	  "" "(and 8092), THRIFT 10000 (make spark-start; docs/spark.md)" \
	  "SPARKIFY_METASTORE_DB=" "the PostgreSQL database of the cluster's catalog (sparkify_metastore)" \
	  "SPARK_DAEMON_MEMORY=" "the heap of the cluster's master, workers and Thrift server (1g)" \
	  "BENCH_SPARK_ARGS=" "options for make bench-spark, e.g. BENCH_SPARK_ARGS=\"--events 100000\"" \
	  "SERVE_PORT=$(SERVE_PORT)" "the port of make serve's web UI on 127.0.0.1" \
	  "SPARKIFY_ALERT_WEBHOOK=" "make serve: where a failed run is announced (a POST of JSON)" \
	  "SPARKIFY_TARGET=dev" "make serve: dev (PostgreSQL) or spark (docs/operations.md)" \
	  "PYTHON=$(PYTHON)" "the Python that creates .venv"

venv: $(VENV)/.installed ## create .venv: the pinned requirements, and the project itself (editable)

# The project installs in editable mode with the pinned setuptools already in
# .venv (--no-build-isolation): the build downloads nothing.
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
	  --no-build-isolation --editable .
	@touch $@

.dbt/profiles.yml: profiles.yml.example
	@mkdir -p .dbt && cp profiles.yml.example $@

data: venv ## generate the demo feed into DATA_DIR (data/sample) unless it is there
	@if [[ "$(DATA_DIR)" == s3://* ]]; then echo "DATA_DIR is in S3: nothing to generate"; \
	elif [ -d $(DATA_DIR)/log_data ]; then echo "sample data already in $(DATA_DIR)"; \
	else $(BIN)/python -m sparkify.generator --out $(DATA_DIR); fi

load: data ## raw-load DATA_DIR into PostgreSQL
	$(WITH_PG) $(BIN)/python -m sparkify.loader --data-dir $(DATA_DIR)

build: venv .dbt/profiles.yml ## dbt build: staging, marts, data tests and unit tests
	$(WITH_PG) $(BIN)/dbt build

docs-build: venv .dbt/profiles.yml ## build the dbt docs site (target/) and print its documentation coverage
	$(WITH_PG) $(BIN)/dbt docs generate --static
	$(BIN)/python -m sparkify.checks.docs_check --target-path target
	@echo "docs: target/static_index.html (one file), or 'make docs' to serve target/"

docs: docs-build ## build the docs site and serve it on http://127.0.0.1:8080 (DOCS_PORT; Ctrl-C stops)
	@echo "docs: serving http://127.0.0.1:$(DOCS_PORT)/ (lineage: the button at the bottom right)"
	$(BIN)/dbt docs serve --host 127.0.0.1 --port $(DOCS_PORT) --no-browser

report: venv ## write the static HTML report of the report models to reports/index.html
	$(WITH_PG) $(BIN)/python -m sparkify.report.build_report --out $(REPORT)

# The Spark target (docs/spark.md): its packages on top of .venv's, and Java 17.
# Not part of `make venv`: PostgreSQL users need none of it. pyspark 4.3 is an
# sdist: pip builds its wheel once (~3 min) and keeps it in its cache.
SPARK_DIR ?= $(CURDIR)/.spark
export SPARKIFY_SPARK_DIR := $(SPARK_DIR)
export SPARK_LOCAL_IP := 127.0.0.1
spark-deps: java $(VENV)/.installed-spark ## install Java 17 (as root, if missing) and the Spark requirements into .venv

$(VENV)/.installed-spark: requirements-spark.txt $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-spark.txt
	@touch $@

# The project's Spark cluster (docs/spark.md, The cluster): a standalone master,
# two workers and a Thrift server on 127.0.0.1, from pyspark's own package, its
# catalog in PostgreSQL (the embedded server, or PGHOST's). State and logs in
# SPARK_DIR/cluster/. The jars it adds (spark-jars.txt) come through mvn, once.
spark-jars: venv ## fetch the cluster's pinned jars (spark-jars.txt: the PostgreSQL driver) with mvn, once
	@$(BIN)/python -m sparkify.spark_cluster jars >/dev/null

spark-start: spark-deps spark-jars ## start the Spark cluster (master, 2 workers, Thrift server) unless it runs
	@$(BIN)/python -m sparkify.spark_cluster start >/dev/null
	@$(BIN)/python -m sparkify.spark_cluster status

spark-stop: ## stop the Spark cluster by the PIDs it recorded
	@$(BIN)/python -m sparkify.spark_cluster stop

spark-status: ## is the Spark cluster running? (ports, PIDs, logs)
	@$(BIN)/python -m sparkify.spark_cluster status

# The landing lake of `make run-spark`: a folder every daemon of the cluster
# reads (here a local one; on a real cluster a shared filesystem or object
# storage). Give LAKE and SPARK_DIR another name to keep a second feed apart.
LAKE ?= $(SPARK_DIR)/lake
# With SPARKIFY_SPARK_THRIFT_HOST set, dbt builds on that Thrift server (EMR, a
# cluster of yours: docs/spark.md) and the project's own cluster is not started,
# as PGHOST replaces the embedded PostgreSQL.
SPARK_CLUSTER := $(if $(strip $(SPARKIFY_SPARK_THRIFT_HOST)),,spark-start)

load-lake: spark-deps data ## land DATA_DIR as Iceberg tables in LAKE (.spark/lake), named in the cluster's catalog
	$(BIN)/python -m sparkify.loader --data-dir $(DATA_DIR) --lake $(LAKE)

# The Thrift server reads the lake by the path dbt hands it: an absolute one
# (or the s3:// URL as it is). When dbt fails on the project's own cluster, the
# cluster's status line follows: dbt says only which server it could not reach.
LAKE_URL = $(if $(filter s3://%,$(LAKE)),$(LAKE),$(abspath $(LAKE)))
build-spark: spark-deps .dbt/profiles.yml ## dbt build --target spark on LAKE, through the Thrift server
	@echo "SPARKIFY_LAKE=$(LAKE_URL) dbt build --target spark"
	@SPARKIFY_LAKE=$(LAKE_URL) $(BIN)/dbt build --target spark || { failed=$$?; \
	  if [ -z "$${SPARKIFY_SPARK_THRIFT_HOST:-}" ]; then \
	    echo "make build-spark: dbt failed. The Spark cluster: $$($(BIN)/python -m sparkify.spark_cluster status)"; \
	  fi; exit $$failed; }

counts-spark: spark-deps ## print the row count of each mart on Spark (asked through the Thrift server)
	$(BIN)/python -m sparkify.mart_counts --spark

run-spark: $(SPARK_CLUSTER) load-lake build-spark counts-spark ## the whole job on Spark: cluster -> DATA_DIR -> lake -> dbt build -> mart counts
	@echo ""
	@echo "make run-spark: done. The lake is $(LAKE); the warehouse belongs to the"
	@echo "Spark cluster (docs/spark.md)."
	@if [ -z "$${SPARKIFY_SPARK_THRIFT_HOST:-}" ]; then \
	  echo "The Spark cluster is still running:"; \
	  echo "  $$($(BIN)/python -m sparkify.spark_cluster status)"; \
	  echo "  query it: beeline or PyHive on its Thrift server (docs/spark.md, The cluster)"; \
	  echo "  stop it:  make spark-stop$(if $(filter-out $(CURDIR)/.spark,$(SPARK_DIR)), SPARK_DIR=$(SPARK_DIR))"; \
	fi

# The Spark pass of make test, once (not per PostgreSQL version): parity with
# PostgreSQL, incremental = full refresh, the course figures (tests/python/spark/test_parity.py).
test-spark: spark-deps .dbt/profiles.yml | $(PYTEST_TMP) ## the Spark tests: parity with PostgreSQL, incremental builds, course sample
	$(WITH_PG) $(BIN)/pytest -m spark --basetemp=$(PYTEST_TMP)/spark

java: ## make sure Java 17+ is there for Spark (as root: apt-get install openjdk-17-jre-headless)
	@if command -v java >/dev/null && java -version 2>&1 | grep -Eq 'version "(1[7-9]|2[0-9])'; then exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing openjdk-17-jre-headless with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-upgrade openjdk-17-jre-headless; \
	else \
	  echo "no Java 17 for Spark: install openjdk-17-jre-headless (Debian/Ubuntu: sudo apt-get install openjdk-17-jre-headless)" >&2; exit 1; \
	fi

# The orchestrator (src/sparkify/orchestration/, docs/operations.md "Every day, by itself"):
# Dagster's packages on top of .venv's; `make run` needs none of it. The lint and
# the tests need them (mypy and pytest read src/sparkify/orchestration/).
SERVE_PORT ?= 3000
orchestrator-deps: $(VENV)/.installed-orchestrator ## install Dagster (requirements-orchestrator.txt) into .venv

$(VENV)/.installed-orchestrator: requirements-orchestrator.txt $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-orchestrator.txt
	@touch $@

# DATA_DIR is the feed its sensor watches; the daemon and web UI run on the
# server PGHOST names, or the embedded one (their run history: database dagster).
serve: orchestrator-deps data .dbt/profiles.yml ## start Dagster's web UI and daemon on http://127.0.0.1:3000 (SERVE_PORT): the pipeline daily and on new files
	@SPARKIFY_FEED=$(DATA_DIR) SERVE_PORT=$(SERVE_PORT) $(WITH_PG) $(BIN)/python -m sparkify.orchestration.serve start

stop-serve: ## stop make serve's web UI and daemon by the PIDs they recorded
	@if [ -x $(BIN)/dagster ]; then $(BIN)/python -m sparkify.orchestration.serve stop; fi

serve-status: ## are make serve's web UI and daemon running?
	@$(BIN)/python -m sparkify.orchestration.serve status

browser: venv ## install Debian's chromium for the browser tests, if missing (as root)
	$(BIN)/python tests/python/headless_chromium.py install

counts: venv ## print the row count of each mart
	$(WITH_PG) $(BIN)/python -m sparkify.mart_counts

run: load build docs-build report counts ## the whole job: sample -> load -> dbt build -> docs -> report -> counts
	@echo ""
	@echo "make run: done. Marts in schema analytics, report tables in reports; the report is"
	@echo "$(REPORT), the docs site target/static_index.html."
	@if [ -z "$${PGHOST:-}" ]; then \
	  echo "The embedded PostgreSQL is still running (database $${PGDATABASE:-sparkify}):"; \
	  echo "  $$($(BIN)/python -m sparkify.embedded_pg status)"; \
	  echo "  query it: eval \"\$$($(BIN)/python -m sparkify.embedded_pg env)\" && psql"; \
	  echo "  stop it:  make stop"; \
	fi

# make test: lint, then three independent passes side by side (PostgreSQL 18,
# PostgreSQL 15, Spark), each printed whole when it ends. What they share is made
# first, one step at a time: the packages, Chromium, the demo feed, the embedded
# PostgreSQL 18 (the Spark pass keeps its catalog there). Each pass has its own
# pytest folders (PYTEST_TMP) and dbt target/ and logs/. The Spark pass is the
# longest, so the PostgreSQL passes run at a lower priority (nice) beside it.
test: lint test-ready ## every test (what CI runs): lint, then PostgreSQL 18, PostgreSQL 15 and Spark side by side
	@$(MAKE) --no-print-directory -j3 --output-sync=recurse test-spark test-pg18 test-pg15-if-present \
	  PG_PASS_NICE="nice -n 10"

test-ready: venv orchestrator-deps spark-deps .dbt/profiles.yml browser data
	@$(WITH_PG) true

# A pass: the Python tests, then dbt build on the demo feed, on one server.
test-pg18: ## the PostgreSQL 18 pass of make test: pytest, then dbt build on the sample
	@echo "== PostgreSQL 18 (the embedded server, .pgdata/)"
	@$(PG_PASS_NICE) $(MAKE) --no-print-directory -j1 pytest dbt-test

# pytest-xdist: PYTEST_WORKERS processes, each test on a database of its own; a
# module stays on one worker (--dist loadfile), so a module-scoped fixture is made once.
# A pass's temporary folders are its own (PYTEST_TMP/<pass>), not pytest's shared
# /tmp/pytest-of-<user>: each new pytest session makes that one private again,
# which locks the embedded servers of a pass running beside it (their OS user is
# not root) out of their data folders.
PYTEST_WORKERS ?= 2
PYTEST_PASS := pg
$(PYTEST_TMP):  # pytest makes --basetemp, but not its parent
	mkdir -p $@
pytest: venv orchestrator-deps .dbt/profiles.yml browser | $(PYTEST_TMP) ## the Python tests, against a real PostgreSQL (and Chromium)
	$(WITH_PG) $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --basetemp=$(PYTEST_TMP)/$(PYTEST_PASS)

# The tests that need no server (no PostgreSQL, dbt, S3 or browser): the generator,
# the loader's pure parts, the charts, the docs rules, the Makefile and README.
# Under a minute; tests that need one are marked slow (pyproject.toml).
test-fast: venv orchestrator-deps ## the fast tests: no server, under a minute (make test runs them too)
	$(BIN)/pytest -m "not slow and not spark"

# --warn-error: on the demo feed any warning is a failure, a warn-severity test
# that finds rows as much as dbt's own (e.g. a numeric column without a scale).
dbt-test: load .dbt/profiles.yml ## dbt build on the sample, warnings as errors: models, data tests, unit tests
	$(WITH_PG) $(BIN)/dbt --warn-error build

lint: venv orchestrator-deps ## ruff, sqlfluff and the type checker (mypy; --strict on the loader, sparkify.loader)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint $(wildcard models macros analyses)
	$(BIN)/mypy

# make bench BENCH_ARGS="--events 10000000" for the 10M-event run.
BENCH_ARGS ?=
bench: venv ## benchmark (1M events): loader vs a bare-table COPY and per-row; dbt build vs floor.sql
	$(WITH_PG) $(BIN)/python -m benchmarks.ingest $(BENCH_ARGS)

# The loader against a store 30 ms away (moto behind a delaying proxy), beside
# the same GETs 64 in flight: make bench-latency LATENCY_ARGS="--delay-ms 60".
LATENCY_ARGS ?=
bench-latency: venv ## benchmark: the loader from an S3 store 30 ms away vs 64 GETs in flight
	$(WITH_PG) $(BIN)/python -m benchmarks.s3_latency $(LATENCY_ARGS)

# make bench-spark BENCH_SPARK_ARGS="--events 100000" for a quicker run.
BENCH_SPARK_ARGS ?=
bench-spark: spark-deps spark-jars .dbt/profiles.yml ## Spark (its own cluster) vs PostgreSQL (1M events): load and dbt build, full and one more day
	@mkdir -p $(SPARK_DIR)
	$(WITH_PG) $(BIN)/python -m benchmarks.spark $(BENCH_SPARK_ARGS)

roles: venv ## create the loader, transformer and analyst roles; analysts find the marts unqualified
	$(WITH_PG) $(BIN)/python -m sparkify.roles

# The PostgreSQL 15 pass: the same pytest suite and dbt build, on a cluster in .pgdata15/.
test-pg15: pg15 ## pytest and dbt build again, on PostgreSQL 15 from PG15_BIN
	@echo "== the same tests on PostgreSQL 15 ($(PG15_BIN)), cluster in .pgdata15/"
	SPARKIFY_PG_BIN=$(PG15_BIN) DBT_TARGET_PATH=target/pg15 DBT_LOG_PATH=logs/pg15 \
	  $(PG_PASS_NICE) $(MAKE) --no-print-directory -j1 pytest dbt-test PYTEST_PASS=pg15

# In make test: run it where PostgreSQL 15 is installed (and in CI, install it);
# elsewhere say clearly that it did not run. Never against a PGHOST server.
test-pg15-if-present:
	@if [ -n "$${PGHOST:-}" ]; then \
	  echo "make test: PGHOST is set, so the PostgreSQL 15 pass (embedded clusters only) is not run"; \
	elif [ -x "$(PG15_BIN)/postgres" ] || [ -n "$${CI:-}" ]; then \
	  $(MAKE) --no-print-directory test-pg15; \
	else \
	  echo "make test: NOT run on PostgreSQL 15: no server in $(PG15_BIN)."; \
	  echo "           'make test-pg15' installs Debian's postgresql-15 (as root) and runs it."; \
	fi

pg15: ## make sure PostgreSQL 15 is in PG15_BIN (as root: apt-get install postgresql-15)
	@if [ -x "$(PG15_BIN)/postgres" ]; then exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing postgresql-15 with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-upgrade postgresql-15; \
	  test -x "$(PG15_BIN)/postgres" || { echo "postgresql-15 is installed, but not in $(PG15_BIN)" >&2; exit 1; }; \
	else \
	  echo "no PostgreSQL 15 in $(PG15_BIN): install postgresql-15 (Debian/Ubuntu: sudo apt-get install postgresql-15)," >&2; \
	  echo "or set PG15_BIN to the bin folder of a PostgreSQL 15" >&2; exit 1; \
	fi

stop: stop-serve ## stop make serve's Dagster, the Spark cluster (if it runs), the embedded PostgreSQL (and the PostgreSQL 15 one, if any)
	@if [ -d $(SPARK_DIR)/cluster ]; then $(BIN)/python -m sparkify.spark_cluster stop; fi
	@$(BIN)/python -m sparkify.embedded_pg stop
	@if [ -f .pgdata15/PG_VERSION ]; then \
	  SPARKIFY_PG_BIN=$(PG15_BIN) $(BIN)/python -m sparkify.embedded_pg stop; fi

status: ## is the embedded PostgreSQL running?
	@$(BIN)/python -m sparkify.embedded_pg status

clean: stop ## remove generated data, dbt output and the embedded database (keeps .venv)
	rm -rf data target logs .dbt .pgdata reports .spark .dagster .pytest-tmp
