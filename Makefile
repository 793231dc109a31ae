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
## Tests run in one process per core (pytest-xdist); a module's tests stay on one worker, so module-scoped
## fixtures (the attack-sample replays) are built once. `make test PYTEST_WORKERS=0` runs them in-process.
PYTEST_WORKERS ?= auto
test: install services lint typecheck
	$(BIN)/python -m pytest -q --durations=30 -n $(PYTEST_WORKERS) --dist loadscope

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
