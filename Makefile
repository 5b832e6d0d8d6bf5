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

test: test-system-deps $(STAMP)
	@$(VENV)/bin/ruff check service worklists viewer tests bench
	@$(VENV)/bin/lint-imports --no-logo
	@$(PYTHON) -m pytest

bench-ingest: system-deps $(STAMP)
	@$(PYTHON) bench/ingest.py

clean:
	rm -rf $(VENV) var .pytest_cache
