# Two commands are the whole set-up: `make test` and `make sweep`.
# Both create .venv if it is missing and install the project at the pinned versions.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export CNN_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: test test-fast sweep bench install clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest

test-fast: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -m "not slow"

sweep: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python jobs/sweep.py --preset local

# The benchmarks that fit in under an hour on 2 cores (see bench/README.md); each prints a
# table and writes bench/results/<name>.json. The full-data accuracy runs are separate (hours).
bench: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[bench]'
	for b in input_pipeline ray_overhead scaling sweep_efficiency; do \
		PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python bench/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
