"""MERRA-2, the reanalysis Prithvi WxC reads, to one Zarr store per month plus a static store.

The store follows the gridded contract (DESIGN.md): MERRA-2's native grid runs
lon -180..179.375 and lat -90..90 ascending, so longitudes are rolled to [0, 360) and
latitudes flipped to descending; ``lev`` becomes ``level`` (model levels, 1 = top, 72 =
surface); MERRA-2 variable names (T2M, PS, …) are kept. Time steps fall every
``step_hours`` on the hour. The ``tavg`` collections hold hourly means stamped HH:30, so
— as Prithvi WxC's extractor does — the value at HH:00 is the mean of the HH-1:30 and
HH:30 means; the month's first step (00:00 on day 1) takes the 00:30 mean alone unless
the previous day's file is at hand (the local route uses it when its globs match it).

Config (the ``merra2`` section; `DEFAULTS` holds the defaults):

* ``source``: ``"gesdisc"`` (default; HTTPS from the GES DISC data servers with
  Earthdata login), ``"earthaccess"`` (NASA CMR search + download via earthaccess 0.17)
  or ``"local"`` (``.nc4`` files already on disk).
* ``servers``: ``{goldsmr4: "https://goldsmr4.gesdisc.eosdis.nasa.gov/data",
  goldsmr5: "https://goldsmr5.gesdisc.eosdis.nasa.gov/data"}``.
* ``urs``: ``"https://urs.earthdata.nasa.gov"`` — the Earthdata login host the data
  servers redirect to (only tests change it).
* ``version``: ``"5.12.4"``.
* ``collections``: ``{short name: [variables]}``; default Prithvi WxC's: M2I3NVASM
  (CLOUD H OMEGA PL QI QL QV T U V), M2I1NXASM (PS QV2M SLP T2M TQI TQL TQV TS U10M
  V10M), M2T1NXLND (GWETROOT LAI), M2T1NXFLX (EFLUX HFLUX PRECTOT Z0M), M2T1NXRAD
  (LWGAB LWGEM LWTUP SWGNT SWTNT). Replaces the default as a whole when given.
* ``static``: ``{short name: [variables]}``; default M2C0NXASM (PHIS FRLAND FROCEAN)
  and M2C0NXCTM (FRACI; twelve monthly fields, kept along ``time``).
* ``levels``: ``[34, 39, 41, 43, 44, 45, 48, 51, 53, 56, 63, 68, 71, 72]`` (Prithvi's).
* ``step_hours``: ``3``.
* ``local``: ``{paths: [globs]}`` — the files of the ``local`` route; each file's
  collection comes from its name (``MERRA2_NNN.<stem>.<YYYYMMDD>.nc4``) or its
  ``ShortName`` attribute. The local route keeps the month's steps the files cover.

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

from eofm.data.credentials import EarthdataCredentials, earthdata_credentials
from eofm.data.fetch import RetryPolicy
from eofm.data.merra2 import earthaccess, gesdisc, local
from eofm.data.merra2.common import (
    COLLECTIONS,
    DEFAULTS,
    NAN_FILL,
    PRITHVI_LEVELS,
    SOURCE,
    Collection,
    _build_month,
    _build_static,
    _cache_dir,
    _month_days,
    _provenance,
    merra2_config,
)
from eofm.data.merra2.gesdisc import EarthdataSession, earthdata_session
from eofm.data.store import write_store
from eofm.errors import CredentialsError

__all__ = [
    "COLLECTIONS",
    "DEFAULTS",
    "NAN_FILL",
    "PRITHVI_LEVELS",
    "SOURCE",
    "Collection",
    "CredentialsError",
    "EarthdataCredentials",
    "EarthdataSession",
    "earthdata_credentials",
    "earthdata_session",
    "fetch_merra2_month",
    "fetch_merra2_static",
    "merra2_config",
]


# --------------------------------------------------------------------------- entry points


def fetch_merra2_month(month: str, out: str | os.PathLike, cfg: dict, policy: RetryPolicy) -> Path:
    """Fetch one month (``YYYY-MM``) of MERRA-2 and write it as a Zarr store at ``out``."""
    cfg = merra2_config(cfg)
    _month_days(month)  # a malformed month fails before any network traffic
    route = cfg["source"]
    cache = _cache_dir(out)
    with ExitStack() as stack:
        if route == "local":
            files = local.local_files(cfg)
            ds = _build_month(files, month, cfg, partial=True, stack=stack)
            urls = sorted({str(p) for paths in files.values() for p in paths})
        elif route == "gesdisc":
            files, urls = gesdisc.month_files(month, cfg, policy, cache)
            ds = _build_month(files, month, cfg, partial=False, stack=stack)
        else:
            files, urls = earthaccess.granule_files(cfg, "collections", month, cache)
            ds = _build_month(files, month, cfg, partial=False, stack=stack)
        ds.attrs.update(_provenance(cfg, route, "collections", files, urls))
        return write_store(ds, out)


def fetch_merra2_static(out: str | os.PathLike, cfg: dict, policy: RetryPolicy) -> Path:
    """Fetch MERRA-2's constant fields (``cfg["static"]``) and write them as a Zarr store."""
    cfg = merra2_config(cfg)
    route = cfg["source"]
    cache = _cache_dir(out)
    with ExitStack() as stack:
        if route == "local":
            files = local.local_files(cfg)
            urls = sorted({str(p) for paths in files.values() for p in paths})
        elif route == "gesdisc":
            files, urls = gesdisc.static_files(cfg, policy, cache)
        else:
            files, urls = earthaccess.granule_files(cfg, "static", None, cache)
        ds = _build_static(files, cfg, stack=stack)
        ds.attrs.update(_provenance(cfg, route, "static", files, urls))
        return write_store(ds, out)
