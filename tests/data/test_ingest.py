"""The data rules' steps on the sample: write a month, QC it, summarise the training period."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from eofm.config import Era5Settings
from eofm.data.ingest import (
    build_stats,
    ingest_sample_month,
    ingest_sample_static,
    qc_report,
    sample_grid,
)
from eofm.data.qc import QCError
from eofm.data.sample import SampleGrid, generate_month, month_times
from eofm.data.store import open_store
from eofm.io import read_json, write_json

GRID = SampleGrid(nlat=8, nlon=16, levels=(500, 850))
SEED = 7
MONTHS = ("2020-01", "2020-02")


@pytest.fixture(scope="module")
def months(tmp_path_factory) -> dict[str, Path]:
    """January and February of the sample, and the static fields, as the rules write them."""
    folder = tmp_path_factory.mktemp("ingest")
    paths = {m: ingest_sample_month(m, folder / f"{m}.zarr", GRID, SEED) for m in MONTHS}
    paths["static"] = ingest_sample_static(folder / "static.zarr", GRID, SEED)
    return paths


def test_sample_grid_reads_the_config_section():
    era5 = Era5Settings.from_dict({"grid": {"nlat": 8, "nlon": 16}, "levels": [500, 850]})
    assert sample_grid(era5) == SampleGrid(nlat=8, nlon=16, levels=(500, 850), step_hours=6)
    descending = dataclasses.replace(era5, levels=[850, 500])
    with pytest.raises(ValueError, match="strictly ascending pressure levels"):
        sample_grid(descending)


def test_a_month_is_written_as_the_generator_makes_it(months):
    ds = open_store(months["2020-01"])
    expected = generate_month("2020-01", GRID, SEED)
    np.testing.assert_array_equal(ds.time.values, month_times("2020-01", 6))
    assert ds.sizes == {"time": 124, "level": 2, "lat": 8, "lon": 16}
    assert set(ds.data_vars) == set(expected.data_vars)
    for name in expected.data_vars:
        xr.testing.assert_identical(ds[name].load(), expected[name])
    assert ds.attrs["source"] == expected.attrs["source"]
    assert "eofm_version" in ds.attrs


def test_static_fields_have_no_time(months):
    ds = open_store(months["static"])
    assert "time" not in ds.dims
    assert {"lsm", "z"} <= set(ds.data_vars)
    assert (ds.sizes["lat"], ds.sizes["lon"]) == (8, 16)


def test_qc_report_writes_what_it_returns(months, tmp_path):
    report = qc_report(months["2020-01"], tmp_path / "qc.json", "2020-01", 6)
    assert report["passed"] and report["coverage"]["expected"] == 124
    assert read_json(tmp_path / "qc.json") == report
    static = qc_report(months["static"], tmp_path / "static.json", None, 6)
    assert static["passed"] and static["coverage"] is None


def test_qc_report_names_the_time_steps_a_store_lacks(months, tmp_path):
    # checked against 3-hourly steps, the 6-hourly store lacks every other one
    report = qc_report(months["2020-01"], tmp_path / "qc.json", "2020-01", 3)
    assert not report["passed"]
    assert report["problems"] == [
        f"{months['2020-01']}: 124 of 248 expected time steps missing (expected every time "
        "step; missing 2020-01-01T03:00:00, 2020-01-01T09:00:00, 2020-01-01T15:00:00, "
        "2020-01-01T21:00:00, 2020-01-02T03:00:00 ...)"
    ]
    assert read_json(tmp_path / "qc.json")["passed"] is False


def test_statistics_cover_the_training_period_only(months, tmp_path):
    stores = [months["2020-01"], months["2020-02"]]
    reports = [tmp_path / f"{month}.json" for month in MONTHS]
    for store, report, month in zip(stores, reports, MONTHS, strict=True):
        qc_report(store, report, month, 6)
    stats = build_stats(
        stores,
        reports,
        "2020-01-01",
        "2020-01-31",
        ["tp", "swvl1"],
        tmp_path / "stats.json",
        tmp_path / "climatology.zarr",
    )
    assert read_json(tmp_path / "stats.json") == stats
    january = open_store(months["2020-01"])
    assert stats["n_times"] == 124  # January's steps; February's play no part
    t2m = stats["variables"]["2t"]
    assert t2m["mean"] == pytest.approx(float(january["2t"].astype(float).mean()), rel=1e-6)
    assert t2m["std"] == pytest.approx(float(january["2t"].astype(float).std()), rel=1e-4)

    climatology = open_store(tmp_path / "climatology.zarr")
    assert set(climatology.data_vars) == {"tp", "swvl1"}
    assert climatology["tp"].dims == ("hour", "lat", "lon")
    assert climatology.hour.values.tolist() == [0, 6, 12, 18]
    noon = january["tp"].sel(time=january.time.dt.hour == 12).mean("time")
    np.testing.assert_allclose(climatology["tp"].sel(hour=12), noon, rtol=1e-5)


def test_statistics_refuse_a_store_that_failed_qc(months, tmp_path):
    passed = {"store": str(months["2020-01"]), "passed": True, "problems": []}
    write_json(passed, tmp_path / "a.json")
    write_json(
        {"store": str(months["2020-02"]), "passed": False, "problems": ["t2m: 3 NaN values"]},
        tmp_path / "b.json",
    )
    message = r"QC failed for 1 of 2 store\(s\):\n.*2020-02\.zarr:\n  - t2m: 3 NaN"
    with pytest.raises(QCError, match=message):
        build_stats(
            [months["2020-01"], months["2020-02"]],
            [tmp_path / "a.json", tmp_path / "b.json"],
            "2020-01-01",
            "2020-01-31",
            ["tp"],
            tmp_path / "stats.json",
            tmp_path / "climatology.zarr",
        )
    assert not (tmp_path / "stats.json").exists()
    assert not (tmp_path / "climatology.zarr").exists()
