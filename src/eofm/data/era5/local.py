"""ERA5 route ``local``: NetCDF/GRIB files already on disk (new-CDS, legacy ERA5 or GRIB
names)."""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Sequence
from pathlib import Path

from eofm.config import Era5Settings
from eofm.data.era5.common import (
    SOURCE_NAME,
    STATIC_WHY,
    _finish,
    _levels,
    _required,
    fields_from_files,
    static_from_files,
    write_steps,
)
from eofm.data.fetch import (
    redact,
    sha256sum,
)
from eofm.data.gridded import coverage_attr
from eofm.data.sample import month_times
from eofm.data.store import write_store
from eofm.errors import ConfigError


def _expand_globs(patterns: Sequence[str], key: str, why: str = "") -> list[Path]:
    if not patterns:
        raise ConfigError(
            f"era5.local.{key}: expected a list of file globs, got {patterns!r}" + why
        )
    files: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.expanduser(str(pattern))))
        if not matches:
            raise FileNotFoundError(f"era5.local.{key}: no files match {pattern!r}")
        files += [Path(m) for m in matches if Path(m) not in files]
    return files


def _files_provenance(source: str, files: Sequence[Path], url: str | None = None) -> dict:
    return {
        "source": source,
        "source_url": redact(url) if url else " ".join(f"file://{f.resolve()}" for f in files),
        "source_version": " ".join(f.name for f in files),
        "input_checksums": json.dumps({f.name: sha256sum(f) for f in files}, sort_keys=True),
    }


def fetch_month(month: str, out: Path, settings: Era5Settings) -> Path:
    """One month from the files of ``era5.local.paths``."""
    levels, factor = _levels(settings), settings.coarsen
    files = _expand_globs(settings.local.paths, "paths")
    names = _required(settings.local.variables, "month")
    steps = month_times(month, settings.step_hours)
    where = f"{SOURCE_NAME}/local ({month})"
    local = settings.local
    hint = (
        "Set era5.local.variables to the subset the files hold to write a reduced store"
        if local.variables is None
        else "era5.local.variables lists them"
    )
    fields = fields_from_files(
        files,
        names,
        month,
        steps,
        levels,
        where,
        area=local.area,
        area_key="era5.local.area",
        variables_hint=hint,
    )
    provenance = _files_provenance("local", files)
    return write_steps(
        fields,
        out,
        factor=factor,
        provenance=provenance,
        where=where,
        area=local.area,
        steps_expected=steps.size,
        step_hours=settings.step_hours,
    )


def fetch_static(out: Path, settings: Era5Settings) -> Path:
    """The invariant fields from the files of ``era5.local.static_paths``."""
    why = f" (files with lsm, z and slt: {STATIC_WHY})"
    files = _expand_globs(settings.local.static_paths, "static_paths", why)
    area = settings.local.area
    fields = static_from_files(
        files, f"{SOURCE_NAME}/local (static)", area=area, area_key="era5.local.area"
    )
    ds = _finish(
        fields,
        static=True,
        factor=settings.coarsen,
        provenance=_files_provenance("local", files),
    )
    ds.attrs["coverage"] = coverage_attr(ds, variables=list(fields), area=area)
    return write_store(ds, out)
