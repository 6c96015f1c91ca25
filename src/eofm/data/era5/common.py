"""ERA5 from the real archives into monthly stores with the sample generator's schema.

Three routes, chosen by ``cfg["source"]``:

* ``arco`` — Google's analysis-ready Zarr (``gs://gcp-public-data-arco-era5``), read
  lazily through fsspec, one time step at a time, with retries around every read;
* ``cds`` — the Copernicus Climate Data Store through ``cdsapi`` (one request per
  collection per month), files converted with xarray (NetCDF or GRIB/cfgrib);
* ``local`` — NetCDF/GRIB files already on disk (new-CDS, legacy ERA5 or GRIB names).

Every route ends in the same assembly (`_assemble`): project short names, the configured
pressure levels, ``month_times(month, step_hours)``, 6 h accumulations ending at each
step for tp/ro/pev (the sum of the six hourly ERA5 accumulations valid at t-5h … t, so
the first step of a month needs the last 5 hours of the previous month), optional block
coarsening, CF attributes from the catalogue and provenance, then `write_store`.

Coarsening (``coarsen: k``) is a block mean over k×k cells after selection. ERA5's
0.25° grid has 721 rows (both poles included), which no k > 1 divides; the block mean
uses ``boundary="trim"``, i.e. the trailing rows/columns that do not fill a block — for
the 721-row grid and k = 2, 4, 8 … this is the single southernmost (-90°) row — are
dropped, and the new coordinates are block means (cell centres, e.g. 89.625° … -89.625°
for k = 4). Soil type is categorical, so it takes the most frequent class in a block;
the land-sea mask becomes a land fraction.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from eofm.data.fetch import (
    FetchError,
    RetryPolicy,
    TransientError,
    is_transient,
    redact,
    sha256sum,
    with_retries,
)
from eofm.data.gridded import standardise_gridded
from eofm.data.sample import month_times
from eofm.data.store import store_writer, write_store
from eofm.data.variables import ATMOSPHERIC, STATIC, SURFACE, TARGETS, lookup

log = logging.getLogger(__name__)

SOURCE_NAME = "era5"
DEFAULT_ARCO_URL = "gs://gcp-public-data-arco-era5/ar/full_37-1h-0p25deg-chunk-1.zarr-v3"
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
_STATIC_ALIASES: dict[str, tuple[str, ...]] = {
    "lsm": ("lsm", "land_sea_mask"),
    "z": ("z", "geopotential_at_surface", "orography"),
    "slt": ("slt", "soil_type"),
}


# =========================================================================== entry points


def fetch_era5_month(month: str, out: str | os.PathLike, cfg: dict, policy: RetryPolicy) -> Path:
    """Fetch one month of ERA5 by ``cfg["source"]`` and write it as a monthly store."""
    source = cfg.get("source")
    if source == "arco":
        return _arco_month(month, Path(out), cfg, policy)
    if source == "cds":
        return _cds_month(month, Path(out), cfg, policy)
    if source == "local":
        return _local_month(month, Path(out), cfg)
    raise ValueError(_unknown_source(source))


def fetch_era5_static(out: str | os.PathLike, cfg: dict, policy: RetryPolicy) -> Path:
    """Fetch the invariant fields (lsm, surface geopotential z, slt) as the static store."""
    source = cfg.get("source")
    if source == "arco":
        return _arco_static(Path(out), cfg, policy)
    if source == "cds":
        return _cds_static(Path(out), cfg, policy)
    if source == "local":
        return _local_static(Path(out), cfg)
    raise ValueError(_unknown_source(source))


def era5_valid_until(cfg: dict, policy: RetryPolicy) -> str:
    """ARCO's ``valid_time_stop`` (inclusive, UTC): the last hour with final ERA5 data."""
    remote, url = _open_arco(cfg, policy, period="valid_time_stop")
    stop = remote.attrs.get("valid_time_stop")
    if not stop:
        raise FetchError(
            f"{SOURCE_NAME}/arco",
            url,
            "valid_time_stop",
            "store has no 'valid_time_stop' attribute; expected ARCO's valid_time_* attributes",
        )
    return str(stop)


