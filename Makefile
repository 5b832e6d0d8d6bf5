# teleread: `make run` to try it, `make test` to test it. Both install what is missing.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# node_modules/ holds eslint (package.json, package-lock.json): `npm ci` again when the lock changes.
NODE_STAMP := node_modules/.installed
JS_TESTS := $(wildcard tests/js/*.test.mjs)
# The OHIF viewer served at /ohif/ (scripts/install-ohif.sh): the built dist/ of this npm package
# version, checked against its registry integrity, unpacked into an ignored folder. Not a
# package.json dependency: `npm ci` would pull its whole source dependency tree.
OHIF_VERSION := 3.13.2
OHIF_INTEGRITY := sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA==
OHIF_DIR := build/ohif
OHIF_STAMP := $(OHIF_DIR)/.installed-$(OHIF_VERSION)

.PHONY: run test fuzz lint ohif bench-ingest system-deps test-system-deps clean

$(STAMP): pyproject.toml
	@python3 -m venv $(VENV)
	@$(PYTHON) -m pip install -q --upgrade pip
	@$(PYTHON) -m pip install -q -e '.[test]'
	@touch $(STAMP)

$(NODE_STAMP): package-lock.json
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

$(OHIF_STAMP):
	@scripts/install-ohif.sh $(OHIF_VERSION) $(OHIF_INTEGRITY) $(OHIF_DIR)

ohif: $(OHIF_STAMP)

system-deps:
	@scripts/install-system-deps.sh

test-system-deps:
	@scripts/install-system-deps.sh --test

run: system-deps $(STAMP) $(OHIF_STAMP)
	@TELEREAD_HL7_PORT=$${TELEREAD_HL7_PORT:-2575} $(VENV)/bin/teleread serve --demo

lint: test-system-deps $(STAMP) $(NODE_STAMP)
	@$(VENV)/bin/ruff check service worklists viewer tests bench
	@$(VENV)/bin/lint-imports --no-logo
	@npx --no-install eslint

# pytest-xdist workers. Most of a test's time is waiting (Orthanc's 1 s StableAge, the change
# feed, a browser, PostgreSQL replicas taking over), so more workers than cores keep 2 cores
# busier: the whole suite on this 2-core machine took 442 s with -n 2 and 392 s with -n 3
# (session 10); with PostgreSQL's tests added, 400 s with -n 3 and 380 s with -n 4 (session 12,
# 536 and 573 CPU-seconds). worksteal: a worker that is done takes tests from another's end.
# Session 15: -n 5 took 387 s against 393 s for -n 4, with the cores 99 % busy: more workers
# only help while the tests leave a core idle.
PYTEST_WORKERS ?= 4

# The JavaScript checks (eslint, then node's test runner on the pure modules) run first: seconds.
# TELEREAD_STORAGE_GATE=1: the run fails if a storage function that speaks SQL ran on only one of
# the two engines (tests/storage_gate.py). Bytecode is written even where the environment says
# PYTHONDONTWRITEBYTECODE (these machines do): without it every worker rewrote the asserts of
# all 190 test modules, and each of the ~80 `teleread` and worker processes the tests start
# compiled the service again (8.8 instead of 4.8 CPU-seconds to collect, per worker).
#
# The tests' scratch files (each app's SQLite copy, Orthanc's storage, the PostgreSQL clusters and
# their ~250 databases, Chromium's profiles: ~6 GB written per run) go to a directory of their
# own in RAM (/dev/shm) when it has 8 GB free (at most ~2 GB are there at once), removed after
# the run, also when interrupted: on disk, the writeback of those gigabytes competed with the
# fsyncs of Orthanc's and SQLite's commits on the 2-core machine (the same suite, 849 CPU-seconds
# and 559 s on disk, then 680 and 455 s in RAM; the machine's own speed varies too). Elsewhere
# (a container's small /dev/shm) they stay in the system's temporary directory. The PostgreSQL
# clusters run as user postgres, who must reach theirs: hence the 755.
test: lint $(OHIF_STAMP)
	@node --test --test-reporter=dot $(JS_TESTS)
	@start=$$(date +%s); status=0; \
	if [ "$$(df --output=avail -k /dev/shm 2>/dev/null | tail -n 1)" -gt 8000000 ] 2>/dev/null; \
	then scratch=$$(mktemp -d /dev/shm/teleread-test.XXXXXX); else scratch=$$(mktemp -d); fi; \
	chmod 755 "$$scratch"; trap 'rm -rf "$$scratch"' EXIT INT TERM; \
	env -u PYTHONDONTWRITEBYTECODE TMPDIR="$$scratch" TELEREAD_STORAGE_GATE=1 \
		$(PYTHON) -m pytest -n $(PYTEST_WORKERS) --dist worksteal || status=$$?; \
	echo "make test: $$(( $$(date +%s) - start )) s wall time (pytest exit status $$status)"; \
	exit $$status

# The API fuzzing test alone, with ten times the cases per operation of make test's run.
fuzz: lint
	@TELEREAD_FUZZ_EXAMPLES=$${TELEREAD_FUZZ_EXAMPLES:-50} $(PYTHON) -m pytest tests/test_api_fuzzing.py

bench-ingest: system-deps $(STAMP)
	@$(PYTHON) bench/ingest.py

clean:
	rm -rf $(VENV) var .pytest_cache node_modules $(OHIF_DIR)
