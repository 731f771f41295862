# The project's commands. `make run` and `make test` are all a fresh machine needs.
VENV   ?= .venv
# The suite runs in 3 processes (pytest-xdist; the process-based tests share one worker, the browser tests another);
# TEST_WORKERS=0 runs it in one.
TEST_WORKERS ?= 3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test test-faults lint contracts messages bench rebuild clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## start NATS, the three services, the console and demo data; Ctrl-C stops all
	$(PY) -m deploy.local

test: $(STAMP)  ## every test but the cluster faults: unit, integration (real NATS, SQLite, PostgreSQL), end-to-end
	$(PY) -m pytest -q -m "not faults" -n $(TEST_WORKERS) --dist loadgroup --durations=25 $(PYTEST_ARGS)

test-faults: $(STAMP)  ## a real 3-node NATS cluster losing nodes under load (tests/faults; .ci/run runs it too)
	$(PY) -m pytest -q -m faults tests/faults $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

contracts: $(STAMP)  ## regenerate contracts/schemas and contracts/asyncapi.json from the models
	$(PY) -m contracts.export

messages: $(STAMP)  ## find the console's strings and update both catalogues (services/console/locale)
	$(PY) -m deploy.messages

bench: $(STAMP)  ## speed measurements, one table, bench/results.{json,md} (never part of `make test`); BENCH_ARGS=--quick
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m tests.bench $(BENCH_ARGS)

clean:
	rm -rf var
