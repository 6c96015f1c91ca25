"""What the MERRA-2 routes share: the collections, the config, time steps, file names,
and building the contract stores from daily files."""

from __future__ import annotations

import calendar
import json
import os
import re
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from eofm.config import Merra2Settings
from eofm.data.fetch import redact, sha256sum
from eofm.data.gridded import (
    contiguous_lon,
    coverage_attr,
    describe_variables,
    require_global,
    select_area,
)
from eofm.errors import ConfigError, QCError

SOURCE = "merra2"
CMR_URL = "https://cmr.earthdata.nasa.gov/search"


@dataclass(frozen=True)
class Collection:
    """One MERRA-2 collection: its file-name stem, data server and archive folder."""

    short_name: str
    stem: str
    server: str  # a key of merra2.servers
    archive: str = "MERRA2"  # "MERRA2_MONTHLY" holds the constants

    @property
    def kind(self) -> str:
        """``tavg`` (hourly means at HH:30), ``inst`` (instantaneous) or ``const``."""
        return self.stem.split("_", 1)[0].rstrip("0123456789")


COLLECTIONS: dict[str, Collection] = {
    c.short_name: c
    for c in (
        Collection("M2I3NVASM", "inst3_3d_asm_Nv", "goldsmr5"),
        Collection("M2I3NPASM", "inst3_3d_asm_Np", "goldsmr5"),
        Collection("M2I1NXASM", "inst1_2d_asm_Nx", "goldsmr4"),
        Collection("M2T1NXSLV", "tavg1_2d_slv_Nx", "goldsmr4"),
        Collection("M2T1NXLND", "tavg1_2d_lnd_Nx", "goldsmr4"),
        Collection("M2T1NXFLX", "tavg1_2d_flx_Nx", "goldsmr4"),
        Collection("M2T1NXRAD", "tavg1_2d_rad_Nx", "goldsmr4"),
        Collection("M2C0NXASM", "const_2d_asm_Nx", "goldsmr4", "MERRA2_MONTHLY"),
        Collection("M2C0NXCTM", "const_2d_ctm_Nx", "goldsmr4", "MERRA2_MONTHLY"),
    )
}
_BY_STEM = {c.stem: c for c in COLLECTIONS.values()}

#: Prithvi WxC's fills for NaN (no vegetation / no soil over water and ice).
NAN_FILL = {"GWETROOT": 1.0, "LAI": 0.0}

#: CF standard names where a file carries none (MERRA-2 files usually do).
_STANDARD_NAMES = {
    "T": "air_temperature",
    "U": "eastward_wind",
    "V": "northward_wind",
    "QV": "specific_humidity",
    "OMEGA": "lagrangian_tendency_of_air_pressure",
    "PL": "air_pressure",
    "H": "geopotential_height",
    "CLOUD": "cloud_area_fraction_in_atmosphere_layer",
    "QI": "mass_fraction_of_cloud_ice_in_air",
    "QL": "mass_fraction_of_cloud_liquid_water_in_air",
    "PS": "surface_air_pressure",
    "SLP": "air_pressure_at_mean_sea_level",
    "T2M": "air_temperature",
    "TS": "surface_temperature",
    "QV2M": "specific_humidity",
    "U10M": "eastward_wind",
    "V10M": "northward_wind",
    "TQV": "atmosphere_mass_content_of_water_vapor",
    "TQI": "atmosphere_mass_content_of_cloud_ice",
    "TQL": "atmosphere_mass_content_of_cloud_liquid_water",
    "PRECTOT": "precipitation_flux",
    "EFLUX": "surface_upward_latent_heat_flux",
    "HFLUX": "surface_upward_sensible_heat_flux",
    "Z0M": "surface_roughness_length_for_momentum_in_air",
    "PHIS": "surface_geopotential",
    "FRLAND": "land_area_fraction",
    "FROCEAN": "sea_area_fraction",
    "FRACI": "sea_ice_area_fraction",
    "LAI": "leaf_area_index",
}

_HALF_HOUR = np.timedelta64(30, "m")

