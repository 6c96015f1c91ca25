"""QC reports: clean sample stores pass; planted problems are found and named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from eofm.data.qc import QCError, check_store, require_passed
from eofm.data.sample import SampleGrid, generate_period, generate_static, month_times
from eofm.data.store import write_store

GRID = SampleGrid(nlat=8, nlon=16, levels=(500, 850))
TIMES = month_times("2020-01", 6)[:4]


def _sample() -> xr.Dataset:
    return generate_period(TIMES, GRID, seed=2)


def test_clean_store_passes_with_a_full_report(tmp_path: Path) -> None:
    path = write_store(_sample(), tmp_path / "ok.zarr")
    report = check_store(path, expected_times=TIMES)
    assert report["passed"] and report["problems"] == []
    assert report["store"] == str(path)
    assert report["coverage"] == {"expected": 4, "present": 4, "missing": []}
    kinds = {name: v["kind"] for name, v in report["variables"].items()}
    assert kinds["2t"] == "surface" and kinds["t"] == "atmospheric" and kinds["tp"] == "target"
    t = report["variables"]["t"]
    assert t["units"] == t["expected_units"] == "K" and t["nan_fraction"] == 0.0
    assert 160 <= t["valid_min"] < t["min"] < t["max"] < t["valid_max"] <= 340
    assert t["in_range"] is True
    json.dumps(report)  # plain JSON
    static = check_store(write_store(generate_static(GRID, 2), tmp_path / "static.zarr"))
    assert static["passed"] and static["coverage"] is None
    assert static["variables"]["z"]["kind"] == "static"
    assert static["variables"]["z"]["expected_units"] == "m2 s-2"


def test_planted_problems_are_named(tmp_path: Path) -> None:
    ds = _sample()
    ds["2t"].attrs["units"] = "degC"
    ds["t"].values[1, 0, 2, 3] = np.nan
    ds["msl"].values[0, 0, 0] = 200000.0
    ds["pev"].values[2] = 0.5  # wrong sign: evaporation must be negative
    path = write_store(ds, tmp_path / "bad.zarr")
    expected = np.concatenate([TIMES, [np.datetime64("2020-01-02T00:00", "ns")]])
    report = check_store(path, expected_times=expected)
    assert not report["passed"]
    problems = "\n".join(report["problems"])
    store = str(path)
    assert f"{store}: variable '2t' has units 'degC'; expected 'K'" in problems
    assert f"{store}: variable 't' is " in problems and "NaN; expected at most 0.00%" in problems
    assert f"{store}: variable 'msl' ranges" in problems and "200000" in problems
    assert "expected within [87000, 108500] Pa" in problems
    assert f"{store}: variable 'pev' ranges" in problems
    assert f"{store}: 1 of 5 expected time steps missing" in problems
    assert "2020-01-02T00:00:00" in problems
    assert report["coverage"] == {"expected": 5, "present": 4, "missing": ["2020-01-02T00:00:00"]}
    assert len(report["problems"]) == 5
    t = report["variables"]["t"]
    assert t["nan_fraction"] == pytest.approx(1 / ds["t"].size)
    assert report["variables"]["msl"]["in_range"] is False
    assert report["variables"]["tp"]["in_range"] is True


def test_nan_threshold_is_a_keyword(tmp_path: Path) -> None:
    ds = _sample()
    ds["tp"].values[0, :2] = np.nan  # 2 of 8 rows of one of 4 steps: 1/16
    path = write_store(ds, tmp_path / "nan.zarr")
    assert not check_store(path)["passed"]
    assert check_store(path, max_nan_fraction=0.1)["passed"]
    assert not check_store(path, max_nan_fraction=0.05)["passed"]


def test_unknown_variables_are_listed_not_failed(tmp_path: Path) -> None:
    ds = _sample()
    attrs = {"units": "K", "standard_name": "sea_surface_temperature", "long_name": "SST"}
    ds["sst"] = ds["2t"].copy().assign_attrs(attrs)
    ds["sst"].values[0, 0, 0] = np.nan
    report = check_store(write_store(ds, tmp_path / "extra.zarr"))
    assert report["passed"], report["problems"]
    sst = report["variables"]["sst"]
    assert sst["kind"] == "unknown" and "not in the eofm catalogue" in sst["note"]
    assert sst["nan_fraction"] > 0


def test_era5_unit_spelling_is_accepted(tmp_path: Path) -> None:
    ds = _sample()
    ds["z"].attrs["units"] = "m**2 s**-2"
    ds["q"].attrs["units"] = "kg kg**-1"
    assert check_store(write_store(ds, tmp_path / "era5.zarr"))["passed"]


def test_contract_violations_and_missing_stores_fail(tmp_path: Path) -> None:
    ds = _sample().isel(lat=slice(None, None, -1))
    path = write_store(ds, tmp_path / "ascending.zarr", validate=False)
    report = check_store(path)
    assert not report["passed"]
    assert any("'lat' must be strictly descending" in p for p in report["problems"])
    missing = check_store(tmp_path / "gone.zarr")
    assert not missing["passed"] and "gone.zarr: Zarr store not found" in missing["problems"][0]


def test_uneven_longitudes_fail_qc_and_the_grid_is_reported(tmp_path: Path) -> None:
    ds = _sample().isel(lon=[0, 1, 2, 3, 5, 6])  # the column at 90° is missing
    path = write_store(ds, tmp_path / "gap.zarr", validate=False)
    report = check_store(path, expected_times=TIMES)
    assert not report["passed"]
    assert any(
        "'lon' must be evenly spaced (a contiguous grid), but 1 of 5 steps differ from 22.5° "
        "(first 45° between 67.5 and 112.5)" in p
        for p in report["problems"]
    )
    assert report["grid"]["extent"] == "regional" and report["grid"]["lon"] == [0.0, 135.0]
    clean = check_store(write_store(_sample(), tmp_path / "ok.zarr"))
    assert clean["grid"] == {
        "extent": "global",
        "lat": [-78.75, 78.75],
        "lon": [0.0, 337.5],
        "lon_step": 22.5,
    }
    assert clean["recorded_coverage"] is None  # the sample writes no coverage record


def test_recorded_coverage_is_checked_against_the_store(tmp_path: Path) -> None:
    record = {"time_steps": {"found": 3, "expected": 4}, "extent": "global", "area": None}
    ds = _sample().assign_attrs(coverage=json.dumps(record))
    report = check_store(write_store(ds, tmp_path / "liar.zarr"), expected_times=TIMES)
    assert report["recorded_coverage"] == record
    assert any("records 3 time steps; the store has 4" in p for p in report["problems"])


def test_require_passed_lists_every_failing_store(tmp_path: Path) -> None:
    good = check_store(write_store(_sample(), tmp_path / "good.zarr"))
    ds = _sample()
    ds["u"].attrs["units"] = "knots"
    bad = check_store(write_store(ds, tmp_path / "bad.zarr"))
    gone = check_store(tmp_path / "gone.zarr")
    require_passed([good])
    with pytest.raises(QCError) as info:
        require_passed([good, bad, gone])
    message = str(info.value)
    assert "QC failed for 2 of 3 store(s)" in message
    assert f"{tmp_path / 'bad.zarr'}:" in message and "variable 'u' has units 'knots'" in message
    assert f"{tmp_path / 'gone.zarr'}:" in message
    assert f"{tmp_path / 'good.zarr'}:" not in message


def test_a_deleted_chunk_fails_qc_naming_store_variable_and_chunk(tmp_path: Path) -> None:
    path = write_store(_sample(), tmp_path / "a.zarr")
    (path / "2t" / "c" / "3" / "0" / "0").unlink()
    report = check_store(path, expected_times=TIMES)
    assert not report["passed"]
    assert any(
        str(path) in p and "'2t'" in p and "1 of 4 chunk(s) absent (2t/c/3/0/0)" in p
        for p in report["problems"]
    ), report["problems"]
    json.dumps(report, allow_nan=False)


def test_a_garbled_chunk_fails_qc_per_chunk_instead_of_crashing(tmp_path: Path) -> None:
    from eofm.data.ingest import qc_report
    from eofm.data.manifest import store_digest

    path = write_store(_sample(), tmp_path / "a.zarr")
    chunk = path / "t" / "c" / "2" / "0" / "0" / "0"
    chunk.write_bytes(b"\x00garbled" + chunk.read_bytes()[9:])
    (path / "tp" / "c" / "1" / "0" / "0").write_bytes(b"")  # truncated to nothing
    out = tmp_path / "qc.json"
    before = store_digest(path)
    report = qc_report(path, out, "2020-01", 6)
    assert store_digest(path) == before  # QC only reads
    assert not report["passed"]
    assert report["variables"]["t"]["kind"] == "unreadable"
    problems = "\n".join(report["problems"])
    assert f"{path}: variable 't' chunk t/c/2/0/0/0 cannot be decoded" in problems
    assert "'tp' chunk tp/c/1/0/0 cannot be decoded" in problems
    assert "t/c/1/0/0/0" not in problems  # only the broken chunks are named
    assert json.loads(out.read_text()) == report
    assert report["variables"]["2t"]["kind"] == "surface"  # the other variables still checked
