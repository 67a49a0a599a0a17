# Two commands for a newcomer: `make demo` and `make test`. Everything else is installed here.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MELTANO_VENV ?= .venv-meltano
MELTANO := $(MELTANO_VENV)/bin/meltano
# Tests mostly wait on loopback servers: more workers than cores keep both cores busy.
# The SDK's standard tests stay on one worker (xdist_group): each would sync them all.
PYTEST_ARGS ?= -n 6 --dist loadgroup

.PHONY: install demo test test-fast lint typecheck pytest bench schemas clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

# Meltano lives in its own venv: its pins must not decide the tap's dependencies.
$(MELTANO): 
	$(PYTHON) -m venv $(MELTANO_VENV)
	$(MELTANO_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MELTANO_VENV)/bin/python -m pip install --quiet "meltano~=4.4"

install: $(BIN)/.installed

demo: install $(MELTANO)
	$(BIN)/python scripts/demo.py --meltano $(MELTANO)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy tap_coupa coupa_sandbox scripts

pytest: install $(MELTANO)
	MELTANO_BIN=$(abspath $(MELTANO)) $(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

# The unit and sandbox tiers (see tests/conftest.py): no targets, Meltano or PostgreSQL.
test-fast: install
	$(BIN)/pytest -m "unit or sandbox" $(PYTEST_ARGS)

bench: install
	$(BIN)/python scripts/bench.py

schemas: install
	$(BIN)/python scripts/generate_schemas.py

clean:
	rm -rf $(VENV) $(MELTANO_VENV) .meltano output .pytest_cache .mypy_cache .ruff_cache
