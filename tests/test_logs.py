"""Job logs catch prints, library log handlers and tracebacks."""

from __future__ import annotations

import logging
import sys

import pytest

from eofm.logs import job_log


def test_prints_library_logs_and_traceback_go_to_the_log(tmp_path, capfd):
    library = logging.getLogger("some.library")
    console = logging.StreamHandler(sys.stderr)
    library.addHandler(console)
    library.setLevel(logging.INFO)
    path = tmp_path / "job.log"
    try:
        with pytest.raises(RuntimeError), job_log(path):
            print("hello from the job")
            library.info("GPU available: False")
            raise RuntimeError("boom")
    finally:
        library.removeHandler(console)
    text = path.read_text()
    assert "hello from the job" in text
    assert "GPU available: False" in text
    assert "RuntimeError: boom" in text
    captured = capfd.readouterr()
    assert "GPU available" not in captured.err
    assert "traceback in" in captured.err
    assert console.stream is sys.stderr  # restored afterwards


def test_the_first_line_says_where_the_job_ran(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("SLURM_JOB_PARTITION", "gpu")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with job_log(tmp_path / "job.log"):
        print("work")
    first, second = (tmp_path / "job.log").read_text().splitlines()[:2]
    assert "slurm_job=42 partition=gpu cpus=8 cuda_visible_devices=0" in first
    assert second == "work"

    for name in ("SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name)
    with job_log(tmp_path / "local.log"):
        pass
    line = (tmp_path / "local.log").read_text().splitlines()[0]
    assert "slurm_job" not in line and line.endswith("cuda_visible_devices=none")


def test_a_failure_prints_its_cause_line_before_the_log_pointer(tmp_path, capfd):
    path = tmp_path / "job.log"
    with pytest.raises(ValueError), job_log(path):
        try:
            raise OSError("disk.nc: truncated HDF5 file")
        except OSError as err:
            raise ValueError("store.zarr: variable 't2m' unreadable\nmore detail") from err
    err_lines = capfd.readouterr().err.strip().splitlines()
    assert err_lines == [
        "eofm: ValueError: store.zarr: variable 't2m' unreadable",
        "eofm: caused by OSError: disk.nc: truncated HDF5 file",
        f"eofm: job failed, traceback in {path}",
    ]
    assert "more detail" in path.read_text()


def test_the_root_cause_is_left_out_when_the_message_already_holds_it(tmp_path, capfd):
    with pytest.raises(RuntimeError), job_log(tmp_path / "job.log"):
        try:
            raise KeyError("x")
        except KeyError as err:
            raise RuntimeError(f"no variable: {err}") from err
    lines = capfd.readouterr().err.strip().splitlines()
    assert lines[0] == "eofm: RuntimeError: no variable: 'x'"
    assert len(lines) == 2
