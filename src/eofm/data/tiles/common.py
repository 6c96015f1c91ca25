"""Satellite tiles (MODIS LST, Landsat 8/9 surface temperature, Sentinel-2 L2A) → tile stores.

WGAST fuses daily 1 km MODIS LST, 30 m Landsat surface temperature and 10 m Sentinel-2
reflectance, so every sensor of an *area* is resampled onto one shared grid (the area's
CRS, bounds and resolution): the three stores of an area align pixel for pixel.

One store per (area, sensor, month), written atomically by `eofm.data.store.write_store`:

* data variable ``lst`` (MODIS, Landsat; K, float32) or ``reflectance`` (Sentinel-2; 1),
  dims ``(time, band, y, x)`` with a ``band`` coordinate of the source band names;
* ``valid`` (uint8, dims ``(time, y, x)``): 1 where the pixel is clear and has data in
  every band, 0 where it is cloud, shadow, bad QA or nodata; data are NaN where 0;
* ``spatial_ref`` coordinate (``crs_wkt``, ``GeoTransform``) and ``grid_mapping`` on the
  variables, the rioxarray/CF way, so ``ds.rio.crs`` and ``ds.rio.transform()`` work;
* dataset attrs ``source``, ``source_url`` (redacted), ``source_version`` (collection id),
  ``stac_items`` (JSON list of unsigned item ids), ``items`` (their count), ``area``,
  ``sensor``, ``month``.

Scenes of one solar day (UTC time shifted by the area centre's longitude / 15 h) are
mosaicked into one time step: scenes with less cloud go first and later scenes only fill
pixels still invalid; ``time`` is the first scene's acquisition time. A month without any
matching scene yields a store with ``time`` of length 0 and ``items: 0`` so a scheduled
refresh does not fail on cloudy months.

Physical conversion (data-sources.md §3):

* MODIS MOD11A1 ``LST_Day_1km``: DN × 0.02 K, valid 7500–65535, fill 0; ``QC_Day`` bits
  0–1 must be 00. The PC collection holds Terra (MOD) and Aqua (MYD): Terra only is kept.
* Landsat C2 L2 ``lwir11`` (ST_B10): K = DN × 0.00341802 + 149.0, fill 0; ``qa_pixel``
  keeps bit 6 (clear) set, bits 0 (fill) and 1–4 (dilated cloud, cirrus, cloud, shadow)
  clear.
* Sentinel-2 L2A: reflectance = (DN + offset) / 10000, offset −1000 from processing
  baseline 04.00 on (``s2:processing_baseline``; local files: acquired on or after
  2022-01-25), 0 before or when ``earthsearch:boa_offset_applied`` is true; DN 0 is
  nodata; ``SCL`` classes in ``sentinel2.scl_keep`` are kept.

Config (the ``tiles`` section; `DEFAULTS` holds every default)::

    source: stac                      # or "local"
    areas: {<name>: {bbox: [W, S, E, N] (lon/lat), crs: "EPSG:32631", resolution: 10}}
    resampling: nearest               # rasterio resampling for data bands (masks: nearest)
    stac:
      api: https://planetarycomputer.microsoft.com/api/stac/v1
      sign: planetary_computer        # or "none"
      collections: {modis: modis-11A1-061, landsat: landsat-c2-l2, sentinel2: sentinel-2-l2a}
      max_cloud: 80                   # eo:cloud_cover < max_cloud (landsat, sentinel2)
      limit: 100                      # items per search page
    local:
      paths: {landsat: [globs], sentinel2: [globs], modis: [globs]}
    sentinel2: {bands: [B02, B03, B04, B08, B11, B12], scl_keep: [4, 5, 6]}  # add 7 if wanted
    gdal: {GDAL_HTTP_MAX_RETRY: "3", GDAL_HTTP_RETRY_DELAY: "1",
           GDAL_DISABLE_READDIR_ON_OPEN: EMPTY_DIR}

GDAL options: ``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR`` stops GDAL listing the "directory"
of every COG over HTTP (one request per open saved, and no 403 noise on signed URLs);
``GDAL_HTTP_MAX_RETRY``/``GDAL_HTTP_RETRY_DELAY`` let GDAL retry a 429/502/503/504 on a
single range request inside one read, while `with_retries` retries the whole read.
HTTP timeouts come from the `RetryPolicy`.

Route ``stac``: ``pystac_client`` searches the month (retried as a whole); items are kept
unsigned and each asset href is signed just before GDAL opens it (``planetary_computer.sign``
when ``sign: planetary_computer``; injectable for tests). Signed hrefs are never stored,
logged or put in error messages (GDAL's own messages are scrubbed of query strings).

Route ``local``: GeoTIFF / JPEG2000 files from ``local.paths[sensor]`` globs, one file
per band, grouped into scenes by file name: the date is the first ``YYYYMMDD`` (or
``YYYY-MM-DD``, or MODIS ``AYYYYDDD``) in the name, the band is the name's last token
(``..._ST_B10.TIF``/``lwir11``, ``..._QA_PIXEL.TIF``, ``T31UDQ_20220615T105631_B04_10m.jp2``,
``..._SCL_20m.jp2``, ``...LST_Day_1km.tif``, ``...QC_Day.tif``). A scene without its QA/SCL
file is masked on nodata only (with a warning). Files must be georeferenced (internally or
by a ``.aux.xml``/world-file sidecar). Multi-band files contribute band 1.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import functools
import glob
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import xarray as xr
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from tqdm.auto import tqdm

from eofm.data.fetch import FetchError, RetryPolicy, is_transient, redact, with_retries
from eofm.data.store import write_store
from eofm.errors import EofmError, TileError

log = logging.getLogger(__name__)

SENSORS = ("modis", "landsat", "sentinel2")
PLANETARY_COMPUTER = "https://planetarycomputer.microsoft.com/api/stac/v1"

DEFAULTS: dict[str, Any] = {
    "source": "stac",
    "areas": {},
    "resampling": "nearest",
    "stac": {
        "api": PLANETARY_COMPUTER,
        "sign": "planetary_computer",
        "collections": {
            "modis": "modis-11A1-061",
            "landsat": "landsat-c2-l2",
            "sentinel2": "sentinel-2-l2a",
        },
        "max_cloud": 80,
        "limit": 100,
    },
    "local": {"paths": {"modis": [], "landsat": [], "sentinel2": []}},
    "sentinel2": {"bands": ["B02", "B03", "B04", "B08", "B11", "B12"], "scl_keep": [4, 5, 6]},
    "gdal": {
        "GDAL_HTTP_MAX_RETRY": "3",
        "GDAL_HTTP_RETRY_DELAY": "1",
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    },
}

# Planetary Computer asset names → Earth Search's lowercase names.
_EARTH_SEARCH_ASSETS = {
    "B01": "coastal",
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B05": "rededge1",
    "B06": "rededge2",
    "B07": "rededge3",
    "B08": "nir",
    "B8A": "nir08",
    "B09": "nir09",
    "B11": "swir16",
    "B12": "swir22",
    "SCL": "scl",
}
_S2_BASELINE_04_DATE = date(2022, 1, 25)
_MODIS_SCALE, _MODIS_MIN_DN = 0.02, 7500
_LANDSAT_SCALE, _LANDSAT_OFFSET = 0.00341802, 149.0
_LANDSAT_BAD_BITS = 0b11111  # bit 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 shadow
_LANDSAT_CLEAR_BIT = 1 << 6


# --------------------------------------------------------------------------- config, grid


def _merged(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` laid over `DEFAULTS` (dicts merged recursively, other values replaced)."""

    def merge(base: Any, over: Any) -> Any:
        if isinstance(base, dict) and isinstance(over, dict):
            out = dict(base)
            for key, value in over.items():
                out[key] = merge(base.get(key), value) if key in base else value
            return out
        return copy.deepcopy(over)

    return merge(copy.deepcopy(DEFAULTS), cfg or {})


