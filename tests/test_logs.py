"""Job logs catch prints, library log handlers and tracebacks."""

from __future__ import annotations

import logging
import sys

import pytest

from eofm.logs import job_log


def test_prints_library_logs_and_traceback_go_to_the_log(tmp_path, capsys):
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
    captured = capsys.readouterr()
    assert "GPU available" not in captured.err
    assert "traceback in" in captured.err
    assert console.stream is sys.stderr  # restored afterwards