#: why the static store is needed, for the messages that ask for it
STATIC_WHY = (
    "Prithvi WxC reads PHIS (surface geopotential), FRLAND, FROCEAN and FRACI (land, ocean "
    "and sea-ice fractions) as static inputs"
)


# --------------------------------------------------------------------------- config


ROUTES = ("gesdisc", "earthaccess", "local")


def check_settings(settings: Merra2Settings, key: str = "collections") -> None:
    """What the schema cannot say: a route is chosen, and the collections (of ``key``, the
    store about to be written) are MERRA-2's. ``static: {}`` is fine until a static store
    is asked for."""
    if settings.source not in ROUTES:
        raise ConfigError(
            f"merra2.source is {settings.source!r}; expected one of {', '.join(ROUTES)} "
            "to fetch MERRA-2"
        )
    _collections(settings, "collections" if key == "static" else "static")  # names checked
    if not _collections(settings, key):
        why = (
            f"; the static store needs its fields ({STATIC_WHY}), or leave it out with "
            "`static: {}` and do not ask for it"
            if key == "static"
            else ""
        )
        raise ConfigError(f"merra2.{key} is empty; expected {{collection: [variables]}}{why}")


def _collections(settings: Merra2Settings, key: str) -> dict[Collection, list[str]]:
    """The collections of ``merra2.<key>`` with their variables, checked against `COLLECTIONS`."""
    wanted: dict[str, list[str]] = getattr(settings, key)
    const = key == "static"
    chosen: dict[Collection, list[str]] = {}
    seen: dict[str, str] = {}
    for name, variables in wanted.items():
        coll = COLLECTIONS.get(str(name).upper())
        if coll is None or (coll.kind == "const") != const:
            expected = sorted(n for n, c in COLLECTIONS.items() if (c.kind == "const") == const)
            raise ConfigError(
                f"merra2.{key}: unknown collection {name!r}; expected one of {expected}"
            )
        if isinstance(variables, str) or not variables:
            raise ConfigError(f"merra2.{key}.{name}: expected a non-empty list of variables")
        for var in variables:
            if var in seen:
                raise ConfigError(
                    f"merra2.{key}: variable {var!r} is asked from both {seen[var]} and {name}"
                )
            seen[var] = coll.short_name
        chosen[coll] = [str(v) for v in variables]
    return chosen


def _cache_dir(out: str | os.PathLike) -> Path:
    target = Path(out)
    return target.with_name(target.name + ".downloads")


def _provenance(
    settings: Merra2Settings, route: str, key: str, files: dict[str, list[Path]], urls: list[str]
) -> dict[str, str]:
    names = [c.short_name for c in _collections(settings, key)]
    used = [p for name in names for p in files.get(name, [])]
    checksums = {_checksum_key(p, used): sha256sum(p) for p in used}
    return {
        "source": f"{SOURCE}-{route}",
        "source_url": "; ".join(redact(u) for u in urls),
        "source_version": f"MERRA-2 {settings.version} ({', '.join(names)})",
        "input_checksums": json.dumps(checksums, sort_keys=True),
    }


def _checksum_key(path: Path, all_paths: list[Path]) -> str:
    same_name = [p for p in all_paths if p.name == path.name]
    return path.name if len(same_name) == 1 else str(path)


# --------------------------------------------------------------------------- time


