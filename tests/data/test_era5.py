"""ERA5 real routes (ARCO Zarr over HTTP, CDS API, local files) against fakes on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from eofm.config import Era5Cds, Era5Settings
from eofm.data.era5 import (
    accumulate,
    coarsen_grid,
    era5_valid_until,
    fetch_era5_month,
    fetch_era5_static,
)
from eofm.data.fetch import FetchError, RetryPolicy
from eofm.data.sample import month_times
from eofm.data.store import open_store, validate_gridded
from eofm.data.variables import ATMOSPHERIC, STATIC, SURFACE, TARGETS
from eofm.errors import ConfigError, QCError
from tests.fakes.arco import arco_dataset, chunk_path, serve_store, write_arco_store
from tests.fakes.cds import (
    FakeCDS,
    era5_netcdf,
    field_value,
    grid,
    write_grib,
    write_grib_accumulated,
    write_netcdf,
)
from tests.fakes.http_server import FakeServer
from tests.fakes.realdata import real_file

FAST = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.02, connect_timeout=2, read_timeout=5)
LEVELS = [250, 500, 850]
MONTH_VARS = [*SURFACE, *ATMOSPHERIC, *TARGETS]
ARCO_LONG = {
    "2t": "2m_temperature",
    "10u": "10m_u_component_of_wind",
    "10v": "10m_v_component_of_wind",
    "msl": "mean_sea_level_pressure",
    "z": "geopotential",
    "t": "temperature",
    "u": "u_component_of_wind",
    "v": "v_component_of_wind",
    "q": "specific_humidity",
    "tp": "total_precipitation",
    "ro": "runoff",
    "swvl1": "volumetric_soil_water_layer_1",
    "pev": "potential_evaporation",
}


def _store_files(path: Path) -> list[Path]:
    return [p for p in Path(path).rglob("*") if p.is_file()]


def _assert_month_contract(ds: xr.Dataset, month: str, step_hours: int, levels: list[int]):
    validate_gridded(ds, "test")
    assert list(ds.data_vars) == MONTH_VARS or set(ds.data_vars) == set(MONTH_VARS)
    np.testing.assert_array_equal(ds.time.values, month_times(month, step_hours))
    np.testing.assert_array_equal(ds.level.values, levels)
    for name in ATMOSPHERIC:
        assert ds[name].dims == ("time", "level", "lat", "lon")
    for name in (*SURFACE, *TARGETS):
        assert ds[name].dims == ("time", "lat", "lon")
    assert ds["tp"].attrs["units"] == "m" and ds["2t"].attrs["units"] == "K"
    assert all(ds[v].dtype == np.float32 for v in ds.data_vars)


# =========================================================================== ARCO


@pytest.fixture(scope="module")
def arco_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[xr.Dataset, Path]:
    # 2020-01-31 .. 2020-02-05 hourly, valid only through 2020-02-03T23
    truth = arco_dataset(
        start="2020-01-31T00", hours=24 * 6, valid_stop="2020-02-03T23", nlat=9, nlon=16
    )
    path = write_arco_store(truth, tmp_path_factory.mktemp("arco") / "store.zarr")
    return truth, path


@pytest.fixture()
def arco(arco_files):
    truth, path = arco_files
    with FakeServer() as server:
        url = serve_store(server, path)
        yield truth, server, url


def _era5(step_hours: int, **section) -> Era5Settings:
    """An ``era5`` section. The fakes hold a few days, so tests take longer steps than the
    workflow's 6 h (which the schema pins); the library takes any divisor of a day."""
    return dataclasses.replace(Era5Settings.from_dict(section), step_hours=step_hours)


def _arco_cfg(url: str, **extra) -> Era5Settings:
    # step_hours 24 on "2020-02" in a store valid until 02-03 (see short_month)
    return _era5(
        24, source="arco", levels=LEVELS, arco={"url": url, "storage_options": {}}, **extra
    )


@pytest.fixture()
def short_month(monkeypatch):
    """Make "month" 2020-02 mean its first three days, so the fake store stays tiny."""
    from eofm.data.era5 import arco, cds, local

    def three_days(month: str, step_hours: int) -> np.ndarray:
        full = month_times(month, step_hours)
        return full[full < full[0] + np.timedelta64(3, "D")]

    for route in (arco, cds, local):
        monkeypatch.setattr(route, "month_times", three_days)
    return three_days


