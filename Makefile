# The README's commands. `make demo` and `make test` do all set-up on a fresh machine.
# Set-up installs the scale extra (duckdb, pyspark) so the DuckDB and Spark tests run in CI;
# the Spark tests also need Java 17+ on PATH and are skipped, saying so, without it.
# It installs the postgres extra (psycopg) for the PostgreSQL ledger tests, which start their
# own server and are skipped, saying so, where PostgreSQL is not installed (.ci/run installs it).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# A pinned torch first: here it resolves to a local CPU build; unpinned, pip would pull a
# multi-GB CUDA build. Override on a GPU machine, e.g. `make TORCH=torch test`.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-slow lint audit-deps clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev,scale,postgres]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/privsynth demo

test: $(STAMP) audit-deps
	$(PY) -m pytest -q -m "not slow and not gpu"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m "slow"

# Known vulnerabilities in the installed dependencies (tools/audit_deps.py): fails on one with
# a fix unless ignored with a reason; says NOT AUDITED when no vulnerability service answers.
audit-deps: $(STAMP)
	$(PY) tools/audit_deps.py

lint: $(STAMP)
	$(VENV)/bin/ruff check privsynth tests
	$(VENV)/bin/ruff format --check privsynth tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
