"""The `eofm` command writes, checks and describes stores."""

from __future__ import annotations

import json

from eofm.cli import main


def test_sample_then_qc_then_describe(tmp_path, capsys):
    store = tmp_path / "2020-02.zarr"
    assert main(["sample", "2020-02", str(store), "--nlat", "8", "--nlon", "16"]) == 0
    capsys.readouterr()
    assert main(["qc", str(store), "--month", "2020-02"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and report["coverage"]["present"] == 29 * 4
    assert main(["describe", str(store)]) == 0
    described = capsys.readouterr().out
    # every variable is listed, however many there are
    for name in ("swvl1", "tp", "ro", "pev", "2t", "z"):
        assert f"  {name} " in described
    assert "(time,lat,lon)" in described and "time: 2020-02-01" in described


def test_qc_fails_on_missing_time_steps(tmp_path, capsys):
    store = tmp_path / "2020-02.zarr"
    main(["sample", "2020-02", str(store), "--nlat", "8", "--nlon", "16"])
    capsys.readouterr()
    assert main(["qc", str(store), "--month", "2020-03"]) == 1
    assert "missing" in capsys.readouterr().out