def _month_days(month: str) -> list[np.datetime64]:
    """The days of ``YYYY-MM``."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", str(month))
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"merra2: month {month!r} is not of the form YYYY-MM")
    year, mon = int(match.group(1)), int(match.group(2))
    first = np.datetime64(f"{year:04d}-{mon:02d}-01", "D")
    return [first + np.timedelta64(d, "D") for d in range(calendar.monthrange(year, mon)[1])]


def _step_times(month: str, step_hours: int) -> np.ndarray:
    days = _month_days(month)
    start = days[0].astype("datetime64[ns]")
    stop = (days[-1] + np.timedelta64(1, "D")).astype("datetime64[ns]")
    return np.arange(start, stop, np.timedelta64(step_hours, "h")).astype("datetime64[ns]")


def _ymd(day: np.datetime64) -> str:
    return str(day.astype("datetime64[D]")).replace("-", "")


def _file_regex(coll: Collection, date: str = r"\d{8}") -> re.Pattern[str]:
    """``MERRA2_NNN.<stem>.<date>.nc4``; the stream number (100…401) is never assumed."""
    return re.compile(rf"MERRA2_\d\d\d\.{re.escape(coll.stem)}\.({date})\.nc4")


# --------------------------------------------------------------------------- building stores


def _open(path: Path, stack: ExitStack) -> xr.Dataset:
    try:
        ds = xr.open_dataset(path, engine="h5netcdf", chunks={})
    except Exception as err:
        raise ValueError(f"merra2: cannot open {path} as NetCDF4: {err}") from err
    return stack.enter_context(ds)


def _subset(
    ds: xr.Dataset, path: Path, coll: Collection, variables: list[str], levels: list[int]
) -> xr.Dataset:
    """The wanted variables (and levels) of one file, with clear errors naming the file."""
    missing = [v for v in variables if v not in ds.data_vars]
    if missing:
        raise QCError(
            f"merra2: {path} ({coll.short_name}) lacks variable(s) {missing} of the configured "
            f"{variables}; it has {sorted(map(str, ds.data_vars))} ({describe_variables(ds)}). "
            f"Expected every variable "
            f"merra2.collections (or merra2.static) lists for {coll.short_name}"
        )
    for dim in ("lat", "lon"):
        if dim not in ds.dims:
            raise ValueError(f"merra2: {path} has no {dim!r} dimension (dims {dict(ds.sizes)})")
    ds = ds[variables]
    if "lev" in ds.dims:
        have = ds["lev"].values
        absent = [lv for lv in levels if not np.any(np.isclose(have, lv))]
        if absent:
            raise ValueError(
                f"merra2: {path} ({coll.short_name}) lacks model level(s) {absent}; "
                f"it has levels {have.min():g}..{have.max():g} ({have.size})"
            )
        ds = ds.sel(lev=np.asarray(levels, dtype=have.dtype))
    return ds


def _collection_series(
    coll: Collection,
    paths: list[Path],
    variables: list[str],
    settings: Merra2Settings,
    targets: np.ndarray,
    *,
    month: str,
    partial: bool,
    stack: ExitStack,
    hint: str = "",
) -> xr.Dataset:
    """One collection on the target times (tavg means averaged onto the hour)."""
    pieces = [_subset(_open(p, stack), p, coll, variables, settings.levels) for p in paths]
    attrs = {v: dict(pieces[0][v].attrs) for v in variables}
    ds = xr.concat(
        pieces, dim="time", data_vars="all", coords="minimal", compat="override", join="override"
    )
    ds = ds.drop_duplicates("time").sortby("time")
    times = ds["time"].values.astype("datetime64[ns]")
    if coll.kind == "tavg":
        after, before = targets + _HALF_HOUR, targets - _HALF_HOUR
        has_after, has_before = np.isin(after, times), np.isin(before, times)
        one_sided = has_after & ~has_before & (targets == targets[0])  # month start only
        ok = has_after & (has_before | one_sided)
        later = ds.sel(time=after[ok]).assign_coords(time=targets[ok])
        earlier = ds.sel(time=np.where(has_before[ok], before[ok], after[ok]))
        out = (later + earlier.assign_coords(time=targets[ok])) / 2
    else:
        ok = np.isin(targets, times)
        out = ds.sel(time=targets[ok])
    if not ok.any() or (not partial and not ok.all()):
        absent = [str(t)[:16] for t in targets[~ok]]
        shown = [p.name for p in paths[:3]] + ([f"… {len(paths)} files"] if len(paths) > 3 else [])
        raise QCError(
            f"merra2: {coll.short_name} files {shown} (in {paths[0].parent}) cover "
            f"{int(ok.sum())} of the {targets.size} steps of {month} every "
            f"{settings.step_hours} h (first missing {absent[0]}; missing "
            f"{', '.join(absent[:3])}{' …' if len(absent) > 3 else ''}); their times run "
            f"{str(times[0])[:16]} .. {str(times[-1])[:16]}. Expected every step of the month"
            f"{hint}"
        )
    for name in variables:
        if name in NAN_FILL:
            out[name] = out[name].fillna(NAN_FILL[name])
        out[name].attrs = _variable_attrs(name, attrs[name], coll, paths[0])
    if "lev" in out.dims:
        out = out.rename(lev="level")
        if coll.stem.endswith("_Nv"):  # model levels are whole numbers
            out = out.assign_coords(level=out["level"].values.round().astype(np.int32))
        out["level"].attrs = _level_attrs(coll)
    return out


def _variable_attrs(name: str, source: dict[str, Any], coll: Collection, path: Path) -> dict:
    units = source.get("units")
    if not isinstance(units, str) or not units:
        raise ValueError(f"merra2: {path}: variable {name!r} has no units attribute")
    long_name = str(source.get("long_name") or name)
    standard = source.get("standard_name") or _STANDARD_NAMES.get(name)
    standard = standard or re.sub(r"\W+", "_", long_name.strip().lower())
    attrs = {
        "units": units,
        "standard_name": str(standard),
        "long_name": long_name,
        "merra2_collection": coll.short_name,
    }
    if coll.kind == "tavg":
        attrs["cell_methods"] = "time: mean (hourly means at HH:30 averaged onto HH:00)"
    if name in NAN_FILL:
        attrs["comment"] = f"NaN filled with {NAN_FILL[name]:g} (as Prithvi WxC does)"
    return attrs


def _level_attrs(coll: Collection) -> dict[str, str]:
    if coll.stem.endswith("_Nv"):
        return {
            "units": "1",
            "standard_name": "model_level_number",
            "long_name": "MERRA-2 model level (1 = top, 72 = lowest)",
            "positive": "down",
        }
    return {"units": "hPa", "standard_name": "air_pressure", "long_name": "pressure level"}


def _to_contract_grid(ds: xr.Dataset, settings: Merra2Settings, where: str) -> xr.Dataset:
    """A global grid rolled to [0, 360), a regional one contiguous (-15 .. 5 across 0°) and
    cut to ``merra2.area`` (required for it); latitudes flipped to descending."""
    ds = contiguous_lon(ds, where)  # MERRA-2's "0" is -5.9e-13: rounded, not wrapped to 360
    if settings.area is None:
        require_global(ds, where, "merra2.area")
    else:
        ds = select_area(ds, settings.area, where, "merra2.area")
    lat = ds["lat"].values
    if lat.size > 1 and lat[0] < lat[-1]:
        ds = ds.isel(lat=slice(None, None, -1))
    ds["lon"].attrs = {
        "units": "degrees_east",
        "standard_name": "longitude",
        "long_name": "longitude",
    }
    ds["lat"].attrs = {
        "units": "degrees_north",
        "standard_name": "latitude",
        "long_name": "latitude",
    }
    return ds


def _build_month(
    files: dict[str, list[Path]],
    month: str,
    settings: Merra2Settings,
    *,
    local: bool,
    partial: bool,
    stack: ExitStack,
) -> xr.Dataset:
    """Every configured collection on the month's steps, merged onto the contract grid.

    ``partial`` keeps the steps the files cover (recorded in the ``coverage`` attribute);
    otherwise a step missing from any collection fails before anything is written.
    """
    targets = _step_times(month, settings.step_hours)
    first, last = targets[0], targets[-1] + np.timedelta64(settings.step_hours, "h")
    hint = ""
    if local and not partial:
        hint = " (merra2.local.partial_months: true writes only the covered steps)"
    parts = []
    for coll, variables in _collections(settings, "collections").items():
        paths = files.get(coll.short_name, [])
        if local:  # local files: keep those whose name says they are in (or next to) the month
            paths = [p for p in paths if _near_month(p, first, last)]
        if not paths:
            raise FileNotFoundError(
                f"merra2: no {coll.short_name} file for {month} (variables {variables}); "
                f"found files for {sorted(files)}"
            )
        parts.append(
            _collection_series(
                coll,
                paths,
                variables,
                settings,
                targets,
                month=month,
                partial=partial,
                stack=stack,
                hint=hint,
            )
        )
    ds = xr.merge(parts, join="inner", compat="override", combine_attrs="drop_conflicts")
    if ds.sizes.get("time", 0) == 0:
        names = [c.short_name for c in _collections(settings, "collections")]
        raise ValueError(
            f"merra2: the collections {names} share no time step of {month} every "
            f"{settings.step_hours} h"
        )
    ds["time"].attrs = {"standard_name": "time", "long_name": "time"}
    ds.attrs = {
        "title": f"MERRA-2 {month}",
        "time_processing": (
            f"steps every {settings.step_hours} h on the hour; tavg collections: hourly means "
            "at HH:30 averaged onto HH:00; the month's first step uses the 00:30 mean alone "
            "when the previous day's means are not at hand"
        ),
    }
    ds = _to_contract_grid(ds, settings, f"merra2 {month} ({', '.join(names_of(settings))})")
    found = ds["time"].values.astype("datetime64[ns]")
    absent = targets[~np.isin(targets, found)]
    ds.attrs["coverage"] = coverage_attr(
        ds,
        variables=list(ds.data_vars),
        area=settings.area,
        steps_found=found.size,
        steps_expected=targets.size,
        first_missing=str(absent[0])[:19] if absent.size else None,
        step_hours=settings.step_hours,
    )
    return ds


def names_of(settings: Merra2Settings, key: str = "collections") -> list[str]:
    """The configured collections' short names."""
    return [c.short_name for c in _collections(settings, key)]


