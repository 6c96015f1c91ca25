"""Normalisation statistics and climatology: training period only, streamed, JSON-ready."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from eofm.data.sample import SampleGrid, generate_period, generate_static, month_times
from eofm.data.stats import compute_climatology, compute_stats, load_stats
from eofm.data.store import open_store, validate_gridded, write_store
from eofm.io import write_json

GRID = SampleGrid(nlat=8, nlon=16, levels=(500, 850))
TIMES = month_times("2020-01", 6)  # 124 steps


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    """Jan 1-3 and Jan 4-6 as two stores (training), Jan 7-8 as a third (validation)."""
    root = tmp_path_factory.mktemp("stats")
    parts = {"a": TIMES[0:12], "b": TIMES[12:24], "late": TIMES[24:32]}
    paths = {}
    for key, times in parts.items():
        paths[key] = write_store(generate_period(times, GRID, seed=4), root / f"{key}.zarr")
    paths["static"] = write_store(generate_static(GRID, 4), root / "static.zarr")
    return paths


def _reference(times: np.ndarray) -> xr.Dataset:
    return generate_period(times, GRID, seed=4)


def test_stats_match_numpy_over_the_period(stores) -> None:
    paths = [stores["a"], stores["b"], stores["late"]]
    stats = compute_stats(paths, "2020-01-02", "2020-01-05")
    ref = _reference(TIMES[4:20])  # Jan 2 00 UTC .. Jan 5 18 UTC: a date stop is the whole day
    assert stats["n_times"] == 16
    assert stats["period"] == {"start": "2020-01-02", "stop": "2020-01-05"}
    assert stats["stores"] == [str(p) for p in paths]
    assert set(stats["variables"]) == set(ref.data_vars)
    t = stats["variables"]["t"]
    assert t["units"] == "K" and t["levels"] == [500, 850]
    values = ref["t"].values.astype(np.float64)
    np.testing.assert_allclose(t["mean"], values.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(t["std"], values.std(axis=(0, 2, 3)), rtol=1e-9)
    msl = stats["variables"]["msl"]
    assert msl["levels"] is None and isinstance(msl["mean"], float)
    assert msl["mean"] == pytest.approx(ref["msl"].values.astype(np.float64).mean(), rel=1e-12)
    assert msl["std"] == pytest.approx(ref["msl"].values.astype(np.float64).std(), rel=1e-9)
    json.loads(json.dumps(stats))  # plain JSON, no numpy types


def test_values_outside_the_period_do_not_matter(stores, tmp_path: Path) -> None:
    late = open_store(stores["late"]).load()
    spoiled = late.copy(deep=True)
    for name in spoiled.data_vars:
        spoiled[name].values[:] = spoiled[name].values * 3 + 1000
    spoiled_path = write_store(spoiled, tmp_path / "late_spoiled.zarr")
    # and inside one store: the first day of "a" is outside the period
    a = open_store(stores["a"]).load()
    a_spoiled = a.copy(deep=True)
    a_spoiled["2t"].values[:4] = np.nan
    a_spoiled["t"].values[:4] = 1e6
    a_spoiled_path = write_store(a_spoiled, tmp_path / "a_spoiled.zarr")

    clean = compute_stats([stores["a"], stores["b"], stores["late"]], "2020-01-02", "2020-01-06")
    dirty = compute_stats([a_spoiled_path, stores["b"], spoiled_path], "2020-01-02", "2020-01-06")
    assert clean["variables"] == dirty["variables"]
    assert clean["n_times"] == dirty["n_times"] == 20
    # while the spoiled values do count once the period includes them
    wider = compute_stats([a_spoiled_path, stores["b"], spoiled_path], "2020-01-02", "2020-01-08")
    assert wider["variables"]["t"]["mean"] != clean["variables"]["t"]["mean"]


def test_datetime_bounds_are_inclusive(stores) -> None:
    stats = compute_stats([stores["a"]], "2020-01-01T06:00", "2020-01-02T06:00:00")
    assert stats["n_times"] == 5  # 06, 12, 18, 00, 06
    assert stats["period"]["stop"] == "2020-01-02T06:00:00"


def test_subset_static_and_errors(stores) -> None:
    stats = compute_stats([stores["a"]], "2020-01-01", "2020-01-01", variables=["tp", "q"])
    assert set(stats["variables"]) == {"tp", "q"} and stats["n_times"] == 4
    static = compute_stats([stores["static"]], "2020-01-01", "2020-01-31")
    lsm = generate_static(GRID, 4)["lsm"].values
    assert static["variables"]["lsm"]["mean"] == pytest.approx(lsm.mean())
    with pytest.raises(
        ValueError, match=r"no time step of stores .*a\.zarr.*2021-01-01\.\.2021-02-01"
    ):
        compute_stats([stores["a"]], "2021-01-01", "2021-02-01")
    with pytest.raises(ValueError, match=r"\['swh'\] not found in stores"):
        compute_stats([stores["a"]], "2020-01-01", "2020-01-02", variables=["tp", "swh"])
    with pytest.raises(ValueError, match="'z' is time-varying in one store and static"):
        compute_stats([stores["a"], stores["static"]], "2020-01-01", "2020-01-02")
    with pytest.raises(ValueError, match="after stop"):
        compute_stats([stores["a"]], "2020-01-03", "2020-01-02")


def test_load_stats_round_trip_and_errors(stores, tmp_path: Path) -> None:
    stats = compute_stats([stores["a"]], "2020-01-01", "2020-01-03")
    path = write_json(stats, tmp_path / "stats.json")
    assert load_stats(path) == stats
    broken = json.loads(json.dumps(stats))
    broken["variables"]["t"]["std"] = [1.0]
    write_json(broken, tmp_path / "broken.json")
    with pytest.raises(ValueError, match=r"broken\.json: variable 't' std should list one value"):
        load_stats(tmp_path / "broken.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match=r"bad\.json"):
        load_stats(tmp_path / "bad.json")


def test_climatology_per_hour_of_day(stores, tmp_path: Path) -> None:
    paths = [stores["static"], stores["a"], stores["b"], stores["late"]]  # static: skipped
    clim = compute_climatology(paths, ["2t", "t"], "2020-01-01", "2020-01-06")
    assert clim["2t"].dims == ("hour", "lat", "lon")
    assert clim["t"].dims == ("hour", "level", "lat", "lon")
    assert clim["hour"].values.tolist() == [0, 6, 12, 18]
    assert clim["2t"].dtype == np.float32
    assert clim["2t"].attrs["units"] == "K" and clim["t"].attrs["long_name"] == "Temperature"
    assert clim.attrs["source"] == "sample" and clim.attrs["period_start"] == "2020-01-01"
    assert clim.attrs["period_stop"] == "2020-01-06"
    ref = _reference(TIMES[:24])["2t"]  # the late store is outside the period
    expected = ref.values.astype(np.float64)[ref["time"].dt.hour.values == 12].mean(axis=0)
    np.testing.assert_allclose(clim["2t"].sel(hour=12).values, expected, rtol=1e-6)
    # the diurnal cycle survives averaging
    assert float(np.abs(clim["2t"].sel(hour=12) - clim["2t"].sel(hour=0)).max()) > 1.0
    validate_gridded(clim, "clim")
    with open_store(write_store(clim, tmp_path / "clim.zarr")) as back:
        np.testing.assert_array_equal(back["t"].values, clim["t"].values)
    with pytest.raises(ValueError, match="no time step"):
        compute_climatology([stores["a"]], ["2t"], "2019-01-01", "2019-01-02")
    with pytest.raises(ValueError, match=r"\['sst'\] not found"):
        compute_climatology([stores["a"]], ["sst"], "2020-01-01", "2020-01-02")
    with pytest.raises(ValueError, match="no time step"):
        compute_climatology([stores["static"]], ["lsm"], "2020-01-01", "2020-01-02")