def test_arco_month_matches_contract_and_6h_sums(arco, short_month, tmp_path):
    truth, _server, url = arco
    out = fetch_era5_month("2020-02", tmp_path / "m.zarr", _arco_cfg(url), FAST)
    ds = open_store(out).load()
    steps = short_month("2020-02", 24)
    validate_gridded(ds, "arco month")
    assert set(ds.data_vars) == set(MONTH_VARS)
    np.testing.assert_array_equal(ds.time.values, steps)
    np.testing.assert_array_equal(ds.level.values, LEVELS)
    assert ds.lat.values[0] == 90.0 and np.all(np.diff(ds.lat.values) < 0)
    assert ds["z"].dims == ("time", "level", "lat", "lon")
    assert ds["tp"].attrs["units"] == "m" and ds["t"].attrs["standard_name"] == "air_temperature"
    assert ds.attrs["source"] == "arco"
    assert ds.attrs["source_version"] == "full_37-1h-0p25deg-chunk-1.zarr-v3"
    assert ds.attrs["source_url"].startswith("http://127.0.0.1")
    # instantaneous values at the step, 6 h sums of the hourly values t-5h .. t
    for short, long in ARCO_LONG.items():
        if short in ("tp", "ro", "pev"):
            for t in steps:
                window = t - np.arange(6) * np.timedelta64(1, "h")
                expected = truth[long].sel(time=window).sum("time").values
                np.testing.assert_allclose(ds[short].sel(time=t).values, expected, rtol=1e-5)
        else:
            expected = truth[long].sel(time=steps)
            if "level" in expected.dims:
                expected = expected.sel(level=LEVELS)
            np.testing.assert_allclose(ds[short].values, expected.values, rtol=1e-6)
    # first step of February reaches back into 31 January 19..23 UTC
    feb1 = np.datetime64("2020-02-01T00", "ns")
    jan = truth["total_precipitation"].sel(time=slice("2020-01-31T19", "2020-01-31T23")).sum("time")
    expected = jan + truth["total_precipitation"].sel(time=feb1)
    np.testing.assert_allclose(ds["tp"].sel(time=feb1).values, expected.values, rtol=1e-5)


def test_arco_month_past_valid_time_stop_fails_and_writes_nothing(arco, tmp_path):
    _, _, url = arco
    out = tmp_path / "m.zarr"
    with pytest.raises(ValueError, match=r"2020-02.*valid_time_stop 2020-02-03T23"):
        fetch_era5_month("2020-02", out, _arco_cfg(url), FAST)  # full month: past 02-03
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_arco_valid_until(arco):
    _, _, url = arco
    assert era5_valid_until(_arco_cfg(url), FAST) == "2020-02-03T23:00:00"


def test_arco_transient_chunk_faults_are_retried(arco, short_month, tmp_path):
    truth, server, url = arco
    t_index = int(np.argmax(truth.time.values == np.datetime64("2020-02-02T00", "ns")))
    target = chunk_path("temperature", t_index, 4)
    server.fail(target, "503", "reset")
    out = fetch_era5_month("2020-02", tmp_path / "m.zarr", _arco_cfg(url), FAST)
    assert server.paths_requested().count(target) >= 3  # 503, reset, success
    ds = open_store(out)
    expected = truth["temperature"].sel(time="2020-02-02T00", level=LEVELS).values
    np.testing.assert_allclose(ds["t"].sel(time="2020-02-02T00").values, expected, rtol=1e-6)


def test_arco_persistent_500_is_fetch_error(arco, short_month, tmp_path):
    truth, server, url = arco
    t_index = int(np.argmax(truth.time.values == np.datetime64("2020-02-01T00", "ns")))
    server.fail(chunk_path("runoff", t_index, 3), *["500"] * 10)
    out = tmp_path / "m.zarr"
    with pytest.raises(FetchError) as info:
        fetch_era5_month("2020-02", out, _arco_cfg(url), FAST)
    message = str(info.value)
    assert "era5/arco" in message and url in message and "2020-02" in message
    assert "3 attempts" in message
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_arco_static(arco, tmp_path):
    truth, _, url = arco
    out = fetch_era5_static(tmp_path / "s.zarr", _arco_cfg(url), FAST)
    ds = open_store(out).load()
    validate_gridded(ds, "static")
    assert set(ds.data_vars) == set(STATIC)
    assert ds["z"].dims == ("lat", "lon") and "time" not in ds.dims
    assert ds["z"].attrs["standard_name"] == "surface_geopotential"
    np.testing.assert_allclose(
        ds["lsm"].values, truth["land_sea_mask"].isel(time=0).values, rtol=1e-6
    )


