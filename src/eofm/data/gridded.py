"""Read NetCDF files of real sources (ERA5, MERRA-2, ERA-Interim) into the store contract.

Real files disagree on coordinate names (latitude/lat, valid_time/time, pressure_level/
plev/isobaricInhPa/lev), longitude conventions (-180..180 for MERRA-2) and latitude order
(ascending for MERRA-2). Everything downstream assumes one layout, so it is fixed here,
once, without touching values or attributes.

Longitudes: a global grid (n columns d apart with n·d = 360) is rolled to [0, 360). A
regional grid keeps a contiguous axis: its columns are ordered from the widest gap on the
circle, so a box from 15° W to 5° E stays -15 … 5 whether the file says -15 … 5 or
0 … 5, 345 … 359.75 (values stay in [0, 360) when the box does not cross 0°, and in
[-180, 180) when it does). Coarsening and models then never see neighbours 340° apart.

Also here: the coverage of a store (time steps, variables, lat/lon bounds, global or
regional) that the fetch routes check against the config and record in the store.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from eofm.errors import QCError

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


def describe_variables(ds: xr.Dataset, limit: int = 20) -> str:
    """What a file holds, for messages about a variable it lacks.

    ``air_temperature (long_name 'Maximum Near-Surface Air Temperature', units 'K')``:
    enough to tell a gridMET or CMIP file from the ERA5 file that was expected.
    """
    parts = []
    for name in list(ds.data_vars)[:limit]:
        attrs = ds[name].attrs
        described = ", ".join(
            f"{key} {str(attrs[key])!r}"
            for key in ("long_name", "standard_name", "description", "units")
            if key in attrs and str(attrs[key]) != str(name)
        )
        parts.append(f"{name} ({described})" if described else str(name))
    more = len(ds.data_vars) - limit
    text = "; ".join(parts) + (f"; … {more} more" if more > 0 else "")
    return text or "no data variables"


def standardise_gridded(ds: xr.Dataset, where: str) -> xr.Dataset:
    """Rename coordinates, make longitudes contiguous (global grids rolled to [0, 360)),
    flip latitudes to descending and order dims (time, level, lat, lon); values and
    attributes are kept."""
    ds = ds.rename(_renames(ds, where))
    for name in ("lat", "lon"):
        if name not in ds.coords:
            raise ValueError(
                f"{where}: no {name} coordinate; expected one of "
                f"{_LAT_NAMES if name == 'lat' else _LON_NAMES}; the file has coordinates "
                f"{sorted(map(str, ds.coords))} and variables: {describe_variables(ds)}"
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

    ds = contiguous_lon(ds, where)
    lat = ds["lat"]
    ds = ds.assign_coords(lat=lat.copy(data=_tidy(lat.values)))
    ds = ds.sortby("lat", ascending=False)
    if np.unique(ds["lat"].values).size != ds.sizes["lat"]:
        raise ValueError(f"{where}: latitudes repeat; expected strictly monotonic latitudes")
    ds["lat"].attrs = {**ds["lat"].attrs, **_LAT_ATTRS}
    ds["lon"].attrs = {**ds["lon"].attrs, **_LON_ATTRS}

    order = [d for d in _ORDER if d in ds.dims]
    return ds.transpose(..., *order)


def contiguous_lon(ds: xr.Dataset, where: str) -> xr.Dataset:
    """``ds`` with its columns reordered onto `contiguous_longitudes` (attrs kept)."""
    lon = ds["lon"]
    values, order = contiguous_longitudes(lon.values, where)
    if not np.array_equal(order, np.arange(order.size)):
        ds = ds.isel(lon=order)
    return ds.assign_coords(lon=lon.copy(data=values))


def contiguous_longitudes(lon: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(longitudes, column order): a global axis in [0, 360), a regional one contiguous.

    A regional box starts after the widest gap between neighbouring columns on the
    circle; it keeps [0, 360) unless it crosses 0°, then it is shifted by -360° (so it
    lies within [-180, 360)). A box east of 0° and 180° wide or more that crosses 0° fits
    neither and is refused.
    """
    # rounding first: MERRA-2's "0" is -5.9e-13, which would wrap to 360.0
    wrapped = np.mod(_tidy(np.atleast_1d(lon)), 360.0)
    wrapped[wrapped >= 360.0] -= 360.0
    if np.unique(wrapped).size != wrapped.size:
        raise ValueError(
            f"{where}: longitudes repeat after wrapping to [0, 360) (e.g. both -180 and 180); "
            f"expected each longitude once"
        )
    order = np.argsort(wrapped, kind="stable")
    values = wrapped[order]
    if values.size < 2 or is_global_lon(values):
        return values, order
    gaps = np.diff(np.append(values, values[0] + 360.0))
    start = (int(np.argmax(gaps)) + 1) % values.size
    order, values = np.roll(order, -start), np.roll(values, -start)
    values = np.where(values < values[0], values + 360.0, values)
    if values[-1] < 360.0:
        return values, order
    if values[0] - 360.0 >= -180.0:
        return values - 360.0, order
    raise ValueError(
        f"{where}: the regional longitudes {values[0]:g} .. {values[-1] - 360.0:g} have no "
        f"contiguous axis within [-180, 360); expected a box that crosses 0° west of 180° E"
    )


def lon_step(lon: np.ndarray) -> float | None:
    """The median spacing of a longitude axis (None for fewer than two columns)."""
    lon = np.sort(np.asarray(lon, dtype=np.float64))
    return float(np.median(np.diff(lon))) if lon.size > 1 else None


