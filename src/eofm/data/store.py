"""The one Zarr writer every source uses: contract checks, chunking, provenance, atomicity.

A killed or failing job must leave either the previous store or none at the output path,
never a half-written one, because Snakemake trusts whatever exists. So every write goes to
a hidden temporary sibling in the same directory and is renamed into place at the end.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from zarr.errors import ZarrUserWarning

import eofm
from eofm.data.gridded import is_global_lon, uneven_lon
from eofm.errors import StoreContractError

GRID_DIMS = ("time", "level", "lat", "lon")
_TIME_LIKE = ("time", "hour")
_REQUIRED_VAR_ATTRS = ("units", "standard_name", "long_name")
_REQUIRED_DATASET_ATTRS = ("source", "source_url")
_TIME_ENCODING = {
    "units": "seconds since 1970-01-01T00:00:00",
    "calendar": "proleptic_gregorian",
    "dtype": "int64",
}
#: Snakemake marks a finished `directory()` output with this file; zarr warns about it
SNAKEMAKE_MARKER = ".snakemake_timestamp"


# --------------------------------------------------------------------------- contract


def contract_problems(ds: xr.Dataset, where: str) -> list[str]:
    """Every way ``ds`` breaks the gridded contract, each naming ``where`` and the culprit.

    QC reports all of them at once; ``validate_gridded`` raises with the same list.
    """
    problems: list[str] = []
    if "time" in ds.dims and "hour" in ds.dims:
        problems.append(f"{where}: expected either a 'time' or an 'hour' dim, found both")
    for name, var in sorted(ds.data_vars.items()):
        dims = tuple(var.dims)
        unknown = [d for d in dims if d not in (*GRID_DIMS, "hour")]
        if unknown:
            problems.append(
                f"{where}: variable {name!r} has dims {dims}; expected only dims from "
                f"{GRID_DIMS} (or 'hour' instead of 'time'), not {unknown}"
            )
            continue
        order = [("time" if d == "hour" else d) for d in dims]
        if order != [d for d in GRID_DIMS if d in order]:
            problems.append(
                f"{where}: variable {name!r} has dims {dims}; expected the order "
                f"(time|hour, level, lat, lon)"
            )
        if "lat" not in dims or "lon" not in dims:
            problems.append(f"{where}: variable {name!r} has dims {dims}; expected lat and lon")
        for key in _REQUIRED_VAR_ATTRS:
            value = var.attrs.get(key)
            if not isinstance(value, str) or not value:
                problems.append(f"{where}: variable {name!r} has no {key!r} attribute (CF)")
    problems += _coordinate_problems(ds, where)
    for key in _REQUIRED_DATASET_ATTRS:
        if not ds.attrs.get(key):
            problems.append(f"{where}: dataset attribute {key!r} is missing (provenance)")
    return problems


def _coordinate_problems(ds: xr.Dataset, where: str) -> list[str]:
    problems: list[str] = []
    for name in ("lat", "lon"):
        if name not in ds.coords or ds[name].ndim != 1 or ds[name].dims != (name,):
            problems.append(f"{where}: coordinate {name!r} is missing; expected a 1-D {name}")
    if problems:
        return problems
    lat = np.asarray(ds["lat"].values, dtype=np.float64)
    lon = np.asarray(ds["lon"].values, dtype=np.float64)
    if lat.size > 1 and not np.all(np.diff(lat) < 0):
        problems.append(
            f"{where}: coordinate 'lat' must be strictly descending (north to south), "
            f"got {lat[0]:g} .. {lat[-1]:g}"
        )
    if lat.size and (lat.min() < -90.0 or lat.max() > 90.0):
        problems.append(f"{where}: coordinate 'lat' must lie within [-90, 90]")
    if lon.size > 1 and not np.all(np.diff(lon) > 0):
        problems.append(
            f"{where}: coordinate 'lon' must be strictly ascending, got {lon[0]:g} .. {lon[-1]:g}"
        )
    problems += _lon_problems(lon, where)
    if "time" in ds.coords and ds["time"].ndim == 1:
        time = ds["time"].values
        if not np.issubdtype(time.dtype, np.datetime64):
            problems.append(f"{where}: coordinate 'time' must be datetime64, got {time.dtype}")
        elif time.size > 1 and not np.all(np.diff(time) > np.timedelta64(0, "ns")):
            problems.append(f"{where}: coordinate 'time' must be strictly increasing")
    return problems


def _lon_problems(lon: np.ndarray, where: str) -> list[str]:
    """A global axis lies in [0, 360); a regional one is contiguous within [-180, 360)
    (e.g. -15 .. 5 across 0°); both are evenly spaced, so no block mean spans a gap."""
    if lon.size < 2 or not np.all(np.diff(lon) > 0):
        if lon.size and (lon.min() < -180.0 or lon.max() >= 360.0):
            return [f"{where}: coordinate 'lon' must lie within [-180, 360)"]
        return []
    problems = []
    uneven = uneven_lon(lon)
    if uneven:
        problems.append(
            f"{where}: coordinate 'lon' must be evenly spaced (a contiguous grid), but {uneven}"
        )
    if is_global_lon(lon):
        if lon.min() < 0.0 or lon.max() >= 360.0:
            problems.append(
                f"{where}: coordinate 'lon' must lie within [0, 360) for a global grid, got "
                f"{lon.min():g} .. {lon.max():g}"
            )
    elif lon.min() < -180.0 or lon.max() >= 360.0 or lon[-1] - lon[0] >= 360.0:
        problems.append(
            f"{where}: coordinate 'lon' of a regional grid must be one contiguous run within "
            f"[-180, 360), got {lon.min():g} .. {lon.max():g}"
        )
    return problems


def validate_gridded(ds: xr.Dataset, where: str) -> None:
    """Raise StoreContractError listing every contract violation of ``ds``."""
    problems = contract_problems(ds, where)
    if problems:
        raise StoreContractError("; ".join(problems))


# --------------------------------------------------------------------------- writing


def write_store(ds: xr.Dataset, path: str | os.PathLike, *, validate: bool = True) -> Path:
    """Write ``ds`` as a Zarr v3 store at ``path`` atomically, one time step per chunk."""
    with store_writer(path, validate=validate) as write:
        write(ds)
    return Path(path)


@contextmanager
def store_writer(
    path: str | os.PathLike, *, validate: bool = True, buffer_bytes: int = 1 << 30
) -> Iterator[Callable[[xr.Dataset], None]]:
    """Write a store piece by piece along time, so memory holds a bounded part of a month.

    Yields ``write(piece)``. Pieces are buffered up to ``buffer_bytes`` and then written
    in one go (each Zarr append has a fixed cost): the first batch creates the store in
    a temporary sibling, later ones are appended along time (same variables, same grid).
    The store is renamed onto ``path`` only when the block ends without error, so a
    failure halfway leaves the previous store (or none), never a month's first half.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_siblings(target)
    tmp = _sibling(target, "tmp")
    first: dict[str, Any] = {}
    names: set[str] = set()
    pending: list[xr.Dataset] = []

    def flush() -> None:
        if not pending:
            return
        batch = pending[0] if len(pending) == 1 else xr.concat(pending, dim="time")
        pending.clear()
        if not first:
            if validate:
                validate_gridded(batch, str(target))
            ds = _prepare(batch)
            ds.to_zarr(tmp, mode="w-", zarr_format=3, consolidated=False, encoding=_encoding(ds))
            first["attrs"] = dict(ds.attrs)
            first["vars"] = {name: dict(ds[name].attrs) for name in ds.data_vars}
            return
        ds = _prepare(batch).drop_vars([n for n in batch.variables if "time" not in batch[n].dims])
        ds.attrs = first["attrs"]
        for name, attrs in first["vars"].items():
            ds[name].attrs = attrs
        ds.to_zarr(tmp, mode="a", append_dim="time", consolidated=False, zarr_format=3)

    def write(piece: xr.Dataset) -> None:
        got = set(map(str, piece.data_vars))
        if not names:
            names.update(got)
        elif got != names:
            raise ValueError(
                f"{target}: piece has variables {sorted(got)}, the store {sorted(names)}"
            )
        pending.append(piece)
        if sum(p.nbytes for p in pending) >= buffer_bytes:
            flush()

    try:
        yield write
        flush()
        if not first:
            raise ValueError(f"{target}: nothing was written (no pieces)")
        _swap_into_place(tmp, target)
    except BaseException:
        _remove(tmp)
        raise