def test_arco_coarsen_drops_south_pole_row(arco, short_month, tmp_path):
    truth, _, url = arco
    out = fetch_era5_month("2020-02", tmp_path / "m.zarr", _arco_cfg(url, coarsen=2), FAST)
    ds = open_store(out).load()
    # 9 rows (90..-90 inclusive, like 721) -> 4 blocks, the -90 row dropped; 16 -> 8 columns
    assert ds.sizes["lat"] == 4 and ds.sizes["lon"] == 8
    np.testing.assert_allclose(ds.lat.values, [78.75, 33.75, -11.25, -56.25])
    t = np.datetime64("2020-02-01T00", "ns")
    block = truth["2m_temperature"].sel(time=t).values[:2, :2].mean()
    assert ds["2t"].sel(time=t).values[0, 0] == pytest.approx(block, rel=1e-6)
    assert ds.attrs["coarsen"] == 2


# =========================================================================== helpers


def test_accumulate_names_missing_hours():
    times = np.datetime64("2020-01-01T03", "ns") + np.arange(6) * np.timedelta64(1, "h")
    hourly = xr.DataArray(np.ones(6), dims="time", coords={"time": times}, name="tp")
    steps = np.array([np.datetime64("2020-01-01T08", "ns")])
    np.testing.assert_allclose(accumulate(hourly, steps, "w").values, [6.0])
    with pytest.raises(ValueError, match=r"'tp' lacks hourly values at 2020-01-01T02"):
        accumulate(hourly, np.array([np.datetime64("2020-01-01T07", "ns")]), "w")


def test_coarsen_grid_soil_type_is_mode():
    lat, lon = np.array([45.0, 15.0, -15.0]), np.array([0.0, 90.0, 180.0, 270.0])
    slt = np.array([[1, 1, 3, 2], [1, 2, 3, 3], [7, 7, 7, 7]], dtype=np.float32)
    ds = xr.Dataset(
        {"slt": (("lat", "lon"), slt), "lsm": (("lat", "lon"), (slt > 1).astype(np.float32))},
        coords={"lat": lat, "lon": lon},
    )
    out = coarsen_grid(ds, 2)
    np.testing.assert_array_equal(out["slt"].values, [[1, 3]])
    np.testing.assert_allclose(out["lsm"].values, [[0.25, 1.0]])
    np.testing.assert_allclose(out.lat.values, [30.0])


def test_unknown_source_is_clear(tmp_path):
    with pytest.raises(ConfigError, match=r"era5\.source: 'sample' has no fetch route.*'local'"):
        fetch_era5_month("2020-01", tmp_path / "x.zarr", Era5Settings(source="sample"), FAST)
    with pytest.raises(ConfigError, match=r"\['source'\]: 'ftp' is not one of"):
        Era5Settings.from_dict({"source": "ftp"})


def test_unordered_levels_name_the_key(tmp_path):
    settings = _era5(12, source="local", levels=[850, 500], local={"paths": ["x.nc"]})
    with pytest.raises(ConfigError, match=r"era5\.levels: expected ascending"):
        fetch_era5_month("2020-01", tmp_path / "x.zarr", settings, FAST)


# =========================================================================== local files


def _local(**local) -> Era5Settings:
    return _era5(12, source="local", levels=LEVELS, local=local)


LOCAL_CFG = _local()


def _write_month_files(tmp_path: Path, month: str, cfg: Era5Settings, legacy_tail: bool = True):
    """Files as the CDS would deliver them for ``month`` (new layout; the previous day's
    hours in the legacy layout, to prove both are read together)."""
    from eofm.data.era5.cds import cds_requests

    paths = []
    netcdf = dataclasses.replace(cfg, cds=Era5Cds(data_format="netcdf"))
    for label, _, request in cds_requests(month, netcdf):
        legacy = legacy_tail and label == "accumulated-previous-day"
        ds = era5_netcdf(request, 8, 16, legacy=legacy)
        paths.append(write_netcdf(ds, tmp_path / f"{label}.nc"))
    return paths


def _expected_from_netcdf(ds: xr.Dataset, month: str, step_hours: int) -> None:
    """The store's values equal field_value at the steps, and 6 h sums of hourly values."""
    steps = month_times(month, step_hours)
    lat, lon = grid(8, 16)
    order = np.argsort(lon)
    np.testing.assert_allclose(ds.lat.values, lat)
    np.testing.assert_allclose(
        ds["2t"].values, field_value("t2m", steps, None, lat, lon)[..., order], rtol=1e-6
    )
    np.testing.assert_allclose(ds["q"].values, field_value("q", steps, LEVELS, lat, lon), rtol=1e-6)
    for t in steps[:3]:
        window = t - np.arange(6) * np.timedelta64(1, "h")
        expected = field_value("tp", window, None, lat, lon).sum(axis=0)
        np.testing.assert_allclose(ds["tp"].sel(time=t).values, expected, rtol=1e-5)


