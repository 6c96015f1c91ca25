"""One quality-control report per store: contract, units, ranges, NaNs and time coverage.

The report also records the grid (global or regional, bounds, longitude step; an uneven
longitude axis fails through the store contract) and the coverage the fetch step wrote
into the store (``coverage`` attribute: steps found/expected, variables, configured area).

QC runs before statistics and training so that a wrong unit or a gap in the download
stops the workflow with a readable report instead of a silently bad model.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from eofm.data.gridded import grid_extent
from eofm.data.store import contract_problems, ignoring_snakemake_marker, open_store
from eofm.data.variables import TARGETS, Kind, lookup
from eofm.errors import QCError

_BLOCK_ELEMENTS = 8_000_000
_DIMENSIONLESS = {"1", "(0-1)", "~", "dimensionless", "fraction"}


def check_store(
    path: str | os.PathLike,
    expected_times: np.ndarray | None = None,
    *,
    max_nan_fraction: float = 0.0,
) -> dict:
    """Check one store against the contract and the variable catalogue.

    Returns a JSON-serialisable report; ``passed`` is False when any problem was found.
    Variables missing from the catalogue are reported with kind "unknown", not failed.
    """
    store = str(Path(path))
    report: dict = {
        "store": store,
        "passed": False,
        "problems": [],
        "coverage": None,
        "grid": None,
        "recorded_coverage": None,
        "variables": {},
    }
    problems: list[str] = report["problems"]
    try:
        ds = open_store(store)
    except (FileNotFoundError, ValueError) as err:
        problems.append(str(err))
        return report
    with ds:
        problems.extend(chunk_problems(store))
        problems.extend(contract_problems(ds, store))
        report["grid"], report["recorded_coverage"] = _grid_and_recorded(ds, store, problems)
        if expected_times is not None:
            report["coverage"] = _coverage(ds, store, expected_times, problems)
        for name in ds.data_vars:
            try:
                report["variables"][name] = _check_variable(
                    ds[name], str(name), store, max_nan_fraction, problems
                )
            except Exception as err:  # a garbled chunk: zstd/blosc/zarr errors name no chunk
                report["variables"][name] = {"kind": "unreadable", "error": _first_line(err)}
                problems.extend(
                    unreadable_chunks(store, str(name))
                    or [
                        f"{store}: variable {name!r} cannot be read ({_first_line(err)}); "
                        f"expected every chunk to decode"
                    ]
                )
    report["passed"] = not problems
    return report


def chunk_problems(store: str) -> list[str]:
    """Chunks that should exist per each array's shape but are absent.

    Zarr reads an absent chunk as the fill value without complaint, so a deleted chunk
    would pass as NaN (or as zeros for integer arrays) and shrink every later statistic.
    """
    problems: list[str] = []
    try:
        with ignoring_snakemake_marker():
            arrays = list(zarr.open_group(store, mode="r").arrays())
    except Exception as err:  # the store could not be opened: open_store reports it
        return [f"{store}: cannot list the store's arrays ({_first_line(err)})"]
    for name, array in arrays:
        if array.size == 0:
            continue
        missing = [
            key
            for index in itertools.product(*(range(n) for n in array.cdata_shape))
            if not (Path(store) / name / (key := array.metadata.encode_chunk_key(index))).exists()
        ]
        if missing:
            shown = ", ".join(f"{name}/{k}" for k in missing[:5]) + (
                " ..." if len(missing) > 5 else ""
            )
            problems.append(
                f"{store}: variable {name!r} has {len(missing)} of {array.nchunks} chunk(s) "
                f"absent ({shown}), read back as fill value {array.fill_value}; expected every "
                f"chunk written (deleted or never written: rerun the fetch for this store)"
            )
    return problems


def unreadable_chunks(store: str, name: str) -> list[str]:
    """One problem per chunk of ``name`` that does not decode, naming its key."""
    try:
        array = zarr.open_array(Path(store) / name, mode="r")
    except Exception as err:
        return [f"{store}: variable {name!r} cannot be opened ({_first_line(err)})"]
    problems = []
    for index in itertools.product(*(range(n) for n in array.cdata_shape)):
        try:
            array.blocks[index]
        except Exception as err:
            key = array.metadata.encode_chunk_key(index)
            problems.append(
                f"{store}: variable {name!r} chunk {name}/{key} cannot be decoded "
                f"({type(err).__name__}: {_first_line(err)}); expected a readable chunk "
                f"(garbled or truncated: rerun the fetch for this store)"
            )
    return problems


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def require_passed(reports: Sequence[dict]) -> None:
    """Raise QCError listing every failing store and each of its problems."""
    failing = [r for r in reports if not r.get("passed", False)]
    if not failing:
        return
    lines = [f"QC failed for {len(failing)} of {len(reports)} store(s):"]
    for r in failing:
        lines.append(f"{r.get('store', '?')}:")
        lines.extend(f"  - {p}" for p in r.get("problems") or ["(no problem recorded)"])
    raise QCError("\n".join(lines))


def require_store_qc(reports: Sequence[str | os.PathLike[str]]) -> None:
    """Stop a job that reads stores unless every one of their QC reports passed.

    Every rule that reads a gridded store takes its QC reports as inputs and calls this
    first, so a month that failed QC stops training, encoding and evaluation alike, not
    only the statistics.
    """
    loaded = []
    for path in [reports] if isinstance(reports, str | os.PathLike) else reports:
        try:
            loaded.append(json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise QCError(f"{path}: QC report not found; expected one per store read") from None
        except json.JSONDecodeError as err:
            raise QCError(f"{path}: QC report is not valid JSON ({err})") from None
    require_passed(loaded)


def infer_kind(var: xr.DataArray) -> Kind:
    """static without time, atmospheric with levels, target if the catalogue says so."""
    if "time" not in var.dims:
        return "static"
    if "level" in var.dims:
        return "atmospheric"
    return "target" if var.name in TARGETS else "surface"


def _normalise_units(units: str) -> str:
    """'m**2 s**-2' (ERA5 GRIB/NetCDF) and 'm2 s-2' (CF) are the same unit."""
    u = re.sub(r"\s+", " ", units.replace("**", "").replace("^", "")).strip()
    return "1" if u.replace(" ", "") in _DIMENSIONLESS else u


def _coverage(ds: xr.Dataset, store: str, expected_times: np.ndarray, problems: list[str]) -> dict:
    expected = np.unique(np.asarray(expected_times).astype("datetime64[ns]"))
    present = (
        ds["time"].values.astype("datetime64[ns]")
        if "time" in ds.coords
        else np.array([], dtype="datetime64[ns]")
    )
    missing = np.setdiff1d(expected, present)
    iso = [str(t) for t in np.datetime_as_string(missing, unit="s")]
    if missing.size:
        shown = ", ".join(iso[:5]) + (" ..." if len(iso) > 5 else "")
        problems.append(
            f"{store}: {missing.size} of {expected.size} expected time steps missing "
            f"(expected every time step; missing {shown})"
        )
    return {
        "expected": int(expected.size),
        "present": int(expected.size - missing.size),
        "missing": iso,
    }


def _grid_and_recorded(
    ds: xr.Dataset, store: str, problems: list[str]
) -> tuple[dict | None, dict | None]:
    """The grid's extent, and the store's own ``coverage`` record checked against it."""
    if "lat" not in ds.coords or "lon" not in ds.coords:
        return None, None
    grid = grid_extent(ds["lat"].values, ds["lon"].values)
    raw = ds.attrs.get("coverage")
    if raw is None:
        return grid, None
    try:
        recorded = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (TypeError, ValueError) as err:
        problems.append(f"{store}: attribute 'coverage' is not JSON ({err})")
        return grid, None
    steps = recorded.get("time_steps") or {}
    n_time = ds.sizes.get("time")
    if steps and n_time is not None and steps.get("found") != n_time:
        problems.append(
            f"{store}: attribute 'coverage' records {steps.get('found')} time steps; the store "
            f"has {n_time}"
        )
    if recorded.get("extent") == "regional" and recorded.get("area") is None:
        problems.append(
            f"{store}: is regional ({recorded.get('lon')} lon, {recorded.get('lat')} lat) "
            f"but records no configured area; expected a global grid"
        )
    return grid, recorded


def _scan(var: xr.DataArray) -> tuple[float, float | None, float | None]:
    """NaN fraction, min and max, a block of time steps at a time."""
    n_nan, total = 0, 0
    lo, hi = np.inf, -np.inf
    if "time" in var.dims and var.sizes["time"] > 0:
        per_step = max(1, var.size // var.sizes["time"])
        step = max(1, _BLOCK_ELEMENTS // per_step)
        blocks = (var.isel(time=slice(i, i + step)) for i in range(0, var.sizes["time"], step))
    else:
        blocks = iter([var])
    for block in blocks:
        x = np.asarray(block.values, dtype=np.float64)
        finite = np.isfinite(x)
        n_nan += int(x.size - finite.sum())
        total += x.size
        if finite.any():
            lo, hi = min(lo, float(x[finite].min())), max(hi, float(x[finite].max()))
    fraction = n_nan / total if total else 0.0
    return fraction, (lo if np.isfinite(lo) else None), (hi if np.isfinite(hi) else None)


def _check_variable(
    var: xr.DataArray, name: str, store: str, max_nan_fraction: float, problems: list[str]
) -> dict:
    kind = infer_kind(var)
    units = str(var.attrs.get("units", ""))
    nan_fraction, lo, hi = _scan(var)
    try:
        entry = lookup(name, kind)
    except KeyError:
        return {
            "kind": "unknown",
            "units": units,
            "expected_units": None,
            "nan_fraction": nan_fraction,
            "min": lo,
            "max": hi,
            "valid_min": None,
            "valid_max": None,
            "in_range": None,
            "note": f"not in the eofm catalogue as a {kind} variable; units and range not checked",
        }
    if _normalise_units(units) != _normalise_units(entry.units):
        problems.append(
            f"{store}: variable {name!r} has units {units!r}; expected {entry.units!r} "
            f"({kind} variable in the catalogue)"
        )
    if nan_fraction > max_nan_fraction:
        problems.append(
            f"{store}: variable {name!r} is {nan_fraction:.2%} NaN; expected at most "
            f"{max_nan_fraction:.2%}"
        )
    in_range = lo is not None and hi is not None and entry.valid_min <= lo and hi <= entry.valid_max
    if lo is not None and hi is not None and not in_range:
        problems.append(
            f"{store}: variable {name!r} ranges {lo:g} .. {hi:g}; expected within "
            f"[{entry.valid_min:g}, {entry.valid_max:g}] {entry.units}"
        )
    return {
        "kind": kind,
        "units": units,
        "expected_units": entry.units,
        "nan_fraction": nan_fraction,
        "min": lo,
        "max": hi,
        "valid_min": entry.valid_min,
        "valid_max": entry.valid_max,
        "in_range": bool(in_range),
    }
