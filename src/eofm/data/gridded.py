"""Read NetCDF files of real sources (ERA5, MERRA-2, ERA-Interim) into the store contract.

Real files disagree on coordinate names (latitude/lat, valid_time/time, pressure_level/
plev/isobaricInhPa/lev), longitude conventions (-180..180 for MERRA-2) and latitude order
(ascending for MERRA-2). Everything downstream assumes one layout, so it is fixed here,
once, without touching values or attributes.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

_LAT_NAMES = ("lat", "latitude")
_LON_NAMES = ("lon", "longitude")
_TIME_NAMES = ("time", "valid_time")
_LEVEL_NAMES = ("level", "pressure_level", "plev", "isobaricInhPa", "lev")
_HPA_UNITS = {"hpa", "mbar", "mb", "millibar", "millibars"}
_PA_UNITS = {"pa", "pascal", "pascals"}
_ORDER = ("time", "level", "lat", "lon")

_LAT_ATTRS = {"units": "degrees_north", "standard_name": "latitude"}
_LON_ATTRS = {"units": "degrees_east", "standard_name": "longitude"}
_LEVEL_ATTRS = {"units": "hPa", "standard_name": "air_pressure", "positive": "down"}


def open_gridded(path: str | os.PathLike) -> xr.Dataset:
    """Open a NetCDF file lazily and return it in the contract's layout."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: gridded NetCDF file not found")
    with warnings.catch_warnings():
        # float variables with a NaN _FillValue (ERA-Interim): harmless, NaN stays NaN
        warnings.filterwarnings("ignore", message=".*non-conforming '_FillValue'.*")
        ds = xr.open_dataset(p)
    try:
        out = standardise_gridded(ds, str(p))
    except BaseException:
        ds.close()
        raise
    out.set_close(ds.close)
    return out


def standardise_gridded(ds: xr.Dataset, where: str) -> xr.Dataset:
    """Rename coordinates, wrap longitudes to [0, 360), flip latitudes to descending and
    order dims (time, level, lat, lon); values and attributes are kept."""
    ds = ds.rename(_renames(ds, where))
    for name in ("lat", "lon"):
        if name not in ds.coords:
            raise ValueError(
                f"{where}: no {name} coordinate; expected one of "
                f"{_LAT_NAMES if name == 'lat' else _LON_NAMES}"
            )
        if ds[name].dims != (name,):
            raise ValueError(
                f"{where}: coordinate {name!r} has dims {ds[name].dims}; expected a 1-D "
                f"{name} dimension (regular grid)"
            )

    if "level" in ds.coords:
        level = ds["level"]
        if str(level.attrs.get("units", "")).strip().lower() in _PA_UNITS:
            ds = ds.assign_coords(level=level.copy(data=level.values / 100.0))
        ds["level"].attrs = {**ds["level"].attrs, **_LEVEL_ATTRS}

    lon = ds["lon"]
    # rounding first: MERRA-2's "0" is -5.9e-13, which would wrap to 360.0
    wrapped = np.mod(_tidy(lon.values), 360.0)
    wrapped[wrapped >= 360.0] -= 360.0
    if np.unique(wrapped).size != wrapped.size:
        raise ValueError(
            f"{where}: longitudes repeat after wrapping to [0, 360) (e.g. both -180 and 180); "
            f"expected each longitude once"
        )
    ds = ds.assign_coords(lon=lon.copy(data=wrapped)).sortby("lon")
    lat = ds["lat"]
    ds = ds.assign_coords(lat=lat.copy(data=_tidy(lat.values)))
    ds = ds.sortby("lat", ascending=False)
    if np.unique(ds["lat"].values).size != ds.sizes["lat"]:
        raise ValueError(f"{where}: latitudes repeat; expected strictly monotonic latitudes")
    ds["lat"].attrs = {**ds["lat"].attrs, **_LAT_ATTRS}
    ds["lon"].attrs = {**ds["lon"].attrs, **_LON_ATTRS}

    order = [d for d in _ORDER if d in ds.dims]
    return ds.transpose(..., *order)


def _tidy(degrees: np.ndarray) -> np.ndarray:
    """float64 degrees rounded to 1e-9 (0.1 mm), removing file noise such as -1.8e-13."""
    return np.round(np.asarray(degrees, dtype=np.float64), 9) + 0.0  # + 0.0 turns -0.0 into 0.0


def _renames(ds: xr.Dataset, where: str) -> dict[str, str]:
    """Map source coordinate names to the contract's, refusing ambiguous files."""
    renames: dict[str, str] = {}
    for target, candidates in (("lat", _LAT_NAMES), ("lon", _LON_NAMES), ("time", _TIME_NAMES)):
        found = [c for c in candidates if c in ds.variables]
        if len(found) > 1 and target in found:
            found = [target]
        if len(found) > 1:
            raise ValueError(f"{where}: ambiguous {target} coordinates {found}; expected one")
        if found and found[0] != target:
            renames[found[0]] = target
    levels = [c for c in _LEVEL_NAMES if c in ds.variables and _is_pressure(ds[c])]
    if len(levels) > 1:
        raise ValueError(f"{where}: several pressure coordinates {levels}; expected one")
    if levels and levels[0] != "level":
        if "level" in ds.variables:
            raise ValueError(
                f"{where}: {levels[0]!r} is the pressure coordinate but 'level' already exists "
                f"and is not pressure; expected one level coordinate"
            )
        renames[levels[0]] = "level"
    return renames


def _is_pressure(var: xr.DataArray) -> bool:
    """Pressure levels by units (hPa or Pa); cfgrib's isobaricInhPa says so in its name."""
    units = str(var.attrs.get("units", "")).strip().lower()
    if units in _HPA_UNITS | _PA_UNITS:
        return True
    return var.name == "isobaricInhPa" and not units
