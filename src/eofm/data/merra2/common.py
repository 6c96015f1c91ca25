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

import calendar
import copy
import glob
import json
import logging
import netrc
import os
import re
import stat
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import requests
import xarray as xr
from tqdm.auto import tqdm

from eofm.data.fetch import FetchError, RetryPolicy, download, redact, sha256sum, with_retries
from eofm.data.store import write_store
from eofm.errors import CredentialsError, EofmError

log = logging.getLogger(__name__)

SOURCE = "merra2"
URS_HOST = "urs.earthdata.nasa.gov"
CMR_URL = "https://cmr.earthdata.nasa.gov/search"


@dataclass(frozen=True)
class Collection:
    """One MERRA-2 collection: its file-name stem, data server and archive folder."""

    short_name: str
    stem: str
    server: str  # a key of cfg["servers"]
    archive: str = "MERRA2"  # "MERRA2_MONTHLY" holds the constants

    @property
    def kind(self) -> str:
        """``tavg`` (hourly means at HH:30), ``inst`` (instantaneous) or ``const``."""
        return self.stem.split("_", 1)[0].rstrip("0123456789")


COLLECTIONS: dict[str, Collection] = {
    c.short_name: c
    for c in (
        Collection("M2I3NVASM", "inst3_3d_asm_Nv", "goldsmr5"),
        Collection("M2I3NPASM", "inst3_3d_asm_Np", "goldsmr5"),
        Collection("M2I1NXASM", "inst1_2d_asm_Nx", "goldsmr4"),
        Collection("M2T1NXSLV", "tavg1_2d_slv_Nx", "goldsmr4"),
        Collection("M2T1NXLND", "tavg1_2d_lnd_Nx", "goldsmr4"),
        Collection("M2T1NXFLX", "tavg1_2d_flx_Nx", "goldsmr4"),
        Collection("M2T1NXRAD", "tavg1_2d_rad_Nx", "goldsmr4"),
        Collection("M2C0NXASM", "const_2d_asm_Nx", "goldsmr4", "MERRA2_MONTHLY"),
        Collection("M2C0NXCTM", "const_2d_ctm_Nx", "goldsmr4", "MERRA2_MONTHLY"),
    )
}
_BY_STEM = {c.stem: c for c in COLLECTIONS.values()}

PRITHVI_LEVELS = [34, 39, 41, 43, 44, 45, 48, 51, 53, 56, 63, 68, 71, 72]

DEFAULTS: dict[str, Any] = {
    "source": "gesdisc",
    "servers": {
        "goldsmr4": "https://goldsmr4.gesdisc.eosdis.nasa.gov/data",
        "goldsmr5": "https://goldsmr5.gesdisc.eosdis.nasa.gov/data",
    },
    "urs": f"https://{URS_HOST}",
    "version": "5.12.4",
    "collections": {
        "M2I3NVASM": ["CLOUD", "H", "OMEGA", "PL", "QI", "QL", "QV", "T", "U", "V"],
        "M2I1NXASM": ["PS", "QV2M", "SLP", "T2M", "TQI", "TQL", "TQV", "TS", "U10M", "V10M"],
        "M2T1NXLND": ["GWETROOT", "LAI"],
        "M2T1NXFLX": ["EFLUX", "HFLUX", "PRECTOT", "Z0M"],
        "M2T1NXRAD": ["LWGAB", "LWGEM", "LWTUP", "SWGNT", "SWTNT"],
    },
    "static": {
        "M2C0NXASM": ["PHIS", "FRLAND", "FROCEAN"],
        "M2C0NXCTM": ["FRACI"],
    },
    "levels": list(PRITHVI_LEVELS),
    "step_hours": 3,
    "local": {"paths": []},
}

#: Prithvi WxC's fills for NaN (no vegetation / no soil over water and ice).
NAN_FILL = {"GWETROOT": 1.0, "LAI": 0.0}