def _unknown_source(source: Any) -> str:
    return (
        f"era5.source: unknown source {source!r}; expected one of 'arco', 'cds', 'local' "
        f"(or 'sample', handled by the sample generator)"
    )


# =========================================================================== config


def _levels(cfg: dict) -> list[int]:
    levels = [int(x) for x in cfg.get("levels") or []]
    if not levels or levels != sorted(set(levels)):
        raise ValueError(
            f"era5.levels: expected a non-empty, strictly ascending list of hPa, got "
            f"{cfg.get('levels')!r}"
        )
    return levels


def _step_hours(cfg: dict) -> int:
    step = int(cfg.get("step_hours", 6))
    if step <= 0:
        raise ValueError(f"era5.step_hours: expected a positive integer, got {step}")
    return step


def _coarsen_factor(cfg: dict) -> int:
    factor = cfg.get("coarsen", 1)
    if factor is None:
        return 1
    if int(factor) != factor or int(factor) < 1:
        raise ValueError(f"era5.coarsen: expected an integer >= 1, got {factor!r}")
    return int(factor)


def _required(cfg_vars: Sequence[str] | None, kind: str) -> list[str]:
    """Month variables in catalogue order (or the given subset, checked)."""
    known = [*SURFACE, *ATMOSPHERIC, *TARGETS] if kind == "month" else list(STATIC)
    if cfg_vars is None:
        return known
    unknown = [v for v in cfg_vars if v not in known]
    if unknown:
        raise ValueError(f"era5 variables: unknown {unknown}; expected a subset of {known}")
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


def _select_times(da: xr.DataArray, steps: np.ndarray, where: str) -> xr.DataArray:
    missing = np.setdiff1d(steps, da["time"].values)
    if missing.size:
        raise ValueError(
            f"{where}: variable {da.name!r} has no data at {_iso_list(missing)}; expected "
            f"every step of month_times (every {_step_text(steps)})"
        )
    return da.sel(time=steps)


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


# =========================================================================== ARCO


def _arco_cfg(cfg: dict) -> tuple[str, dict, bool | None]:
    arco = cfg.get("arco") or {}
    url = str(arco.get("url") or DEFAULT_ARCO_URL)
    options = arco.get("storage_options")
    options = {"token": "anon"} if options is None else dict(options)
    consolidated = arco.get("consolidated")
    return url, options, consolidated


def arco_transient(err: BaseException) -> bool:
    """Retry 5xx/429/408, connection resets, short bodies and timeouts from aiohttp/fsspec
    (also when zarr or xarray wrapped them)."""
    import aiohttp

    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if is_transient(current):
            return True
        if isinstance(current, aiohttp.ClientResponseError):
            return current.status >= 500 or current.status in (408, 429)
        if isinstance(
            current,
            aiohttp.ClientConnectionError | aiohttp.ClientPayloadError | TimeoutError,
        ):
            return True
        status = getattr(current, "code", None) or getattr(current, "status", None)
        if isinstance(status, int) and (status >= 500 or status in (408, 429)):
            return True  # gcsfs.retry.HttpError and similar
        current = current.__cause__ or current.__context__
    return False


def _open_arco(cfg: dict, policy: RetryPolicy, period: str) -> tuple[xr.Dataset, str]:
    url, options, consolidated = _arco_cfg(cfg)

    def call() -> xr.Dataset:
        return xr.open_zarr(
            url,
            storage_options=options,
            consolidated=consolidated,
            chunks=None,
            decode_timedelta=False,
        )

    ds = with_retries(
        call,
        source=f"{SOURCE_NAME}/arco",
        url=url,
        period=period,
        policy=policy,
        transient=arco_transient,
    )
    return ds, url