@contextmanager
def atomic_store(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling directory of ``path`` to build a store in (by any writer);
    it replaces ``path`` only when the block ends without error, else it is removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_siblings(target)
    tmp = _sibling(target, "tmp")
    try:
        yield tmp
        _swap_into_place(tmp, target)
    except BaseException:
        _remove(tmp)
        raise


def append_store(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Append ``ds`` along time to the store at ``path`` atomically (copy, append, swap)."""
    target = Path(path)
    validate_gridded(ds, f"{target} (data to append)")
    _remove_stale_siblings(target)  # may restore a store a killed writer had moved aside
    with open_store(target) as existing:
        _check_appendable(existing, ds, target)
        attrs = dict(existing.attrs)
        var_attrs = {name: dict(existing[name].attrs) for name in existing.data_vars}
    attrs["eofm_version"] = eofm.__version__
    new = _prepare(ds).drop_vars([n for n in ds.variables if "time" not in ds[n].dims])
    new.attrs = attrs
    for name in new.data_vars:
        new[name].attrs = var_attrs[name]
    for name in new.variables:
        new[name].encoding = {}
    tmp = _sibling(target, "tmp")
    try:
        shutil.copytree(target, tmp)
        with ignoring_snakemake_marker():
            new.to_zarr(tmp, mode="a", append_dim="time", consolidated=False, zarr_format=3)
        _swap_into_place(tmp, target)
    except BaseException:
        _remove(tmp)
        raise
    return target


def open_store(path: str | os.PathLike) -> xr.Dataset:
    """Open a store lazily, naming the path when it is missing or not Zarr."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: Zarr store not found")
    if not p.is_dir() or not ((p / "zarr.json").is_file() or (p / ".zgroup").is_file()):
        raise ValueError(f"{p}: not a Zarr store (expected a directory with zarr.json)")
    try:
        with ignoring_snakemake_marker():
            return xr.open_zarr(p, consolidated=False)
    except Exception as err:  # zarr/xarray errors rarely say which store
        raise ValueError(f"{p}: cannot open Zarr store ({err})") from err


@contextmanager
def ignoring_snakemake_marker() -> Iterator[None]:
    """Silence zarr's warning about Snakemake's marker file, and only that warning.

    Snakemake writes ``.snakemake_timestamp`` into every finished ``directory()`` output;
    zarr, listing a store's members, warns that the file is no Zarr node, on every open.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=rf"Object at {re.escape(SNAKEMAKE_MARKER)} is not recognized",
            category=ZarrUserWarning,
        )
        yield


def describe_store(path: str | os.PathLike) -> str:
    """Every variable with its dims, units and long name, plus provenance.

    xarray's repr collapses long variable lists, which hides exactly what a
    user runs ``describe`` to see.
    """
    ds = open_store(path)
    sizes = ", ".join(f"{d}={n}" for d, n in ds.sizes.items())
    lines = [f"{Path(path)}", f"dims: {sizes}"]
    if "time" in ds.coords and ds.sizes.get("time", 0):
        lines.append(f"time: {_iso(ds.time.values[0])} .. {_iso(ds.time.values[-1])}")
    lines.append(f"variables ({len(ds.data_vars)}):")
    width = max((len(str(n)) for n in ds.data_vars), default=0)
    for name, var in sorted(ds.data_vars.items()):
        units = var.attrs.get("units", "?")
        long_name = var.attrs.get("long_name", "")
        dims = ",".join(map(str, var.dims))
        lines.append(f"  {name!s:<{width}}  ({dims})  [{units}]  {long_name}".rstrip())
    lines.append("attributes:")
    lines.extend(f"  {k}: {v}" for k, v in ds.attrs.items())
    return "\n".join(lines)


def _prepare(ds: xr.Dataset) -> xr.Dataset:
    """Copy with provenance filled and source encodings (netCDF chunking etc.) dropped."""
    ds = ds.copy(deep=False)
    ds.attrs = dict(ds.attrs)
    ds.attrs["eofm_version"] = eofm.__version__
    ds.attrs.setdefault("retrieved", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    for name in ds.variables:
        ds[name].encoding = {}
    if any(var.chunks is not None for var in ds.variables.values()):
        ds = ds.chunk({dim: (1 if dim == "time" else -1) for dim in ds.dims})
    return ds


def _encoding(ds: xr.Dataset) -> dict[str, dict]:
    """Chunk data variables one time step each (whole otherwise), times in int64 seconds."""
    encoding: dict[str, dict] = {}
    for name, var in sorted(ds.data_vars.items()):
        chunks = tuple(1 if dim == "time" else max(size, 1) for dim, size in var.sizes.items())
        encoding[name] = {"chunks": chunks}
    if "time" in ds.variables and np.issubdtype(ds["time"].dtype, np.datetime64):
        encoding["time"] = dict(_TIME_ENCODING)
    return encoding


def _check_appendable(existing: xr.Dataset, new: xr.Dataset, path: Path) -> None:
    if "time" not in existing.dims or "time" not in new.dims:
        raise ValueError(f"{path}: append needs a 'time' dim in the store and in the new data")
    old_vars, new_vars = set(existing.data_vars), set(new.data_vars)
    if old_vars != new_vars:
        raise ValueError(
            f"{path}: cannot append, variables differ: store has {sorted(old_vars)}, "
            f"new data has {sorted(new_vars)}"
        )
    for name in sorted(new_vars):
        if existing[name].dims != new[name].dims:
            raise ValueError(
                f"{path}: cannot append variable {name!r}: store dims {existing[name].dims}, "
                f"new dims {new[name].dims}"
            )
    for coord in ("level", "lat", "lon"):
        in_old, in_new = coord in existing.coords, coord in new.coords
        if in_old != in_new or (
            in_old and not np.array_equal(existing[coord].values, new[coord].values)
        ):
            raise ValueError(
                f"{path}: cannot append, coordinate {coord!r} differs from the store's "
                f"(expected the same {coord} values)"
            )
    old_times, new_times = existing["time"].values, new["time"].values
    if new_times.size == 0:
        raise ValueError(f"{path}: nothing to append (no time steps)")
    if old_times.size and new_times[0] <= old_times[-1]:
        overlap = np.intersect1d(old_times, new_times)
        detail = f"{overlap.size} overlapping time(s)" if overlap.size else "earlier time(s)"
        raise ValueError(
            f"{path}: cannot append, {detail}: new data starts at {_iso(new_times[0])}, "
            f"expected after the store's last time {_iso(old_times[-1])}"
        )


def _iso(t: np.datetime64) -> str:
    return str(np.datetime_as_string(t, unit="s"))


# --------------------------------------------------------------------------- atomic swap


def _sibling(target: Path, kind: str) -> Path:
    """A hidden sibling named after the path, the writer's pid and a random token."""
    return target.parent / f".{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"


def _swap_into_place(tmp: Path, target: Path) -> None:
    """Rename the finished store onto ``target``; the old one is moved aside first and
    restored if the final rename fails."""
    if not (target.exists() or target.is_symlink()):
        os.rename(tmp, target)
        return
    old = _sibling(target, "old")
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(old, target)
        raise
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _remove_stale_siblings(target: Path) -> None:
    """Delete temporaries of writers that died; restore a moved-aside old store if the
    writer died between its two renames.

    "Died" means its pid is not alive on this machine. Snakemake never runs two jobs for
    one output at once, so a sibling from another node of a shared file system is stale too.
    """
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(tmp|old)-(\d+)-[0-9a-f]+$")
    for sibling in sorted(target.parent.iterdir()):
        match = pattern.match(sibling.name)
        if not match or _pid_alive(int(match.group(2))):
            continue
        if match.group(1) == "old" and not target.exists():
            os.rename(sibling, target)
        else:
            _remove(sibling)