@dataclass(frozen=True)
class AreaGrid:
    """The target grid of an area: every sensor is resampled onto it."""

    crs: CRS
    transform: Affine
    width: int
    height: int
    centre_lon: float

    @property
    def x(self) -> np.ndarray:
        return self.transform.c + self.transform.a * (np.arange(self.width) + 0.5)

    @property
    def y(self) -> np.ndarray:
        return self.transform.f + self.transform.e * (np.arange(self.height) + 0.5)


def area_grid(area_cfg: dict[str, Any], name: str = "area") -> AreaGrid:
    """The grid of an area: its lon/lat bbox projected and snapped outward to the resolution."""
    try:
        west, south, east, north = (float(v) for v in area_cfg["bbox"])
        crs = CRS.from_user_input(area_cfg["crs"])
        res = float(area_cfg["resolution"])
    except (KeyError, TypeError, ValueError) as err:
        raise TileError(
            f"tiles area {name!r}: expected bbox [W, S, E, N] (lon/lat), crs and resolution; "
            f"got {area_cfg!r} ({err})"
        ) from err
    if not (west < east and south < north) or res <= 0:
        raise TileError(f"tiles area {name!r}: bbox {area_cfg['bbox']} or resolution {res} invalid")
    left, bottom, right, top = transform_bounds("EPSG:4326", crs, west, south, east, north)
    left, bottom = np.floor(left / res) * res, np.floor(bottom / res) * res
    right, top = np.ceil(right / res) * res, np.ceil(top / res) * res
    width, height = round((right - left) / res), round((top - bottom) / res)
    return AreaGrid(crs, Affine(res, 0, left, 0, -res, top), width, height, (west + east) / 2)


