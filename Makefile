# Two commands on a fresh machine: `make demo` (the whole pipeline on the mini-web) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
SIZE ?= tiny
PYTEST_ARGS ?=

.PHONY: setup test test-fast demo bench clean

setup:
	@bash scripts/setup.sh

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not slow and not ray" $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/wit demo --out runs/demo --size $(SIZE)

bench: setup
	@for b in benchmarks/[!_]*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf runs .pytest_cache
