"""Normalisation statistics and climatologies, from the training period only.

Statistics that saw the validation or test period leak information into training, so every
function here takes the period explicitly and ignores all other time steps. Stores are
streamed a block of time steps at a time: a 0.25 degree year does not fit in memory.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from eofm.data.store import open_store
from eofm.io import read_json

_BLOCK_ELEMENTS = 8_000_000  # values loaded at once (64 MB as float64)


# --------------------------------------------------------------------------- period


def _is_date_only(value: object) -> bool:
    if isinstance(value, str):
        return re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()) is not None
    if isinstance(value, np.datetime64):
        return np.datetime_data(value.dtype)[0] in ("D", "W", "M", "Y")
    return isinstance(value, dt.date) and not isinstance(value, dt.datetime)


def _label(value: object) -> str:
    """The period bound as written in the stats file: ISO, a date stays a date."""
    if isinstance(value, str):
        return value.strip()
    if _is_date_only(value):
        return str(pd.Timestamp(value).date().isoformat())
    return pd.Timestamp(value).isoformat()


class _Period:
    """[start, stop], where a date-only stop includes that whole day."""

    def __init__(self, start: object, stop: object) -> None:
        try:
            self.start = np.datetime64(pd.Timestamp(start).to_datetime64(), "ns")
            stop_ts = np.datetime64(pd.Timestamp(stop).to_datetime64(), "ns")
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"training period: expected ISO dates or datetimes, got {start!r}..{stop!r}"
            ) from err
        self.stop_exclusive = _is_date_only(stop)
        self.stop = stop_ts + np.timedelta64(1, "D") if self.stop_exclusive else stop_ts
        empty = self.stop <= self.start if self.stop_exclusive else self.stop < self.start
        if empty:
            raise ValueError(f"training period: start {start!r} is after stop {stop!r}")
        self.labels = {"start": _label(start), "stop": _label(stop)}

    def mask(self, times: np.ndarray) -> np.ndarray:
        times = np.asarray(times).astype("datetime64[ns]")
        upper = times < self.stop if self.stop_exclusive else times <= self.stop
        return (times >= self.start) & upper

    def __str__(self) -> str:
        return f"{self.labels['start']}..{self.labels['stop']}"


def _blocks(var: xr.DataArray) -> int:
    """Time steps per block so that one block holds about _BLOCK_ELEMENTS values."""
    per_step = max(1, var.size // max(var.sizes.get("time", 1), 1))
    return max(1, _BLOCK_ELEMENTS // per_step)


# --------------------------------------------------------------------------- statistics


class _Moments:
    """Streaming count, mean and sum of squared deviations (Chan et al.), NaNs skipped."""

    def __init__(self) -> None:
        self.n: np.ndarray | None = None
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def add(self, x: np.ndarray, axes: tuple[int, ...]) -> None:
        x = np.asarray(x, dtype=np.float64)
        finite = np.isfinite(x)
        n_b = finite.sum(axis=axes).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_b = np.where(finite, x, 0.0).sum(axis=axes) / n_b
        dev = np.where(finite, x - np.expand_dims(mean_b, axes), 0.0)
        m2_b = (dev * dev).sum(axis=axes)
        mean_b = np.where(n_b > 0, mean_b, 0.0)
        if self.n is None:
            self.n, self.mean, self.m2 = n_b, mean_b, m2_b
            return
        n = self.n + n_b
        safe_n = np.where(n > 0, n, 1.0)
        delta = mean_b - self.mean
        self.mean = self.mean + delta * n_b / safe_n
        self.m2 = self.m2 + m2_b + delta * delta * self.n * n_b / safe_n
        self.n = n


class _VarStats:
    def __init__(self, name: str, units: str, levels: list[int] | None, timed: bool, store: str):
        self.name, self.units, self.levels, self.timed = name, units, levels, timed
        self.first_store = store
        self.moments = _Moments()


def compute_stats(
    paths: Sequence[str | os.PathLike],
    start: str,
    stop: str,
    variables: Sequence[str] | None = None,
) -> dict:
    """Per-variable (and per-level) mean and std over the training period [start, stop].

    Variables without a time dim (static fields) use their whole field. Returns a
    JSON-serialisable dict; write it with ``eofm.io.write_json``.
    """
    period = _Period(start, stop)
    stores = [str(Path(p)) for p in paths]
    if not stores:
        raise ValueError("compute_stats: expected at least one store")
    wanted = None if variables is None else list(dict.fromkeys(variables))
    found: dict[str, _VarStats] = {}
    times_seen: set[int] = set()  # ns since 1970: stores may share time steps
    any_timed = False

    for store in stores:
        with open_store(store) as ds:
            names = [n for n in ds.data_vars if wanted is None or n in wanted]
            mask = period.mask(ds["time"].values) if "time" in ds.dims else None
            if mask is not None:
                any_timed = True
                stamps = ds["time"].values[mask].astype("datetime64[ns]").astype(np.int64)
                times_seen.update(stamps.tolist())
            for name in names:
                _accumulate(ds, name, store, mask, found, period)

    if any_timed and not times_seen:
        raise ValueError(
            f"compute_stats: no time step of stores {stores} falls within the training "
            f"period {period}"
        )
    if wanted is not None:
        missing = [n for n in wanted if n not in found]
        if missing:
            raise ValueError(f"compute_stats: variables {missing} not found in stores {stores}")

    result: dict = {
        "period": dict(period.labels),
        "n_times": len(times_seen),
        "stores": stores,
        "variables": {},
    }
    for name, entry in found.items():
        result["variables"][name] = _summarise(entry, stores, period)
    return result


def _accumulate(
    ds: xr.Dataset,
    name: str,
    store: str,
    mask: np.ndarray | None,
    found: dict[str, _VarStats],
    period: _Period,
) -> None:
    var = ds[name]
    timed = "time" in var.dims
    levels = [int(v) for v in ds["level"].values] if "level" in var.dims else None
    units = str(var.attrs.get("units", ""))
    entry = found.get(name)
    if entry is None:
        entry = found[name] = _VarStats(name, units, levels, timed, store)
    elif entry.timed != timed:
        raise ValueError(
            f"compute_stats: variable {name!r} is time-varying in one store and static in "
            f"the other ({entry.first_store}, {store}); compute static stats separately"
        )
    elif not timed:
        return  # a static field counts once, whichever store repeats it
    elif entry.units != units or entry.levels != levels:
        raise ValueError(
            f"compute_stats: variable {name!r} in {store} has units {units!r}, levels "
            f"{levels}; expected {entry.units!r}, levels {entry.levels} as in {entry.first_store}"
        )

    level_axis = var.dims.index("level") if levels is not None else None
    axes = tuple(i for i in range(var.ndim) if i != level_axis)
    if not timed:
        entry.moments.add(var.values, axes)
        return
    selected = np.flatnonzero(mask)
    step = _blocks(var)
    for i in range(0, selected.size, step):
        block = var.isel(time=selected[i : i + step]).values
        entry.moments.add(block, axes)


def _summarise(entry: _VarStats, stores: list[str], period: _Period) -> dict:
    m = entry.moments
    if m.n is None or np.any(m.n == 0):
        raise ValueError(
            f"compute_stats: variable {entry.name!r} has no finite value in stores {stores} "
            f"within {period}"
        )
    mean = m.mean
    std = np.sqrt(m.m2 / m.n)
    as_json = (lambda a: [float(v) for v in a]) if entry.levels is not None else float
    return {
        "units": entry.units,
        "levels": entry.levels,
        "mean": as_json(mean),
        "std": as_json(std),
    }


def load_stats(path: str | os.PathLike) -> dict:
    """Read a stats file written from ``compute_stats``, checking its shape."""
    stats = read_json(path)
    if not isinstance(stats, dict) or not isinstance(stats.get("variables"), dict):
        raise ValueError(f"{path}: expected a stats dict with a 'variables' mapping")
    if "period" not in stats:
        raise ValueError(f"{path}: expected a 'period' entry (the training period)")
    for name, entry in stats["variables"].items():
        if not isinstance(entry, dict) or "mean" not in entry or "std" not in entry:
            raise ValueError(f"{path}: variable {name!r} needs 'mean' and 'std'")
        levels = entry.get("levels")
        for key in ("mean", "std"):
            value = entry[key]
            if levels is None and not isinstance(value, (int, float)):
                raise ValueError(f"{path}: variable {name!r} {key} should be a number")
            if levels is not None and (not isinstance(value, list) or len(value) != len(levels)):
                raise ValueError(
                    f"{path}: variable {name!r} {key} should list one value per level {levels}"
                )
    return stats


# --------------------------------------------------------------------------- climatology


def compute_climatology(
    paths: Sequence[str | os.PathLike],
    variables: Sequence[str],
    start: str,
    stop: str,
) -> xr.Dataset:
    """Mean per (hour of day, [level,] lat, lon) over the training period: the baseline a
    model has to beat, and a diurnal-cycle-aware one. Stores without time are skipped."""
    period = _Period(start, stop)
    stores = [str(Path(p)) for p in paths]
    variables = list(dict.fromkeys(variables))
    if not stores or not variables:
        raise ValueError("compute_climatology: expected at least one store and one variable")
    sums: dict[str, dict[int, np.ndarray]] = {name: {} for name in variables}
    counts: dict[str, dict[int, np.ndarray]] = {name: {} for name in variables}
    template: dict[str, xr.DataArray] = {}
    first_attrs: dict | None = None
    coords: dict[str, xr.DataArray] = {}
    n_times = 0

    for store in stores:
        with open_store(store) as ds:
            if first_attrs is None:
                first_attrs = dict(ds.attrs)
                coords = {c: ds[c].load() for c in ("level", "lat", "lon") if c in ds.coords}
            _check_same_grid(ds, coords, store, stores[0])
            if "time" not in ds.dims:
                continue  # static fields have no climatology to add
            mask = period.mask(ds["time"].values)
            selected = np.flatnonzero(mask)
            n_times += selected.size
            hours = ds["time"].values.astype("datetime64[h]").astype(np.int64) % 24
            for name in variables:
                if name not in ds.data_vars:
                    continue
                var = ds[name]
                if "time" not in var.dims:
                    raise ValueError(
                        f"compute_climatology: variable {name!r} in {store} has no time dim"
                    )
                template.setdefault(name, var.isel(time=0, drop=True))
                step = _blocks(var)
                for i in range(0, selected.size, step):
                    idx = selected[i : i + step]
                    block = np.asarray(var.isel(time=idx).values, dtype=np.float64)
                    for hour in np.unique(hours[idx]):
                        part = block[hours[idx] == hour]
                        finite = np.isfinite(part)
                        s = np.where(finite, part, 0.0).sum(axis=0)
                        c = finite.sum(axis=0)
                        h = int(hour)
                        sums[name][h] = sums[name].get(h, 0.0) + s
                        counts[name][h] = counts[name].get(h, 0) + c

    if n_times == 0:
        raise ValueError(
            f"compute_climatology: no time step of stores {stores} falls within the "
            f"training period {period}"
        )
    missing = [n for n in variables if n not in template]
    if missing:
        raise ValueError(f"compute_climatology: variables {missing} not found in stores {stores}")

    all_hours = sorted({h for name in variables for h in sums[name]})
    data_vars = {}
    for name in variables:
        tmpl = template[name]
        stacked = []
        for h in all_hours:
            with np.errstate(invalid="ignore", divide="ignore"):
                stacked.append(sums[name][h] / counts[name][h] if h in sums[name] else None)
        shape = tmpl.shape
        stacked = [np.full(shape, np.nan) if a is None else a for a in stacked]
        values = np.stack(stacked).astype(tmpl.dtype if tmpl.dtype.kind == "f" else np.float64)
        data_vars[name] = (("hour", *tmpl.dims), values, dict(tmpl.attrs))
    hour_attrs = {"units": "h", "long_name": "hour of day (UTC)"}
    out_coords = {"hour": ("hour", np.asarray(all_hours, dtype=np.int64), hour_attrs)}
    out_coords.update({c: (c, v.values, dict(v.attrs)) for c, v in coords.items()})
    out = xr.Dataset(data_vars, coords=out_coords)
    first_attrs = first_attrs or {}
    out.attrs = {
        "source": first_attrs.get("source", ""),
        "source_url": first_attrs.get("source_url", ""),
        "period_start": period.labels["start"],
        "period_stop": period.labels["stop"],
        "n_times": int(n_times),
        "title": "hour-of-day climatology over the training period",
    }
    return out


def _check_same_grid(ds: xr.Dataset, coords: dict, store: str, first: str) -> None:
    for name, ref in coords.items():
        if name not in ds.coords or not np.array_equal(ds[name].values, ref.values):
            raise ValueError(
                f"compute_climatology: coordinate {name!r} of {store} differs from {first}; "
                f"expected the same grid in every store"
            )
