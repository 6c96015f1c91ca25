"""Atomic writes keep the old file on failure and give normal permissions on success."""

from __future__ import annotations

import os

import pytest

from eofm.io import atomic_path, read_json, write_json


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.json"
    write_json({"v": 1}, path)
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert read_json(path) == {"v": 1}
    assert os.listdir(tmp_path) == ["a.json"]


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_json({"v": 1}, tmp_path / "b.json")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_malformed_json_names_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{")
    with pytest.raises(ValueError, match=r"bad\.json"):
        read_json(path)


def test_nan_or_infinity_is_refused_naming_file_and_key_and_the_old_file_stays(tmp_path):
    import numpy as np

    from eofm.errors import OutputError

    path = tmp_path / "metrics.json"
    write_json({"rmse": 1.5}, path)
    before = path.read_bytes()
    bad = {"rmse": float("nan"), "per_level": [1.0, np.float64(np.inf)], "acc": None}
    with pytest.raises(OutputError) as info:
        write_json(bad, path)
    message = str(info.value)
    assert str(path) in message and "$.rmse" in message and "$.per_level[1]" in message
    assert "$.acc" not in message
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["metrics.json"]
    write_json({"acc": None}, path)  # null is how an undefined value is written
    assert read_json(path) == {"acc": None}