def test_local_new_and_legacy_netcdf(tmp_path):
    _write_month_files(tmp_path, "2020-02", LOCAL_CFG)
    cfg = _local(paths=[str(tmp_path / "*.nc")])
    out = fetch_era5_month("2020-02", tmp_path / "out" / "m.zarr", cfg, FAST)
    ds = open_store(out).load()
    _assert_month_contract(ds, "2020-02", 12, LEVELS)
    assert ds.attrs["source"] == "local"
    checksums = json.loads(ds.attrs["input_checksums"])
    assert set(checksums) == {
        "instant.nc",
        "accumulated.nc",
        "accumulated-previous-day.nc",
        "pressure.nc",
    }
    _expected_from_netcdf(ds, "2020-02", 12)


def test_local_missing_variable_names_file_and_variable(tmp_path):
    paths = _write_month_files(tmp_path, "2020-02", LOCAL_CFG)
    cfg = _local(paths=[str(p) for p in paths if "pressure" not in p.name])
    out = tmp_path / "m.zarr"
    with pytest.raises(QCError) as err:
        fetch_era5_month("2020-02", out, cfg, FAST)
    message = str(err.value)
    assert "era5/local (2020-02): the files [" in message and "instant.nc" in message
    assert "lack variable(s) ['z', 'u', 'v', 't', 'q'] of the 13 the store needs" in message
    assert "they have ['msl', 'pev', 'ro', 'swvl1', 't2m', 'tp', 'u10', 'v10']" in message
    assert "'z': ['z', 'geopotential']" in message and "era5.local.variables" in message
    assert not out.exists()


def test_local_missing_previous_hours_is_clear(tmp_path):
    paths = _write_month_files(tmp_path, "2020-02", LOCAL_CFG)
    cfg = _local(paths=[str(p) for p in paths if "previous" not in p.name])
    with pytest.raises(
        QCError,
        match=r"variable 'tp' in \[.*accumulated\.nc'\] has 343 of 348 hourly values its 6 h "
        r"sums need \(first missing 2020-01-31T19:00:00;.* reaches back to 2020-01-31T19",
    ):
        fetch_era5_month("2020-02", tmp_path / "m.zarr", cfg, FAST)


def test_local_no_files_match(tmp_path):
    cfg = _local(paths=[str(tmp_path / "none-*.nc")])
    with pytest.raises(FileNotFoundError, match=r"era5.local.paths: no files match"):
        fetch_era5_month("2020-02", tmp_path / "m.zarr", cfg, FAST)


def test_local_grib(tmp_path, short_month):
    steps = short_month("2020-01", 12)
    lat, lon = grid(5, 8)
    records = []
    for t in steps:
        records.append(("2t", "surface", 0, t, field_value("t2m", t[None], None, lat, lon)[0]))
        for p in (500, 850):
            values = field_value("t", t[None], [p], lat, lon)[0, 0]
            records.append(("t", "isobaricInhPa", p, t, values))
    path = write_grib(tmp_path / "era5.grib", records)
    cfg = _era5(
        12,
        source="local",
        levels=[500, 850],
        local={"paths": [str(path)], "variables": ["2t", "t"]},
    )
    out = fetch_era5_month("2020-01", tmp_path / "m.zarr", cfg, FAST)
    ds = open_store(out).load()
    validate_gridded(ds, "grib")
    assert set(ds.data_vars) == {"2t", "t"}
    np.testing.assert_array_equal(ds.time.values, steps)
    np.testing.assert_array_equal(ds.level.values, [500, 850])
    np.testing.assert_allclose(
        ds["2t"].values, field_value("t2m", steps, None, lat, lon), rtol=1e-4
    )
    np.testing.assert_allclose(
        ds["t"].values, field_value("t", steps, [500, 850], lat, lon), rtol=1e-4
    )


def test_local_grib_accumulations_in_forecast_layout_sum_to_6h(tmp_path):
    """tp as the CDS sends it in GRIB: hourly accumulations of the 06/18 UTC forecasts
    (time × step); the store holds the sum of the six hours ending at each step."""
    lat, lon = grid(5, 8)
    hours = np.arange(
        np.datetime64("2019-12-31T19", "h"), np.datetime64("2020-02-01T00", "h")
    ).astype("datetime64[ns]")
    hourly = 1e-4 * (1.0 + field_value("tp", hours, None, lat, lon) % 3.0)
    path = write_grib_accumulated(tmp_path / "tp.grib", "tp", hours, hourly)
    cfg = Era5Settings.from_dict(
        {"source": "local", "levels": [500], "local": {"paths": [str(path)], "variables": ["tp"]}}
    )
    out = fetch_era5_month("2020-01", tmp_path / "m.zarr", cfg, FAST)
    tp = open_store(out)["tp"].load()
    steps = month_times("2020-01", 6)
    np.testing.assert_array_equal(tp.time.values, steps)
    index = {t: k for k, t in enumerate(hours)}
    expected = np.stack(
        [hourly[[index[t - np.timedelta64(h, "h")] for h in range(6)]].sum(0) for t in steps]
    )
    np.testing.assert_allclose(tp.values, expected, rtol=1e-5)


