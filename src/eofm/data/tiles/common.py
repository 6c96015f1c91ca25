"""What the tile routes share: config and area grids, sensor specs and conversions, scenes
and solar days, reading a band onto the grid, and assembling the tile store."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
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

from eofm.config import Area, TilesSettings
from eofm.data.fetch import RetryPolicy
from eofm.errors import ConfigError, EofmError, TileError
from eofm.logs import to_console

log = logging.getLogger(__name__)

SENSORS = ("modis", "landsat", "sentinel2")
PLANETARY_COMPUTER = "https://planetarycomputer.microsoft.com/api/stac/v1"

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
_LANDSAT_SR_SCALE, _LANDSAT_SR_OFFSET = 0.0000275, -0.2
#: Landsat 8/9 Collection 2 Level-2 surface-reflectance bands stored beside ST_B10 (the STAC
#: asset names; USGS files ``_SR_B3`` … ``_SR_B6``): WGAST's NDVI, NDWI and NDBI need them
LANDSAT_SR_BANDS = ("green", "red", "nir08", "swir16")
#: nominal ground resolution of each sensor's product, in metres (a dataset attribute)
NATIVE_RESOLUTION_M = {"modis": 926.625, "landsat": 30.0, "sentinel2": 10.0}
_LANDSAT_BAD_BITS = 0b11111  # bit 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 shadow
_LANDSAT_CLEAR_BIT = 1 << 6


# --------------------------------------------------------------------------- console


def warn_console(message: str) -> None:
    """Log ``message`` as a warning and print it on the console as well.

    Inside a Snakemake job ``sys.stderr`` and logging go to the job's log (`eofm.logs.job_log`),
    which nobody opens when the job succeeds; data left out must show where the run is watched.
    """
    log.warning("%s", message)
    to_console(f"warning: {message}")


# --------------------------------------------------------------------------- config, grid


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


def area_grid(area: Area, name: str = "area") -> AreaGrid:
    """The grid of an area: its lon/lat bbox projected and snapped outward to the resolution."""
    try:
        west, south, east, north = (float(v) for v in area.bbox)
        crs = CRS.from_user_input(area.crs)
        res = float(area.resolution)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"tiles.areas.{name}: expected bbox [W, S, E, N] (lon/lat), crs and resolution; "
            f"got {area!r} ({err})"
        ) from err
    if not (west < east and south < north) or res <= 0:
        raise ConfigError(
            f"tiles.areas.{name}: bbox {area.bbox} or resolution {res} invalid; expected "
            "W < E, S < N and a resolution > 0"
        )
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
    #: Landsat surface-reflectance bands, stored as ``reflectance`` over dim ``sr_band``
    reflectance: tuple[str, ...] = ()

    @property
    def all_bands(self) -> tuple[str, ...]:
        """Every data band read from a scene: ``bands`` then ``reflectance``."""
        return (*self.bands, *self.reflectance)


def sensor_spec(sensor: str, settings: TilesSettings) -> SensorSpec:
    """The spec of ``sensor`` (Sentinel-2's bands come from ``tiles.sentinel2.bands``)."""
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
            reflectance=LANDSAT_SR_BANDS,
        )
    if sensor == "sentinel2":
        return SensorSpec(
            "reflectance",
            tuple(str(b).upper() for b in settings.sentinel2.bands),
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
    sensor: str,
    scene: Scene,
    data: np.ndarray,
    mask: np.ndarray | None,
    settings: TilesSettings,
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
        values[1:] = dn[1:] * _LANDSAT_SR_SCALE + _LANDSAT_SR_OFFSET  # SR bands after ST
    else:
        if mask is not None:
            valid &= np.isin(mask, [int(c) for c in settings.sentinel2.scl_keep])
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


def _gdal_env(settings: TilesSettings, policy: RetryPolicy) -> dict[str, str]:
    env = {
        "GDAL_HTTP_TIMEOUT": str(int(max(1, policy.read_timeout))),
        "GDAL_HTTP_CONNECTTIMEOUT": str(int(max(1, policy.connect_timeout))),
        "CPL_CURL_VERBOSE": "NO",
        "CPL_DEBUG": "OFF",
    }
    env.update({str(k): str(v) for k, v in settings.gdal.items()})
    return env


# --------------------------------------------------------------------------- assembling


def _resampling(name: str) -> Resampling:
    """rasterio's resampling of ``tiles.resampling`` (the schema takes any string)."""
    try:
        return Resampling[name]
    except KeyError:
        raise ConfigError(
            f"tiles.resampling: {name!r} unknown; expected one of rasterio's "
            f"{', '.join(r.name for r in Resampling)}"
        ) from None


def _empty(spec: SensorSpec, grid: AreaGrid) -> tuple[np.ndarray, np.ndarray]:
    shape = (len(spec.all_bands), grid.height, grid.width)
    return np.full(shape, np.nan, np.float32), np.zeros(shape[1:], bool)


def _assemble(
    groups: list[list[Scene]],
    sensor: str,
    spec: SensorSpec,
    grid: AreaGrid,
    read: Callable[[Scene, str, Resampling], np.ndarray],
    settings: TilesSettings,
    source: str,
) -> tuple[list[datetime], np.ndarray, np.ndarray]:
    """Read and mosaic every solar-day group; (times, data[t,b,y,x], valid[t,y,x])."""
    data_resampling = _resampling(settings.resampling)
    times: list[datetime] = []
    stacks, masks = [], []
    for group in tqdm(groups, desc=source, unit="day", leave=False):
        day, day_valid = _empty(spec, grid)
        for scene in group:
            raw = np.stack([read(scene, band, data_resampling) for band in spec.all_bands])
            mask = None
            if spec.mask in scene.assets:
                mask = read(scene, spec.mask, Resampling.nearest)
            else:
                warn_console(f"{source}: {scene.id} has no {spec.mask}; masking nodata only")
            values, valid = _convert(sensor, scene, raw, mask, settings)
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
    n = len(spec.bands)
    extra: dict[str, Any] = {}
    extra_coords: dict[str, Any] = {}
    if spec.reflectance:
        extra["reflectance"] = (
            ("time", "sr_band", "y", "x"),
            data[:, n:].astype(np.float32),
            {
                "units": "1",
                "standard_name": "surface_bidirectional_reflectance",
                "long_name": "surface reflectance, Landsat Collection 2 Level-2 SR "
                "(DN × 0.0000275 − 0.2), same QA mask as lst",
            },
        )
        extra_coords["sr_band"] = (
            "sr_band",
            np.array(spec.reflectance, dtype=object),
            {"long_name": "source band name (STAC asset)"},
        )
    ds = xr.Dataset(
        {
            spec.variable: (
                ("time", "band", "y", "x"),
                data[:, :n].astype(np.float32),
                dict(spec.attrs),
            ),
            **extra,
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
            **extra_coords,
            "y": ("y", grid.y),
            "x": ("x", grid.x),
        },
        attrs=attrs,
    )
    ds = ds.rio.write_crs(grid.crs).rio.write_transform(grid.transform)
    ds = ds.rio.write_coordinate_system()
    for name in (spec.variable, *extra, "valid"):
        ds[name].attrs["grid_mapping"] = "spatial_ref"
    return ds
