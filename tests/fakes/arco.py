"""A tiny ARCO-ERA5-like Zarr store served over HTTP on 127.0.0.1.

It copies what matters of ``gs://gcp-public-data-arco-era5/ar/full_37-1h-0p25deg-...``:
long CDS variable names, dims (time, level, latitude, longitude) with latitude
descending 90..-90 (poles included, 721-row style), hourly times pre-allocated beyond
``valid_time_stop`` (those chunks are simply absent, so they read as NaN), the
``valid_time_*`` and ``last_updated`` attributes, one time step per chunk, and
consolidated metadata so a client never needs a directory listing. Values are a
deterministic function of (variable, time, level, lat, lon), so tests can recompute
the expected 6 h sums from the hourly data.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from tests.fakes.http_server import FakeServer

SURFACE = (
    "2m_temperature",
    "10m_u_component_of_wind",
    "10m_v_component_of_wind",
    "mean_sea_level_pressure",
    "volumetric_soil_water_layer_1",
)
ACCUMULATED = ("total_precipitation", "runoff", "potential_evaporation")
PRESSURE = (
    "geopotential",
    "temperature",
    "u_component_of_wind",
    "v_component_of_wind",
    "specific_humidity",
)
INVARIANT = ("land_sea_mask", "geopotential_at_surface", "soil_type")
STORE = "ar/full_37-1h-0p25deg-chunk-1.zarr-v3"


def arco_dataset(
    start: str = "2020-01-31T00",
    hours: int = 24 * 6,
    valid_stop: str = "2020-02-03T23",
    levels: tuple[int, ...] = (250, 500, 850, 1000),
    nlat: int = 9,
    nlon: int = 16,
) -> xr.Dataset:
    """The whole (pre-allocated) store as an in-memory dataset; values past
    ``valid_stop`` are NaN, as ARCO's unwritten chunks read."""
    time = np.datetime64(start, "ns") + np.arange(hours) * np.timedelta64(1, "h")
    lat = np.linspace(90.0, -90.0, nlat)
    lon = np.arange(nlon) * (360.0 / nlon)
    hour = (time - time[0]) / np.timedelta64(1, "h")
    t3 = hour[:, None, None]
    la = lat[None, :, None]
    lo = lon[None, None, :]
    data: dict[str, tuple] = {}
    for k, name in enumerate(SURFACE):
        values = 100.0 * (k + 1) + np.cos(np.deg2rad(la)) * 10 + np.sin(np.deg2rad(lo)) + t3 / 10
        data[name] = (("time", "latitude", "longitude"), values.astype(np.float32))
    for k, name in enumerate(ACCUMULATED):
        # hourly accumulations: distinct per hour so a wrong window gives a wrong sum
        values = 1e-4 * (k + 1) * (1.0 + (t3 % 7)) * (1.5 + np.cos(np.deg2rad(la + lo)))
        data[name] = (("time", "latitude", "longitude"), values.astype(np.float32))
    lev = np.asarray(levels, dtype=np.int64)
    for k, name in enumerate(PRESSURE):
        values = (
            (k + 1) * 10.0
            + lev[None, :, None, None] / 100.0
            + np.cos(np.deg2rad(lat))[None, None, :, None]
            + hour[:, None, None, None] / 24.0
            + 0.0 * lon[None, None, None, :]
        )
        data[name] = (("time", "level", "latitude", "longitude"), values.astype(np.float32))
    for k, name in enumerate(INVARIANT):
        values = (k + 1.0) * (np.cos(np.deg2rad(la + lo)) > 0.5) + 0.0 * t3
        data[name] = (("time", "latitude", "longitude"), values.astype(np.float32))
    ds = xr.Dataset(
        data,
        coords={
            "time": time,
            "level": ("level", lev, {"units": "millibars", "long_name": "pressure_level"}),
            "latitude": ("latitude", lat, {"units": "degrees_north"}),
            "longitude": ("longitude", lon, {"units": "degrees_east"}),
        },
    )
    stop = np.datetime64(valid_stop, "ns")
    for name in ds.data_vars:
        ds[name] = ds[name].where(ds.time <= stop)
        ds[name].attrs = {"long_name": name.replace("_", " "), "units": "1"}
    ds.attrs = {
        "valid_time_start": str(np.datetime_as_string(time[0], unit="s")),
        "valid_time_stop": str(np.datetime_as_string(stop, unit="s")),
        "valid_time_stop_era5t": str(np.datetime_as_string(stop + np.timedelta64(5, "D"), "s")),
        "last_updated": "2026-01-01T00:00:00",
    }
    return ds


def write_arco_store(ds: xr.Dataset, path: Path) -> Path:
    """Write ``ds`` as Zarr v3, one hour per chunk, omitting chunks past valid_time_stop
    (ARCO pre-allocates but never writes them) and consolidating metadata."""
    shutil.rmtree(path, ignore_errors=True)
    encoding = {
        name: {"chunks": (1, *ds[name].shape[1:]), "write_empty_chunks": False}
        for name in ds.data_vars
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "consolidated metadata is not in the v3 spec"
        ds.to_zarr(path, zarr_format=3, consolidated=True, encoding=encoding, mode="w")
    return path


def serve_store(server: FakeServer, path: Path, prefix: str = STORE) -> str:
    """Serve every file of the store under ``prefix``; returns the store URL."""
    for file in sorted(path.rglob("*")):
        if file.is_file():
            server.add_file(f"{prefix}/{file.relative_to(path).as_posix()}", file.read_bytes())
    return f"{server.url}/{prefix}"


def chunk_path(variable: str, time_index: int, ndim: int, prefix: str = STORE) -> str:
    """Server path of one chunk (Zarr v3 default ``c/i/j/...`` keys, one step per chunk)."""
    return f"/{prefix}/{variable}/c/{time_index}" + "/0" * (ndim - 1)
