"""MERRA-2 route ``earthaccess``: NASA CMR search and download through earthaccess."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from eofm.config import Merra2Settings
from eofm.data.credentials import earthdata_credentials
from eofm.data.fetch import FetchError
from eofm.data.merra2.common import (
    CMR_URL,
    SOURCE,
    _collections,
    _file_regex,
    _month_days,
    _ymd,
)
from eofm.errors import CredentialsError

log = logging.getLogger(__name__)


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


def granule_files(
    settings: Merra2Settings, key: str, month: str | None, cache: Path
) -> tuple[dict[str, list[Path]], list[str]]:
    """Search CMR per collection and download the granules into the cache."""
    import earthaccess

    strategy = _earthaccess_login()
    log.info("merra2: earthaccess logged in (%s strategy)", strategy)
    days = _month_days(month) if month else []
    temporal = (f"{days[0]}T00:00:00", f"{days[-1]}T23:59:59") if days else None
    files: dict[str, list[Path]] = {}
    urls: list[str] = []
    for coll in _collections(settings, key):
        query: dict[str, Any] = {"short_name": coll.short_name, "version": settings.version}
        if temporal:
            query["temporal"] = temporal
        where = f"{CMR_URL} (short_name={coll.short_name}, version={settings.version})"
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
