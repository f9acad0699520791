# Two commands on a fresh machine: `make report` (audit the installed backends, write reports/)
# and `make test` (the test suite). Both create .venv and install what they need from the lock
# (requirements/lock.txt: the exact versions the known findings were recorded on).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements/lock.txt
STAMP := $(VENV)/.installed-stamp
PIP_VERSION := 26.3
PIP_TOOLS_VERSION := 7.7.0
PROFILE ?= default
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` (auto: one per core; `make test TEST_JOBS=0` runs in one process)
TEST_JOBS ?= auto
# `make test-latest`: the newest releases in a venv of their own, and where to write what drifted
LATEST := .venv-latest
DRIFT := .drift

.PHONY: venv test test-all test-latest report bench lock clean

# torch==2.13.0+cpu in the lock is the CPU build pip finds on this machine's disk; JAX is CPU.
# --no-compile: byte-compiling every installed module (torch, jaxlib, scipy: tens of thousands of
# files) took 100 of the 165 s of the install here; Python compiles what is imported on first use.
$(STAMP): pyproject.toml $(LOCK)
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q pip==$(PIP_VERSION)
	$(BIN)/python -m pip install -q --no-compile -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest -m "not slow" -p no:cacheprovider -n $(TEST_JOBS) --dist worksteal \
	  --durations=25 $(PYTEST_ARGS)

test-all: $(STAMP)
	HYPOTHESIS_PROFILE=thorough $(BIN)/python -m pytest $(PYTEST_ARGS)

# The suite against the newest releases (torch stays at the pinned CPU build). Known findings
# whose packages moved off the lock become drift entries (xfail with the versions), collected in
# $(DRIFT)/drift.jsonl and summarised with the version changes; exit status: pytest's.
test-latest:
	$(PY) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade pip
	$(LATEST)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e '.[all,dev]'
	rm -rf $(DRIFT) && mkdir -p $(DRIFT)
	INFOAUDIT_DRIFT_LOG=$(DRIFT)/drift.jsonl HYPOTHESIS_PROFILE=ci $(LATEST)/bin/python -m pytest -m "not slow" \
	  -p no:cacheprovider -n $(TEST_JOBS) --dist worksteal --junitxml=$(DRIFT)/junit.xml $(PYTEST_ARGS); \
	  rc=$$?; $(LATEST)/bin/python scripts/drift_report.py --lock $(LOCK) --drift $(DRIFT); exit $$rc

report: $(STAMP)
	$(BIN)/infoaudit run --profile $(PROFILE) --output reports
	$(BIN)/infoaudit bench --quick --output reports

bench: $(STAMP)
	$(BIN)/infoaudit bench --output reports

# Refresh the lock to the newest releases (then run `make test`: changed findings show up there).
lock: $(STAMP)
	$(BIN)/python -m pip install -q pip-tools==$(PIP_TOOLS_VERSION)
	$(BIN)/pip-compile -q --upgrade --allow-unsafe --extra=all --extra=dev --strip-extras --annotation-style=line \
	  --no-emit-index-url --no-emit-find-links --no-emit-trusted-host --output-file=$(LOCK) pyproject.toml

clean:
	rm -rf $(VENV) $(LATEST) $(DRIFT) .pytest_cache .hypothesis