@pytest.mark.realdata
def test_local_era_interim_real_file(tmp_path):
    path = real_file("era-interim/eraint_uvz.nc")
    cfg = _era5(
        24 * 31,  # the file is a monthly climatology: one step for January
        source="local",
        levels=[200, 500, 850],
        local={"paths": [str(path)], "variables": ["z", "u", "v"]},
    )
    out = fetch_era5_month("2001-01", tmp_path / "m.zarr", cfg, FAST)
    ds = open_store(out).load()
    validate_gridded(ds, "era-interim")
    assert set(ds.data_vars) == {"z", "u", "v"}
    assert ds["z"].dims == ("time", "level", "lat", "lon")
    assert ds.sizes["lat"] == 241 and ds.sizes["lon"] == 480
    assert ds.lon.values[0] == 0.0 and ds.lon.values[-1] == 359.25
    assert ds.lat.values[0] == 90.0 and ds.lat.values[-1] == -90.0
    np.testing.assert_array_equal(ds.level.values, [200, 500, 850])
    assert ds["z"].attrs["units"] == "m2 s-2" and ds["u"].attrs["units"] == "m s-1"
    with xr.open_dataset(path) as raw:
        src = raw["z"].sel(month=1, level=500, latitude=45.0, longitude=-90.0).item()
    assert ds["z"].sel(level=500, lat=45.0, lon=270.0).item() == pytest.approx(src, rel=1e-6)
    # 500 hPa geopotential is ~5.5e4 m2 s-2: units pass through unchanged
    assert 4.5e4 < float(ds["z"].sel(level=500).mean()) < 6.0e4


def _cds_box_2t(path: Path, month: str, step_hours: int, lon: np.ndarray) -> Path:
    """Only 2 m temperature over 35–45° N, 15° W – 5° E at 0.25°, every step of ``month``,
    as the new CDS writes an ``area=[45, -15, 35, 5]`` NetCDF (valid_time, expver, number)."""
    times = month_times(month, step_hours)
    lat = np.arange(45.0, 34.99, -0.25)
    east = np.where(lon >= 180.0, lon - 360.0, lon)
    hours = ((times - times[0]) / np.timedelta64(1, "h")).astype(np.float64)
    t2m = 270.0 + 0.01 * hours[:, None, None] + east[None, None, :] + 0.01 * lat[None, :, None]
    ds = xr.Dataset(
        {
            "t2m": (
                ("valid_time", "latitude", "longitude"),
                t2m.astype(np.float32),
                {"units": "K", "long_name": "2 metre temperature", "GRIB_shortName": "2t"},
            )
        },
        coords={
            "valid_time": ("valid_time", times, {"standard_name": "time"}),
            "latitude": ("latitude", lat, {"units": "degrees_north"}),
            "longitude": ("longitude", lon, {"units": "degrees_east"}),
            "number": 0,
            "expver": ("valid_time", np.array(["0001"] * times.size)),
        },
        attrs={"GRIB_centre": "ecmf", "Conventions": "CF-1.7", "institution": "ECMWF"},
    )
    ds.to_netcdf(path)
    return path


BOX_LON = np.round(np.arange(-15.0, 5.001, 0.25), 2)


def test_local_one_variable_over_a_box_without_area_or_variables_fails(tmp_path):
    path = _cds_box_2t(tmp_path / "box.nc", "2020-02", 12, BOX_LON)
    out = tmp_path / "m.zarr"
    with pytest.raises(QCError) as err:
        fetch_era5_month("2020-02", out, _local(paths=[str(path)]), FAST)
    message = str(err.value)
    assert f"{path}: the files cover only lon -15 .. 5, lat 35 .. 45 (a regional grid)" in message
    assert "era5.local.area is not set, so the config expects the globe" in message
    # with the area but not the variables: the twelve missing ones are named
    with pytest.raises(
        QCError, match=r"lack variable\(s\) \['10u', '10v', 'msl', 'z'.* they have \['t2m'\]"
    ):
        fetch_era5_month("2020-02", out, _local(paths=[str(path)], area=[45, -15, 35, 5]), FAST)
    assert not out.exists()


