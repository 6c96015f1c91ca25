"""What the ERA5 routes share: variable names, config checks, 6 h sums, coarsening,
CF attributes and the assembly of NetCDF/GRIB files (local and CDS) into monthly stores."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from eofm.config import Era5Settings
from eofm.data.gridded import (
    coverage_attr,
    describe_variables,
    require_global,
    select_area,
    standardise_gridded,
    uneven_lon,
)
from eofm.data.store import store_writer
from eofm.data.variables import ATMOSPHERIC, STATIC, SURFACE, TARGETS, lookup
from eofm.errors import ConfigError, QCError

log = logging.getLogger(__name__)

SOURCE_NAME = "era5"
ACCUMULATION_HOURS = 6
ACCUMULATED = ("tp", "ro", "pev")
_HOUR = np.timedelta64(1, "h")

# short name -> long CDS / ARCO name
LONG_NAMES: dict[str, str] = {
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
STATIC_LONG_NAMES: dict[str, str] = {
    "lsm": "land_sea_mask",
    "z": "geopotential_at_surface",
    "slt": "soil_type",
}
# names a file may use for each short name (ECMWF short, cfgrib/NetCDF, long CDS name)
_ALIASES: dict[str, tuple[str, ...]] = {
    "2t": ("2t", "t2m", "2m_temperature"),
    "10u": ("10u", "u10", "10m_u_component_of_wind"),
    "10v": ("10v", "v10", "10m_v_component_of_wind"),
    "msl": ("msl", "mean_sea_level_pressure"),
    "z": ("z", "geopotential"),
    "t": ("t", "temperature"),
    "u": ("u", "u_component_of_wind"),
    "v": ("v", "v_component_of_wind"),
    "q": ("q", "specific_humidity"),
    "tp": ("tp", "total_precipitation"),
    "ro": ("ro", "runoff"),
    "swvl1": ("swvl1", "volumetric_soil_water_layer_1"),
    "pev": ("pev", "potential_evaporation"),
}
#: why the static store is needed, for the messages that ask for it
STATIC_WHY = (
    "the weather backbones (Aurora, ClimaX, Prithvi WxC) take lsm (land-sea mask), z "
    "(surface geopotential) and slt (soil type) as static inputs, and their grid from the "
    "static store"
)
_STATIC_ALIASES: dict[str, tuple[str, ...]] = {
    "lsm": ("lsm", "land_sea_mask"),
    "z": ("z", "geopotential_at_surface", "orography"),
    "slt": ("slt", "soil_type"),
}


def _unknown_source(source: Any) -> ConfigError:
    return ConfigError(
        f"era5.source: {source!r} has no fetch route; expected one of 'arco', 'cds', 'local' "
        f"('sample' is written by the sample generator)"
    )


# =========================================================================== config


def _levels(settings: Era5Settings) -> list[int]:
    """The pressure levels, which must ascend: the schema checks only that they are unique."""
    levels = [int(x) for x in settings.levels]
    if levels != sorted(levels):
        raise ConfigError(f"era5.levels: expected ascending hPa, got {settings.levels!r}")
    return levels


def _required(cfg_vars: Sequence[str] | None, kind: str) -> list[str]:
    """Month variables in catalogue order (or the given subset, checked)."""
    known = [*SURFACE, *ATMOSPHERIC, *TARGETS] if kind == "month" else list(STATIC)
    if cfg_vars is None:
        return known
    unknown = [v for v in cfg_vars if v not in known]
    if unknown:
        raise ConfigError(f"era5.local.variables: unknown {unknown}; expected a subset of {known}")
    return [v for v in known if v in cfg_vars]


# =========================================================================== assembly


def accumulate(hourly: xr.DataArray, steps: np.ndarray, where: str) -> xr.DataArray:
    """6 h accumulations ending at each step from hourly accumulations.

    ERA5's hourly accumulation valid at t covers (t-1h, t]; the sum of those valid at
    t-5h … t is the accumulation over (t-6h, t]. Raises naming the missing hours.
    """
    have = hourly["time"].values
    pieces = []
    for step in steps:
        window = step - np.arange(ACCUMULATION_HOURS - 1, -1, -1) * _HOUR
        missing = np.setdiff1d(window, have)
        if missing.size:
            raise ValueError(
                f"{where}: variable {hourly.name!r} lacks hourly values at "
                f"{_iso_list(missing)}; a 6 h accumulation ending at {_iso(step)} needs "
                f"the six hourly accumulations {_iso(window[0])} .. {_iso(window[-1])}"
            )
        pieces.append(hourly.sel(time=window).sum("time", skipna=False))
    out = xr.concat(pieces, dim="time")
    return out.assign_coords(time=("time", steps))


def _require_times(
    da: xr.DataArray, needed: np.ndarray, where: str, what: str, files: Sequence[str], expected: str
) -> None:
    """Every needed time present, or a QCError counting found vs expected."""
    missing = np.setdiff1d(needed, da["time"].values)
    if missing.size:
        raise QCError(
            f"{where}: variable {da.name!r} in {list(files)} has {needed.size - missing.size} "
            f"of {needed.size} {what} (first missing {_iso(missing[0])}; missing "
            f"{_iso_list(missing)}); expected {expected}"
        )


def _select_levels(da: xr.DataArray, levels: list[int], where: str) -> xr.DataArray:
    if "level" not in da.dims:
        raise ValueError(
            f"{where}: variable {da.name!r} has no pressure-level dimension; expected "
            f"levels {levels} hPa"
        )
    have = np.asarray(da["level"].values, dtype=np.float64)
    missing = [p for p in levels if not np.any(np.isclose(have, p))]
    if missing:
        raise ValueError(
            f"{where}: variable {da.name!r} lacks pressure levels {missing} hPa (has "
            f"{sorted(have.tolist())}); expected {levels}"
        )
    da = da.sel(level=np.asarray(levels, dtype=have.dtype), method="nearest")
    return da.assign_coords(level=("level", np.asarray(levels, dtype=np.int64)))


def coarsen_grid(ds: xr.Dataset, factor: int) -> xr.Dataset:
    """Block-mean lat/lon by ``factor`` (trailing partial blocks dropped); slt by mode."""
    if factor == 1:
        return ds
    uneven = uneven_lon(ds["lon"].values)
    if uneven:
        raise ValueError(
            f"era5.coarsen: the longitudes are not evenly spaced ({uneven}); a block mean "
            f"would average columns across the gap"
        )
    if ds.sizes["lat"] < factor or ds.sizes["lon"] < factor:
        raise ValueError(
            f"era5.coarsen: factor {factor} is larger than the grid "
            f"({ds.sizes['lat']} x {ds.sizes['lon']})"
        )
    coarse = ds.drop_vars(["slt"], errors="ignore").coarsen(lat=factor, lon=factor, boundary="trim")
    out = coarse.mean(keep_attrs=True)
    if "slt" in ds:
        out["slt"] = _block_mode(ds["slt"], factor).assign_coords(lat=out.lat, lon=out.lon)
    return out


def _block_mode(da: xr.DataArray, factor: int) -> xr.DataArray:
    """Most frequent integer class in each block (ties: the smallest class)."""
    blocks = da.coarsen(lat=factor, lon=factor, boundary="trim").construct(
        lat=("lat", "lat_in"), lon=("lon", "lon_in")
    )
    values = np.rint(blocks.values).astype(np.int64)
    classes = np.unique(values[~np.isnan(blocks.values)]) if values.size else np.array([0])
    counts = np.stack([(values == c).sum(axis=(-3, -1)) for c in classes])
    mode = classes[np.argmax(counts, axis=0)].astype(np.float32)
    dims = [d for d in blocks.dims if d not in ("lat_in", "lon_in")]
    return xr.DataArray(mode, dims=dims, attrs=da.attrs, name=da.name)


_COORD_ATTRS = {
    "time": {"standard_name": "time", "long_name": "time"},
    "level": {
        "units": "hPa",
        "standard_name": "air_pressure",
        "long_name": "pressure level",
        "positive": "down",
    },
    "lat": {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude"},
    "lon": {"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude"},
}


def _kind(name: str, static: bool) -> str:
    if static:
        return "static"
    if name in SURFACE:
        return "surface"
    if name in ATMOSPHERIC:
        return "atmospheric"
    return "target"


def _finish(
    fields: dict[str, xr.DataArray],
    *,
    static: bool,
    factor: int,
    provenance: dict[str, str],
) -> xr.Dataset:
    """Dataset in the store contract: float32 fields with catalogue attrs, tidy coords."""
    data = {}
    for name, da in fields.items():
        da = da.drop_vars([c for c in da.coords if c not in da.dims])
        data[name] = da.astype(np.float32)
    ds = xr.Dataset(data)
    ds = coarsen_grid(ds, factor)
    for name in ds.data_vars:
        ds[name].attrs = lookup(name, _kind(name, static)).attrs()  # type: ignore[arg-type]
    for coord, attrs in _COORD_ATTRS.items():
        if coord in ds.coords:
            ds[coord].attrs = dict(attrs)
    ds = ds.assign_coords(lat=ds["lat"].astype(np.float64), lon=ds["lon"].astype(np.float64))
    ds.attrs = {
        "Conventions": "CF-1.8",
        "title": "ERA5 " + ("invariant fields" if static else "surface, pressure-level, targets"),
        **provenance,
    }
    if factor > 1:
        ds.attrs["coarsen"] = factor
    return ds


def _check_complete(ds: xr.Dataset, where: str) -> None:
    """A field entirely NaN at a step means an unwritten chunk or a missing record."""
    for name, da in ds.data_vars.items():
        spatial = [d for d in da.dims if d in ("level", "lat", "lon")]
        empty = da.isnull().all(spatial)
        if "time" in empty.dims:
            bad = da["time"].values[empty.values]
            if bad.size:
                raise ValueError(
                    f"{where}: variable {name!r} is entirely missing (NaN) at "
                    f"{_iso_list(bad)}; expected data at every step"
                )
        elif bool(empty):
            raise ValueError(f"{where}: variable {name!r} is entirely missing (NaN)")


def _iso(t: np.datetime64) -> str:
    return str(np.datetime_as_string(np.datetime64(t, "s"), unit="s"))


def _iso_list(times: np.ndarray, limit: int = 4) -> str:
    shown = ", ".join(_iso(t) for t in times[:limit])
    more = f" and {len(times) - limit} more" if len(times) > limit else ""
    return shown + more


def _step_text(steps: np.ndarray) -> str:
    if steps.size > 1:
        return f"{int((steps[1] - steps[0]) / _HOUR)} h from {_iso(steps[0])}"
    return f"step from {_iso(steps[0])}"


# =========================================================================== files (local, CDS)

_GRIB_SUFFIXES = (".grib", ".grb", ".grib1", ".grib2", ".grb2")


def open_era5_file(path: Path) -> list[xr.Dataset]:
    """Datasets in a NetCDF or GRIB file, each renamed to (time, level, lat, lon).

    GRIB goes through cfgrib, which splits mixed level types into several datasets;
    forecast-style accumulations (``time`` × ``step``) become one valid-time axis.
    """
    where = str(path)
    try:
        if path.suffix.lower() in _GRIB_SUFFIXES:
            import cfgrib

            raw = cfgrib.open_datasets(str(path), backend_kwargs={"indexpath": ""})
            raw = [_grib_valid_time(ds) for ds in raw]
        else:
            with warnings.catch_warnings():
                # float fields with a NaN _FillValue (ERA-Interim): harmless, NaN stays NaN
                warnings.filterwarnings("ignore", message=".*non-conforming '_FillValue'.*")
                raw = [xr.open_dataset(path, decode_timedelta=False)]
    except (OSError, ValueError, RuntimeError) as err:
        raise ValueError(f"{where}: cannot open as ERA5 NetCDF/GRIB ({err})") from err
    out = []
    for ds in raw:
        ds = ds.drop_vars(
            [c for c in ("step", "number", "surface") if c in ds.coords and c not in ds.dims]
        )
        if "expver" in ds.dims:  # legacy CDS NetCDF mixing ERA5 (1) and ERA5T (5)
            parts = [ds.sel(expver=e, drop=True) for e in ds["expver"].values]
            merged = parts[0]
            for part in parts[1:]:
                merged = merged.combine_first(part)
            ds = merged
        out.append(standardise_gridded(ds, where))
    return out


def _grib_valid_time(ds: xr.Dataset) -> xr.Dataset:
    """cfgrib's (time, step) forecast layout → one ``time`` axis of valid times."""
    if "step" in ds.dims and "time" in ds.dims and "valid_time" in ds.coords:
        stacked = ds.stack(vt=("time", "step"))
        valid = stacked["valid_time"].values
        stacked = stacked.drop_vars(["vt", "time", "step", "valid_time"], errors="ignore")
        stacked = stacked.assign_coords(vt=("vt", valid)).rename(vt="time")
        keep = np.ones(stacked.sizes["time"], dtype=bool)
        for name in stacked.data_vars:
            other = [d for d in stacked[name].dims if d != "time"]
            keep &= ~stacked[name].isnull().all(other).values
        return stacked.isel(time=keep).sortby("time")
    if "step" in ds.dims and "valid_time" in ds.coords:
        out = ds.swap_dims(step="valid_time").drop_vars(["time", "step"], errors="ignore")
        return out.rename(valid_time="time")
    if "time" in ds.dims and "valid_time" in ds.coords and ds["valid_time"].dims == ("time",):
        return ds.swap_dims(time="valid_time").drop_vars("time").rename(valid_time="time")
    return ds


