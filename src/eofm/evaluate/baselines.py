"""Reference forecasts every model must beat: climatology and persistence.

Both return a DataArray with the same ``time`` coordinate as the test samples, so the
scores in :mod:`eofm.evaluate.metrics` compare a model and its baselines on exactly the
same times. Neither silently fills a gap: a missing hour or lagged time is an error
that names it, because a baseline scored on fewer samples would flatter the model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import ArrayLike

__all__ = ["climatology_forecast", "persistence_forecast"]

_MAX_LISTED = 5  # missing times listed in an error message before "... and N more"


def climatology_forecast(climatology: xr.DataArray, times: ArrayLike) -> xr.DataArray:
    """Forecast each time with the climatological field for its hour of day.

    ``climatology`` has dims ``(hour, lat, lon)`` (further dims such as ``level`` are
    carried along); the result has dims ``(time, ...)`` with ``time`` = ``times``.
    """
    name = climatology.name or "climatology"
    if "hour" not in climatology.dims:
        raise ValueError(f"{name}: expected an 'hour' dimension, got dims {climatology.dims}")
    index = _as_datetimes(times, "times")
    off_hour = index[(index.minute != 0) | (index.second != 0) | (index.nanosecond != 0)]
    if len(off_hour):
        raise ValueError(
            f"times: {_listed(off_hour)} not on the whole hour; {name} is indexed by hour of day"
        )
    available = sorted(int(h) for h in np.asarray(climatology["hour"].values))
    wanted = np.asarray(index.hour, dtype=int)
    missing = sorted(set(wanted.tolist()) - set(available))
    if missing:
        raise KeyError(
            f"{name}: no field for hour(s) of day {missing} needed by times; "
            f"available hours are {available}"
        )
    indexer = xr.DataArray(wanted, dims="time", coords={"time": index})
    forecast = climatology.sel(hour=indexer).drop_vars("hour")
    forecast = forecast.transpose("time", ...)
    forecast.attrs = dict(climatology.attrs)
    return forecast


def persistence_forecast(series: xr.DataArray, times: ArrayLike, lag_hours: int) -> xr.DataArray:
    """Forecast each time t with the observed value at t − ``lag_hours``.

    ``series`` has dims ``(time, lat, lon)``; the result carries ``time`` = t, so it
    lines up with the truth at t.
    """
    name = series.name or "series"
    if int(lag_hours) != lag_hours or lag_hours <= 0:
        raise ValueError(f"lag_hours: expected a positive whole number of hours, got {lag_hours}")
    if "time" not in series.dims:
        raise ValueError(f"{name}: expected a 'time' dimension, got dims {series.dims}")
    series_index = series.indexes["time"]
    if not series_index.is_unique:
        duplicated = series_index[series_index.duplicated()]
        raise ValueError(f"{name}: time has duplicate entries {_listed(duplicated)}")
    index = _as_datetimes(times, "times")
    source = index - pd.Timedelta(hours=int(lag_hours))
    positions = series_index.get_indexer(source)
    missing = source[positions < 0]
    if len(missing):
        raise KeyError(
            f"{name}: persistence with a {lag_hours} h lag needs time(s) {_listed(missing)}, "
            f"which are not in the series (it covers {_iso(series_index.min())} to "
            f"{_iso(series_index.max())})"
        )
    forecast = series.isel(time=positions).assign_coords(time=index)
    forecast.attrs = dict(series.attrs)
    return forecast


def _as_datetimes(times: ArrayLike, what: str) -> pd.DatetimeIndex:
    """Read times given as datetime64, strings or pandas timestamps."""
    try:
        return pd.DatetimeIndex(np.atleast_1d(np.asarray(times)))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what}: expected datetimes, got {times!r} ({err})") from None


def _iso(stamp: pd.Timestamp) -> str:
    return stamp.isoformat()


def _listed(index: pd.Index) -> str:
    """Name the first few times and count the rest, to keep error messages short."""
    shown = ", ".join(_iso(t) for t in index[:_MAX_LISTED])
    more = len(index) - _MAX_LISTED
    return shown + (f" ... and {more} more" if more > 0 else "")
