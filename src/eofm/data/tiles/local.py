"""Tile route ``local``: GeoTIFF / JPEG2000 files on disk, one file per band, grouped into
scenes by the date and band in their names."""

from __future__ import annotations

import glob
import json
import logging
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling

from eofm.config import TilesSettings
from eofm.data.tiles.common import (
    _EARTH_SEARCH_ASSETS,
    AreaGrid,
    Scene,
    SensorSpec,
    _month_range,
    _read_on_grid,
    _ReadError,
)
from eofm.errors import TileError

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- local route

_DATE_PATTERNS = (
    (re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)"), "ymd"),
    (re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)"), "ymd"),
    (re.compile(r"A(\d{4})(\d{3})(?!\d)"), "yj"),
)
_LOCAL_TOKENS: dict[str, dict[str, tuple[str, ...]]] = {
    "landsat": {"lwir11": ("ST_B10", "B10", "LWIR11"), "qa_pixel": ("QA_PIXEL",)},
    "modis": {"LST_Day_1km": ("LST_DAY_1KM",), "QC_Day": ("QC_DAY",)},
    "sentinel2": {
        **{b: (b, _EARTH_SEARCH_ASSETS[b].upper()) for b in _EARTH_SEARCH_ASSETS if b != "SCL"},
        "SCL": ("SCL",),
    },
}


def _file_date(name: str) -> datetime | None:
    for pattern, kind in _DATE_PATTERNS:
        match = pattern.search(name)
        if not match:
            continue
        try:
            if kind == "ymd":
                y, m, d = (int(g) for g in match.groups())
                return datetime(y, m, d, tzinfo=UTC)
            y, j = (int(g) for g in match.groups())
            return datetime(y, 1, 1, tzinfo=UTC) + timedelta(days=j - 1)
        except ValueError:
            continue
    return None


def _file_band(sensor: str, stem: str) -> tuple[str, str] | None:
    """(canonical band, scene key) for a file stem, or None if it is no band we read."""
    upper = re.sub(r"_(10|20|60)M$", "", stem.upper())
    for band, tokens in _LOCAL_TOKENS[sensor].items():
        for token in sorted(tokens, key=len, reverse=True):
            if upper == token:
                return band, ""
            for sep in ("_", ".", "-"):
                if upper.endswith(sep + token):
                    return band, upper[: -len(token) - 1]
    return None


def local_scenes(sensor: str, month: str, settings: TilesSettings) -> list[Scene]:
    """Scenes of ``sensor`` in ``month`` from the configured globs (one file per band)."""
    patterns: list[str] = getattr(settings.local.paths, sensor)
    start, stop = _month_range(month)
    scenes: dict[str, Scene] = {}
    for pattern in patterns:
        for name in sorted(glob.glob(os.path.expanduser(str(pattern)), recursive=True)):
            path = Path(name)
            if path.suffix.lower() not in (".tif", ".tiff", ".jp2"):
                continue
            if sensor == "modis" and path.name.upper().startswith("MYD"):
                continue  # Aqua: WGAST uses Terra's morning overpass
            found = _file_band(sensor, path.stem)
            when = _file_date(path.name)
            if found is None or when is None:
                log.warning("tiles local: ignoring %s (no known band or date in its name)", path)
                continue
            if not (start <= when < stop):
                continue
            band, key = found
            key = key or f"{when:%Y%m%d}"
            scene = scenes.setdefault(key, Scene(key, when, {}, {}))
            scene.assets[band] = str(path)
    return sorted(scenes.values(), key=lambda s: (s.datetime, s.id))


def prepare(
    sensor: str,
    month: str,
    settings: TilesSettings,
    grid: AreaGrid,
    spec: SensorSpec,
    gdal_env: dict[str, str],
    source_name: str,
) -> tuple[list[Scene], Callable[[Scene, str, Resampling], np.ndarray], dict[str, Any]]:
    """The month's scenes from the local globs (each with a file for every band), a band
    reader, and the store's source attributes."""
    scenes = local_scenes(sensor, month, settings)

    # local files may be georeferenced by sidecars (.aux.xml, .j2w): let GDAL look
    local_env = {k: v for k, v in gdal_env.items() if k != "GDAL_DISABLE_READDIR_ON_OPEN"}

    def read(scene: Scene, band: str, resampling: Resampling) -> np.ndarray:
        path = scene.assets[band]
        try:
            with rasterio.Env(**local_env):
                return _read_on_grid(path, grid, resampling, path)
        except _ReadError as err:
            raise TileError(f"{source_name} {month}: cannot read {band} from {err}") from None

    for scene in scenes:
        missing = [b for b in spec.bands if b not in scene.assets]
        if missing:
            raise TileError(
                f"{source_name} {month}: scene {scene.id} has no file for band(s) {missing}; "
                f"found {sorted(scene.assets)} (expected one file per band)"
            )
    paths = sorted({p for s in scenes for p in s.assets.values()})
    attrs = {
        "source": f"local files ({sensor})",
        "source_url": json.dumps([Path(p).resolve().as_uri() for p in paths]),
        "source_version": "local",
    }
    return scenes, read, attrs
