"""Forecast windows: inputs at (t − Δ, t) and the state at the valid time t + Δ.

Samples are indexed by their valid time. The monthly stores are opened together so a
window may start in the previous month; only whole windows inside the data are used.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import xarray as xr
from torch.utils.data import Dataset

from eofm.data.store import open_store
from eofm.data.variables import ATMOSPHERIC, SURFACE
from eofm.models.weather.base import WeatherSample


def open_months(paths: Sequence[str | os.PathLike[str]]) -> xr.Dataset:
    """Open monthly stores as one dataset along time; refuse overlapping months."""
    if not paths:
        raise ValueError("no stores given; expected at least one monthly Zarr store")
    parts = sorted((open_store(p) for p in paths), key=lambda ds: ds.time.values[0])
    ds = xr.concat(parts, dim="time", data_vars="all", coords="minimal", join="exact")
    times = ds.time.values
    if np.any(np.diff(times) <= np.timedelta64(0, "s")):
        raise ValueError(f"stores {[str(p) for p in paths]} overlap or are out of order in time")
    return ds


def period_mask(times: np.ndarray, start: str, stop: str) -> np.ndarray:
    """True where ``start <= time <= stop``; a date-only ``stop`` includes the whole day."""
    lo = np.datetime64(start)
    hi = np.datetime64(stop)
    if len(stop) <= 10:  # a date: include all of that day
        hi = hi.astype("datetime64[D]") + np.timedelta64(1, "D") - np.timedelta64(1, "ns")
    return (times >= lo) & (times <= hi)


def valid_times(times: np.ndarray, start: str, stop: str, step_hours: int) -> np.ndarray:
    """Valid times t + Δ in [start, stop] present in ``times`` whose two input states exist."""
    step = np.timedelta64(step_hours, "h")
    times = times.astype("datetime64[ns]")
    have = set(times.tolist())
    chosen = [
        v
        for v in times[period_mask(times, start, stop)]
        if (v - step).tolist() in have and (v - 2 * step).tolist() in have
    ]
    return np.asarray(chosen, dtype="datetime64[ns]")


class ForecastWindows(Dataset[WeatherSample]):
    """Map-style dataset of :class:`WeatherSample` over an in-memory copy of the inputs."""

    def __init__(self, ds: xr.Dataset, times: np.ndarray, step_hours: int) -> None:
        self.times = np.asarray(times, dtype="datetime64[ns]")
        step = np.timedelta64(step_hours, "h")
        index = {t: i for i, t in enumerate(ds.time.values.astype("datetime64[ns]").tolist())}
        self._valid = [index[t.tolist()] for t in self.times]
        self._now = [index[(t - step).tolist()] for t in self.times]
        self._surface = {name: ds[name].values.astype(np.float32) for name in SURFACE}
        self._atmos = {name: ds[name].values.astype(np.float32) for name in ATMOSPHERIC}

    def __len__(self) -> int:
        return len(self.times)

    def __getitem__(self, i: int) -> WeatherSample:
        now, valid = self._now[i], self._valid[i]
        pair = slice(now - 1, now + 1)

        return WeatherSample(
            valid_time=self.times[i],
            surface={k: v[pair] for k, v in self._surface.items()},
            atmospheric={k: v[pair] for k, v in self._atmos.items()},
            next_surface={k: v[valid] for k, v in self._surface.items()},
            next_atmospheric={k: v[valid] for k, v in self._atmos.items()},
        )
