# The two commands a user needs: `make demo` (set up + run the workflow) and `make test`.
# `make test-fast` is the development loop: everything but the `slow` workflow (DAG) tests.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
TEST_WORKERS ?= 2
# NVIDIA GPUs here. Without one the GPU rules run on the CPU, and the default profile's cap
# of one `gpu` job at a time would only keep one-thread training jobs (LOAN, WGAST,
# Prithvi-EO) from sharing the cores, so the demo lifts it (--cores still bounds them).
GPUS ?= $(shell nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
GPU_CAP := $(if $(filter 0,$(GPUS)),--resources gpu=$(shell nproc),)
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
	$(BIN)/snakemake --cores $(CORES) $(GPU_CAP)
	$(BIN)/snakemake --report results/report.html
	@echo "Report: $(CURDIR)/results/report.html"

# Every test in two processes, a test file at a time: the file that reads the shared tiny
# DAG run goes first (tests/workflow/conftest.py), so one process runs the DAG (about 1.2
# cores) while the other takes the remaining files beside it.
test: install-dev
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-fast: install-dev
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/python -m pytest -m "not slow" -n $(TEST_WORKERS)

lint: install-dev
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/snakemake --lint

clean:
	rm -rf resources results logs benchmarks checkpoints .snakemake
