# Bastion: `make run` to try it, `make test` to check it. See README.md.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install run test check lint typecheck services bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

run: install
	$(BIN)/bastion up --demo

## The whole suite: start the services the tests need, lint, type-check, run every test.
test: install services lint typecheck
	$(BIN)/python -m pytest -q --durations=30

services:
	bash scripts/test-services.sh

lint: install
	$(BIN)/ruff check src tests bench

typecheck: install
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/ingest.py --json

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
