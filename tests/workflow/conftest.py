"""One run of the whole tiny DAG, shared by every workflow test that reads its outputs.

The run dominates the suite's time, so it happens once per session; tests that only
read its outputs share it, tests that change a config run their own (dry) runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workflow.run import DAG_TIMEOUT_S, TINY, snakemake


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """A working directory in which ``snakemake --configfile tests/config/tiny.yaml`` finished."""
    workdir = tmp_path_factory.mktemp("tiny-run")
    result = snakemake("--configfile", str(TINY), workdir=workdir, timeout=DAG_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir
