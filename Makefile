# Two commands on a fresh machine (only python3.11+ needed): `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export OPENBLAS_NUM_THREADS ?= 1
export DO_NOT_TRACK ?= 1
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: run test lock

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock -e . --no-deps
	touch $@

## run the nightly flow on the built-in dataset (DuckDB + Parquet under ./data)
run: $(STAMP)
	$(BIN)/recs run

## run the test suite on 2 workers, one test file per worker at a time (pytest exit code 5, "no tests collected", counts as success)
test: $(STAMP)
	$(BIN)/pytest -q -n 2 --dist loadfile; status=$$?; [ $$status -eq 5 ] && exit 0 || exit $$status

## refresh the pinned versions after editing pyproject.toml
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra test -o requirements.lock
