# Two commands on a fresh machine:  `make run` (whole pipeline on generated data)
# and `make test` (all tests). Both set up what they need first.
PYTHON ?= $(or $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3)),python3)
VENV := .venv
BIN := $(VENV)/bin
RUN_ARGS ?=

.PHONY: setup run lint test test-spark bench layer docs clean

setup: $(VENV)/.installed node_modules/.installed

# the first install takes about 3-5 minutes (dbt, DuckDB, scikit-learn, moto, Playwright's
# driver...); later runs skip it until pyproject.toml changes
$(VENV)/.installed: pyproject.toml
	@echo "Installing apy-runway and its dependencies into $(VENV) (the first time takes about 3-5 minutes)..."
	@started=$$(date +%s); \
	$(PYTHON) -m venv $(VENV) && \
	$(BIN)/pip install --quiet --upgrade pip && \
	$(BIN)/pip install --quiet -e '.[dev]' && \
	touch $@ && \
	echo "Installed into $(VENV) in $$(( $$(date +%s) - started )) s."

# `make test-spark` builds the dbt project on Spark (tests/test_spark_parity.py): the
# optional `spark` group (dbt-spark, pyspark; a Java 17 runtime must be on PATH)
$(VENV)/.installed-spark: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev,spark]'
	touch $@

# osls (open-source serverless fork) packages serverless.yml offline in the tests
node_modules/.installed: package.json package-lock.json
	@echo "Installing osls (the offline serverless packager the deploy tests use) with npm ci..."
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# the pipeline needs the Python install only (npm's osls is for `make test`); it
# prints about 100 lines and ends with where to look next
run: $(VENV)/.installed
	@echo "Running the whole pipeline on generated demo data (about 3 minutes): $(BIN)/apy-runway run-all $(RUN_ARGS)"
	@$(BIN)/apy-runway run-all $(RUN_ARGS)

# ruff (Python lint and formatting; config in pyproject.toml [tool.ruff]) and sqlfluff
# (the dbt models, macros and tests; ingest's classification SQL), about 10 s
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd dbt_project && $(CURDIR)/$(BIN)/sqlfluff lint --processes 2 models macros tests
	cd apy_runway/landing/ingest/sql && $(CURDIR)/$(BIN)/sqlfluff lint .

# the whole suite but the Spark parity build, one test file per worker on up to 4 cores
# (the slowest files start first: tests/conftest.py); the 25 slowest tests are listed at the end
test: lint
	$(BIN)/pytest -n auto --maxprocesses=4 --dist loadfile --durations=25

# the same dbt project built on a local Spark session and compared with DuckDB's, table by table
test-spark: $(VENV)/.installed-spark
	$(BIN)/pytest -m spark --durations=5

# the Lambda layer, pinned to the latest training run's library versions
layer: setup
	PYTHON=$(BIN)/python ./createlayer.sh --metadata runs/latest/metadata.json

# dbt's documentation site (models, columns, tests, lineage) for the home's warehouse:
# data/dbt_docs/index.html (after `make run`, which builds the warehouse it catalogues)
docs: setup
	APY_RUNWAY_DATA_DIR=$(CURDIR)/data APY_RUNWAY_DUCKDB_PATH=$(CURDIR)/data/warehouse.duckdb \
	DBT_PROFILES_DIR=$(CURDIR) DBT_LOG_PATH=$(CURDIR)/data/dbt_logs \
	$(BIN)/dbt docs generate --project-dir dbt_project --target-path $(CURDIR)/data/dbt_docs

# pipeline scale (~2 min) and the hourly Lambda against predict_proba at 20k pools, which
# prints the warm invocation / predict_proba ratio (first run: builds data/bench/home_inference)
bench: setup
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf data runs dbt_project/target dbt_project/logs .serverless python layer*.zip
