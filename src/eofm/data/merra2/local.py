"""MERRA-2 route ``local``: ``.nc4`` files already on disk, identified by name or attribute."""

from __future__ import annotations

import glob
import logging
import re
from pathlib import Path

import xarray as xr

from eofm.config import Merra2Settings
from eofm.data.merra2.common import (
    _BY_STEM,
    COLLECTIONS,
)
from eofm.errors import ConfigError

log = logging.getLogger(__name__)


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


def local_files(settings: Merra2Settings) -> dict[str, list[Path]]:
    """The files of ``merra2.local.paths`` by collection; files of no known collection are
    skipped with a warning."""
    patterns = settings.local.paths
    if not patterns:
        raise ConfigError("merra2.local.paths is empty; expected globs of MERRA-2 .nc4 files")
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
