# teleread: `make run` to try it, `make test` to test it. Both install what is missing.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench-ingest system-deps test-system-deps clean

$(STAMP): pyproject.toml
	@python3 -m venv $(VENV)
	@$(PYTHON) -m pip install -q --upgrade pip
	@$(PYTHON) -m pip install -q -e '.[test]'
	@touch $(STAMP)

system-deps:
	@scripts/install-system-deps.sh

test-system-deps:
	@scripts/install-system-deps.sh --test

run: system-deps $(STAMP)
	@$(VENV)/bin/teleread serve --demo

# Two pytest-xdist workers: most of a test's time is waiting (Orthanc's 1 s StableAge, the change
# feed, a browser), so two workers keep the 2 cores busy. worksteal: a worker that is done takes
# tests from the other's end, so the run ends when the last slow file ends, not later.
PYTEST_WORKERS ?= 2

test: test-system-deps $(STAMP)
	@$(VENV)/bin/ruff check service worklists viewer tests bench
	@start=$$(date +%s); status=0; \
	$(PYTHON) -m pytest -n $(PYTEST_WORKERS) --dist worksteal || status=$$?; \
	echo "make test: $$(( $$(date +%s) - start )) s wall time (pytest exit status $$status)"; \
	exit $$status

bench-ingest: system-deps $(STAMP)
	@$(PYTHON) bench/ingest.py

clean:
	rm -rf $(VENV) var .pytest_cache