def is_global_lon(lon: np.ndarray) -> bool:
    """n columns d apart that go once round the circle (n·d = 360)."""
    step = lon_step(lon)
    return step is not None and step > 0 and abs(len(lon) * step - 360.0) <= 1e-3 * step


def uneven_lon(lon: np.ndarray) -> str | None:
    """What makes an ascending longitude axis uneven (a gap or a squeeze), else None."""
    lon = np.asarray(lon, dtype=np.float64)
    step = lon_step(lon)
    if step is None or step <= 0:
        return None
    diffs = np.diff(lon)
    bad = np.flatnonzero(np.abs(diffs - step) > 1e-3 * step)
    if not bad.size:
        return None
    k = int(bad[0])
    return (
        f"{bad.size} of {diffs.size} steps differ from {step:g}° (first {diffs[k]:g}° "
        f"between {lon[k]:g} and {lon[k + 1]:g})"
    )


# =========================================================================== coverage


def grid_extent(lat: np.ndarray, lon: np.ndarray) -> dict:
    """Global or regional, with the lat/lon bounds and the longitude step (JSON-able)."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    dlat = float(np.median(np.abs(np.diff(lat)))) if lat.size > 1 else 0.0
    poles = lat.size > 1 and lat.max() >= 90.0 - dlat - 1e-6 and lat.min() <= -90.0 + dlat + 1e-6
    step = lon_step(lon)
    return {
        "extent": "global" if poles and is_global_lon(lon) else "regional",
        "lat": [float(lat.min()), float(lat.max())] if lat.size else None,
        "lon": [float(lon[0]), float(lon[-1])] if lon.size else None,
        "lon_step": step,
    }


def describe_extent(extent: dict) -> str:
    """'lon -15 .. 5, lat 35 .. 45' for messages."""
    lon, lat = extent["lon"], extent["lat"]
    return f"lon {lon[0]:g} .. {lon[1]:g}, lat {lat[0]:g} .. {lat[1]:g}"


def select_area(ds: xr.Dataset, area: Sequence[float], where: str, key: str) -> xr.Dataset:
    """The part of ``ds`` inside ``area`` ([N, W, S, E], the CDS order), checked to cover it.

    A global grid is cut (across 0° too); a regional one must reach every edge of the
    box to within one grid step, or the error names what it covers and what ``key`` asks.
    """
    north, west, south, east = (float(x) for x in area)
    if south > north:
        raise ValueError(f"{key}: {list(area)} has S > N; expected [N, W, S, E]")
    width = 360.0 if east - west >= 360.0 else float(np.mod(east - west, 360.0))
    have = grid_extent(ds["lat"].values, ds["lon"].values)
    lat = ds["lat"].values
    offset = np.mod(_tidy(ds["lon"].values) - west, 360.0)
    keep_lon = np.flatnonzero(offset <= width + 1e-6)
    keep_lat = np.flatnonzero((lat >= south - 1e-6) & (lat <= north + 1e-6))
    if not keep_lon.size or not keep_lat.size:
        raise QCError(
            f"{where}: the grid ({describe_extent(have)}) has no point inside {key} "
            f"{list(area)} ([N, W, S, E])"
        )
    cut = ds.isel(lat=keep_lat, lon=keep_lon[np.argsort(offset[keep_lon], kind="stable")])
    cut = contiguous_lon(cut, where)
    got = grid_extent(cut["lat"].values, cut["lon"].values)
    dlon = have["lon_step"] or 0.0
    dlat = float(np.median(np.abs(np.diff(lat)))) if lat.size > 1 else 0.0
    first = float(np.mod(cut["lon"].values[0] - west + 180.0, 360.0) - 180.0)
    last = float(np.mod(cut["lon"].values[-1] - west, 360.0))
    short = [
        side
        for side, gap, step in (
            ("west", first, dlon),
            ("east", width - last, dlon),
            ("north", north - got["lat"][1], dlat),
            ("south", got["lat"][0] - south, dlat),
        )
        if gap > step + 1e-6
    ]
    if short and width < 360.0:
        raise QCError(
            f"{where}: the files cover only {describe_extent(have)}, which falls short of "
            f"{key} {list(area)} ([N, W, S, E]) on the {', '.join(short)}; expected files "
            f"covering the configured area"
        )
    return cut


def require_global(ds: xr.Dataset, where: str, key: str) -> None:
    """A regional grid when the config expects the globe: name what it covers and the key."""
    extent = grid_extent(ds["lat"].values, ds["lon"].values)
    if extent["extent"] != "global":
        raise QCError(
            f"{where}: the files cover only {describe_extent(extent)} (a regional grid); "
            f"{key} is not set, so the config expects the globe. Set {key}: [N, W, S, E] "
            f"to write a regional store"
        )


def coverage_attr(
    ds: xr.Dataset,
    *,
    variables: Sequence[str],
    area: Sequence[float] | None,
    steps_found: int | None = None,
    steps_expected: int | None = None,
    first_missing: str | None = None,
    step_hours: int | None = None,
) -> str:
    """The store's ``coverage`` attribute (JSON): time steps found/expected, variables,
    bounds, global or regional, and the configured area."""
    extent = grid_extent(ds["lat"].values, ds["lon"].values)
    steps = None
    if steps_expected is not None:
        steps = {
            "found": int(steps_found if steps_found is not None else steps_expected),
            "expected": int(steps_expected),
            "step_hours": step_hours,
            "first_missing": first_missing,
        }
    return json.dumps(
        {
            "time_steps": steps,
            "variables": sorted(map(str, variables)),
            **extent,
            "area": [float(x) for x in area] if area is not None else None,
        },
        sort_keys=True,
    )


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