def _month_range(month: str) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) of ``YYYY-MM`` in UTC."""
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError as err:
        raise TileError(f"tiles: month {month!r} is not YYYY-MM") from err
    nxt = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return start, nxt


# --------------------------------------------------------------------------- sensors


@dataclass(frozen=True)
class SensorSpec:
    """Which assets a sensor needs and how its DNs become physical values."""

    variable: str
    bands: tuple[str, ...]  # canonical (Planetary Computer) asset names of data bands
    mask: str  # canonical asset name of the QA / SCL band
    attrs: dict[str, str]


def sensor_spec(sensor: str, cfg: dict[str, Any]) -> SensorSpec:
    """The spec of ``sensor`` under the merged config."""
    if sensor == "modis":
        return SensorSpec(
            "lst",
            ("LST_Day_1km",),
            "QC_Day",
            {
                "units": "K",
                "standard_name": "surface_temperature",
                "long_name": "land surface temperature, MODIS Terra MOD11A1 daytime",
            },
        )
    if sensor == "landsat":
        return SensorSpec(
            "lst",
            ("lwir11",),
            "qa_pixel",
            {
                "units": "K",
                "standard_name": "surface_temperature",
                "long_name": "surface temperature, Landsat Collection 2 Level-2 ST_B10",
            },
        )
    if sensor == "sentinel2":
        return SensorSpec(
            "reflectance",
            tuple(str(b).upper() for b in cfg["sentinel2"]["bands"]),
            "SCL",
            {
                "units": "1",
                "standard_name": "surface_bidirectional_reflectance",
                "long_name": "surface reflectance, Sentinel-2 Level-2A (BOA)",
            },
        )
    raise TileError(f"tiles: sensor {sensor!r} unknown; expected one of {SENSORS}")


def s2_offset(baseline: str | None, acquired: datetime | None, applied: bool = False) -> int:
    """BOA_ADD_OFFSET of a Sentinel-2 L2A scene: −1000 from processing baseline 04.00 on."""
    if applied:
        return 0
    if baseline:
        try:
            major, minor = (int(p) for p in str(baseline).split(".")[:2])
            return -1000 if (major, minor) >= (4, 0) else 0
        except ValueError:
            log.warning("Sentinel-2 processing baseline %r unreadable; using the date", baseline)
    if acquired is not None and acquired.date() >= _S2_BASELINE_04_DATE:
        return -1000
    return 0


def _convert(
    sensor: str, scene: Scene, data: np.ndarray, mask: np.ndarray | None, cfg: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Physical values (band, y, x) float32 with NaN where invalid, and the valid mask."""
    dn = data.astype(np.float64)
    valid = np.all(data != 0, axis=0)
    if sensor == "modis":
        valid &= np.all(data >= _MODIS_MIN_DN, axis=0)
        if mask is not None:
            valid &= (mask.astype(np.int64) & 0b11) == 0
        values = dn * _MODIS_SCALE
    elif sensor == "landsat":
        if mask is not None:
            qa = mask.astype(np.int64)
            valid &= ((qa & _LANDSAT_BAD_BITS) == 0) & ((qa & _LANDSAT_CLEAR_BIT) != 0)
        values = dn * _LANDSAT_SCALE + _LANDSAT_OFFSET
    else:
        if mask is not None:
            valid &= np.isin(mask, [int(c) for c in cfg["sentinel2"]["scl_keep"]])
        offset = s2_offset(
            scene.properties.get("s2:processing_baseline"),
            scene.datetime,
            bool(scene.properties.get("earthsearch:boa_offset_applied", False)),
        )
        values = (dn + offset) / 10000.0
    out = values.astype(np.float32)
    out[:, ~valid] = np.nan
    return out, valid


