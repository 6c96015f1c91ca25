"""Tile route ``local``: GeoTIFF / JPEG2000 files on disk, one file per band, grouped into
scenes by the date and band in their names, and MOD11A1 HDF4-EOS granules (`modis_hdf`)."""

from __future__ import annotations

import glob
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling

from eofm.config import TilesSettings
from eofm.data.fetch import sha256sum
from eofm.data.tiles import modis_hdf
from eofm.data.tiles.common import (
    _EARTH_SEARCH_ASSETS,
    AreaGrid,
    Scene,
    SensorSpec,
    _month_range,
    _read_on_grid,
    _ReadError,
    warn_console,
)
from eofm.errors import TileError

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- local route

_DATE_PATTERNS = (
    (re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(?!\d)"), "ymdhms"),
    (re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)"), "ymd"),
    (re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)"), "ymd"),
    (re.compile(r"A(\d{4})(\d{3})(?!\d)"), "yj"),
)
_LOCAL_TOKENS: dict[str, dict[str, tuple[str, ...]]] = {
    "landsat": {
        "lwir11": ("ST_B10", "B10", "LWIR11"),
        "green": ("SR_B3", "GREEN"),
        "red": ("SR_B4", "RED"),
        "nir08": ("SR_B5", "NIR08"),
        "swir16": ("SR_B6", "SWIR16"),
        "qa_pixel": ("QA_PIXEL",),
    },
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
            if kind == "ymdhms":  # Sentinel-2 datatake sensing time, UTC
                return datetime(*(int(g) for g in match.groups()), tzinfo=UTC)
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
_MTL_DATE = re.compile(r'DATE_ACQUIRED\s*=\s*"?(\d{4}-\d{2}-\d{2})"?')
_MTL_CENTRE_TIME = re.compile(r'SCENE_CENTER_TIME\s*=\s*"?(\d{2}):(\d{2}):(\d{2}(?:\.\d+)?)Z?"?')
_LANDSAT_EXPECTED = (
    "expected Collection 2 Level-2 surface temperature: files named after an L2SP product "
    "(e.g. LC08_L2SP_196029_20230605_20230613_02_T1_ST_B10.TIF with its _SR_B3 … _SR_B6 "
    "and _QA_PIXEL.TIF)"
)


@dataclass(frozen=True)
class Mtl:
    """What a Landsat ``_MTL.txt``/``_MTL.json`` says of its product."""

    level: str
    collection: str
    path: Path
    acquired: datetime | None  # DATE_ACQUIRED + SCENE_CENTER_TIME (UTC)


def _mtl_acquired(text: str, mtl: Path) -> datetime | None:
    day, centre = _MTL_DATE.search(text), _MTL_CENTRE_TIME.search(text)
    if day is None or centre is None:
        return None
    hours, minutes, seconds = centre.groups()
    try:
        when = datetime.strptime(day.group(1), "%Y-%m-%d").replace(tzinfo=UTC)
        return when + timedelta(hours=int(hours), minutes=int(minutes), seconds=float(seconds))
    except ValueError as err:
        raise TileError(
            f"{mtl}: DATE_ACQUIRED/SCENE_CENTER_TIME unreadable ({err}); expected "
            "YYYY-MM-DD and HH:MM:SS.sssssssZ"
        ) from None


def _mtl_product(path: Path, scene_key: str) -> Mtl | None:
    """The scene's ``_MTL.txt``/``_MTL.json`` beside ``path``: level, collection, time."""
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
        number = collection.group(1).zfill(2) if collection else ""
        return Mtl(level.group(1), number, mtl, _mtl_acquired(text, mtl))
    return None


def check_landsat_product(path: Path, band: str, scene_key: str) -> Mtl | None:
    """Refuse a file that is not Collection 2 Level-2 surface temperature (or its QA); return
    the scene's MTL where there is one.

    A Level-1 ``B10`` holds thermal DN, not kelvin: converted with the L2 ST scale it comes
    out tens of kelvin too cold, so the product is identified from the name's product ID
    and the MTL file beside it, and anything else fails before a store is written.
    """
    found = _LANDSAT_PRODUCT_ID.search(path.name.upper())
    named = (found.group(1), found.group(2)) if found else None
    mtl = _mtl_product(path, scene_key) if scene_key else None
    if named and mtl and named != (mtl.level, mtl.collection):
        raise TileError(
            f"{path}: the name says {named[0]} Collection {named[1]} but {mtl.path.name} says "
            f"{mtl.level} Collection {mtl.collection or '?'}; {_LANDSAT_EXPECTED}"
        )
    level, collection = named or ((mtl.level, mtl.collection) if mtl else ("", ""))
    where = "its name" if named else (mtl.path.name if mtl else "")
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
    return mtl


_RASTERS = (".tif", ".tiff", ".jp2")
# Files that travel with the rasters (georeference, metadata, previews of the same product):
# read where needed, never reported as ignored.
_COMPANIONS = re.compile(
    r"(\.aux\.xml|\.ovr|\.msk|\.tfw|\.j2w|\.wld|_MTL\.(txt|json|xml)|_ANG\.txt|\.hdf\.xml"
    r"|_stac\.json|^MTD_\w*\.xml|^manifest\.safe)$",
    re.IGNORECASE,
)
_AQUA = "Aqua (MYD11A1): WGAST uses Terra's (MOD11A1) morning overpass"
_RESOLUTION = re.compile(r"_(10|20|60)M$", re.IGNORECASE)
_S2_PRODUCT = re.compile(r"S2[A-D]_MSIL2A_\d{8}T\d{6}_N(\d{2})(\d{2})_", re.IGNORECASE)
_S2_MTD_BASELINE = re.compile(r"<PROCESSING_BASELINE>\s*(\d{2}\.\d{2})\s*<")
_S2_MTD_START = re.compile(r"<PRODUCT_START_TIME>\s*([0-9T:.\-]+)Z?\s*<")
_SHOWN = 5  # file names listed per reason; the rest are counted


def _s2_metadata(path: Path) -> tuple[dict[str, Any], datetime | None]:
    """Processing baseline (and acquisition time) of a Sentinel-2 file from its product.

    The baseline sets the reflectance offset: ESA's reprocessed archive carries baseline
    05.00 (offset −1000) on scenes from before 2022, which the date alone gets wrong. Read
    from the SAFE's ``MTD_MSIL2A.xml`` when the file sits in one, else from the product
    name (``…_N0400_…``) in the file's path; absent both, `s2_offset` falls back on the date.
    """
    properties: dict[str, Any] = {}
    when = None
    product = _S2_PRODUCT.search(str(path))
    if product:
        properties["s2:processing_baseline"] = f"{product.group(1)}.{product.group(2)}"
    safe = next((p for p in path.parents if p.name.upper().endswith(".SAFE")), None)
    mtd = safe / "MTD_MSIL2A.xml" if safe else None
    if mtd is not None and mtd.is_file():
        text = mtd.read_text(errors="replace")
        baseline, start = _S2_MTD_BASELINE.search(text), _S2_MTD_START.search(text)
        if baseline:
            properties["s2:processing_baseline"] = baseline.group(1)
        if start:
            try:
                when = datetime.fromisoformat(start.group(1)).replace(tzinfo=UTC)
            except ValueError:
                raise TileError(
                    f"{mtd}: PRODUCT_START_TIME {start.group(1)!r} unreadable; expected "
                    "YYYY-MM-DDTHH:MM:SS.sssZ"
                ) from None
        properties["local:metadata"] = [str(mtd)]
    return properties, when


def _matched(patterns: list[str]) -> list[Path]:
    files: dict[Path, None] = {}
    for pattern in patterns:
        for name in sorted(glob.glob(os.path.expanduser(str(pattern)), recursive=True)):
            if os.path.isfile(name):
                files.setdefault(Path(name), None)
    return list(files)


def _listing(ignored: dict[str, list[Path]]) -> str:
    parts = []
    for reason, paths in ignored.items():
        names = ", ".join(p.name for p in paths[:_SHOWN])
        more = f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else ""
        parts.append(f"{len(paths)} {reason} ({names}{more})")
    return "; ".join(parts)


def _finer(previous: str, new: Path) -> bool | None:
    """Whether ``new`` is a finer copy of the band in ``previous`` (Sentinel-2 ``_10m``,
    ``_20m``, ``_60m``); None when the names do not say."""
    old_res, new_res = _RESOLUTION.search(Path(previous).stem), _RESOLUTION.search(new.stem)
    if old_res is None or new_res is None or old_res.group(1) == new_res.group(1):
        return None
    return int(new_res.group(1)) < int(old_res.group(1))


def _modis_granule(
    path: Path,
    start: datetime,
    stop: datetime,
    grid: AreaGrid,
    ignored: dict[str, list[Path]],
) -> Scene | str | None:
    """The scene of a MOD11A1 HDF granule, ``"other month"``/``"outside"``, or None (ignored)."""
    name = modis_hdf.parse_name(path.name)
    if name is None:
        ignored.setdefault(
            "HDF file(s) not named as an LP DAAC MOD11A1 granule "
            "(MOD11A1.AYYYYDDD.hHHvVV.061.*.hdf)",
            [],
        ).append(path)
        return None
    if name.product == "MYD11A1":
        ignored.setdefault(_AQUA, []).append(path)
        return None
    if not (start <= name.date < stop):
        return "other month"
    granule = modis_hdf.open_granule(path)
    if not modis_hdf.overlaps(granule, grid):
        return "outside"
    when = modis_hdf.acquisition_time(granule, grid)
    assets = {"LST_Day_1km": str(path), "QC_Day": str(path)}
    return Scene(path.stem, when, assets, {"local:granule": granule})


def local_scenes(sensor: str, month: str, settings: TilesSettings, grid: AreaGrid) -> list[Scene]:
    """Scenes of ``sensor`` in ``month`` from the configured globs (one file per band, or a
    MOD11A1 HDF granule holding them all) that cover ``grid``.

    Files that cannot be used are listed on the console; a month left with no scene at all
    is an error (a local archive that lacks the month is a wrong glob, not a cloudy month).
    """
    patterns = [str(p) for p in getattr(settings.local.paths, sensor)]
    where = f"tiles local {sensor} {month}"
    key_name = f"tiles.local.paths.{sensor}"
    if not patterns:
        raise TileError(f"{where}: {key_name} is empty; expected globs of the {sensor} files")
    files = _matched(patterns)
    if not files:
        raise TileError(f"{where}: no file matches {key_name} {patterns}")
    start, stop = _month_range(month)
    scenes: dict[str, Scene] = {}
    ignored: dict[str, list[Path]] = {}
    other_months = outside = 0
    for path in files:
        suffix = path.suffix.lower()
        if _COMPANIONS.search(path.name):
            continue
        if suffix == ".hdf" and sensor == "modis":
            found_scene = _modis_granule(path, start, stop, grid, ignored)
            if isinstance(found_scene, Scene):
                scenes[found_scene.id] = found_scene
            other_months += found_scene == "other month"
            outside += found_scene == "outside"
            continue
        if suffix not in _RASTERS:
            reason = (
                "HDF file(s), read for modis only"
                if suffix == ".hdf"
                else ("file(s) neither GeoTIFF nor JPEG2000 (nor a MOD11A1 HDF4 granule)")
            )
            ignored.setdefault(reason, []).append(path)
            continue
        if sensor == "modis" and path.name.upper().startswith("MYD"):
            ignored.setdefault(_AQUA, []).append(path)
            continue
        found = _file_band(sensor, path.stem)
        if found is None:
            bands = ", ".join(t for tokens in _LOCAL_TOKENS[sensor].values() for t in tokens)
            ignored.setdefault(
                f"file(s) with no {sensor} band as the name's last token ({bands})", []
            ).append(path)
            continue
        when = _file_date(path.name)
        if when is None:
            ignored.setdefault(
                "file(s) with no date in the name (YYYYMMDD, YYYY-MM-DD or AYYYYDDD)", []
            ).append(path)
            continue
        if not (start <= when < stop):
            other_months += 1
            continue
        band, key = found
        properties: dict[str, Any] = {}
        if sensor == "landsat":
            mtl = check_landsat_product(path, band, key)
            if mtl is not None:
                properties["local:metadata"] = [str(mtl.path)]
                if mtl.acquired is not None:
                    if mtl.acquired.date() != when.date():
                        raise TileError(
                            f"{path}: the name says {when:%Y-%m-%d} but {mtl.path.name} "
                            f"DATE_ACQUIRED is {mtl.acquired:%Y-%m-%d}; expected the MTL of "
                            "the same scene"
                        )
                    when = mtl.acquired
        elif sensor == "sentinel2":
            properties, acquired = _s2_metadata(path)
            when = acquired or when
        key = key or f"{when:%Y%m%d}"
        scene = scenes.setdefault(key, Scene(key, when, {}, properties))
        previous = scene.assets.get(band)
        if previous is not None:
            finer = _finer(previous, path)
            if finer is None:
                raise TileError(
                    f"{where}: two files for band {band} of scene {key}: {previous} and {path}; "
                    "expected one file per band"
                )
            coarser = Path(previous) if finer else path
            ignored.setdefault("coarser copies of a band already found", []).append(coarser)
            if not finer:
                continue
        scene.assets[band] = str(path)
    n_ignored = sum(len(v) for v in ignored.values())
    if ignored:
        warn_console(
            f"{where}: ignoring {n_ignored} of the {len(files)} file(s) matched by {key_name}: "
            f"{_listing(ignored)}"
        )
    if not scenes:
        raise TileError(
            f"{where}: no usable {sensor} file of {month} among the {len(files)} file(s) "
            f"matched by {key_name} {patterns} ({other_months} of other months, {outside} "
            f"not covering the area, {n_ignored} ignored); expected the month's files, so "
            "that no month is stored empty by mistake"
        )
    return sorted(scenes.values(), key=lambda s: (s.datetime, s.id))


def _inputs(scenes: list[Scene], spec: SensorSpec) -> list[Path]:
    """Every file the store is made from: the bands and mask read, and metadata files."""
    needed = (*spec.all_bands, spec.mask)
    paths = {Path(p) for s in scenes for b, p in s.assets.items() if b in needed}
    paths |= {Path(p) for s in scenes for p in s.properties.get("local:metadata", [])}
    return sorted(paths)


def _input_checksums(paths: list[Path]) -> dict[str, str]:
    """sha256 of each file by name (by full path where two names clash)."""
    checksums: dict[str, str] = {}
    for path in paths:
        key = path.name if path.name not in checksums else str(path.resolve())
        checksums[key] = sha256sum(path)
    return checksums


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
    reader, and the store's source attributes (with the sha256 of every input)."""
    scenes = local_scenes(sensor, month, settings, grid)

    # local files may be georeferenced by sidecars (.aux.xml, .j2w): let GDAL look
    local_env = {k: v for k, v in gdal_env.items() if k != "GDAL_DISABLE_READDIR_ON_OPEN"}

    def read(scene: Scene, band: str, resampling: Resampling) -> np.ndarray:
        path = scene.assets[band]
        granule = scene.properties.get("local:granule")
        if granule is not None:
            return modis_hdf.read_on_grid(granule, band, grid, resampling)
        try:
            with rasterio.Env(**local_env):
                return _read_on_grid(path, grid, resampling, path)
        except _ReadError as err:
            raise TileError(f"{source_name} {month}: cannot read {band} from {err}") from None

    for scene in scenes:
        missing = [b for b in spec.all_bands if b not in scene.assets]
        if missing:
            raise TileError(
                f"{source_name} {month}: scene {scene.id} has no file for band(s) {missing}; "
                f"found {sorted(scene.assets)} (expected one file per band)"
            )
    inputs = _inputs(scenes, spec)
    attrs = {
        "source": f"local files ({sensor})",
        "source_url": json.dumps([p.resolve().as_uri() for p in inputs]),
        "source_version": "local",
        "input_checksums": json.dumps(_input_checksums(inputs), sort_keys=True),
    }
    return scenes, read, attrs
