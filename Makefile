# Shortcuts for the commands of README.md. Everything runs from the virtual environment
# .venv, created on first use.

VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test test-fast lint format services bench clean

$(BIN)/perflab: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -e ".[test]"
	touch $@

install: $(BIN)/perflab

demo: install
	$(BIN)/perflab demo

# The whole suite, as CI runs it (start PostgreSQL and Redis first: make services).
test: install
	$(BIN)/python -m pytest

# Without the tests that drive real load runs (about a minute).
test-fast: install
	$(BIN)/python -m pytest -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .

# Starts PostgreSQL and Redis on 127.0.0.1 (needs root); prints the variables to eval.
services:
	@bash .ci/services.sh

bench: install
	$(BIN)/python benchmarks/recorder_overhead.py
	$(BIN)/python benchmarks/ingest_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