# --------------------------------------------------------------------------- scenes


@dataclass
class Scene:
    """One acquisition: unsigned hrefs (or local paths) of its assets, by canonical name."""

    id: str
    datetime: datetime
    assets: dict[str, str]
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def cloud(self) -> float:
        value = self.properties.get("eo:cloud_cover")
        return float(value) if value is not None else 0.0


def _solar_day(when: datetime, lon: float) -> date:
    return (when + timedelta(hours=lon / 15.0)).date()


def _group_solar_days(scenes: Iterable[Scene], lon: float) -> list[list[Scene]]:
    """Scenes by solar day (in date order), least cloudy first within a day."""
    days: dict[date, list[Scene]] = {}
    for scene in scenes:
        days.setdefault(_solar_day(scene.datetime, lon), []).append(scene)
    return [sorted(days[d], key=lambda s: (s.cloud, s.datetime, s.id)) for d in sorted(days)]


# --------------------------------------------------------------------------- reading

_URL_QUERY = re.compile(r"((?:https?|/vsicurl/https?)://[^\s?'\"]*)\?[^\s'\"]*")


def scrub(text: str) -> str:
    """``text`` with the query string of every URL in it replaced (signatures live there)."""
    return _URL_QUERY.sub(r"\1?<redacted>", str(text))