#: CF standard names where a file carries none (MERRA-2 files usually do).
_STANDARD_NAMES = {
    "T": "air_temperature",
    "U": "eastward_wind",
    "V": "northward_wind",
    "QV": "specific_humidity",
    "OMEGA": "lagrangian_tendency_of_air_pressure",
    "PL": "air_pressure",
    "H": "geopotential_height",
    "CLOUD": "cloud_area_fraction_in_atmosphere_layer",
    "QI": "mass_fraction_of_cloud_ice_in_air",
    "QL": "mass_fraction_of_cloud_liquid_water_in_air",
    "PS": "surface_air_pressure",
    "SLP": "air_pressure_at_mean_sea_level",
    "T2M": "air_temperature",
    "TS": "surface_temperature",
    "QV2M": "specific_humidity",
    "U10M": "eastward_wind",
    "V10M": "northward_wind",
    "TQV": "atmosphere_mass_content_of_water_vapor",
    "TQI": "atmosphere_mass_content_of_cloud_ice",
    "TQL": "atmosphere_mass_content_of_cloud_liquid_water",
    "PRECTOT": "precipitation_flux",
    "EFLUX": "surface_upward_latent_heat_flux",
    "HFLUX": "surface_upward_sensible_heat_flux",
    "Z0M": "surface_roughness_length_for_momentum_in_air",
    "PHIS": "surface_geopotential",
    "FRLAND": "land_area_fraction",
    "FROCEAN": "sea_area_fraction",
    "FRACI": "sea_ice_area_fraction",
    "LAI": "leaf_area_index",
}

_HALF_HOUR = np.timedelta64(30, "m")


# --------------------------------------------------------------------------- config