def _find(
    datasets: list[tuple[Path, xr.Dataset]],
    short: str,
    aliases: tuple[str, ...],
    want_level: bool,
) -> list[tuple[Path, xr.DataArray]]:
    found = []
    for path, ds in datasets:
        for alias in aliases:
            if alias in ds.data_vars and ("level" in ds[alias].dims) == want_level:
                found.append((path, ds[alias].reset_coords(drop=True).rename(short)))
                break
    return found


def on_area(
    datasets: list[tuple[Path, xr.Dataset]], area: Sequence[float] | None, area_key: str
) -> list[tuple[Path, xr.Dataset]]:
    """Each file cut to ``area``, or checked to be global when no area is configured."""
    out = []
    for path, ds in datasets:
        if area is None:
            require_global(ds, str(path), area_key)
            out.append((path, ds))
        else:
            out.append((path, select_area(ds, area, str(path), area_key)))
    return out


def _missing_variables(
    datasets: list[tuple[Path, xr.Dataset]],
    names: Sequence[str],
    aliases: dict[str, tuple[str, ...]],
    levelled: Sequence[str],
) -> list[str]:
    return [n for n in names if not _find(datasets, n, aliases[n], n in levelled)]


def _variables_error(
    where: str,
    files: Sequence[Path],
    datasets: list[tuple[Path, xr.Dataset]],
    missing: list[str],
    names: Sequence[str],
    hint: str,
) -> QCError:
    names_held = sorted({str(v) for _, ds in datasets for v in ds.data_vars})
    described = " | ".join(f"{path.name}: {describe_variables(ds)}" for path, ds in datasets)
    have = f"{names_held} ({described})"
    looked = {m: list(_ALIASES[m]) for m in missing}
    return QCError(
        f"{where}: the files {[str(f) for f in files]} lack variable(s) {missing} of the "
        f"{len(names)} the store needs ({list(names)}); they have {have}. Names looked up: "
        f"{looked} (atmospheric ones on pressure levels). {hint}".rstrip()
    )