def _arco_valid_range(remote: xr.Dataset, url: str, period: str) -> tuple[np.datetime64, ...]:
    try:
        start = np.datetime64(str(remote.attrs["valid_time_start"]).rstrip("Z"), "ns")
        stop = np.datetime64(str(remote.attrs["valid_time_stop"]).rstrip("Z"), "ns")
    except (KeyError, ValueError) as err:
        raise FetchError(
            f"{SOURCE_NAME}/arco",
            url,
            period,
            f"store lacks a readable valid_time_start/valid_time_stop attribute ({err}); "
            f"expected ARCO's publication-range attributes",
        ) from err
    return start, stop


def _rename_arco(ds: xr.Dataset, names: dict[str, str]) -> xr.Dataset:
    ds = ds.rename({long: short for short, long in names.items() if long in ds})
    return standardise_gridded(ds, "arco")


def _arco_month(month: str, out: Path, cfg: dict, policy: RetryPolicy) -> Path:
    levels, step, factor = _levels(cfg), _step_hours(cfg), _coarsen_factor(cfg)
    steps = month_times(month, step)
    remote, url = _open_arco(cfg, policy, period=month)
    where = f"{SOURCE_NAME}/arco {redact(url)} ({month})"
    start, stop = _arco_valid_range(remote, url, month)
    first_needed = steps[0] - (ACCUMULATION_HOURS - 1) * _HOUR
    if first_needed < start or steps[-1] > stop:
        raise ValueError(
            f"{where}: month {month} is not fully published: it needs "
            f"{_iso(first_needed)} .. {_iso(steps[-1])} but the store's valid range is "
            f"{_iso(start)} .. {_iso(stop)} (valid_time_stop {remote.attrs['valid_time_stop']}); "
            f"ERA5 lags about 3 months — wait for the next update or choose an earlier month"
        )
    missing = [LONG_NAMES[v] for v in _required(None, "month") if LONG_NAMES[v] not in remote]
    if missing:
        raise ValueError(f"{where}: store lacks variables {missing}; expected ARCO's long names")
    remote = _rename_arco(remote[[LONG_NAMES[v] for v in _required(None, "month")]], LONG_NAMES)
    instant = [v for v in _required(None, "month") if v not in ACCUMULATED]

    def read(t: np.datetime64) -> xr.Dataset:
        now = remote[instant].sel(time=[t])
        now = xr.merge(
            [now.drop_vars([*ATMOSPHERIC, "level"])]
            + [_select_levels(now[v], levels, where) for v in ATMOSPHERIC]
        )
        window = t - np.arange(ACCUMULATION_HOURS - 1, -1, -1) * _HOUR
        hourly = remote[list(ACCUMULATED)].sel(time=window)
        acc = {v: accumulate(hourly[v], np.asarray([t]), where) for v in ACCUMULATED}
        return coarsen_grid(now.assign(acc).load(), factor)  # per step: bounded memory

    provenance = _arco_provenance(url, remote)
    # one step in memory at a time: a 0.25° month with 13 levels is ~37 GB, a step ~0.3 GB
    with store_writer(out) as write:
        for t in tqdm(steps, desc=f"era5 arco {month}", unit="step", leave=False):
            piece = with_retries(
                lambda t=t: read(t),
                source=f"{SOURCE_NAME}/arco",
                url=url,
                period=month,
                policy=policy,
                transient=arco_transient,
            )
            _check_complete(piece, where)
            ds = _finish(
                {v: piece[v] for v in _required(None, "month")},
                static=False,
                factor=1,
                provenance=provenance,
            )
            if factor > 1:
                ds.attrs["coarsen"] = factor
            write(ds)
    return Path(out)


def _arco_provenance(url: str, remote: xr.Dataset) -> dict[str, str]:
    name = url.rstrip("/").rsplit("/", 1)[-1]
    attrs = {
        "source": "arco",
        "source_url": redact(url),
        "source_version": name,
    }
    for key in ("valid_time_stop", "last_updated"):
        if key in remote.attrs:
            attrs[f"arco_{key}"] = str(remote.attrs[key])
    return attrs


