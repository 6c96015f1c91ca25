"""One run of the whole tiny DAG, shared by every workflow test that reads its outputs.

The run dominates the suite's time, so it happens once per test session, however many
pytest-xdist workers share it: the first worker to need it runs it under a file lock in
the folder every worker's temporary directory sits in; the others wait for it and read
its outcome. Tests that change a config run their own (dry) runs.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from filelock import FileLock

from tests.workflow.run import DAG_TIMEOUT_S, TINY, snakemake

SUCCEEDED = "snakemake exited 0\n"


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory in which ``snakemake --configfile tests/config/tiny.yaml`` finished."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # gw0, gw1 …: their folders share a parent
        shared = shared.parent
    workdir = shared / "tiny-run"
    outcome = shared / "tiny-run.outcome"
    with FileLock(shared / "tiny-run.lock"):
        if not outcome.exists():
            workdir.mkdir()
            try:  # recorded either way: the waiting workers read it instead of running again
                result = snakemake(
                    "--configfile", str(TINY), workdir=workdir, timeout=DAG_TIMEOUT_S
                )
                report = SUCCEEDED if result.returncode == 0 else result.stderr[-5000:]
            except subprocess.TimeoutExpired:
                report = f"snakemake did not finish within {DAG_TIMEOUT_S} s\n"
            outcome.write_text(report)
    report = outcome.read_text()
    assert report == SUCCEEDED, f"the tiny DAG run in {workdir} failed:\n{report}"
    return workdir


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files whose tests read the tiny run go first (stable sort), so that under
    `make test` (``-n 2 --dist loadfile --no-loadscope-reorder``) one worker starts the run
    at once while the other works through every other file beside it."""
    readers = {item.path for item in items if "finished_run" in getattr(item, "fixturenames", ())}
    items.sort(key=lambda item: item.path not in readers)
