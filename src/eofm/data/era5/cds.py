"""ERA5 route ``cds``: the Copernicus Climate Data Store through ``cdsapi`` (one request per
collection per month), files converted with xarray (NetCDF or GRIB/cfgrib)."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from eofm.config import Era5Settings
from eofm.data.credentials import CDS_CREDENTIALS_HELP, cds_credentials
from eofm.data.era5.common import (
    _HOUR,
    ACCUMULATED,
    ACCUMULATION_HOURS,
    LONG_NAMES,
    SOURCE_NAME,
    _finish,
    _levels,
    _required,
    fields_from_files,
    static_from_files,
    write_steps,
)
from eofm.data.fetch import (
    FetchError,
    RetryPolicy,
    TransientError,
    redact,
    sha256sum,
    with_retries,
)
from eofm.data.gridded import coverage_attr
from eofm.data.sample import month_times
from eofm.data.store import write_store
from eofm.data.variables import ATMOSPHERIC, SURFACE
from eofm.errors import CredentialsError

log = logging.getLogger(__name__)


# =========================================================================== CDS

SINGLE_LEVELS = "reanalysis-era5-single-levels"
PRESSURE_LEVELS = "reanalysis-era5-pressure-levels"


def cds_requests(month: str, settings: Era5Settings) -> list[tuple[str, str, dict]]:
    """(label, collection, request) for one month, in the new CDS request format.

    Instantaneous fields are asked for at the step hours only; accumulations (tp, ro,
    pev) hourly, because a 6 h sum needs every hour — plus the previous day's last five
    hours, which the month's first 6 h sum reaches back into. Splitting instantaneous
    from hourly fields keeps each request far below the CDS cost limits.
    """
    steps = month_times(month, settings.step_hours)
    cds = settings.cds
    common: dict[str, Any] = {
        "product_type": ["reanalysis"],
        "data_format": cds.data_format,
        "download_format": "unarchived",
    }
    if cds.area is not None:
        common["area"] = [float(x) for x in cds.area]
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
                "pressure_level": [str(p) for p in _levels(settings)],
                **when,
                "time": hours,
            },
        ),
    ]


def _cds_client(settings: Era5Settings) -> Any:
    """A cdsapi client from env/rc credentials only; fails fast (no prompt) without them."""
    cds_credentials(f"{SOURCE_NAME}/cds")
    import cdsapi

    cds = settings.cds
    cds_log = logging.getLogger(__name__)

    def quiet(*args: Any, **kwargs: Any) -> None:
        """Drop the clients' debug lines: one of them prints the key."""

    try:
        return cdsapi.Client(
            quiet=False,
            debug=False,
            progress=cds.progress,
            retry_max=cds.retry_max,  # eofm retries the whole retrieval
            sleep_max=float(cds.sleep_max),
            timeout=int(cds.timeout),
            info_callback=lambda *a, **k: cds_log.info(*a),
            warning_callback=lambda *a, **k: cds_log.warning(*a),
            error_callback=lambda *a, **k: cds_log.error(*a),
            debug_callback=quiet,
        )
    except Exception as err:  # cdsapi raises bare Exception for a bad rc file
        raise CredentialsError(
            f"{SOURCE_NAME}/cds: cannot configure the CDS client ({type(err).__name__}); "
            f"{CDS_CREDENTIALS_HELP}"
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
                    + (f"; check the credentials: {CDS_CREDENTIALS_HELP}" if status == 401 else ""),
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
    jobs: list[tuple[str, str, dict]],
    out: Path,
    period: str,
    settings: Era5Settings,
    policy: RetryPolicy,
) -> tuple[list[Path], list[Path], Path, str]:
    client = _cds_client(settings)
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


def fetch_month(month: str, out: Path, settings: Era5Settings, policy: RetryPolicy) -> Path:
    """One month from the CDS: four requests, converted and summed into the store."""
    levels, factor = _levels(settings), settings.coarsen
    steps = month_times(month, settings.step_hours)
    jobs = cds_requests(month, settings)
    downloaded, files, tmp, url = _cds_fetch(jobs, out, month, settings, policy)
    try:
        where = f"{SOURCE_NAME}/cds ({month})"
        area = settings.cds.area
        fields = fields_from_files(
            files,
            _required(None, "month"),
            month,
            steps,
            levels,
            where,
            area=area,
            area_key="era5.cds.area",
        )
        provenance = _cds_provenance(url, jobs, downloaded)
        return write_steps(
            fields,
            out,
            factor=factor,
            provenance=provenance,
            where=where,
            area=area,
            steps_expected=steps.size,
            step_hours=settings.step_hours,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_static(out: Path, settings: Era5Settings, policy: RetryPolicy) -> Path:
    """The invariant fields of ``era5.cds.static_date`` from the CDS."""
    cds = settings.cds
    date = cds.static_date
    request: dict[str, Any] = {
        "product_type": ["reanalysis"],
        "variable": ["land_sea_mask", "geopotential", "soil_type"],
        "year": [date[:4]],
        "month": [date[5:7]],
        "day": [date[8:10]],
        "time": ["00:00"],
        "data_format": cds.data_format,
        "download_format": "unarchived",
    }
    if cds.area is not None:
        request["area"] = [float(x) for x in cds.area]
    jobs = [("static", SINGLE_LEVELS, request)]
    downloaded, files, tmp, url = _cds_fetch(jobs, out, "static", settings, policy)
    try:
        fields = static_from_files(
            files, f"{SOURCE_NAME}/cds (static)", area=cds.area, area_key="era5.cds.area"
        )
        ds = _finish(
            fields,
            static=True,
            factor=settings.coarsen,
            provenance=_cds_provenance(url, jobs, downloaded),
        )
        ds.attrs["coverage"] = coverage_attr(ds, variables=list(fields), area=cds.area)
        return write_store(ds, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