def _arco_static(out: Path, cfg: dict, policy: RetryPolicy) -> Path:
    factor = _coarsen_factor(cfg)
    remote, url = _open_arco(cfg, policy, period="static")
    where = f"{SOURCE_NAME}/arco {redact(url)} (static)"
    missing = [n for n in STATIC_LONG_NAMES.values() if n not in remote]
    if missing:
        raise ValueError(f"{where}: store lacks variables {missing}; expected ARCO's long names")
    start, _ = _arco_valid_range(remote, url, "static")
    fields = _rename_arco(remote[list(STATIC_LONG_NAMES.values())], STATIC_LONG_NAMES)
    if "time" in fields.dims:  # ARCO stores the invariants at every hour; take the first
        fields = fields.sel(time=start)

    def read() -> xr.Dataset:
        return fields.load()

    loaded = with_retries(
        read,
        source=f"{SOURCE_NAME}/arco",
        url=url,
        period="static",
        policy=policy,
        transient=arco_transient,
    )
    _check_complete(loaded, where)
    ds = _finish(
        {v: loaded[v] for v in STATIC},
        static=True,
        factor=factor,
        provenance=_arco_provenance(url, remote),
    )
    return write_store(ds, out)


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


def fields_from_files(
    files: Sequence[Path],
    names: Sequence[str],
    month: str,
    steps: np.ndarray,
    levels: list[int],
    where: str,
) -> dict[str, xr.DataArray]:
    """Month fields on ``steps`` from any mix of files (several files may share a variable,
    e.g. the previous month's file supplying the hours before the first 6 h sum)."""
    datasets = [(path, ds) for path in files for ds in open_era5_file(path)]
    first = steps[0] - (ACCUMULATION_HOURS - 1) * _HOUR
    fields: dict[str, xr.DataArray] = {}
    for name in names:
        want_level = name in ATMOSPHERIC
        parts = _find(datasets, name, _ALIASES[name], want_level)
        if not parts:
            raise ValueError(
                f"{where}: variable {name!r} not found in {[str(f) for f in files]}; expected "
                f"one of the names {list(_ALIASES[name])}"
                + (" on pressure levels" if want_level else " without a level dimension")
            )
        da = _combine_times(parts, name, month, steps, first, where)
        if want_level:
            da = _select_levels(da, levels, where)
        if name in ACCUMULATED:
            da = accumulate(da, steps, where)
        else:
            da = _select_times(da, steps, where)
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
) -> Path:
    """Write month fields (lazy, on the same steps) in blocks of steps with `store_writer`.

    A block holds as many steps as fit in ``budget_bytes``: a 0.25° month with 13 levels
    (about 37 GB) goes three steps at a time, a coarse month in one block.
    """
    times = next(iter(fields.values()))["time"].values
    step_bytes = sum(da.isel(time=0).size * 4 for da in fields.values())  # float32
    block = max(1, min(times.size, budget_bytes // max(step_bytes, 1)))
    with store_writer(out, buffer_bytes=budget_bytes) as write:
        for k in tqdm(range(0, times.size, block), desc=where, unit="block", leave=False):
            piece = {name: da.isel(time=slice(k, k + block)).load() for name, da in fields.items()}
            ds = _finish(piece, static=False, factor=factor, provenance=provenance)
            _check_complete(ds, where)
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


def static_from_files(files: Sequence[Path], where: str) -> dict[str, xr.DataArray]:
    """lsm, surface z and slt from files; a time axis, if any, is reduced to its first step."""
    datasets = [(path, ds) for path in files for ds in open_era5_file(path)]
    fields = {}
    for name in STATIC:
        parts = _find(datasets, name, _STATIC_ALIASES[name], want_level=False)
        if not parts:
            raise ValueError(
                f"{where}: static variable {name!r} not found in {[str(f) for f in files]}; "
                f"expected one of the names {list(_STATIC_ALIASES[name])} without a level dim"
            )
        da = parts[0][1]
        for dim in ("time", "month"):
            if dim in da.dims:
                da = da.isel({dim: 0}, drop=True)
        fields[name] = da.load()
    return fields


def _expand_globs(patterns: Sequence[str] | str | None, key: str) -> list[Path]:
    if isinstance(patterns, str):
        patterns = [patterns]
    if not patterns:
        raise ValueError(f"era5.local.{key}: expected a list of file globs, got {patterns!r}")
    files: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.expanduser(str(pattern))))
        if not matches:
            raise FileNotFoundError(f"era5.local.{key}: no files match {pattern!r}")
        files += [Path(m) for m in matches if Path(m) not in files]
    return files


