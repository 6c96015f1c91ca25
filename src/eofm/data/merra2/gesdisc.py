"""MERRA-2 route ``gesdisc``: HTTPS from the GES DISC data servers with Earthdata login
(the URS redirect dance, see `EarthdataSession`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

import requests
from tqdm.auto import tqdm

from eofm.config import Merra2Settings
from eofm.data.credentials import EarthdataCredentials, earthdata_credentials
from eofm.data.fetch import FetchError, RetryPolicy, download, with_retries
from eofm.data.merra2.common import (
    COLLECTIONS,
    SOURCE,
    Collection,
    _collections,
    _file_regex,
    _month_days,
    _ymd,
)
from eofm.errors import ConfigError, EofmError

log = logging.getLogger(__name__)


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


def earthdata_session(settings: Merra2Settings) -> tuple[EarthdataSession, EarthdataCredentials]:
    """A session carrying Earthdata credentials for the configured servers and URS."""
    urls = [settings.urs, *settings.servers.values()]
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


def _collection_url(settings: Merra2Settings, coll: Collection) -> str:
    servers = settings.servers
    if coll.server not in servers:
        raise ConfigError(
            f"merra2.servers has no {coll.server!r} entry (collection {coll.short_name} "
            f"lives there); expected keys {sorted({c.server for c in COLLECTIONS.values()})}"
        )
    base = str(servers[coll.server]).rstrip("/")
    return f"{base}/{coll.archive}/{coll.short_name}.{settings.version}"


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


def month_files(
    month: str, settings: Merra2Settings, policy: RetryPolicy, cache: Path
) -> tuple[dict[str, list[Path]], list[str]]:
    """List each collection's month directory, check every day is there, download."""
    days = _month_days(month)
    session, creds = earthdata_session(settings)
    with session:
        jobs: list[tuple[str, Path, str]] = []
        files: dict[str, list[Path]] = {}
        dirs: list[str] = []
        for coll in _collections(settings, "collections"):
            year, mon = month.split("-")
            url = f"{_collection_url(settings, coll)}/{year}/{mon}/"
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


def static_files(
    settings: Merra2Settings, policy: RetryPolicy, cache: Path
) -> tuple[dict[str, list[Path]], list[str]]:
    """The constant files live in MERRA2_MONTHLY/<coll>/1980/ as ``…00000000.nc4``."""
    session, creds = earthdata_session(settings)
    with session:
        jobs: list[tuple[str, Path, str]] = []
        files: dict[str, list[Path]] = {}
        dirs: list[str] = []
        for coll in _collections(settings, "static"):
            url = f"{_collection_url(settings, coll)}/1980/"
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
