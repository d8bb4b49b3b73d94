# One entry point for installing, checking and testing; .ci/run calls these too.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export GEOBATCH_TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: install demo lint typecheck test check bench clean

$(BIN)/geobatch: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/geobatch

demo: install
	$(BIN)/geobatch demo

lint: install
	$(BIN)/ruff check src tests benchmarks evals
	$(BIN)/ruff format --check src tests benchmarks evals

typecheck: install
	$(BIN)/mypy

test: install
	$(BIN)/pytest

check: lint typecheck test

bench: install
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) geobatch-data .pytest_cache .mypy_cache .ruff_cache