def _near_month(path: Path, first: np.datetime64, last: np.datetime64) -> bool:
    match = re.search(r"\.(\d{8})\.nc4$", path.name)
    if not match or match.group(1) == "00000000":
        return True  # undated name: its times decide
    d = match.group(1)
    day = np.datetime64(f"{d[:4]}-{d[4:6]}-{d[6:]}", "ns")
    return first - np.timedelta64(1, "D") <= day < last


def _build_static(
    files: dict[str, list[Path]], settings: Merra2Settings, *, stack: ExitStack
) -> xr.Dataset:
    """The constant fields on the contract grid; a single time step is dropped."""
    parts = []
    for coll, variables in _collections(settings, "static").items():
        paths = files.get(coll.short_name, [])
        if not paths:
            raise FileNotFoundError(
                f"merra2: no {coll.short_name} file (static variables {variables}); "
                f"found files for {sorted(files)}"
            )
        path = paths[0]
        ds = _subset(_open(path, stack), path, coll, variables, settings.levels)
        if "time" in ds.dims and ds.sizes["time"] == 1:
            ds = ds.isel(time=0, drop=True)
        elif "time" in ds.dims and ds.sizes["time"] == 12:  # monthly fields (M2C0NXCTM)
            months = np.arange("1980-01", "1981-01", dtype="datetime64[M]")
            ds = ds.assign_coords(time=months.astype("datetime64[ns]"))
            ds["time"].attrs = {
                "standard_name": "time",
                "long_name": "calendar month of the monthly fields (the year is nominal)",
            }
        elif "time" in ds.dims:
            raise ValueError(
                f"merra2: {path} ({coll.short_name}) has {ds.sizes['time']} time steps; "
                "expected 1 (constant) or 12 (monthly) fields"
            )
        for name in variables:
            if name in NAN_FILL:
                ds[name] = ds[name].fillna(NAN_FILL[name])
            ds[name].attrs = _variable_attrs(name, dict(ds[name].attrs), coll, path)
        parts.append(ds)
    ds = xr.merge(parts, join="exact", compat="override", combine_attrs="drop_conflicts")
    ds.attrs = {"title": "MERRA-2 constant fields"}
    ds = _to_contract_grid(
        ds, settings, f"merra2 static ({', '.join(names_of(settings, 'static'))})"
    )
    ds.attrs["coverage"] = coverage_attr(ds, variables=list(ds.data_vars), area=settings.area)
    return ds