@pytest.mark.parametrize(
    "lon", [BOX_LON, np.sort(np.mod(BOX_LON, 360.0))], ids=["cds-area", "split-0-360"]
)
def test_local_box_with_area_and_variables_is_a_regional_store(tmp_path, lon):
    from eofm.data.ingest import qc_report
    from eofm.data.manifest import write_manifest

    path = _cds_box_2t(tmp_path / "box.nc", "2020-02", 12, lon)
    cfg = _local(paths=[str(path)], variables=["2t"], area=[45, -15, 35, 5])
    out = fetch_era5_month("2020-02", tmp_path / "m.zarr", cfg, FAST)
    ds = open_store(out).load()
    np.testing.assert_allclose(ds["lon"].values, BOX_LON)
    assert ds["lat"].values[0] == 45.0 and ds["lat"].values[-1] == 35.0
    assert list(ds.data_vars) == ["2t"] and ds.sizes["time"] == 58
    np.testing.assert_allclose(ds["2t"].isel(time=0, lat=0).values, 270.0 + BOX_LON + 0.45)
    coverage = json.loads(ds.attrs["coverage"])
    assert coverage == {
        "area": [45.0, -15.0, 35.0, 5.0],
        "extent": "regional",
        "lat": [35.0, 45.0],
        "lon": [-15.0, 5.0],
        "lon_step": 0.25,
        "time_steps": {"expected": 58, "found": 58, "first_missing": None, "step_hours": 12},
        "variables": ["2t"],
    }
    report = qc_report(out, tmp_path / "qc.json", "2020-02", 12)
    assert report["passed"], report["problems"]
    assert report["recorded_coverage"] == coverage
    assert report["grid"]["extent"] == "regional" and report["grid"]["lon"] == [-15.0, 5.0]
    manifest = write_manifest(out, tmp_path / "m.json", "era5", "2020-02")
    assert manifest["coverage"] == coverage


def test_local_global_files_are_cut_to_the_area_across_0(tmp_path):
    lon = np.arange(0.0, 360.0, 0.25)
    path = _cds_box_2t(tmp_path / "globe.nc", "2020-02", 24, lon)  # lat 35..45 only
    cfg = _era5(
        24,
        source="local",
        local={"paths": [str(path)], "variables": ["2t"], "area": [44, -2, 36, 3]},
    )
    ds = open_store(fetch_era5_month("2020-02", tmp_path / "m.zarr", cfg, FAST))
    np.testing.assert_allclose(ds["lon"].values, np.arange(-2.0, 3.001, 0.25))
    assert ds["lat"].values[0] == 44.0 and ds["lat"].values[-1] == 36.0
    np.testing.assert_allclose(ds["2t"].isel(time=0, lat=0).values, 270.0 + ds["lon"].values + 0.44)
    # an area the files do not reach is refused, naming what they cover
    cfg = _era5(
        24,
        source="local",
        local={"paths": [str(path)], "variables": ["2t"], "area": [50, -2, 36, 3]},
    )
    with pytest.raises(
        QCError,
        match=r"cover only lon 0 \.\. 359\.75, lat 35 \.\. 45.*"
        r"era5\.local\.area \[50, -2, 36, 3\].*on the north",
    ):
        fetch_era5_month("2020-02", tmp_path / "n.zarr", cfg, FAST)


def test_local_missing_steps_name_files_month_and_counts(tmp_path):
    path = _cds_box_2t(tmp_path / "box.nc", "2020-02", 12, BOX_LON)
    with xr.open_dataset(path) as full:
        part = full.isel(valid_time=slice(0, 1)).load()
    part.to_netcdf(tmp_path / "one.nc")
    cfg = _local(paths=[str(tmp_path / "one.nc")], variables=["2t"], area=[45, -15, 35, 5])
    with pytest.raises(
        QCError,
        match=r"era5/local \(2020-02\): variable '2t' in \[.*one\.nc'\] has 1 of 58 steps of "
        r"2020-02 \(first missing 2020-02-01T12:00:00;",
    ):
        fetch_era5_month("2020-02", tmp_path / "m.zarr", cfg, FAST)
    assert not (tmp_path / "m.zarr").exists()


def test_local_static_names_the_fields_and_why(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"era5\.local\.static_paths: .*got \[\] \(files with lsm, z and slt: "
        r"the weather backbones",
    ):
        fetch_era5_static(tmp_path / "s.zarr", _local(paths=["x.nc"]), FAST)
    lat, lon = grid(5, 8)
    only_lsm = xr.Dataset(
        {"lsm": (("latitude", "longitude"), np.zeros((5, 8), np.float32), {"units": "(0 - 1)"})},
        coords={"latitude": lat, "longitude": lon},
    )
    only_lsm.to_netcdf(tmp_path / "lsm.nc")
    cfg = _local(static_paths=[str(tmp_path / "lsm.nc")])
    with pytest.raises(QCError) as err:
        fetch_era5_static(tmp_path / "s.zarr", cfg, FAST)
    message = str(err.value)
    assert "era5/local (static): the static files [" in message and "lsm.nc" in message
    assert "lack ['z', 'slt']" in message and "they have ['lsm']" in message
    assert "z (surface geopotential) and slt (soil type) as static inputs" in message
    assert not (tmp_path / "s.zarr").exists()


