# Bastion: `make run` to try it, `make test` to check it. See README.md.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install native run test check lint typecheck services bench clean

install: $(VENV)/.installed native

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

## Compile the hot-path modules that bastion/native.py lists with mypyc (a few seconds when nothing changed).
## Without a C compiler Bastion runs them as pure Python; `make test` insists on the compiled build.
NATIVE_FLAGS ?=
native: $(VENV)/.installed
	$(BIN)/python scripts/build_native.py $(NATIVE_FLAGS)

run: install
	$(BIN)/bastion up --demo

## The whole suite: start the services the tests need, lint, type-check, run every test.
## Tests run in one process per core (pytest-xdist); a module's tests stay on one worker, so module-scoped
## fixtures (the attack-sample replays) are built once. `make test PYTEST_WORKERS=0` runs them in-process.
PYTEST_WORKERS ?= auto
test: NATIVE_FLAGS = --strict
test: install services lint typecheck
	$(BIN)/python -m pytest -q --durations=30 -n $(PYTEST_WORKERS) --dist loadscope

services:
	bash scripts/test-services.sh

lint: install
	$(BIN)/ruff check src tests bench scripts

typecheck: install
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/ingest.py --json

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache src/bastion/_native