def _files_provenance(source: str, files: Sequence[Path], url: str | None = None) -> dict:
    return {
        "source": source,
        "source_url": redact(url) if url else " ".join(f"file://{f.resolve()}" for f in files),
        "source_version": " ".join(f.name for f in files),
        "input_checksums": json.dumps({f.name: sha256sum(f) for f in files}, sort_keys=True),
    }


def _local_month(month: str, out: Path, cfg: dict) -> Path:
    local = cfg.get("local") or {}
    levels, step, factor = _levels(cfg), _step_hours(cfg), _coarsen_factor(cfg)
    files = _expand_globs(local.get("paths"), "paths")
    names = _required(local.get("variables"), "month")
    steps = month_times(month, step)
    where = f"{SOURCE_NAME}/local ({month})"
    fields = fields_from_files(files, names, month, steps, levels, where)
    provenance = _files_provenance("local", files)
    return write_steps(fields, out, factor=factor, provenance=provenance, where=where)


def _local_static(out: Path, cfg: dict) -> Path:
    local = cfg.get("local") or {}
    files = _expand_globs(local.get("static_paths"), "static_paths")
    fields = static_from_files(files, f"{SOURCE_NAME}/local (static)")
    ds = _finish(
        fields,
        static=True,
        factor=_coarsen_factor(cfg),
        provenance=_files_provenance("local", files),
    )
    return write_store(ds, out)


# =========================================================================== CDS

SINGLE_LEVELS = "reanalysis-era5-single-levels"
PRESSURE_LEVELS = "reanalysis-era5-pressure-levels"
_CDS_CREDENTIALS_HELP = (
    "set CDSAPI_URL (e.g. https://cds.climate.copernicus.eu/api) and CDSAPI_KEY (your "
    "personal access token) in the environment, or write them to ~/.cdsapirc "
    "(or the file named by CDSAPI_RC) as 'url: ...' and 'key: ...'"
)


def cds_requests(month: str, cfg: dict) -> list[tuple[str, str, dict]]:
    """(label, collection, request) for one month, in the new CDS request format.

    Instantaneous fields are asked for at the step hours only; accumulations (tp, ro,
    pev) hourly, because a 6 h sum needs every hour — plus the previous day's last five
    hours, which the month's first 6 h sum reaches back into. Splitting instantaneous
    from hourly fields keeps each request far below the CDS cost limits.
    """
    step = _step_hours(cfg)
    steps = month_times(month, step)
    cds = cfg.get("cds") or {}
    data_format = str(cds.get("data_format", "grib"))
    if data_format not in ("grib", "netcdf"):
        raise ValueError(f"era5.cds.data_format: expected 'grib' or 'netcdf', got {data_format!r}")
    common: dict[str, Any] = {
        "product_type": ["reanalysis"],
        "data_format": data_format,
        "download_format": "unarchived",
    }
    if cds.get("area") is not None:
        area = [float(x) for x in cds["area"]]
        if len(area) != 4:
            raise ValueError(f"era5.cds.area: expected [N, W, S, E], got {cds['area']!r}")
        common["area"] = area
    year, mon = month.split("-")
    days = sorted({str(np.datetime64(t, "D"))[-2:] for t in steps})
    hours = sorted({f"{int(str(np.datetime64(t, 'h'))[-2:]):02d}:00" for t in steps})
    when = {"year": [year], "month": [mon], "day": days}
    instant = [LONG_NAMES[v] for v in SURFACE] + [LONG_NAMES["swvl1"]]
    accumulated = [LONG_NAMES[v] for v in ACCUMULATED]
    before = steps[0] - _HOUR
    prev_day = str(np.datetime64(before, "D"))
    tail = [f"{h:02d}:00" for h in range(24 - (ACCUMULATION_HOURS - 1), 24)]
    return [
        ("instant", SINGLE_LEVELS, {**common, "variable": instant, **when, "time": hours}),
        (
            "accumulated",
            SINGLE_LEVELS,
            {**common, "variable": accumulated, **when, "time": [f"{h:02d}:00" for h in range(24)]},
        ),
        (
            "accumulated-previous-day",
            SINGLE_LEVELS,
            {
                **common,
                "variable": accumulated,
                "year": [prev_day[:4]],
                "month": [prev_day[5:7]],
                "day": [prev_day[8:10]],
                "time": tail,
            },
        ),
        (
            "pressure",
            PRESSURE_LEVELS,
            {
                **common,
                "variable": [LONG_NAMES[v] for v in ATMOSPHERIC],
                "pressure_level": [str(p) for p in _levels(cfg)],
                **when,
                "time": hours,
            },
        ),
    ]