def test_coarsen_refuses_uneven_longitudes():
    ds = xr.Dataset(
        {"2t": (("lat", "lon"), np.zeros((2, 4), np.float32))},
        coords={"lat": [1.0, 0.0], "lon": [0.0, 1.0, 2.0, 10.0]},
    )
    with pytest.raises(ValueError, match=r"not evenly spaced.*across the gap"):
        coarsen_grid(ds, 2)


# =========================================================================== CDS

SECRET = "planted-0f3c-cds-token-do-not-log"


@pytest.fixture()
def cds(monkeypatch, tmp_path):
    with FakeServer() as server:
        fake = FakeCDS(server, SECRET)
        monkeypatch.setenv("CDSAPI_URL", fake.api_url)
        monkeypatch.setenv("CDSAPI_KEY", SECRET)
        monkeypatch.setenv("CDSAPI_RC", str(tmp_path / "no-cdsapirc"))
        yield fake


def _cds_cfg(**cds) -> Era5Settings:
    return _era5(
        12,
        source="cds",
        levels=LEVELS,
        cds={"data_format": "netcdf", "sleep_max": 0.01, "progress": False, **cds},
    )


def test_cds_month_end_to_end_without_leaking_the_key(cds, short_month, tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    out = fetch_era5_month("2020-02", tmp_path / "m.zarr", _cds_cfg(area=[90, 0, -90, 360]), FAST)
    ds = open_store(out).load()
    validate_gridded(ds, "cds")
    assert set(ds.data_vars) == set(MONTH_VARS)
    np.testing.assert_array_equal(ds.time.values, short_month("2020-02", 12))
    assert ds.attrs["source"] == "cds"
    assert "reanalysis-era5-single-levels" in ds.attrs["source_version"]
    assert "reanalysis-era5-pressure-levels" in ds.attrs["source_version"]
    assert len(json.loads(ds.attrs["input_checksums"])) == 4
    lat, lon = grid(8, 16)
    t = short_month("2020-02", 12)[0]
    window = t - np.arange(6) * np.timedelta64(1, "h")  # reaches into 31 January
    np.testing.assert_allclose(
        ds["tp"].sel(time=t).values, field_value("tp", window, None, lat, lon).sum(0), rtol=1e-5
    )
    # the requests: new format, one per part, pressure levels as strings, area passed on
    by_collection = {c: r for c, r in cds.submitted}
    pressure = by_collection["reanalysis-era5-pressure-levels"]
    assert pressure["pressure_level"] == ["250", "500", "850"]
    assert pressure["time"] == ["00:00", "12:00"] and pressure["download_format"] == "unarchived"
    assert all(r["area"] == [90.0, 0.0, -90.0, 360.0] for _, r in cds.submitted)
    # the key went only into the PRIVATE-TOKEN header
    captured = capfd.readouterr()
    assert SECRET not in caplog.text and SECRET not in captured.out + captured.err
    for file in _store_files(out):
        assert SECRET.encode() not in file.read_bytes()
    assert list(tmp_path.iterdir()) == [out]  # the temporary download folder is gone


def test_cds_zip_and_500_on_submit_are_handled(cds, short_month, tmp_path):
    cds.zip_netcdf = True
    cds.statuses = ["successful"]
    submit = "/api/retrieve/v1/processes/reanalysis-era5-pressure-levels/execution"
    cds.server.fail(submit, "500", "503")
    out = fetch_era5_month("2020-02", tmp_path / "m.zarr", _cds_cfg(), FAST)
    assert cds.server.paths_requested("POST").count(submit) == 3
    ds = open_store(out)
    assert set(ds.data_vars) == set(MONTH_VARS)


def test_cds_failed_job_is_permanent_fetch_error(cds, short_month, tmp_path):
    cds.statuses = ["successful"]
    cds.fail_next_job = "Request too large. Cost 64512 over 60000 limit"
    out = tmp_path / "m.zarr"
    with pytest.raises(FetchError) as info:
        fetch_era5_month("2020-02", out, _cds_cfg(), FAST)
    message = str(info.value)
    assert "era5/cds" in message and "2020-02" in message and "64512 over 60000" in message
    assert SECRET not in message
    assert len(cds.submitted) == 1  # not retried
    assert list(tmp_path.iterdir()) == []


def test_cds_without_credentials_fails_fast(monkeypatch, tmp_path):
    monkeypatch.delenv("CDSAPI_URL", raising=False)
    monkeypatch.delenv("CDSAPI_KEY", raising=False)
    monkeypatch.setenv("CDSAPI_RC", str(tmp_path / "absent"))
    with pytest.raises(RuntimeError, match=r"CDSAPI_URL.*CDSAPI_KEY.*cdsapirc"):
        fetch_era5_month("2020-02", tmp_path / "m.zarr", _cds_cfg(), FAST)


def test_cds_static(cds, tmp_path):
    cds.statuses = ["successful"]
    out = fetch_era5_static(tmp_path / "s.zarr", _cds_cfg(), FAST)
    ds = open_store(out).load()
    validate_gridded(ds, "cds static")
    assert set(ds.data_vars) == set(STATIC) and "time" not in ds.dims
    assert cds.submitted[0][1]["variable"] == ["land_sea_mask", "geopotential", "soil_type"]


def test_write_steps_blocks_give_the_same_store(tmp_path):
    """A month written a few steps at a time (bounded memory) equals one written at once."""
    from eofm.data.era5.common import write_steps
    from eofm.data.sample import SampleGrid, generate_month

    month = generate_month("2020-02", SampleGrid(8, 16, levels=(500, 850)), seed=3)
    fields = {name: month[name] for name in MONTH_VARS}
    step_bytes = sum(da.isel(time=0).size * 4 for da in fields.values())
    stores = {}
    for label, budget in (("blocks", 3 * step_bytes), ("whole", 1 << 30)):
        stores[label] = open_store(
            write_steps(
                fields,
                tmp_path / f"{label}.zarr",
                factor=1,
                where="test",
                provenance={"source": "test", "source_url": "none"},
                budget_bytes=budget,
            )
        ).load()
    assert stores["blocks"].sizes["time"] == month.sizes["time"] == 116
    for name in MONTH_VARS:
        np.testing.assert_array_equal(stores["blocks"][name].values, stores["whole"][name].values)


def test_a_gridmet_file_is_named_with_what_it_holds(tmp_path):
    """A file of another product: the message lists its variables with names and units."""
    days = np.arange("2020-02-01", "2020-03-01", dtype="datetime64[D]").astype("datetime64[ns]")
    lat, lon = np.linspace(90.0, -90.0, 5), np.arange(0.0, 360.0, 45.0)  # a global grid
    gridmet = xr.Dataset(
        {
            "air_temperature": (
                ("day", "lat", "lon"),
                np.full((days.size, 5, 8), 280.0, np.float32),
                {
                    "long_name": "tmmx",
                    "standard_name": "air_temperature",
                    "description": "Daily Maximum Temperature (2m)",
                    "units": "K",
                },
            )
        },
        coords={"day": days, "lat": lat, "lon": lon},
    )
    path = tmp_path / "tmmx_2020.nc"
    gridmet.to_netcdf(path)
    out = tmp_path / "m.zarr"
    with pytest.raises(ValueError) as err:
        fetch_era5_month("2020-02", out, _local(paths=[str(path)]), FAST)
    message = str(err.value)
    assert str(path) in message and "lack variable(s) ['2t', '10u'" in message
    # the standard_name equal to the variable's name is not repeated
    held = "air_temperature (long_name 'tmmx', description 'Daily Maximum Temperature (2m)', "
    assert f"they have ['air_temperature'] (tmmx_2020.nc: {held}units 'K'))" in message
    assert not out.exists()


@pytest.mark.slow  # writes a whole month first (about a minute on a busy machine)
def test_a_truncated_file_fails_with_one_console_line_and_the_store_stays(tmp_path, capfd):
    from eofm.data.manifest import store_digest
    from eofm.logs import job_log

    paths = _write_month_files(tmp_path, "2020-02", LOCAL_CFG)
    cfg = _local(paths=[str(p) for p in paths])
    out = tmp_path / "m.zarr"
    fetch_era5_month("2020-02", out, cfg, FAST)
    before = store_digest(out)
    victim = next(p for p in paths if "instant" in p.name)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    log = tmp_path / "job.log"
    capfd.readouterr()
    with pytest.raises(ValueError), job_log(log):
        fetch_era5_month("2020-02", out, cfg, FAST)
    console = capfd.readouterr().err.strip().splitlines()
    assert console[0].startswith(f"eofm: ValueError: {victim}: cannot open as ERA5 NetCDF/GRIB")
    assert console[-1] == f"eofm: job failed, traceback in {log}"
    assert "Traceback" in log.read_text()
    assert store_digest(out) == before
