"""ERA5 route ``arco``: Google's analysis-ready Zarr (``gs://gcp-public-data-arco-era5``),
read lazily through fsspec, one time step at a time, with retries around every read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from eofm.config import Era5Settings
from eofm.data.era5.common import (
    _HOUR,
    ACCUMULATED,
    ACCUMULATION_HOURS,
    LONG_NAMES,
    SOURCE_NAME,
    STATIC_LONG_NAMES,
    _check_complete,
    _finish,
    _iso,
    _levels,
    _required,
    _select_levels,
    accumulate,
    coarsen_grid,
)
from eofm.data.fetch import (
    FetchError,
    RetryPolicy,
    is_transient,
    redact,
    with_retries,
)
from eofm.data.gridded import coverage_attr, standardise_gridded
from eofm.data.sample import month_times
from eofm.data.store import store_writer, write_store
from eofm.data.variables import ATMOSPHERIC, STATIC


def era5_valid_until(settings: Era5Settings, policy: RetryPolicy) -> str:
    """ARCO's ``valid_time_stop`` (inclusive, UTC): the last hour with final ERA5 data."""
    remote, url = _open_arco(settings, policy, period="valid_time_stop")
    stop = remote.attrs.get("valid_time_stop")
    if not stop:
        raise FetchError(
            f"{SOURCE_NAME}/arco",
            url,
            "valid_time_stop",
            "store has no 'valid_time_stop' attribute; expected ARCO's valid_time_* attributes",
        )
    return str(stop)


# =========================================================================== ARCO


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


def _open_arco(settings: Era5Settings, policy: RetryPolicy, period: str) -> tuple[xr.Dataset, str]:
    url = settings.arco.url

    def call() -> xr.Dataset:
        return xr.open_zarr(
            url,
            storage_options=dict(settings.arco.storage_options),
            consolidated=settings.arco.consolidated,
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


def fetch_month(month: str, out: Path, settings: Era5Settings, policy: RetryPolicy) -> Path:
    """One month from the ARCO store, one step in memory at a time."""
    levels, factor = _levels(settings), settings.coarsen
    steps = month_times(month, settings.step_hours)
    remote, url = _open_arco(settings, policy, period=month)
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
            ds.attrs["coverage"] = coverage_attr(
                ds,
                variables=_required(None, "month"),
                area=None,
                steps_expected=steps.size,
                step_hours=settings.step_hours,
            )
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


def fetch_static(out: Path, settings: Era5Settings, policy: RetryPolicy) -> Path:
    """The invariant fields from the ARCO store, at its first valid hour."""
    factor = settings.coarsen
    remote, url = _open_arco(settings, policy, period="static")
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
    ds.attrs["coverage"] = coverage_attr(ds, variables=list(STATIC), area=None)
    return write_store(ds, out)