def merra2_config(cfg: dict[str, Any] | None) -> dict[str, Any]:
    """``cfg`` over `DEFAULTS` (``servers`` and ``local`` merged key by key), validated."""
    merged = copy.deepcopy(DEFAULTS)
    for key, value in (cfg or {}).items():
        if value is None:  # an unset key in YAML keeps the default
            continue
        if key in ("servers", "local") and isinstance(value, dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = copy.deepcopy(value)
    if merged["source"] not in ("gesdisc", "earthaccess", "local"):
        raise ValueError(
            f"merra2.source is {merged['source']!r}; expected 'gesdisc', 'earthaccess' or 'local'"
        )
    step = merged["step_hours"]
    if not isinstance(step, int) or isinstance(step, bool) or not 1 <= step <= 24:
        raise ValueError(f"merra2.step_hours is {step!r}; expected an integer from 1 to 24")
    for key in ("collections", "static"):
        if not _collections(merged, key):
            raise ValueError(f"merra2.{key} is empty; expected {{collection: [variables]}}")
    return merged


def _collections(cfg: dict[str, Any], key: str) -> dict[Collection, list[str]]:
    """The collections of ``cfg[key]`` with their variables, checked against `COLLECTIONS`."""
    wanted = cfg.get(key) or {}
    if not isinstance(wanted, dict):
        raise ValueError(f"merra2.{key} must map collection short names to variable lists")
    const = key == "static"
    chosen: dict[Collection, list[str]] = {}
    seen: dict[str, str] = {}
    for name, variables in wanted.items():
        coll = COLLECTIONS.get(str(name).upper())
        if coll is None or (coll.kind == "const") != const:
            expected = sorted(n for n, c in COLLECTIONS.items() if (c.kind == "const") == const)
            raise ValueError(
                f"merra2.{key}: unknown collection {name!r}; expected one of {expected}"
            )
        if isinstance(variables, str) or not variables:
            raise ValueError(f"merra2.{key}.{name}: expected a non-empty list of variables")
        for var in variables:
            if var in seen:
                raise ValueError(
                    f"merra2.{key}: variable {var!r} is asked from both {seen[var]} and {name}"
                )
            seen[var] = coll.short_name
        chosen[coll] = [str(v) for v in variables]
    return chosen


# --------------------------------------------------------------------------- entry points


def fetch_merra2_month(month: str, out: str | os.PathLike, cfg: dict, policy: RetryPolicy) -> Path:
    """Fetch one month (``YYYY-MM``) of MERRA-2 and write it as a Zarr store at ``out``."""
    cfg = merra2_config(cfg)
    _month_days(month)  # a malformed month fails before any network traffic
    route = cfg["source"]
    cache = _cache_dir(out)
    with ExitStack() as stack:
        if route == "local":
            files = _local_files(cfg)
            ds = _build_month(files, month, cfg, partial=True, stack=stack)
            urls = sorted({str(p) for paths in files.values() for p in paths})
        elif route == "gesdisc":
            files, urls = _gesdisc_month(month, cfg, policy, cache)
            ds = _build_month(files, month, cfg, partial=False, stack=stack)
        else:
            files, urls = _earthaccess_files(cfg, "collections", month, cache)
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
            files = _local_files(cfg)
            urls = sorted({str(p) for paths in files.values() for p in paths})
        elif route == "gesdisc":
            files, urls = _gesdisc_static(cfg, policy, cache)
        else:
            files, urls = _earthaccess_files(cfg, "static", None, cache)
        ds = _build_static(files, cfg, stack=stack)
        ds.attrs.update(_provenance(cfg, route, "static", files, urls))
        return write_store(ds, out)


def _cache_dir(out: str | os.PathLike) -> Path:
    target = Path(out)
    return target.with_name(target.name + ".downloads")


def _provenance(
    cfg: dict[str, Any], route: str, key: str, files: dict[str, list[Path]], urls: list[str]
) -> dict[str, str]:
    names = [c.short_name for c in _collections(cfg, key)]
    used = [p for name in names for p in files.get(name, [])]
    checksums = {_checksum_key(p, used): sha256sum(p) for p in used}
    return {
        "source": f"{SOURCE}-{route}",
        "source_url": "; ".join(redact(u) for u in urls),
        "source_version": f"MERRA-2 {cfg['version']} ({', '.join(names)})",
        "input_checksums": json.dumps(checksums, sort_keys=True),
    }


def _checksum_key(path: Path, all_paths: list[Path]) -> str:
    same_name = [p for p in all_paths if p.name == path.name]
    return path.name if len(same_name) == 1 else str(path)


# --------------------------------------------------------------------------- time


def _month_days(month: str) -> list[np.datetime64]:
    """The days of ``YYYY-MM``."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", str(month))
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"merra2: month {month!r} is not of the form YYYY-MM")
    year, mon = int(match.group(1)), int(match.group(2))
    first = np.datetime64(f"{year:04d}-{mon:02d}-01", "D")
    return [first + np.timedelta64(d, "D") for d in range(calendar.monthrange(year, mon)[1])]


def _step_times(month: str, step_hours: int) -> np.ndarray:
    days = _month_days(month)
    start = days[0].astype("datetime64[ns]")
    stop = (days[-1] + np.timedelta64(1, "D")).astype("datetime64[ns]")
    return np.arange(start, stop, np.timedelta64(step_hours, "h")).astype("datetime64[ns]")


def _ymd(day: np.datetime64) -> str:
    return str(day.astype("datetime64[D]")).replace("-", "")


def _file_regex(coll: Collection, date: str = r"\d{8}") -> re.Pattern[str]:
    """``MERRA2_NNN.<stem>.<date>.nc4``; the stream number (100…401) is never assumed."""
    return re.compile(rf"MERRA2_\d\d\d\.{re.escape(coll.stem)}\.({date})\.nc4")


# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class EarthdataCredentials:
    """Where the credentials came from, and the secrets (kept out of repr)."""

    origin: str
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)


def _netrc_path() -> Path:
    return Path(os.environ.get("NETRC") or Path.home() / ".netrc").expanduser()


def earthdata_credentials(hosts: Sequence[str] = ()) -> EarthdataCredentials:
    """Earthdata credentials from the environment or netrc; `CredentialsError` if none.

    ``hosts`` are further netrc machines to accept (the data servers' hosts) after
    urs.earthdata.nasa.gov. Never prompts: a batch job must fail at once, not hang.
    """
    token = os.environ.get("EARTHDATA_TOKEN")
    if token:
        return EarthdataCredentials("EARTHDATA_TOKEN", token=token)
    user, password = os.environ.get("EARTHDATA_USERNAME"), os.environ.get("EARTHDATA_PASSWORD")
    if user and password:
        return EarthdataCredentials(
            "EARTHDATA_USERNAME/EARTHDATA_PASSWORD", username=user, password=password
        )
    path = _netrc_path()
    if path.is_file():
        try:
            entries = netrc.netrc(str(path))
        except (netrc.NetrcParseError, OSError) as err:
            raise CredentialsError(
                f"merra2: cannot read the netrc file {path} (line "
                f"{getattr(err, 'lineno', '?')}); fix it or set EARTHDATA_TOKEN"
            ) from None
        for host in dict.fromkeys([URS_HOST, *hosts]):
            found = entries.authenticators(host)
            if found and found[0] and found[2]:
                if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                    log.warning("netrc file %s is readable by others; chmod 600 it", path)
                return EarthdataCredentials(
                    f"netrc {path} (machine {host})", username=found[0], password=found[2]
                )
    others = [h for h in dict.fromkeys(hosts) if h != URS_HOST]
    also = f"; a 'machine' entry for {' or '.join(others)} is accepted too" if others else ""
    raise CredentialsError(
        "merra2: no Earthdata credentials. Set EARTHDATA_TOKEN (an Earthdata Login token), "
        "or EARTHDATA_USERNAME and EARTHDATA_PASSWORD, or add the line "
        f"'machine {URS_HOST} login <user> password <password>' to {path} "
        f"(the file $NETRC names, default ~/.netrc; mode 0600){also}. "
        "Batch jobs never prompt for them. Also authorise the 'NASA GESDISC DATA ARCHIVE' "
        "application in your Earthdata profile."
    )


class _BearerAuth(requests.auth.AuthBase):
    """``Authorization: Bearer <token>``; as ``session.auth`` it also stops requests from
    adding netrc basic auth over it."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(<redacted>)"


class EarthdataSession(requests.Session):
    """A session that keeps the Authorization header across the URS login redirects.

    GES DISC redirects to urs.earthdata.nasa.gov for basic auth and back; requests'
    default ``rebuild_auth`` strips the header on every cross-host redirect. This keeps
    it when both ends are ``trusted`` (the URS host and the data servers, as host[:port])
    and the scheme is not downgraded; any other redirect goes through requests' default.
    """

    def __init__(self, trusted: Iterable[str]) -> None:
        super().__init__()
        self.trusted = {t.lower() for t in trusted}

    def rebuild_auth(
        self, prepared_request: requests.PreparedRequest, response: requests.Response
    ) -> None:
        old, new = urlsplit(response.request.url or ""), urlsplit(prepared_request.url or "")
        keep = (
            "Authorization" in prepared_request.headers
            and old.netloc.lower() in self.trusted
            and new.netloc.lower() in self.trusted
            and (new.scheme == old.scheme or new.scheme == "https")
        )
        if not keep:
            super().rebuild_auth(prepared_request, response)


def earthdata_session(cfg: dict[str, Any]) -> tuple[EarthdataSession, EarthdataCredentials]:
    """A session carrying Earthdata credentials for the configured servers and URS."""
    urls = [cfg["urs"], *cfg["servers"].values()]
    hosts = [urlsplit(u).hostname or "" for u in urls]
    creds = earthdata_credentials([h for h in hosts if h])
    session = EarthdataSession(urlsplit(u).netloc for u in urls)
    if creds.token:
        session.auth = _BearerAuth(creds.token)
    else:
        session.auth = (creds.username or "", creds.password or "")
    log.info("merra2: Earthdata credentials from %s", creds.origin)
    return session, creds


# --------------------------------------------------------------------------- gesdisc route


def _collection_url(cfg: dict[str, Any], coll: Collection) -> str:
    servers = cfg["servers"]
    if coll.server not in servers:
        raise ValueError(
            f"merra2.servers has no {coll.server!r} entry (collection {coll.short_name} "
            f"lives there); expected keys {sorted({c.server for c in COLLECTIONS.values()})}"
        )
    base = str(servers[coll.server]).rstrip("/")
    return f"{base}/{coll.archive}/{coll.short_name}.{cfg['version']}"


class _AuthRejected(EofmError, RuntimeError):
    """401/403: retrying will not help."""


def _auth_hint(creds: EarthdataCredentials) -> str:
    return (
        f"Earthdata login refused the credentials from {creds.origin}; check them and that "
        "the 'NASA GESDISC DATA ARCHIVE' application is authorised in your Earthdata profile"
    )


def _list_directory(
    session: requests.Session,
    url: str,
    creds: EarthdataCredentials,
    period: str,
    policy: RetryPolicy,
) -> str:
    """The HTML listing of a GES DISC directory."""

    def get() -> str:
        response = session.get(url, timeout=policy.timeout)
        if response.status_code in (401, 403):
            raise _AuthRejected(f"HTTP {response.status_code}: {_auth_hint(creds)}")
        response.raise_for_status()
        return response.text

    return with_retries(get, source=f"{SOURCE}-gesdisc", url=url, period=period, policy=policy)


def _pick_files(listing: str, coll: Collection, date: str) -> list[str]:
    """File names in ``listing`` for ``date``; the highest stream (401 over 400) first."""
    return sorted({m.group(0) for m in _file_regex(coll, date).finditer(listing)}, reverse=True)


def _download_all(
    jobs: list[tuple[str, Path, str]],
    session: requests.Session,
    creds: EarthdataCredentials,
    policy: RetryPolicy,
) -> None:
    """Download every (url, dest, period) not already cached, with one progress bar."""
    todo = [job for job in jobs if not job[1].is_file()]
    if len(todo) < len(jobs):
        log.info("merra2: %d of %d files already cached", len(jobs) - len(todo), len(jobs))
    for url, dest, period in tqdm(todo, desc="MERRA-2 files", unit="file", disable=not todo):
        try:
            download(
                url,
                dest,
                source=f"{SOURCE}-gesdisc",
                period=period,
                policy=policy,
                session=session,
                progress=False,
            )
        except FetchError as err:
            if err.reason.startswith(("HTTP 401", "HTTP 403")):
                raise FetchError(
                    err.source, url, period, f"{err.reason}: {_auth_hint(creds)}"
                ) from err
            raise


def _gesdisc_month(
    month: str, cfg: dict[str, Any], policy: RetryPolicy, cache: Path
) -> tuple[dict[str, list[Path]], list[str]]:
    """List each collection's month directory, check every day is there, download."""
    days = _month_days(month)
    session, creds = earthdata_session(cfg)
    with session:
        jobs: list[tuple[str, Path, str]] = []
        files: dict[str, list[Path]] = {}
        dirs: list[str] = []
        for coll in _collections(cfg, "collections"):
            year, mon = month.split("-")
            url = f"{_collection_url(cfg, coll)}/{year}/{mon}/"
            dirs.append(url)
            listing = _list_directory(session, url, creds, month, policy)
            for day in days:
                picked = _pick_files(listing, coll, _ymd(day))
                if not picked:
                    raise FetchError(
                        f"{SOURCE}-gesdisc",
                        url,
                        str(day),
                        f"no {coll.short_name} file for {day} in the directory listing "
                        f"(expected MERRA2_NNN.{coll.stem}.{_ymd(day)}.nc4)",
                    )
                dest = cache / coll.short_name / picked[0]
                jobs.append((url + picked[0], dest, str(day)))
                files.setdefault(coll.short_name, []).append(dest)
        _download_all(jobs, session, creds, policy)
    return files, dirs


def _gesdisc_static(
    cfg: dict[str, Any], policy: RetryPolicy, cache: Path
) -> tuple[dict[str, list[Path]], list[str]]:
    """The constant files live in MERRA2_MONTHLY/<coll>/1980/ as ``…00000000.nc4``."""
    session, creds = earthdata_session(cfg)
    with session:
        jobs: list[tuple[str, Path, str]] = []
        files: dict[str, list[Path]] = {}
        dirs: list[str] = []
        for coll in _collections(cfg, "static"):
            url = f"{_collection_url(cfg, coll)}/1980/"
            dirs.append(url)
            picked = _pick_files(
                _list_directory(session, url, creds, "static", policy), coll, "0" * 8
            )
            if not picked:
                raise FetchError(
                    f"{SOURCE}-gesdisc",
                    url,
                    "static",
                    f"no {coll.short_name} file in the directory listing "
                    f"(expected MERRA2_NNN.{coll.stem}.00000000.nc4)",
                )
            dest = cache / coll.short_name / picked[0]
            jobs.append((url + picked[0], dest, "static"))
            files[coll.short_name] = [dest]
        _download_all(jobs, session, creds, policy)
    return files, dirs


# --------------------------------------------------------------------------- earthaccess route


def _earthaccess_login() -> str:
    """Log in non-interactively (environment, then netrc); returns the strategy used."""
    import earthaccess
    from earthaccess.exceptions import LoginAttemptFailure, LoginStrategyUnavailable

    for strategy in ("environment", "netrc"):
        try:
            auth = earthaccess.login(strategy=strategy)
        except LoginStrategyUnavailable:
            continue
        except LoginAttemptFailure as err:
            raise CredentialsError(
                f"merra2: Earthdata login with the {strategy} credentials failed: {err}"
            ) from None
        if getattr(auth, "authenticated", False):
            return strategy
    try:
        earthdata_credentials()
    except CredentialsError as err:
        raise CredentialsError(f"{err} (earthaccess route)") from None
    raise CredentialsError(
        "merra2: earthaccess could not log in with the environment or netrc credentials"
    )


def _earthaccess_files(
    cfg: dict[str, Any], key: str, month: str | None, cache: Path
) -> tuple[dict[str, list[Path]], list[str]]:
    """Search CMR per collection and download the granules into the cache."""
    import earthaccess

    strategy = _earthaccess_login()
    log.info("merra2: earthaccess logged in (%s strategy)", strategy)
    days = _month_days(month) if month else []
    temporal = (f"{days[0]}T00:00:00", f"{days[-1]}T23:59:59") if days else None
    files: dict[str, list[Path]] = {}
    urls: list[str] = []
    for coll in _collections(cfg, key):
        query: dict[str, Any] = {"short_name": coll.short_name, "version": cfg["version"]}
        if temporal:
            query["temporal"] = temporal
        where = f"{CMR_URL} (short_name={coll.short_name}, version={cfg['version']})"
        urls.append(where)
        period = month or "static"
        try:
            results = earthaccess.search_data(**query)
            dest = cache / coll.short_name
            dest.mkdir(parents=True, exist_ok=True)
            paths = [Path(p) for p in earthaccess.download(results, local_path=str(dest)) or []]
        except Exception as err:  # earthaccess raises many kinds; name the source and period
            raise FetchError(f"{SOURCE}-earthaccess", CMR_URL, period, str(err)) from err
        by_date: dict[str, Path] = {}
        for path in sorted(paths, reverse=True):  # the highest stream wins
            match = _file_regex(coll).fullmatch(path.name)
            if match:
                by_date.setdefault(match.group(1), path)
        wanted = [_ymd(d) for d in days] if days else ["00000000"]
        missing = [d for d in wanted if d not in by_date]
        if missing:
            raise FetchError(
                f"{SOURCE}-earthaccess",
                CMR_URL,
                period,
                f"{coll.short_name} granules missing for {', '.join(missing[:5])}"
                f"{' …' if len(missing) > 5 else ''} (search {where} returned {len(paths)} files)",
            )
        files[coll.short_name] = [by_date[d] for d in wanted]
    return files, urls


# --------------------------------------------------------------------------- local route


def _identify(path: Path) -> str | None:
    """A local file's collection, from its name or its ``ShortName`` attribute."""
    match = re.fullmatch(r"MERRA2_\d\d\d\.(\w+)\.\d{8}\.nc4", path.name)
    if match and match.group(1) in _BY_STEM:
        return _BY_STEM[match.group(1)].short_name
    try:
        with xr.open_dataset(path, engine="h5netcdf", decode_times=False) as ds:
            short = str(ds.attrs.get("ShortName", "")).upper()
    except Exception as err:
        raise ValueError(f"merra2: cannot open local file {path} as NetCDF4: {err}") from err
    return short if short in COLLECTIONS else None


def _local_files(cfg: dict[str, Any]) -> dict[str, list[Path]]:
    patterns = (cfg.get("local") or {}).get("paths") or []
    if isinstance(patterns, str):
        patterns = [patterns]
    if not patterns:
        raise ValueError("merra2.local.paths is empty; expected globs of MERRA-2 .nc4 files")
    paths = sorted({Path(p) for pattern in patterns for p in glob.glob(str(pattern))})
    if not paths:
        raise FileNotFoundError(f"merra2: no file matches merra2.local.paths {list(patterns)}")
    files: dict[str, list[Path]] = {}
    for path in paths:
        name = _identify(path)
        if name is None:
            log.warning("merra2: %s is not a known MERRA-2 collection's file; skipped", path)
            continue
        files.setdefault(name, []).append(path)
    return files


# --------------------------------------------------------------------------- building stores


def _open(path: Path, stack: ExitStack) -> xr.Dataset:
    try:
        ds = xr.open_dataset(path, engine="h5netcdf", chunks={})
    except Exception as err:
        raise ValueError(f"merra2: cannot open {path} as NetCDF4: {err}") from err
    return stack.enter_context(ds)


def _subset(
    ds: xr.Dataset, path: Path, coll: Collection, variables: list[str], levels: list[int]
) -> xr.Dataset:
    """The wanted variables (and levels) of one file, with clear errors naming the file."""
    missing = [v for v in variables if v not in ds.data_vars]
    if missing:
        raise ValueError(
            f"merra2: {path} ({coll.short_name}) lacks variable(s) {missing}; "
            f"it has {sorted(map(str, ds.data_vars))}"
        )
    for dim in ("lat", "lon"):
        if dim not in ds.dims:
            raise ValueError(f"merra2: {path} has no {dim!r} dimension (dims {dict(ds.sizes)})")
    ds = ds[variables]
    if "lev" in ds.dims:
        have = ds["lev"].values
        absent = [lv for lv in levels if not np.any(np.isclose(have, lv))]
        if absent:
            raise ValueError(
                f"merra2: {path} ({coll.short_name}) lacks model level(s) {absent}; "
                f"it has levels {have.min():g}..{have.max():g} ({have.size})"
            )
        ds = ds.sel(lev=np.asarray(levels, dtype=have.dtype))
    return ds


def _collection_series(
    coll: Collection,
    paths: list[Path],
    variables: list[str],
    cfg: dict[str, Any],
    targets: np.ndarray,
    *,
    partial: bool,
    stack: ExitStack,
) -> xr.Dataset:
    """One collection on the target times (tavg means averaged onto the hour)."""
    pieces = [_subset(_open(p, stack), p, coll, variables, cfg["levels"]) for p in paths]
    attrs = {v: dict(pieces[0][v].attrs) for v in variables}
    ds = xr.concat(
        pieces, dim="time", data_vars="all", coords="minimal", compat="override", join="override"
    )
    ds = ds.drop_duplicates("time").sortby("time")
    times = ds["time"].values.astype("datetime64[ns]")
    if coll.kind == "tavg":
        after, before = targets + _HALF_HOUR, targets - _HALF_HOUR
        has_after, has_before = np.isin(after, times), np.isin(before, times)
        one_sided = has_after & ~has_before & (targets == targets[0])  # month start only
        ok = has_after & (has_before | one_sided)
        later = ds.sel(time=after[ok]).assign_coords(time=targets[ok])
        earlier = ds.sel(time=np.where(has_before[ok], before[ok], after[ok]))
        out = (later + earlier.assign_coords(time=targets[ok])) / 2
    else:
        ok = np.isin(targets, times)
        out = ds.sel(time=targets[ok])
    if not ok.any() or (not partial and not ok.all()):
        absent = [str(t)[:16] for t in targets[~ok]]
        raise ValueError(
            f"merra2: {coll.short_name} files ({paths[0].parent}) do not cover "
            f"{len(absent)} of {targets.size} steps every {cfg['step_hours']} h, e.g. "
            f"{', '.join(absent[:3])} (their times run {str(times[0])[:16]}.."
            f"{str(times[-1])[:16]})"
        )
    for name in variables:
        if name in NAN_FILL:
            out[name] = out[name].fillna(NAN_FILL[name])
        out[name].attrs = _variable_attrs(name, attrs[name], coll, paths[0])
    if "lev" in out.dims:
        out = out.rename(lev="level")
        if coll.stem.endswith("_Nv"):  # model levels are whole numbers
            out = out.assign_coords(level=out["level"].values.round().astype(np.int32))
        out["level"].attrs = _level_attrs(coll)
    return out


def _variable_attrs(name: str, source: dict[str, Any], coll: Collection, path: Path) -> dict:
    units = source.get("units")
    if not isinstance(units, str) or not units:
        raise ValueError(f"merra2: {path}: variable {name!r} has no units attribute")
    long_name = str(source.get("long_name") or name)
    standard = source.get("standard_name") or _STANDARD_NAMES.get(name)
    standard = standard or re.sub(r"\W+", "_", long_name.strip().lower())
    attrs = {
        "units": units,
        "standard_name": str(standard),
        "long_name": long_name,
        "merra2_collection": coll.short_name,
    }
    if coll.kind == "tavg":
        attrs["cell_methods"] = "time: mean (hourly means at HH:30 averaged onto HH:00)"
    if name in NAN_FILL:
        attrs["comment"] = f"NaN filled with {NAN_FILL[name]:g} (as Prithvi WxC does)"
    return attrs


def _level_attrs(coll: Collection) -> dict[str, str]:
    if coll.stem.endswith("_Nv"):
        return {
            "units": "1",
            "standard_name": "model_level_number",
            "long_name": "MERRA-2 model level (1 = top, 72 = lowest)",
            "positive": "down",
        }
    return {"units": "hPa", "standard_name": "air_pressure", "long_name": "pressure level"}


def _to_contract_grid(ds: xr.Dataset) -> xr.Dataset:
    """Longitudes rolled to [0, 360) ascending; latitudes flipped to descending."""
    # MERRA-2's "0" is -5.9e-13 in real files: round first, or it would wrap to 360.0
    lon = np.mod(np.round(ds["lon"].values.astype(np.float64), 6), 360.0) + 0.0
    lon[lon >= 360.0] -= 360.0
    ds = ds.assign_coords(lon=lon).sortby("lon")
    lat = ds["lat"].values
    if lat.size > 1 and lat[0] < lat[-1]:
        ds = ds.isel(lat=slice(None, None, -1))
    ds["lon"].attrs = {
        "units": "degrees_east",
        "standard_name": "longitude",
        "long_name": "longitude",
    }
    ds["lat"].attrs = {
        "units": "degrees_north",
        "standard_name": "latitude",
        "long_name": "latitude",
    }
    return ds


def _build_month(
    files: dict[str, list[Path]],
    month: str,
    cfg: dict[str, Any],
    *,
    partial: bool,
    stack: ExitStack,
) -> xr.Dataset:
    """Every configured collection on the month's steps, merged onto the contract grid."""
    targets = _step_times(month, cfg["step_hours"])
    first, last = targets[0], targets[-1] + np.timedelta64(cfg["step_hours"], "h")
    parts = []
    for coll, variables in _collections(cfg, "collections").items():
        paths = files.get(coll.short_name, [])
        if partial:  # local files: keep those whose name says they are in (or next to) the month
            paths = [p for p in paths if _near_month(p, first, last)]
        if not paths:
            raise FileNotFoundError(
                f"merra2: no {coll.short_name} file for {month} (variables {variables}); "
                f"found files for {sorted(files)}"
            )
        parts.append(
            _collection_series(coll, paths, variables, cfg, targets, partial=partial, stack=stack)
        )
    ds = xr.merge(parts, join="inner", compat="override", combine_attrs="drop_conflicts")
    if ds.sizes.get("time", 0) == 0:
        raise ValueError(
            f"merra2: the collections {[c.short_name for c in _collections(cfg, 'collections')]} "
            f"share no time step of {month} every {cfg['step_hours']} h"
        )
    ds["time"].attrs = {"standard_name": "time", "long_name": "time"}
    ds.attrs = {
        "title": f"MERRA-2 {month}",
        "time_processing": (
            f"steps every {cfg['step_hours']} h on the hour; tavg collections: hourly means "
            "at HH:30 averaged onto HH:00; the month's first step uses the 00:30 mean alone "
            "when the previous day's means are not at hand"
        ),
    }
    return _to_contract_grid(ds)


def _near_month(path: Path, first: np.datetime64, last: np.datetime64) -> bool:
    match = re.search(r"\.(\d{8})\.nc4$", path.name)
    if not match or match.group(1) == "00000000":
        return True  # undated name: its times decide
    d = match.group(1)
    day = np.datetime64(f"{d[:4]}-{d[4:6]}-{d[6:]}", "ns")
    return first - np.timedelta64(1, "D") <= day < last


def _build_static(
    files: dict[str, list[Path]], cfg: dict[str, Any], *, stack: ExitStack
) -> xr.Dataset:
    """The constant fields on the contract grid; a single time step is dropped."""
    parts = []
    for coll, variables in _collections(cfg, "static").items():
        paths = files.get(coll.short_name, [])
        if not paths:
            raise FileNotFoundError(
                f"merra2: no {coll.short_name} file (static variables {variables}); "
                f"found files for {sorted(files)}"
            )
        path = paths[0]
        ds = _subset(_open(path, stack), path, coll, variables, cfg["levels"])
        if "time" in ds.dims and ds.sizes["time"] == 1:
            ds = ds.isel(time=0, drop=True)
        elif "time" in ds.dims and ds.sizes["time"] == 12:  # monthly fields (M2C0NXCTM)
            months = np.arange("1980-01", "1981-01", dtype="datetime64[M]")
            ds = ds.assign_coords(time=months.astype("datetime64[ns]"))
            ds["time"].attrs = {
                "standard_name": "time",
                "long_name": "calendar month of the monthly fields (the year is nominal)",
            }
        elif "time" in ds.dims:
            raise ValueError(
                f"merra2: {path} ({coll.short_name}) has {ds.sizes['time']} time steps; "
                "expected 1 (constant) or 12 (monthly) fields"
            )
        for name in variables:
            if name in NAN_FILL:
                ds[name] = ds[name].fillna(NAN_FILL[name])
            ds[name].attrs = _variable_attrs(name, dict(ds[name].attrs), coll, path)
        parts.append(ds)
    ds = xr.merge(parts, join="exact", compat="override", combine_attrs="drop_conflicts")
    ds.attrs = {"title": "MERRA-2 constant fields"}
    return _to_contract_grid(ds)
