"""Credentials for the real sources, in one place: where each is looked for, and the error.

Credentials come from the environment, ``~/.netrc`` or the clients' own files, never from
config, never logged and never prompted for (a batch job must fail at once, not hang).
A missing credential raises `CredentialsError` for every source alike, naming the
environment variables and files that were looked at and how to provide them.

* Earthdata (MERRA-2, first found wins): ``EARTHDATA_TOKEN`` (a Bearer token),
  ``EARTHDATA_USERNAME`` + ``EARTHDATA_PASSWORD``, then the netrc file (``$NETRC`` or
  ``~/.netrc``) entry for urs.earthdata.nasa.gov (or for a data server's host).
* CDS (ERA5 ``cds`` route): ``CDSAPI_URL`` + ``CDSAPI_KEY`` in the environment, or the
  file ``$CDSAPI_RC`` (default ``~/.cdsapirc``) that ``cdsapi`` itself reads.
"""

from __future__ import annotations

import logging
import netrc
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from eofm.errors import CredentialsError

log = logging.getLogger(__name__)

URS_HOST = "urs.earthdata.nasa.gov"

CDS_CREDENTIALS_HELP = (
    "set CDSAPI_URL (e.g. https://cds.climate.copernicus.eu/api) and CDSAPI_KEY (your "
    "personal access token) in the environment, or write them to ~/.cdsapirc "
    "(or the file named by CDSAPI_RC) as 'url: ...' and 'key: ...'"
)

__all__ = [
    "CDS_CREDENTIALS_HELP",
    "URS_HOST",
    "CredentialsError",
    "EarthdataCredentials",
    "cds_credentials",
    "cds_rc_path",
    "earthdata_credentials",
    "netrc_path",
]


# --------------------------------------------------------------------------- Earthdata


@dataclass(frozen=True)
class EarthdataCredentials:
    """Where the credentials came from, and the secrets (kept out of repr)."""

    origin: str
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)


def netrc_path() -> Path:
    """The netrc file requests and earthaccess read: ``$NETRC`` or ``~/.netrc``."""
    return Path(os.environ.get("NETRC") or Path.home() / ".netrc").expanduser()


def earthdata_credentials(
    hosts: Sequence[str] = (), source: str = "merra2"
) -> EarthdataCredentials:
    """Earthdata credentials from the environment or netrc; `CredentialsError` if none.

    ``hosts`` are further netrc machines to accept (the data servers' hosts) after
    urs.earthdata.nasa.gov; ``source`` prefixes the error message.
    """
    token = os.environ.get("EARTHDATA_TOKEN")
    if token:
        return EarthdataCredentials("EARTHDATA_TOKEN", token=token)
    user, password = os.environ.get("EARTHDATA_USERNAME"), os.environ.get("EARTHDATA_PASSWORD")
    if user and password:
        return EarthdataCredentials(
            "EARTHDATA_USERNAME/EARTHDATA_PASSWORD", username=user, password=password
        )
    path = netrc_path()
    if path.is_file():
        try:
            entries = netrc.netrc(str(path))
        except (netrc.NetrcParseError, OSError) as err:
            raise CredentialsError(
                f"{source}: cannot read the netrc file {path} (line "
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
        f"{source}: no Earthdata credentials. Set EARTHDATA_TOKEN (an Earthdata Login token), "
        "or EARTHDATA_USERNAME and EARTHDATA_PASSWORD, or add the line "
        f"'machine {URS_HOST} login <user> password <password>' to {path} "
        f"(the file $NETRC names, default ~/.netrc; mode 0600){also}. "
        "Batch jobs never prompt for them. Also authorise the 'NASA GESDISC DATA ARCHIVE' "
        "application in your Earthdata profile."
    )


# --------------------------------------------------------------------------- CDS


def cds_rc_path() -> Path:
    """The file cdsapi reads its url and key from: ``$CDSAPI_RC`` or ``~/.cdsapirc``."""
    return Path(os.environ.get("CDSAPI_RC", "~/.cdsapirc")).expanduser()


def cds_credentials(source: str = "era5/cds") -> str:
    """Check that cdsapi will find CDS credentials; returns where they are.

    cdsapi reads the environment and the rc file itself (and would prompt in some
    versions), so this only checks that one of them is there and in the new CDS's form.
    """
    env_url, env_key = os.environ.get("CDSAPI_URL"), os.environ.get("CDSAPI_KEY")
    rc = cds_rc_path()
    if not (env_url and env_key) and not rc.is_file():
        raise CredentialsError(
            f"{source}: no CDS credentials found (looked for CDSAPI_URL and CDSAPI_KEY in the "
            f"environment and for the file {rc}); {CDS_CREDENTIALS_HELP}"
        )
    if env_key and ":" in env_key:
        raise CredentialsError(
            f"{source}: CDSAPI_KEY has the retired 'UID:KEY' form; the new CDS needs "
            f"only the personal access token; {CDS_CREDENTIALS_HELP}"
        )
    return "CDSAPI_URL/CDSAPI_KEY" if env_url and env_key else str(rc)