def fields_from_files(
    files: Sequence[Path],
    names: Sequence[str],
    month: str,
    steps: np.ndarray,
    levels: list[int],
    where: str,
    *,
    area: Sequence[float] | None = None,
    area_key: str = "era5.local.area",
    variables_hint: str = "",
) -> dict[str, xr.DataArray]:
    """Month fields on ``steps`` from any mix of files (several files may share a variable,
    e.g. the previous month's file supplying the hours before the first 6 h sum).

    Before anything is read: every variable present, the grid global (or cut to ``area``),
    every step of the month there (and every hour a 6 h sum needs), else a QCError.
    """
    opened = [(path, ds) for path in files for ds in open_era5_file(path)]
    datasets = on_area(opened, area, area_key)
    missing = _missing_variables(datasets, names, _ALIASES, ATMOSPHERIC)
    if missing:
        raise _variables_error(where, files, datasets, missing, names, variables_hint)
    first = steps[0] - (ACCUMULATION_HOURS - 1) * _HOUR
    back = np.arange(ACCUMULATION_HOURS) * _HOUR
    hours = np.unique((steps[:, None] - back[None, :]).ravel())  # the 6 h sums' hours
    fields: dict[str, xr.DataArray] = {}
    for name in names:
        want_level = name in ATMOSPHERIC
        parts = _find(datasets, name, _ALIASES[name], want_level)
        files_of = sorted({str(p) for p, _ in parts})
        da = _combine_times(parts, name, month, steps, first, where)
        if want_level:
            da = _select_levels(da, levels, where)
        if name in ACCUMULATED:
            _require_times(
                da,
                hours,
                where,
                "hourly values its 6 h sums need",
                files_of,
                f"the {ACCUMULATION_HOURS} hourly accumulations ending at every step of "
                f"{month} (the first reaches back to {_iso(first)})",
            )
            da = accumulate(da, steps, where)
        else:
            expected = f"every step of {month} (every {_step_text(steps)})"
            _require_times(da, steps, where, f"steps of {month}", files_of, expected)
            da = da.sel(time=steps)
        fields[name] = da  # lazy: `write_steps` reads one step at a time
    return fields