def _cds_client(cfg: dict) -> Any:
    """A cdsapi client from env/rc credentials only; fails fast (no prompt) without them."""
    env_url, env_key = os.environ.get("CDSAPI_URL"), os.environ.get("CDSAPI_KEY")
    rc = Path(os.environ.get("CDSAPI_RC", "~/.cdsapirc")).expanduser()
    if not (env_url and env_key) and not rc.is_file():
        raise RuntimeError(f"{SOURCE_NAME}/cds: no CDS credentials found; {_CDS_CREDENTIALS_HELP}")
    if env_key and ":" in env_key:
        raise RuntimeError(
            f"{SOURCE_NAME}/cds: CDSAPI_KEY has the retired 'UID:KEY' form; the new CDS needs "
            f"only the personal access token; {_CDS_CREDENTIALS_HELP}"
        )
    import cdsapi

    cds = cfg.get("cds") or {}
    cds_log = logging.getLogger(f"{__name__}.cds")

    def quiet(*args: Any, **kwargs: Any) -> None:
        """Drop the clients' debug lines: one of them prints the key."""

    try:
        return cdsapi.Client(
            quiet=False,
            debug=False,
            progress=bool(cds.get("progress", True)),
            retry_max=int(cds.get("retry_max", 1)),  # eofm retries the whole retrieval
            sleep_max=float(cds.get("sleep_max", 120)),
            timeout=int(cds.get("timeout", 60)),
            info_callback=lambda *a, **k: cds_log.info(*a),
            warning_callback=lambda *a, **k: cds_log.warning(*a),
            error_callback=lambda *a, **k: cds_log.error(*a),
            debug_callback=quiet,
        )
    except Exception as err:  # cdsapi raises bare Exception for a bad rc file
        raise RuntimeError(
            f"{SOURCE_NAME}/cds: cannot configure the CDS client ({type(err).__name__}); "
            f"{_CDS_CREDENTIALS_HELP}"
        ) from None


def _cds_retrieve(
    client: Any, collection: str, request: dict, target: Path, period: str, policy: RetryPolicy
) -> Path:
    """One retrieval with retries on transient errors; a failed job is final."""
    import requests
    from ecmwf.datastores.processing import ProcessingFailedError

    url = f"{client.url}/retrieve/v1/processes/{collection}"

    def call() -> Path:
        try:
            client.retrieve(collection, request, str(target))
        except ProcessingFailedError as err:
            raise FetchError(
                f"{SOURCE_NAME}/cds", url, period, f"CDS job failed: {_one_line(str(err))}"
            ) from None
        except requests.HTTPError as err:
            status = err.response.status_code if err.response is not None else 0
            if 400 <= status < 500 and status not in (408, 429):
                raise FetchError(
                    f"{SOURCE_NAME}/cds",
                    url,
                    period,
                    f"HTTP {status}: {_one_line(str(err))}"
                    + (
                        f"; check the credentials: {_CDS_CREDENTIALS_HELP}" if status == 401 else ""
                    ),
                ) from None
            raise
        if not target.is_file():
            raise TransientError(f"the CDS client returned without writing {target.name}")
        return target

    return with_retries(call, source=f"{SOURCE_NAME}/cds", url=url, period=period, policy=policy)


