# Two commands: `make run` (install + nightly pipeline on data/sample) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CONFIG ?= ccv.toml

# The temporary Prefect API server's telemetry logs "database is locked" under load.
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: install run test lint format lock sample-data clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "pip==26.3"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $(STAMP)

run: install
	$(BIN)/ccv run --config $(CONFIG)

# Two workers, one test file each (module fixtures such as the published sample stay shared).
test: install lint
	$(BIN)/pytest -n 2 --dist loadfile

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Re-resolve the newest versions allowed by pyproject.toml and record them in constraints.txt.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet "pip==26.3"
	.lock-venv/bin/python -m pip install --quiet -e ".[dev]" hatchling
	echo '# Lock file: the exact versions `make` installs (regenerate with `make lock`).' > constraints.txt
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^ccv' >> constraints.txt
	rm -rf .lock-venv

sample-data: install
	$(BIN)/ccv sample-data --out data/sample --seed 7

clean:
	rm -rf warehouse .pytest_cache .ruff_cache
