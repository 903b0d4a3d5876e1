# Two entry points for newcomers: `make demo` and `make test`. Everything else builds on them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench reliability constraints clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check reconciler tests bench
	$(BIN)/ruff format --check reconciler tests bench examples/demo.py
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# Three test processes per core: much of the suite waits (on subprocesses, on the service's
# back-off, on the package installs of tests/installed) rather than computes, and with two per
# core both cores still sat idle for a fifth of the run. More than three per core was no faster:
# each process pays for importing and collecting the suite. Each file runs in one process, so a
# file's module fixtures are set up once.
WORKERS ?= $(shell $(PYTHON) -c "import os; print(3 * (len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1))")
unit: $(STAMP)
	$(BIN)/pytest -q -n $(WORKERS) --dist loadfile -m "not slow"

test: lint unit

bench: $(STAMP)
	$(BIN)/python -m bench

reliability: $(STAMP)
	$(BIN)/pytest -q tests/reliability

# Re-pin what CI installs (after changing dependencies in pyproject.toml), from a fresh venv.
constraints:
	rm -rf .venv-constraints
	$(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/python -m pip install --quiet --upgrade pip
	.venv-constraints/bin/python -m pip install --quiet '.[dev]'
	{ echo "# What CI and \`make\` install, pinned, so a new release of a dependency cannot change a green"; \
	  echo "# build unseen. Regenerate with \`make constraints\` after changing pyproject.toml, and commit it."; \
	  .venv-constraints/bin/python -m pip freeze --exclude-editable | grep -v '^pkgrepo-reconciler'; \
	} > constraints.txt
	rm -rf .venv-constraints

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
