"""The NetCDF reader against real MERRA-2 and ERA-Interim files and synthetic layouts."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from eofm.data.gridded import open_gridded, standardise_gridded
from eofm.data.store import open_store, validate_gridded, write_store
from tests.fakes.realdata import real_file


def _open_raw(path: Path) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_dataset(path)


@pytest.mark.realdata
def test_merra2_is_rolled_and_flipped() -> None:
    path = real_file("merra2/M2T1NXSLV_temporal.nc4")
    with _open_raw(path) as raw, open_gridded(path) as ds:
        lon, lat = ds["lon"].values, ds["lat"].values
        assert ds["PS"].dims == ("time", "lat", "lon") and ds["PS"].shape == (2, 361, 576)
        assert lon[0] == 0.0 and lon[-1] == 359.375 and np.all(np.diff(lon) > 0)
        assert lat[0] == 90.0 and lat[-1] == -90.0 and np.all(np.diff(lat) < 0)
        assert ds["lon"].attrs["units"] == "degrees_east"
        assert ds["PS"].attrs["units"] == "Pa"
        assert ds["PS"].attrs["long_name"] == raw["PS"].attrs["long_name"]
        assert ds.attrs == raw.attrs
        # the same physical point keeps its value
        west = raw["PS"].sel(lon=-90.0, lat=45.0).values
        np.testing.assert_array_equal(ds["PS"].sel(lon=270.0, lat=45.0).values, west)
        # and the whole field is the same field, only reordered
        i0 = int(np.argmin(np.abs(raw["lon"].values)))
        expected = np.roll(raw["PS"].values, -i0, axis=-1)[:, ::-1, :]
        np.testing.assert_array_equal(ds["PS"].values, expected)
        np.testing.assert_array_equal(ds["time"].values, raw["time"].values)


@pytest.mark.realdata
def test_merra2_can_be_written_as_a_store(tmp_path: Path) -> None:
    path = real_file("merra2/M2T1NXSLV_temporal.nc4")
    with open_gridded(path) as ds:
        ds = ds.assign_attrs(source="merra2", source_url="https://goldsmr4.gesdisc.eosdis.nasa.gov")
        validate_gridded(ds, str(path))
        store = write_store(ds, tmp_path / "ps.zarr")
        with open_store(store) as back:
            np.testing.assert_array_equal(back["PS"].values, ds["PS"].values)
            assert back["PS"].encoding["chunks"] == (1, 361, 576)
            assert back["PS"].attrs["standard_name"] == "surface_pressure"


@pytest.mark.realdata
def test_era_interim_pressure_levels() -> None:
    path = real_file("era-interim/eraint_uvz.nc")
    with _open_raw(path) as raw, open_gridded(path) as ds:
        assert ds["z"].dims == ("month", "level", "lat", "lon")
        assert ds["level"].values.tolist() == [200, 500, 850]
        assert ds["level"].attrs["units"] == "hPa"
        assert ds["level"].attrs["standard_name"] == "air_pressure"
        lon, lat = ds["lon"].values, ds["lat"].values
        assert ds["lon"].dtype == np.float64 and lon.min() == 0.0 and lon.max() < 360
        assert np.all(np.diff(lon) > 0) and np.all(np.diff(lat) < 0) and lat[0] == 90.0
        assert ds["z"].attrs["units"] == raw["z"].attrs["units"]
        point = {"month": 7, "level": 500, "latitude": 45.0, "longitude": -90.0}
        expected = raw["z"].sel(point).values
        got = ds["z"].sel(month=7, level=500, lat=45.0, lon=270.0).values
        assert got == expected and 50000 < got < 60000


def _synthetic(**overrides) -> xr.Dataset:
    """An ERA5-CDS-like NetCDF layout: valid_time, pressure_level, ascending latitude."""
    lat = np.array([-45.0, 0.0, 45.0])
    lon = np.array([-90.0, 0.0, 90.0])
    times = pd.date_range("2020-01-01", periods=2, freq="6h").values
    plev = np.array([85000.0, 50000.0])
    data = np.arange(2 * 2 * 3 * 3, dtype=np.float32).reshape(2, 2, 3, 3)
    ds = xr.Dataset(
        {"t": (("valid_time", "plev", "latitude", "longitude"), data, {"units": "K"})},
        coords={
            "valid_time": times,
            "plev": ("plev", plev, {"units": "Pa"}),
            "latitude": lat,
            "longitude": lon,
        },
        attrs={"institution": "test"},
    )
    return ds.assign(**overrides)


def test_synthetic_names_units_and_order() -> None:
    raw = _synthetic().transpose("longitude", "latitude", "plev", "valid_time")
    ds = standardise_gridded(raw, "cds.nc")
    assert ds["t"].dims == ("time", "level", "lat", "lon")
    assert ds["level"].values.tolist() == [850.0, 500.0]
    assert ds["level"].attrs["units"] == "hPa"
    assert ds["lat"].values.tolist() == [45.0, 0.0, -45.0]
    # three columns 90° apart are a regional box across 0°: kept contiguous, not rolled
    assert ds["lon"].values.tolist() == [-90.0, 0.0, 90.0]
    assert ds["t"].attrs == {"units": "K"} and ds.attrs == {"institution": "test"}
    original = _synthetic()["t"].sel(valid_time=raw["valid_time"][1], plev=50000.0)
    np.testing.assert_array_equal(
        ds["t"].isel(time=1).sel(level=500.0, lat=-45.0, lon=-90.0).values,
        original.sel(latitude=-45.0, longitude=-90.0).values,
    )


def test_model_levels_are_not_renamed() -> None:
    raw = _synthetic().rename(plev="lev")
    raw["lev"].attrs = {"units": "layer"}
    ds = standardise_gridded(raw, "merra2_3d.nc")
    assert "lev" in ds.dims and "level" not in ds.dims
    assert ds["t"].dims == ("lev", "time", "lat", "lon")


def test_missing_lat_lon_names_the_file() -> None:
    raw = _synthetic().rename(latitude="y")
    with pytest.raises(ValueError, match=r"^cds\.nc: no lat coordinate"):
        standardise_gridded(raw, "cds.nc")
    with pytest.raises(FileNotFoundError, match=r"nothere\.nc"):
        open_gridded("nothere.nc")


def test_duplicate_longitudes_after_wrapping_are_refused() -> None:
    raw = _synthetic().assign_coords(longitude=[-180.0, 0.0, 180.0])
    with pytest.raises(ValueError, match=r"cds\.nc: longitudes repeat"):
        standardise_gridded(raw, "cds.nc")


# --------------------------------------------------------------------------- regional grids


def _cds_box(tmp_path: Path, lon: np.ndarray, name: str) -> Path:
    """A box 15° W – 5° E, 35–45° N at 0.25° as the new CDS writes an ``area=`` request:
    valid_time, latitude descending, longitude in the order given, t2m in K."""
    lat = np.arange(45.0, 34.99, -0.25)
    times = pd.date_range("2020-01-01", periods=2, freq="6h").values
    east = np.where(lon >= 180.0, lon - 360.0, lon)  # the value depends on the true position
    data = (280.0 + east[None, None, :] + 0.01 * lat[None, :, None]).repeat(2, axis=0)
    ds = xr.Dataset(
        {
            "t2m": (
                ("valid_time", "latitude", "longitude"),
                data.astype(np.float32),
                {"units": "K", "standard_name": "unknown", "long_name": "2 metre temperature"},
            )
        },
        coords={
            "valid_time": ("valid_time", times, {"standard_name": "time"}),
            "latitude": ("latitude", lat, {"units": "degrees_north"}),
            "longitude": ("longitude", lon, {"units": "degrees_east"}),
        },
        attrs={"GRIB_centre": "ecmf", "Conventions": "CF-1.7"},
    )
    path = tmp_path / name
    ds.to_netcdf(path)
    return path


BOX = np.round(np.arange(-15.0, 5.001, 0.25), 2)


@pytest.mark.parametrize(
    "lon",
    [BOX, np.sort(np.mod(BOX, 360.0))],
    ids=["cds-area-minus15-to-5", "split-across-the-seam-0-to-360"],
)
def test_regional_box_across_0_stays_contiguous(tmp_path: Path, lon: np.ndarray) -> None:
    path = _cds_box(tmp_path, lon, "box.nc")
    with open_gridded(path) as ds:
        got = ds["lon"].values
        np.testing.assert_allclose(got, BOX)
        assert np.all(np.diff(got) == 0.25)
        np.testing.assert_allclose(ds["t2m"].isel(time=0, lat=0).values, 280.0 + BOX + 0.45)
        store = write_store(
            ds.assign_attrs(source="cds", source_url="https://cds.climate.copernicus.eu"),
            tmp_path / "box.zarr",
        )
    with open_store(store) as back:
        np.testing.assert_allclose(back["lon"].values, BOX)
        # a block mean of two columns never mixes 5° E with 15° W
        pairs = back["t2m"].isel(time=0).coarsen(lon=2, boundary="trim").mean()
        assert np.all(np.abs(np.diff(pairs.isel(lat=0).values) - 0.5) < 1e-4)


def test_global_grid_still_rolls_to_0_360() -> None:
    lon = np.arange(-180.0, 180.0, 0.25)  # MERRA-2's and ERA-Interim's -180 .. 180 layout
    ds = xr.Dataset(
        {"t": (("latitude", "longitude"), lon[None, :].astype(np.float32), {"units": "K"})},
        coords={"longitude": lon, "latitude": [0.0]},
    )
    out = standardise_gridded(ds, "global.nc")
    assert out["lon"].values[0] == 0.0 and out["lon"].values[-1] == 359.75
    assert out["t"].sel(lon=270.0).item() == -90.0


def test_box_crossing_0_and_180_is_refused() -> None:
    lon = np.arange(100.0, 381.0, 10.0) % 360.0  # 100° E eastwards round to 20° E
    ds = xr.Dataset(
        {"t": (("lat", "lon"), np.zeros((1, lon.size), np.float32), {"units": "K"})},
        coords={"lon": lon, "lat": [0.0]},
    )
    with pytest.raises(ValueError, match=r"wide\.nc: the regional longitudes 100 \.\. 20"):
        standardise_gridded(ds, "wide.nc")


def test_uneven_longitudes_fail_the_store_contract(tmp_path: Path) -> None:
    lon = np.array([0.0, 0.25, 0.5, 1.0, 1.25])  # a column missing at 0.75
    ds = xr.Dataset(
        {"t": (("lat", "lon"), np.zeros((2, 5), np.float32), {"units": "K"})},
        coords={"lon": lon, "lat": [1.0, 0.0]},
    )
    ds["t"].attrs.update(standard_name="air_temperature", long_name="t")
    ds = standardise_gridded(ds, "gap.nc").assign_attrs(source="x", source_url="file://x")
    with pytest.raises(ValueError, match=r"'lon' must be evenly spaced.*between 0\.5 and 1"):
        write_store(ds, tmp_path / "gap.zarr")
    assert not (tmp_path / "gap.zarr").exists()


def test_a_file_without_lat_names_its_coordinates_and_variables(tmp_path):
    ds = xr.Dataset(
        {"pr": (("y", "x"), np.zeros((3, 4)), {"long_name": "precipitation", "units": "mm"})},
        coords={"y": np.arange(3.0), "x": np.arange(4.0)},
    )
    path = tmp_path / "projected.nc"
    ds.to_netcdf(path)
    with pytest.raises(ValueError) as err:
        open_gridded(path)
    message = str(err.value)
    assert message.startswith(f"{path}: no lat coordinate; expected one of")
    assert "the file has coordinates ['x', 'y'] and variables: pr (long_name" in message
    assert "units 'mm')" in message and "pr (long_name 'precipitation'" in message
