# The two commands a user needs: `make demo` (set up + run the workflow) and `make test`.
# `make test-fast` is the development loop: everything but the `slow` workflow (DAG) tests.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
TEST_WORKERS ?= 2
# pip's notices about local index folders are noise here; real errors still stop make.
PIP_FILTER := { grep -v '^WARNING: Location' || true; }

.PHONY: install install-dev install-slurm demo test test-fast lint clean

# What the workflow needs; the demo installs nothing more.
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[torch]' 2>&1 | $(PIP_FILTER)
	$(BIN)/python -c "import eofm, torch, aurora, PrithviWxC, snakemake, zarr, rasterio, huggingface_hub"
	touch $@

# The test and lint tools on top (pyproject's `dev` extra: pytest, ruff, the SLURM plugin, peft).
install-dev: $(VENV)/.installed-dev

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[torch,dev]' 2>&1 | $(PIP_FILTER)
	$(BIN)/python -c "import pytest, xdist, snakemake_executor_plugin_slurm, peft"
	touch $@

# The SLURM executor plugin (pinned in pyproject's `slurm` extra), for `--workflow-profile
# profiles/slurm`; `make install-dev` already has it (the tests use it).
install-slurm: install
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[slurm]' 2>&1 | $(PIP_FILTER)
	$(BIN)/python -c "import snakemake_executor_plugin_slurm"

demo: install
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report results/report.html
	@echo "Report: $(CURDIR)/results/report.html"

# The unit tests in two processes (much of their time is waiting on local fake servers),
# then the `slow` workflow tests in one, where they share the tiny DAG run.
test: install-dev
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/python -m pytest -m "not slow" -n $(TEST_WORKERS)
	$(BIN)/python -m pytest -m slow

test-fast: install-dev
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/python -m pytest -m "not slow" -n $(TEST_WORKERS)

lint: install-dev
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/snakemake --lint

clean:
	rm -rf resources results logs benchmarks checkpoints .snakemake