class _ScrubFilter(logging.Filter):
    """Scrub URL query strings from records of GDAL/rasterio/pystac loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging
            return True
        if "?" in message:
            record.msg, record.args = scrub(message), None
        return True


_SCRUBBED_PREFIXES = ("rasterio", "pystac_client", "pystac", "urllib3", "requests")


def _install_scrubbers() -> None:
    """Put the scrub filter on every GDAL/rasterio/HTTP-client logger that exists now.

    Logger filters do not apply to records propagated from child loggers, so each one
    (``rasterio._base`` logs every opened dataset's name, signature included) gets its own.
    Called again before each fetch to catch loggers of modules imported since.
    """
    names = [n for n in logging.root.manager.loggerDict if n.startswith(_SCRUBBED_PREFIXES)]
    for name in (*_SCRUBBED_PREFIXES, *names):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _ScrubFilter) for f in logger.filters):
            logger.addFilter(_ScrubFilter())


class _ReadError(EofmError, RuntimeError):
    """A raster read failed; the message is already scrubbed of signatures."""

    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


_HTTP_CODE = re.compile(r"HTTP (?:response )?(?:error )?code:?\s*(\d{3})", re.IGNORECASE)
_NETWORK_WORDS = (
    "reset",
    "timed out",
    "timeout",
    "recv failure",
    "empty reply",
    "couldn't connect",
    "could not connect",
    "connection refused",
    "connection aborted",
    "transfer closed",
    "send failure",
    "ssl",
    "curl error",
)


def _gdal_transient(message: str) -> bool:
    """Whether a GDAL read error is worth retrying (5xx, 429, dropped connections)."""
    codes = [int(c) for c in _HTTP_CODE.findall(message)]
    if codes:
        return any(c >= 500 or c in (408, 429) for c in codes)
    lower = message.lower()
    return any(word in lower for word in _NETWORK_WORDS)


def _transient(err: BaseException) -> bool:
    if isinstance(err, _ReadError):
        return err.transient
    if type(err).__name__ == "APIError":  # pystac_client: status_code only for HTTP answers
        code = getattr(err, "status_code", None)
        return code is None or code >= 500 or code in (408, 429)
    return is_transient(err)


def _read_on_grid(path: str, grid: AreaGrid, resampling: Resampling, display: str) -> np.ndarray:
    """Band 1 of ``path`` warped onto ``grid`` (fill 0 outside the source), source dtype.

    Any error comes back as a `_ReadError` whose message names ``display`` (the unsigned,
    redacted location) and never ``path`` (which may carry a signature).
    """
    message = ""
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise TileError(
                    f"{display}: raster has no CRS; expected a georeferenced GeoTIFF/JPEG2000 "
                    "(or a .aux.xml / world-file sidecar)"
                )
            nodata = src.nodata if src.nodata is not None else 0
            with WarpedVRT(
                src,
                crs=grid.crs,
                transform=grid.transform,
                width=grid.width,
                height=grid.height,
                resampling=resampling,
                src_nodata=nodata,
                nodata=0,
            ) as vrt:
                return vrt.read(1)
    except TileError:
        raise
    except Exception as err:  # rasterio/GDAL: message may hold the signed URL
        message = scrub(str(err).replace(path, display))
        kind = type(err).__name__
    raise _ReadError(f"{kind}: {message}", _gdal_transient(message))


@functools.cache
def _libgdal() -> ctypes.CDLL | None:
    """The GDAL library rasterio runs on (wheel-bundled or system), for cache control."""
    bundled = Path(rasterio.__file__).parent.with_name("rasterio.libs")
    candidates = [str(p) for p in sorted(bundled.glob("libgdal*"))]
    candidates.append(ctypes.util.find_library("gdal") or "")
    for candidate in filter(None, candidates):
        try:
            lib = ctypes.CDLL(candidate)
            lib.VSICurlPartialClearCache.argtypes = [ctypes.c_char_p]
            return lib
        except (OSError, AttributeError):
            continue
    return None


def _forget_failed(location: str) -> None:
    """Drop GDAL's /vsicurl/ cache for ``location``: GDAL remembers a failed URL, so a
    retry would otherwise fail at once without asking the server again."""
    lib = _libgdal()
    if lib is not None and location.startswith("/vsicurl/"):
        lib.VSICurlPartialClearCache(location.encode())


def _gdal_env(cfg: dict[str, Any], policy: RetryPolicy) -> dict[str, str]:
    env = {
        "GDAL_HTTP_TIMEOUT": str(int(max(1, policy.read_timeout))),
        "GDAL_HTTP_CONNECTTIMEOUT": str(int(max(1, policy.connect_timeout))),
        "CPL_CURL_VERBOSE": "NO",
        "CPL_DEBUG": "OFF",
    }
    env.update({str(k): str(v) for k, v in (cfg.get("gdal") or {}).items()})
    return env


# --------------------------------------------------------------------------- stac route


def asset_key(api: str, name: str) -> str:
    """The API's asset name for a canonical (Planetary Computer) one."""
    if "earth-search" in api:
        return _EARTH_SEARCH_ASSETS.get(name, name)
    return name


def _parse_datetime(value: str) -> datetime:
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _is_terra(item_id: str, properties: dict[str, Any]) -> bool:
    platform = str(properties.get("platform", "")).lower()
    if platform:
        return platform == "terra"
    return item_id.upper().startswith("MOD")


def search_scenes(
    sensor: str,
    grid_bbox: Sequence[float],
    month: str,
    cfg: dict[str, Any],
    policy: RetryPolicy,
    source: str,
) -> tuple[list[Scene], str]:
    """Unsigned scenes of ``sensor`` over the lon/lat bbox in ``month``; also the collection."""
    import pystac_client

    stac = cfg["stac"]
    api = str(stac["api"])
    collection = str(stac["collections"][sensor])
    start, stop = _month_range(month)
    period = f"{month} ({collection})"
    dt_range = f"{start:%Y-%m-%dT%H:%M:%SZ}/{(stop - timedelta(seconds=1)):%Y-%m-%dT%H:%M:%SZ}"
    spec = sensor_spec(sensor, cfg)
    max_cloud = stac.get("max_cloud")

    def run_search() -> list[dict[str, Any]]:
        client = pystac_client.Client.open(api, timeout=policy.timeout)
        kwargs: dict[str, Any] = {
            "collections": [collection],
            "bbox": list(grid_bbox),
            "datetime": dt_range,
            "limit": int(stac.get("limit", 100)),
        }
        if sensor != "modis" and max_cloud is not None and client.conforms_to("QUERY"):
            kwargs["query"] = {"eo:cloud_cover": {"lt": float(max_cloud)}}
        search = client.search(**kwargs)
        return [item for page in search.pages_as_dicts() for item in page.get("features", [])]

    features = with_retries(
        run_search,
        source=source,
        url=f"{api.rstrip('/')}/search",
        period=period,
        policy=policy,
        transient=_transient,
    )
    scenes: list[Scene] = []
    needed = (*spec.bands, spec.mask)
    for item in features:
        props = dict(item.get("properties") or {})
        item_id = str(item.get("id"))
        if sensor == "modis" and not _is_terra(item_id, props):
            log.info("%s: skipping %s (not Terra)", source, item_id)
            continue
        cloud = props.get("eo:cloud_cover")
        if max_cloud is not None and cloud is not None and float(cloud) >= float(max_cloud):
            continue
        assets = item.get("assets") or {}
        hrefs: dict[str, str] = {}
        for name in needed:
            entry = assets.get(asset_key(api, name))
            if entry and entry.get("href"):
                hrefs[name] = str(entry["href"])
        missing = [b for b in spec.bands if b not in hrefs]
        if missing:
            raise FetchError(
                source,
                api,
                period,
                f"item {item_id} lacks asset(s) {[asset_key(api, b) for b in missing]}; "
                f"expected {[asset_key(api, b) for b in needed]}",
            )
        if "datetime" not in props or props["datetime"] is None:
            props["datetime"] = props.get("start_datetime")
        scenes.append(Scene(item_id, _parse_datetime(props["datetime"]), hrefs, props))
    scenes.sort(key=lambda s: (s.datetime, s.id))
    return scenes, collection


def _signer_for(cfg: dict[str, Any]) -> Callable[[str], str]:
    mode = str(cfg["stac"].get("sign", "none")).lower()
    if mode in ("none", "", "false"):
        return lambda href: href
    if mode == "planetary_computer":
        import planetary_computer

        return lambda href: str(planetary_computer.sign(href))
    raise TileError(f"tiles.stac.sign: {mode!r} unknown; expected 'planetary_computer' or 'none'")


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


def local_scenes(sensor: str, month: str, cfg: dict[str, Any]) -> list[Scene]:
    """Scenes of ``sensor`` in ``month`` from the configured globs (one file per band)."""
    patterns = (cfg["local"].get("paths") or {}).get(sensor) or []
    if isinstance(patterns, str):
        patterns = [patterns]
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


# --------------------------------------------------------------------------- assembling


def _empty(spec: SensorSpec, grid: AreaGrid) -> tuple[np.ndarray, np.ndarray]:
    shape = (len(spec.bands), grid.height, grid.width)
    return np.full(shape, np.nan, np.float32), np.zeros(shape[1:], bool)


def _assemble(
    groups: list[list[Scene]],
    sensor: str,
    spec: SensorSpec,
    grid: AreaGrid,
    read: Callable[[Scene, str, Resampling], np.ndarray],
    cfg: dict[str, Any],
    source: str,
) -> tuple[list[datetime], np.ndarray, np.ndarray]:
    """Read and mosaic every solar-day group; (times, data[t,b,y,x], valid[t,y,x])."""
    data_resampling = Resampling[str(cfg.get("resampling", "nearest"))]
    times: list[datetime] = []
    stacks, masks = [], []
    for group in tqdm(groups, desc=source, unit="day", leave=False):
        day, day_valid = _empty(spec, grid)
        for scene in group:
            raw = np.stack([read(scene, band, data_resampling) for band in spec.bands])
            mask = None
            if spec.mask in scene.assets:
                mask = read(scene, spec.mask, Resampling.nearest)
            else:
                log.warning("%s: %s has no %s; masking nodata only", source, scene.id, spec.mask)
            values, valid = _convert(sensor, scene, raw, mask, cfg)
            fill = valid & ~day_valid
            day[:, fill] = values[:, fill]
            day_valid |= fill
        times.append(group[0].datetime)
        stacks.append(day)
        masks.append(day_valid)
    if not stacks:
        data, valid = _empty(spec, grid)
        return [], data[None][:0], valid[None][:0]
    return times, np.stack(stacks), np.stack(masks)


def tile_dataset(
    times: list[datetime],
    data: np.ndarray,
    valid: np.ndarray,
    spec: SensorSpec,
    grid: AreaGrid,
    attrs: dict[str, Any],
) -> xr.Dataset:
    """The tile-store Dataset with CF attrs and the rioxarray CRS/transform encoding."""
    import rioxarray  # noqa: F401  (registers the .rio accessor)

    time = np.array([np.datetime64(t.replace(tzinfo=None), "ns") for t in times], "datetime64[ns]")
    ds = xr.Dataset(
        {
            spec.variable: (("time", "band", "y", "x"), data.astype(np.float32), dict(spec.attrs)),
            "valid": (
                ("time", "y", "x"),
                valid.astype(np.uint8),
                {
                    "long_name": "pixel is clear and has data (cloud/shadow/QA/nodata mask)",
                    "flag_values": np.array([0, 1], np.uint8),
                    "flag_meanings": "masked valid",
                },
            ),
        },
        coords={
            "time": ("time", time, {"long_name": "acquisition time (UTC), one per solar day"}),
            "band": ("band", np.array(spec.bands, dtype=object), {"long_name": "source band name"}),
            "y": ("y", grid.y),
            "x": ("x", grid.x),
        },
        attrs=attrs,
    )
    ds = ds.rio.write_crs(grid.crs).rio.write_transform(grid.transform)
    ds = ds.rio.write_coordinate_system()
    for name in (spec.variable, "valid"):
        ds[name].attrs["grid_mapping"] = "spatial_ref"
    return ds


def fetch_tiles_month(
    area: str,
    sensor: str,
    month: str,
    out: str | os.PathLike,
    cfg: dict,
    policy: RetryPolicy,
    *,
    signer: Callable[[str], str] | None = None,
) -> Path:
    """Write the tile store of (``area``, ``sensor``, ``month``) at ``out``; return its path.

    ``cfg`` is the config's ``tiles`` section; ``signer`` overrides the configured URL
    signer (tests). Nothing is written unless every read succeeded.
    """
    _install_scrubbers()
    cfg = _merged(cfg)
    if sensor not in SENSORS:
        raise TileError(f"tiles: sensor {sensor!r} unknown; expected one of {SENSORS}")
    if area not in (cfg.get("areas") or {}):
        raise TileError(f"tiles: area {area!r} not in tiles.areas {sorted(cfg.get('areas') or {})}")
    area_cfg = cfg["areas"][area]
    grid = area_grid(area_cfg, area)
    spec = sensor_spec(sensor, cfg)
    source_name = f"tiles {area}/{sensor}"
    route = str(cfg.get("source", "stac"))
    gdal_env = _gdal_env(cfg, policy)

    if route == "stac":
        api = str(cfg["stac"]["api"])
        scenes, collection = search_scenes(
            sensor, area_cfg["bbox"], month, cfg, policy, source_name
        )
        sign = signer or _signer_for(cfg)

        def read(scene: Scene, band: str, resampling: Resampling) -> np.ndarray:
            href = scene.assets[band]
            shown = redact(href)

            def attempt() -> np.ndarray:
                signed = sign(href)  # at read time only; never stored or logged
                location = f"/vsicurl/{signed}" if "://" in signed else signed
                try:
                    with rasterio.Env(**gdal_env):
                        return _read_on_grid(location, grid, resampling, shown)
                except _ReadError:
                    _forget_failed(location)
                    raise

            return with_retries(
                attempt,
                source=source_name,
                url=href,
                period=f"{month} (item {scene.id}, asset {asset_key(api, band)})",
                policy=policy,
                transient=_transient,
            )

        attrs = {
            "source": f"STAC {collection}",
            "source_url": f"{redact(api).rstrip('/')}/collections/{collection}",
            "source_version": collection,
        }
    elif route == "local":
        scenes = local_scenes(sensor, month, cfg)

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
    else:
        raise TileError(f"tiles.source: {route!r} unknown; expected 'stac' or 'local'")

    groups = _group_solar_days(scenes, grid.centre_lon)
    times, data, valid = _assemble(groups, sensor, spec, grid, read, cfg, source_name)
    attrs.update(
        {
            "stac_items": json.dumps([s.id for s in scenes]),
            "items": len(scenes),
            "area": area,
            "sensor": sensor,
            "month": month,
            "area_bbox_lonlat": json.dumps([float(v) for v in area_cfg["bbox"]]),
        }
    )
    ds = tile_dataset(times, data, valid, spec, grid, attrs)
    log.info(
        "%s %s: %d scene(s) in %d day(s) → %s", source_name, month, len(scenes), len(times), out
    )
    return write_store(ds, out, validate=False)