def _one_line(text: str) -> str:
    words = [redact(w) if "://" in w else w for w in text.split()]
    return " ".join(words)


def _unpack(path: Path) -> list[Path]:
    """A multi-stream NetCDF request may come back as a zip of .nc files."""
    if not zipfile.is_zipfile(path):
        return [path]
    dest = path.with_name(path.name + ".d")
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        for name in names:
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise ValueError(f"{path}: unsafe member {name!r} in the zip from the CDS")
        archive.extractall(dest, members=names)
    return [dest / n for n in names]


def _cds_fetch(
    jobs: list[tuple[str, str, dict]], out: Path, period: str, cfg: dict, policy: RetryPolicy
) -> tuple[list[Path], list[Path], Path, str]:
    client = _cds_client(cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.cds-", dir=out.parent))
    ext = "grib" if jobs[0][2]["data_format"] == "grib" else "nc"
    downloaded: list[Path] = []
    files: list[Path] = []
    try:
        for label, collection, request in tqdm(jobs, desc=f"era5 cds {period}", unit="request"):
            target = tmp / f"{collection}-{period}-{label}.{ext}"
            _cds_retrieve(client, collection, request, target, period, policy)
            downloaded.append(target)
            files += _unpack(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return downloaded, files, tmp, str(client.url)


def _cds_provenance(url: str, jobs: list[tuple[str, str, dict]], downloaded: list[Path]) -> dict:
    collections = sorted({c for _, c, _ in jobs})
    return {
        "source": "cds",
        "source_url": redact(url),
        "source_version": " ".join(collections) + " (" + " ".join(p.name for p in downloaded) + ")",
        "input_checksums": json.dumps({p.name: sha256sum(p) for p in downloaded}, sort_keys=True),
    }


def _cds_month(month: str, out: Path, cfg: dict, policy: RetryPolicy) -> Path:
    levels, step, factor = _levels(cfg), _step_hours(cfg), _coarsen_factor(cfg)
    steps = month_times(month, step)
    jobs = cds_requests(month, cfg)
    downloaded, files, tmp, url = _cds_fetch(jobs, out, month, cfg, policy)
    try:
        where = f"{SOURCE_NAME}/cds ({month})"
        fields = fields_from_files(files, _required(None, "month"), month, steps, levels, where)
        provenance = _cds_provenance(url, jobs, downloaded)
        return write_steps(fields, out, factor=factor, provenance=provenance, where=where)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cds_static(out: Path, cfg: dict, policy: RetryPolicy) -> Path:
    cds = cfg.get("cds") or {}
    date = str(cds.get("static_date", "2000-01-01"))
    request: dict[str, Any] = {
        "product_type": ["reanalysis"],
        "variable": ["land_sea_mask", "geopotential", "soil_type"],
        "year": [date[:4]],
        "month": [date[5:7]],
        "day": [date[8:10]],
        "time": ["00:00"],
        "data_format": str(cds.get("data_format", "grib")),
        "download_format": "unarchived",
    }
    if cds.get("area") is not None:
        request["area"] = [float(x) for x in cds["area"]]
    jobs = [("static", SINGLE_LEVELS, request)]
    downloaded, files, tmp, url = _cds_fetch(jobs, out, "static", cfg, policy)
    try:
        fields = static_from_files(files, f"{SOURCE_NAME}/cds (static)")
        ds = _finish(
            fields,
            static=True,
            factor=_coarsen_factor(cfg),
            provenance=_cds_provenance(url, jobs, downloaded),
        )
        return write_store(ds, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
