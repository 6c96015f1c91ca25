"""MERRA-2, the reanalysis Prithvi WxC reads, to one Zarr store per month plus a static store.

The store follows the gridded contract (DESIGN.md): MERRA-2's native grid runs
lon -180..179.375 and lat -90..90 ascending, so longitudes are rolled to [0, 360) and
latitudes flipped to descending; a regional subset keeps a contiguous axis (-15 .. 5 for
a box across 0°) and needs ``merra2.area``; ``lev`` becomes ``level`` (model levels, 1 = top, 72 =
surface); MERRA-2 variable names (T2M, PS, …) are kept. Time steps fall every
``step_hours`` on the hour. The ``tavg`` collections hold hourly means stamped HH:30, so
— as Prithvi WxC's extractor does — the value at HH:00 is the mean of the HH-1:30 and
HH:30 means; the month's first step (00:00 on day 1) takes the 00:30 mean alone unless
the previous day's file is at hand (the local route uses it when its globs match it).

Settings: `eofm.config.Merra2Settings` (the ``merra2`` section), which holds every default
(Prithvi WxC's collections, levels and 3 h steps). Each file's collection on the ``local``
route comes from its name (``MERRA2_NNN.<stem>.<YYYYMMDD>.nc4``) or its ``ShortName``
attribute. A month must be covered step by step (the error names the files, steps
found and expected and the first missing); ``merra2.local.partial_months`` lets the local
route keep only the steps its files cover. The store's ``coverage`` attribute records it.

Routes, one module each: `gesdisc`, `earthaccess`, `local`; what they share is in
`eofm.data.merra2.common`, the credential lookup in `eofm.data.credentials`.

Credentials (gesdisc route), first found wins, never from config, never logged, never
prompted for: ``EARTHDATA_TOKEN`` (sent as a Bearer header), ``EARTHDATA_USERNAME`` +
``EARTHDATA_PASSWORD``, then the netrc file (``$NETRC`` or ``~/.netrc``) entry for
``urs.earthdata.nasa.gov`` (or for a data server's host). GES DISC answers an
unauthenticated request with a redirect to urs.earthdata.nasa.gov, which wants basic auth
and redirects back with a session cookie. ``requests`` drops the Authorization header on
any redirect to another host, which would lose the credentials on the way to URS; like
earthaccess's ``SessionWithHeaderRedirection``, `EarthdataSession` keeps it, but only
between the URS host and the configured data servers (and never on an https→http
downgrade), so a redirect anywhere else still strips it.

Daily files are cached in ``<out>.downloads/<collection>/`` and reused when complete
(`eofm.data.fetch.download` only renames finished files into place); the store written
by `write_store` is the only output the workflow tracks.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path

from eofm.config import Merra2Settings
from eofm.data.credentials import EarthdataCredentials, earthdata_credentials
from eofm.data.fetch import RetryPolicy
from eofm.data.merra2 import earthaccess, gesdisc, local
from eofm.data.merra2.common import (
    COLLECTIONS,
    NAN_FILL,
    SOURCE,
    Collection,
    _build_month,
    _build_static,
    _cache_dir,
    _month_days,
    _provenance,
    check_settings,
)
from eofm.data.merra2.gesdisc import EarthdataSession, earthdata_session
from eofm.data.store import write_store
from eofm.errors import CredentialsError

__all__ = [
    "COLLECTIONS",
    "NAN_FILL",
    "SOURCE",
    "Collection",
    "CredentialsError",
    "EarthdataCredentials",
    "EarthdataSession",
    "check_settings",
    "earthdata_credentials",
    "earthdata_session",
    "fetch_merra2_month",
    "fetch_merra2_static",
]


# --------------------------------------------------------------------------- entry points


def fetch_merra2_month(
    month: str, out: str | os.PathLike, settings: Merra2Settings, policy: RetryPolicy
) -> Path:
    """Fetch one month (``YYYY-MM``) of MERRA-2 and write it as a Zarr store at ``out``."""
    check_settings(settings)
    _month_days(month)  # a malformed month fails before any network traffic
    route = settings.source
    cache = _cache_dir(out)
    with ExitStack() as stack:
        if route == "local":
            files = local.local_files(settings)
            partial = settings.local.partial_months
            ds = _build_month(files, month, settings, local=True, partial=partial, stack=stack)
            urls = sorted({str(p) for paths in files.values() for p in paths})
        elif route == "gesdisc":
            files, urls = gesdisc.month_files(month, settings, policy, cache)
            ds = _build_month(files, month, settings, local=False, partial=False, stack=stack)
        else:
            files, urls = earthaccess.granule_files(settings, "collections", month, cache)
            ds = _build_month(files, month, settings, local=False, partial=False, stack=stack)
        ds.attrs.update(_provenance(settings, route, "collections", files, urls))
        return write_store(ds, out)


def fetch_merra2_static(
    out: str | os.PathLike, settings: Merra2Settings, policy: RetryPolicy
) -> Path:
    """Fetch MERRA-2's constant fields (``merra2.static``) and write them as a Zarr store."""
    check_settings(settings, "static")
    route = settings.source
    cache = _cache_dir(out)
    with ExitStack() as stack:
        if route == "local":
            files = local.local_files(settings)
            urls = sorted({str(p) for paths in files.values() for p in paths})
        elif route == "gesdisc":
            files, urls = gesdisc.static_files(settings, policy, cache)
        else:
            files, urls = earthaccess.granule_files(settings, "static", None, cache)
        ds = _build_static(files, settings, stack=stack)
        ds.attrs.update(_provenance(settings, route, "static", files, urls))
        return write_store(ds, out)
