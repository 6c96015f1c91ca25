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


# A Landsat product ID: sensor, processing level, path/row, acquisition and processing
# dates, collection number and tier (USGS names every file of a product after it).
_LANDSAT_PRODUCT_ID = re.compile(
    r"L[COTEM]0\d_(L1TP|L1GT|L1GS|L2SP|L2SR)_\d{6}_\d{8}_\d{8}_(\d{2})_(?:T1|T2|RT)"
)
_MTL_LEVEL = re.compile(r'(?:PROCESSING_LEVEL|DATA_TYPE)\s*=\s*"?(L[12][A-Z]{2})"?')
_MTL_COLLECTION = re.compile(r'COLLECTION_NUMBER\s*=\s*"?0*(\d+)"?')
_LANDSAT_EXPECTED = (
    "expected Collection 2 Level-2 surface temperature: files named after an L2SP product "
    "(e.g. LC08_L2SP_196029_20230605_20230613_02_T1_ST_B10.TIF with its _QA_PIXEL.TIF)"
)


def _mtl_product(path: Path, scene_key: str) -> tuple[str, str, Path] | None:
    """(processing level, collection, MTL file) from the scene's ``_MTL.txt``/``_MTL.json``."""
    prefix = scene_key.upper()
    for mtl in sorted(path.parent.iterdir()):
        upper = mtl.name.upper()
        if not (upper.endswith(("_MTL.TXT", "_MTL.JSON")) and upper.startswith(prefix)):
            continue
        text = mtl.read_text(errors="replace")
        if upper.endswith(".JSON"):  # Collection 2 MTL.json: "KEY": "value" pairs, nested
            text = re.sub(r'"(\w+)"\s*:\s*', r"\1 = ", text)
        level, collection = _MTL_LEVEL.search(text), _MTL_COLLECTION.search(text)
        if level is None:
            raise TileError(f"{mtl}: no PROCESSING_LEVEL or DATA_TYPE; expected a Landsat MTL file")
        return level.group(1), collection.group(1).zfill(2) if collection else "", mtl
    return None


def check_landsat_product(path: Path, band: str, scene_key: str) -> None:
    """Refuse a file that is not Collection 2 Level-2 surface temperature (or its QA).

    A Level-1 ``B10`` holds thermal DN, not kelvin: converted with the L2 ST scale it comes
    out tens of kelvin too cold, so the product is identified from the name's product ID
    and the MTL file beside it, and anything else fails before a store is written.
    """
    found = _LANDSAT_PRODUCT_ID.search(path.name.upper())
    named = (found.group(1), found.group(2)) if found else None
    mtl = _mtl_product(path, scene_key) if scene_key else None
    if named and mtl and named != mtl[:2]:
        raise TileError(
            f"{path}: the name says {named[0]} Collection {named[1]} but {mtl[2].name} says "
            f"{mtl[0]} Collection {mtl[1] or '?'}; {_LANDSAT_EXPECTED}"
        )
    level, collection = named or (mtl[:2] if mtl else ("", ""))
    where = "its name" if named else (mtl[2].name if mtl else "")
    if level.startswith("L1"):
        raise TileError(
            f"{path}: a Landsat Collection {collection} Level-1 product ({level}, from {where}): "
            f"its band 10 is thermal DN (at-sensor radiance), not surface temperature; "
            f"{_LANDSAT_EXPECTED}"
        )
    if collection and collection != "02":
        raise TileError(
            f"{path}: a Landsat Collection {collection} product (from {where}); {_LANDSAT_EXPECTED}"
        )
    if level == "L2SR":
        raise TileError(
            f"{path}: a Landsat L2SR product (surface reflectance only, no surface "
            f"temperature); {_LANDSAT_EXPECTED}"
        )
    stem = path.stem.upper()
    if not level and band == "lwir11" and not stem.endswith(("ST_B10", "LWIR11")):
        raise TileError(
            f"{path}: a bare B10 band with no product ID in its name and no _MTL file beside "
            f"it, so Level-1 DN cannot be told from Level-2 ST; {_LANDSAT_EXPECTED}"
        )


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
            if sensor == "landsat":
                check_landsat_product(path, band, key)
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
