"""Satellite tiles (MODIS LST, Landsat 8/9 surface temperature, Sentinel-2 L2A) → tile stores.

WGAST fuses daily 1 km MODIS LST, 30 m Landsat surface temperature and 10 m Sentinel-2
reflectance, so every sensor of an *area* is resampled onto one shared grid (the area's
CRS, bounds and resolution): the three stores of an area align pixel for pixel.

One store per (area, sensor, month), written atomically by `eofm.data.store.write_store`:

* data variable ``lst`` (MODIS, Landsat; K, float32) or ``reflectance`` (Sentinel-2; 1),
  dims ``(time, band, y, x)`` with a ``band`` coordinate of the source band names;
* Landsat also ``reflectance`` (1, float32), dims ``(time, sr_band, y, x)``, ``sr_band`` =
  ``green, red, nir08, swir16`` (the STAC asset names; USGS ``SR_B3`` … ``SR_B6``): the
  surface-reflectance bands WGAST's NDVI/NDWI/NDBI need, masked by the same QA as ``lst``;
* ``valid`` (uint8, dims ``(time, y, x)``): 1 where the pixel is clear and has data in
  every band, 0 where it is cloud, shadow, bad QA or nodata; data are NaN where 0;
* ``spatial_ref`` coordinate (``crs_wkt``, ``GeoTransform``) and ``grid_mapping`` on the
  variables, the rioxarray/CF way, so ``ds.rio.crs`` and ``ds.rio.transform()`` work;
* dataset attrs ``source``, ``source_url`` (redacted), ``source_version`` (collection id),
  ``stac_items`` (JSON list of unsigned item ids), ``items`` (their count), ``area``,
  ``sensor``, ``month``, ``native_resolution_m`` (the product's nominal pixel size).

Scenes of one solar day (UTC time shifted by the area centre's longitude / 15 h) are
mosaicked into one time step: scenes with less cloud go first and later scenes only fill
pixels still invalid; ``time`` is the first scene's acquisition time. A month without any
matching scene yields a store with ``time`` of length 0 and ``items: 0`` so a scheduled
refresh does not fail on cloudy months.

Physical conversion (data-sources.md §3):

* MODIS MOD11A1 ``LST_Day_1km``: DN × 0.02 K, valid 7500–65535, fill 0; ``QC_Day`` bits
  0–1 must be 00. The PC collection holds Terra (MOD) and Aqua (MYD): Terra only is kept.
* Landsat C2 L2 ``lwir11`` (ST_B10): K = DN × 0.00341802 + 149.0, fill 0; surface
  reflectance (``green``, ``red``, ``nir08``, ``swir16``) = DN × 0.0000275 − 0.2; ``qa_pixel``
  keeps bit 6 (clear) set, bits 0 (fill) and 1–4 (dilated cloud, cirrus, cloud, shadow)
  clear.
* Sentinel-2 L2A: reflectance = (DN + offset) / 10000, offset −1000 from processing
  baseline 04.00 on (``s2:processing_baseline``; local files: acquired on or after
  2022-01-25), 0 before or when ``earthsearch:boa_offset_applied`` is true; DN 0 is
  nodata; ``SCL`` classes in ``sentinel2.scl_keep`` are kept.

Settings: `eofm.config.TilesSettings` (the ``tiles`` section), which holds every default:
the STAC API and collections, Sentinel-2 bands and kept SCL classes, the resampling and the
GDAL options (a given ``gdal`` map is laid over the defaults key by key).

GDAL options: ``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR`` stops GDAL listing the "directory"
of every COG over HTTP (one request per open saved, and no 403 noise on signed URLs);
``GDAL_HTTP_MAX_RETRY``/``GDAL_HTTP_RETRY_DELAY`` let GDAL retry a 429/502/503/504 on a
single range request inside one read, while `with_retries` retries the whole read.
HTTP timeouts come from the `RetryPolicy`.

Routes, one module each (`stac`, `local`; what they share is in `eofm.data.tiles.common`).

Route ``stac``: ``pystac_client`` searches the month (retried as a whole); items are kept
unsigned and each asset href is signed just before GDAL opens it (``planetary_computer.sign``
when ``sign: planetary_computer``; injectable for tests). Signed hrefs are never stored,
logged or put in error messages (GDAL's own messages are scrubbed of query strings).

Route ``local``: GeoTIFF / JPEG2000 files from ``local.paths[sensor]`` globs, one file
per band, grouped into scenes by file name: the date is the first ``YYYYMMDDTHHMMSS``,
``YYYYMMDD`` (or ``YYYY-MM-DD``, or MODIS ``AYYYYDDD``) in the name, the band is the name's
last token (``..._ST_B10.TIF``/``lwir11``, ``..._SR_B3.TIF``/``green`` … ``_SR_B6``/``swir16``,
``..._QA_PIXEL.TIF``,
``T31UDQ_20220615T105631_B04_10m.jp2``, ``..._SCL_20m.jp2``, ``...LST_Day_1km.tif``,
``...QC_Day.tif``). A scene without its QA/SCL file is masked on nodata only (with a
warning). Files must be georeferenced (internally or by a ``.aux.xml``/world-file sidecar).
Multi-band files contribute band 1; of a Sentinel-2 band found at several resolutions
(``_10m``/``_20m``/``_60m``) the finest is read.
MODIS MOD11A1 HDF4-EOS granules as LP DAAC ships them (``MOD11A1.AYYYYDDD.hHHvVV.061.*.hdf``)
are read with ``pyhdf`` (`eofm.data.tiles.modis_hdf`): georeferenced from their
``StructMetadata.0``, whose tile and ``CoreMetadata.0`` day must agree with the name, their
scale, fill and range attributes checked against the conversion above; granules whose tile
misses the area are skipped, as a STAC search would.
Landsat files must be Collection 2 Level-2 surface temperature: the product ID in the name
(``L2SP``, collection ``02``) and a ``_MTL.txt``/``_MTL.json`` beside them, when present, must
say so; a Level-1 (``L1TP``/``L1GT``/``L1GS``), Collection 1 or ``L2SR`` product, or a bare
``B10`` that neither identifies, fails before anything is written (L1 DN is not L2 ST).
Nothing is left out silently: files matched but unusable (no known band or date, another
format, Aqua, a coarser copy of a band) are listed on the console, not only in the job log,
and a month with no usable file fails before any store is written (an empty month store
comes only from ``stac``, for a month with no scene).
``time`` is the acquisition time where the files say it: Landsat MTL ``DATE_ACQUIRED`` +
``SCENE_CENTER_TIME``; Sentinel-2 ``PRODUCT_START_TIME`` of the SAFE's ``MTD_MSIL2A.xml``
or the datatake time in the name (whose ``_N0400_`` baseline, or the MTD's, sets the
offset); MODIS the median ``Day_view_time`` (local solar time) over the area shifted by the
area centre's longitude, or Terra's nominal 10:30 overpass when the area has none. A file
that names only its day is stored at 00:00 UTC. ``input_checksums`` (JSON, file name →
sha256 of every file read, bands and metadata) goes to the store attributes and manifest.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from eofm.config import TilesSettings
from eofm.data.fetch import RetryPolicy
from eofm.data.store import write_store
from eofm.data.tiles import local, stac
from eofm.data.tiles.common import (
    LANDSAT_SR_BANDS,
    NATIVE_RESOLUTION_M,
    PLANETARY_COMPUTER,
    SENSORS,
    AreaGrid,
    Scene,
    SensorSpec,
    _assemble,
    _gdal_env,
    _group_solar_days,
    _install_scrubbers,
    area_grid,
    s2_offset,
    scrub,
    sensor_spec,
    tile_dataset,
)
from eofm.data.tiles.local import local_scenes
from eofm.data.tiles.stac import asset_key, search_scenes
from eofm.errors import TileError, TilesError

__all__ = [
    "LANDSAT_SR_BANDS",
    "NATIVE_RESOLUTION_M",
    "PLANETARY_COMPUTER",
    "SENSORS",
    "AreaGrid",
    "Scene",
    "SensorSpec",
    "TileError",
    "TilesError",
    "area_grid",
    "asset_key",
    "fetch_tiles_month",
    "local_scenes",
    "s2_offset",
    "scrub",
    "search_scenes",
    "sensor_spec",
    "tile_dataset",
]

log = logging.getLogger(__name__)


def fetch_tiles_month(
    area: str,
    sensor: str,
    month: str,
    out: str | os.PathLike,
    settings: TilesSettings,
    policy: RetryPolicy,
    *,
    signer: Callable[[str], str] | None = None,
) -> Path:
    """Write the tile store of (``area``, ``sensor``, ``month``) at ``out``; return its path.

    ``settings`` is the config's ``tiles`` section; ``signer`` overrides the configured URL
    signer (tests). Nothing is written unless every read succeeded.
    """
    _install_scrubbers()
    if sensor not in SENSORS:
        raise TileError(f"tiles: sensor {sensor!r} unknown; expected one of {SENSORS}")
    if area not in settings.areas:
        raise TileError(f"tiles: area {area!r} not in tiles.areas {sorted(settings.areas)}")
    area_settings = settings.areas[area]
    grid = area_grid(area_settings, area)
    spec = sensor_spec(sensor, settings)
    source_name = f"tiles {area}/{sensor}"
    gdal_env = _gdal_env(settings, policy)

    if settings.source == "stac":
        scenes, read, attrs = stac.prepare(
            sensor, month, area_settings, grid, settings, policy, gdal_env, source_name, signer
        )
    elif settings.source == "local":
        scenes, read, attrs = local.prepare(
            sensor, month, settings, grid, spec, gdal_env, source_name
        )
    else:
        raise TileError(
            f"tiles.source: {settings.source!r} has no fetch route; expected 'stac' or 'local'"
        )

    groups = _group_solar_days(scenes, grid.centre_lon)
    times, data, valid = _assemble(groups, sensor, spec, grid, read, settings, source_name)
    attrs.update(
        {
            "stac_items": json.dumps([s.id for s in scenes]),
            "items": len(scenes),
            "area": area,
            "sensor": sensor,
            "month": month,
            "area_bbox_lonlat": json.dumps([float(v) for v in area_settings.bbox]),
            "native_resolution_m": NATIVE_RESOLUTION_M[sensor],
        }
    )
    ds = tile_dataset(times, data, valid, spec, grid, attrs)
    log.info(
        "%s %s: %d scene(s) in %d day(s) → %s", source_name, month, len(scenes), len(times), out
    )
    return write_store(ds, out, validate=False)
