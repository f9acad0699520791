# Two commands on a fresh machine: `make report` (audit the installed backends, write reports/)
# and `make test` (the test suite). Both create .venv and install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PROFILE ?= default
PYTEST_ARGS ?=

.PHONY: venv test test-all report bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch==2.13.0 is the CPU build (an unpinned torch pulls a multi-GB CUDA build); JAX is CPU.
	$(BIN)/python -m pip install -q -e '.[all,dev]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest -m "not slow" -p no:cacheprovider $(PYTEST_ARGS)

test-all: $(STAMP)
	HYPOTHESIS_PROFILE=thorough $(BIN)/python -m pytest $(PYTEST_ARGS)

report: $(STAMP)
	$(BIN)/infoaudit run --profile $(PROFILE) --output reports
	$(BIN)/infoaudit bench --quick --output reports

bench: $(STAMP)
	$(BIN)/infoaudit bench --output reports

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