def write_steps(
    fields: dict[str, xr.DataArray],
    out: Path,
    *,
    factor: int,
    provenance: dict[str, str],
    where: str,
    budget_bytes: int = 1 << 30,
    area: Sequence[float] | None = None,
    steps_expected: int | None = None,
    step_hours: int | None = None,
) -> Path:
    """Write month fields (lazy, on the same steps) in blocks of steps with `store_writer`.

    A block holds as many steps as fit in ``budget_bytes``: a 0.25° month with 13 levels
    (about 37 GB) goes three steps at a time, a coarse month in one block. The store's
    ``coverage`` attribute records steps, variables, bounds and the configured area.
    """
    times = next(iter(fields.values()))["time"].values
    step_bytes = sum(da.isel(time=0).size * 4 for da in fields.values())  # float32
    block = max(1, min(times.size, budget_bytes // max(step_bytes, 1)))
    with store_writer(out, buffer_bytes=budget_bytes) as write:
        for k in tqdm(range(0, times.size, block), desc=where, unit="block", leave=False):
            piece = {name: da.isel(time=slice(k, k + block)).load() for name, da in fields.items()}
            ds = _finish(piece, static=False, factor=factor, provenance=provenance)
            _check_complete(ds, where)
            ds.attrs["coverage"] = coverage_attr(
                ds,
                variables=list(fields),
                area=area,
                steps_found=times.size,
                steps_expected=steps_expected if steps_expected is not None else times.size,
                step_hours=step_hours,
            )
            write(ds)
    return Path(out)


def _combine_times(
    parts: list[tuple[Path, xr.DataArray]],
    name: str,
    month: str,
    steps: np.ndarray,
    first: np.datetime64,
    where: str,
) -> xr.DataArray:
    timed = [(p, da) for p, da in parts if "time" in da.dims]
    if timed:
        pieces = [da.sel(time=slice(first, steps[-1])) for _, da in timed]
        pieces = [da for da in pieces if da.sizes["time"]]
        if not pieces:
            raise ValueError(
                f"{where}: variable {name!r} has no times within {_iso(first)} .. "
                f"{_iso(steps[-1])} in {[str(p) for p, _ in timed]}; expected month {month}"
            )
        da = xr.concat(pieces, dim="time", join="override") if len(pieces) > 1 else pieces[0]
        _, unique = np.unique(da["time"].values, return_index=True)
        return da.isel(time=np.sort(unique)).sortby("time")
    climatologies = [(p, da) for p, da in parts if "month" in da.dims]
    if climatologies and name not in ACCUMULATED:
        path, da = climatologies[0]
        moy = int(month[5:7])
        if moy not in da["month"].values:
            raise ValueError(
                f"{path}: variable {name!r} is a monthly climatology without month {moy}; "
                f"has months {da['month'].values.tolist()}"
            )
        log.warning(
            "%s: %r is a monthly climatology; using month %d at every step", path, name, moy
        )
        return da.sel(month=moy, drop=True).expand_dims(time=steps)
    raise ValueError(
        f"{where}: variable {name!r} in {[str(p) for p, _ in parts]} has no time dimension; "
        f"expected times (time/valid_time) covering {month}"
        + (" hourly, for 6 h accumulations" if name in ACCUMULATED else "")
    )


def static_from_files(
    files: Sequence[Path],
    where: str,
    *,
    area: Sequence[float] | None = None,
    area_key: str = "era5.local.area",
) -> dict[str, xr.DataArray]:
    """lsm, surface z and slt from files; a time axis, if any, is reduced to its first step."""
    opened = [(path, ds) for path in files for ds in open_era5_file(path)]
    datasets = on_area(opened, area, area_key)
    missing = _missing_variables(datasets, list(STATIC), _STATIC_ALIASES, ())
    if missing:
        have = sorted({str(v) for _, ds in datasets for v in ds.data_vars})
        raise QCError(
            f"{where}: the static files {[str(f) for f in files]} lack {missing} (looked up "
            f"as {[list(_STATIC_ALIASES[m]) for m in missing]}, without a level dimension); "
            f"they have {have}. The static store needs lsm, z and slt: {STATIC_WHY}"
        )
    fields = {}
    for name in STATIC:
        parts = _find(datasets, name, _STATIC_ALIASES[name], want_level=False)
        da = parts[0][1]
        for dim in ("time", "month"):
            if dim in da.dims:
                da = da.isel({dim: 0}, drop=True)
        fields[name] = da.load()
    return fields
