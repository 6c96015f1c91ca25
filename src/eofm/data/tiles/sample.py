"""Tile route ``sample``: an offline generator of an area's MODIS, Landsat and Sentinel-2
stores, in exactly the schema of the ``stac``/``local`` routes, from a hidden 10 m truth.

WGAST must be trainable and testable without Earth Engine or a STAC API, and its skill must
be measurable against a truth no real archive has (daily 10 m LST). So the generator first
draws a *truth* on the area grid, then observes it with each sensor the way the real
products sample the ground:

* **Land cover** (static, from the seed): water (a meandering river and low-lying ponds),
  vegetation, urban and bare soil, as thresholded smooth random fields, with emissivities
  (0.99, 0.985, 0.95, 0.94) and a thermal response to sunshine (1, 5, 14, 11 K at full
  sun: urban and bare soil heat most, water least), modulated ±15 % by a smooth
  "moisture" field, plus a fixed 0.3 K pixel texture.
* **Temperature signal**: air temperature = 285 K + 10 K seasonal cycle (peak late July) +
  a day-to-day "weather" signal (four sinusoids of 3.7–18 days, random phases) + a daily
  mesoscale anomaly (three fixed smooth spatial modes with daily weights, ±0.8 K); land
  LST = air + response × insolation (seasonal, dimmed by the weather); water follows a
  damped, lagged cycle (283 K ± 8 K, peak early August). Days are independent functions of
  (seed, date), so any month is generated alone and consecutive months join seamlessly.
* **Reflectance** per land cover (blue … swir22); vegetation follows a greenness cycle
  (NDVI high in summer), so NDVI/NDWI/NDBI separate the classes as on real scenes.
* **Sensors**: Landsat ST = 3×3 (30 m) mean of the truth + N(0, ``noise``), SR = 30 m mean
  reflectance + noise, every ``landsat_revisit_days``; MODIS = block mean over
  ``modis_resolution`` + ``modis_bias`` + noise, daily; Sentinel-2 = 10 m reflectance +
  noise every ``sentinel2_revisit_days``. Each sensor's acquisitions are clouded
  independently (probability ``cloudy_fraction``; a clouded scene loses 5–100 % of its
  pixels in smooth blobs, at the sensor's own pixel size); clouded pixels are NaN with
  ``valid`` 0, as the real routes mask QA.

Coarse pixels are written on the area grid as the real routes resample them (each
10 m pixel takes its coarse pixel's value), aligned to the grid's upper-left corner.
The truth store (``lst`` in K, dims ``(time, y, x)``, plus the static ``land_cover`` and
``emissivity``) is for evaluation only: nothing that trains reads it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from scipy.ndimage import gaussian_filter
from tqdm.auto import tqdm

from eofm.config import Area, TilesSettings
from eofm.data.store import write_store
from eofm.data.tiles.common import (
    LANDSAT_SR_BANDS,
    AreaGrid,
    _month_range,
    area_grid,
    sensor_spec,
    tile_dataset,
)
from eofm.errors import TileError

log = logging.getLogger(__name__)

#: land-cover classes of the truth, in the order of ``land_cover``'s flag values
CLASSES = ("water", "vegetation", "urban", "bare_soil")
EMISSIVITY = np.array([0.99, 0.985, 0.95, 0.94], np.float32)
RESPONSE_K = np.array([1.0, 5.0, 14.0, 11.0])  # LST above air at full sun, per class
SAMPLE_VERSION = "eofm tiles sample 1"
_EPOCH = date(2000, 1, 1)
_OVERPASS_HOURS = {"modis": 10.5, "landsat": 10.5, "sentinel2": 10.75, "truth": 10.5}
_SENSOR_TAG = {"truth": 0, "modis": 1, "landsat": 2, "sentinel2": 3}

# Reflectance per class and spectral kind: water, vegetation (bare/green ends), urban, bare
_KINDS = ("blue", "green", "red", "rededge", "nir", "swir16", "swir22")
_WATER = np.array([0.07, 0.06, 0.04, 0.03, 0.02, 0.01, 0.005])
_VEG_BROWN = np.array([0.05, 0.08, 0.12, 0.16, 0.22, 0.26, 0.18])
_VEG_GREEN = np.array([0.03, 0.07, 0.04, 0.22, 0.42, 0.20, 0.10])
_URBAN = np.array([0.10, 0.12, 0.14, 0.17, 0.20, 0.25, 0.22])
_BARE = np.array([0.10, 0.14, 0.19, 0.23, 0.26, 0.33, 0.30])
_BAND_KIND = {
    # Landsat STAC assets
    "green": "green",
    "red": "red",
    "nir08": "nir",
    "swir16": "swir16",
    # Sentinel-2 bands (Planetary Computer names)
    "B01": "blue",
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B05": "rededge",
    "B06": "rededge",
    "B07": "rededge",
    "B08": "nir",
    "B8A": "nir",
    "B09": "nir",
    "B11": "swir16",
    "B12": "swir22",
}


# --------------------------------------------------------------------------- randomness


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """An independent generator per (seed, purpose, day…): any day is drawn on its own."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *(int(k) for k in keys)])


def _smooth(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """A smooth random field of zero mean and unit variance (Gaussian-filtered noise)."""
    field = gaussian_filter(rng.standard_normal(shape), max(sigma, 0.5), mode="wrap")
    return (field - field.mean()) / (field.std() + 1e-12)


def _day_number(day: date) -> int:
    return (day - _EPOCH).days


# --------------------------------------------------------------------------- static truth


class Landscape:
    """The static part of the truth on an area grid: land cover, its responses, the modes."""

    def __init__(self, shape: tuple[int, int], seed: int) -> None:
        height, width = shape
        self.shape = shape
        side = max(height, width)
        rng = _rng(seed, 0, 0)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
        elevation = _smooth(rng, shape, side / 6)
        # a river meandering west → east, about 60 m wide, and ponds in the lowest ground
        phase, wander = rng.uniform(0, 2 * np.pi), rng.uniform(0.08, 0.15) * height
        centre = height * rng.uniform(0.3, 0.7) + wander * np.sin(2 * np.pi * xx / side + phase)
        water = (np.abs(yy - centre) < max(2.0, side / 64)) | (
            elevation < np.quantile(elevation, 0.03)
        )
        # a town: smooth field plus a bump around a random centre
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        bump = np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (side / 5) ** 2)))
        town = _smooth(rng, shape, side / 24) + 2.5 * bump
        urban = (town > np.quantile(town, 0.8)) & ~water
        soil = _smooth(rng, shape, side / 32)
        bare = (soil > np.quantile(soil, 0.85)) & ~water & ~urban
        cover = np.ones(shape, np.uint8)  # vegetation
        cover[water], cover[urban], cover[bare] = 0, 2, 3
        self.land_cover = cover
        self.emissivity = EMISSIVITY[cover]
        moisture = _smooth(rng, shape, side / 16)
        self.response = RESPONSE_K[cover] * (1 + 0.15 * np.clip(moisture, -2, 2))
        self.texture = 0.3 * _smooth(rng, shape, 0.7)
        self.modes = np.stack([_smooth(rng, shape, side / 4) for _ in range(3)])
        self.reflect_texture = 1 + 0.05 * _smooth(rng, shape, 1.0)
        self.periods = np.array([3.7, 6.1, 9.3, 17.9])
        self.phases = rng.uniform(0, 2 * np.pi, 4)
        self.amplitudes = np.array([1.5, 1.5, 1.2, 1.0])

    def weather(self, n: int) -> float:
        """Day-to-day air-temperature anomaly (K), a smooth function of the day number."""
        return float(np.sum(self.amplitudes * np.sin(2 * np.pi * n / self.periods + self.phases)))

    def truth(self, day: date, seed: int) -> np.ndarray:
        """The 10 m LST (K) of ``day`` at the morning overpass."""
        n = _day_number(day)
        doy = day.timetuple().tm_yday
        weather = self.weather(n)
        air = 285.0 + 10.0 * np.cos(2 * np.pi * (doy - 205) / 365.25) + weather
        sun = 0.55 + 0.45 * np.cos(2 * np.pi * (doy - 172) / 365.25)
        sun *= float(np.clip(0.8 + 0.1 * weather / 2.0, 0.5, 1.0))
        water_t = 283.0 + 8.0 * np.cos(2 * np.pi * (doy - 220) / 365.25) + 0.3 * weather
        weights = _rng(seed, 0, 1, n).standard_normal(3) * 0.8 / np.sqrt(3)
        anomaly = np.tensordot(weights, self.modes, axes=1)
        land = air + self.response * sun
        lst = np.where(self.land_cover == 0, water_t, land) + anomaly + self.texture
        return lst.astype(np.float32)

    def reflectance(self, day: date, bands: tuple[str, ...]) -> np.ndarray:
        """Surface reflectance (band, y, x) of ``day`` for STAC/Sentinel-2 band names."""
        doy = day.timetuple().tm_yday
        green = float(np.clip(0.5 + 0.4 * np.cos(2 * np.pi * (doy - 190) / 365.25), 0, 1))
        vegetation = _VEG_BROWN + green * (_VEG_GREEN - _VEG_BROWN)
        table = np.stack([_WATER, vegetation, _URBAN, _BARE])  # (class, kind)
        out = []
        for band in bands:
            kind = _BAND_KIND.get(band)
            if kind is None:
                raise TileError(
                    f"tiles sample: band {band!r} unknown; expected one of {sorted(_BAND_KIND)}"
                )
            out.append(table[self.land_cover, _KINDS.index(kind)] * self.reflect_texture)
        return np.stack(out).astype(np.float32)


# --------------------------------------------------------------------------- sensors


def _block(factor: int, shape: tuple[int, int]) -> tuple[int, int]:
    return -(-shape[0] // factor), -(-shape[1] // factor)


def block_mean(field: np.ndarray, factor: int) -> np.ndarray:
    """Means of ``factor``×``factor`` blocks from the upper-left corner (edge blocks partial),
    broadcast back to the field's shape: a coarse pixel as the area grid stores it."""
    if factor <= 1:
        return field.copy()
    *lead, height, width = field.shape
    bh, bw = _block(factor, (height, width))
    padded = np.full((*lead, bh * factor, bw * factor), np.nan, np.float64)
    padded[..., :height, :width] = field
    coarse = np.nanmean(padded.reshape(*lead, bh, factor, bw, factor), axis=(-3, -1))
    return _expand(coarse, factor, (height, width))


def _expand(coarse: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    full = np.repeat(np.repeat(coarse, factor, axis=-2), factor, axis=-1)
    return full[..., : shape[0], : shape[1]]


def _noise(rng: np.random.Generator, shape: tuple[int, ...], factor: int, sd: float) -> np.ndarray:
    """White noise per coarse pixel, on the fine grid."""
    *lead, height, width = shape
    coarse = rng.standard_normal((*lead, *_block(factor, (height, width)))) * sd
    return _expand(coarse, factor, (height, width))


def _clear(
    rng: np.random.Generator, shape: tuple[int, int], factor: int, cloudy: float
) -> np.ndarray:
    """The clear-sky mask of one acquisition: all clear, or smooth cloud blobs covering
    5–100 % of the pixels, decided per coarse pixel of the sensor."""
    if rng.random() >= cloudy:
        return np.ones(shape, bool)
    cover = rng.uniform(0.05, 1.0)
    coarse_shape = _block(factor, shape)
    field = _smooth(rng, coarse_shape, max(2.0, max(coarse_shape) / 8))
    cloud = field > np.quantile(field, 1 - cover)
    return ~_expand(cloud, factor, shape)


def _factor(resolution: float, pixel: float) -> int:
    return max(1, round(resolution / pixel))


def schedule(sensor: str, month: str, settings: TilesSettings) -> list[date]:
    """Days of ``month`` with an acquisition of ``sensor`` (``truth``: every day)."""
    start, stop = _month_range(month)
    days = [start.date() + timedelta(days=k) for k in range((stop - start).days)]
    sample = settings.sample
    revisit = {
        "landsat": sample.landsat_revisit_days,
        "sentinel2": sample.sentinel2_revisit_days,
    }.get(sensor, 1)
    offset = int(_rng(sample.seed, 9, _SENSOR_TAG[sensor]).integers(revisit))
    return [d for d in days if (_day_number(d) - offset) % revisit == 0]


def _acquired(day: date, sensor: str, lon: float) -> datetime:
    """UTC time of the overpass at local solar time ``_OVERPASS_HOURS`` over ``lon``."""
    hours = _OVERPASS_HOURS[sensor] - lon / 15.0
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
        seconds=round(hours * 3600)
    )


def _attrs(settings: TilesSettings, area: str, sensor: str, month: str, box: Any) -> dict:
    sample = settings.sample
    knobs = {k: v for k, v in sorted(sample.as_dict().items())}
    digest = hashlib.sha256(json.dumps(knobs, sort_keys=True).encode()).hexdigest()[:12]
    return {
        "source": "sample",
        "source_url": f"sample:eofm.data.tiles.sample?seed={sample.seed}&settings={digest}",
        "source_version": SAMPLE_VERSION,
        "area": area,
        "sensor": sensor,
        "month": month,
        "area_bbox_lonlat": json.dumps([float(v) for v in box]),
        "sample_settings": json.dumps(knobs, sort_keys=True),
    }


def sensor_dataset(
    landscape: Landscape,
    sensor: str,
    month: str,
    area: str,
    area_settings: Area,
    grid: AreaGrid,
    settings: TilesSettings,
) -> xr.Dataset:
    """One sensor's month of observations of the truth, as a tile-store Dataset."""
    sample = settings.sample
    spec = sensor_spec(sensor, settings)
    pixel = abs(grid.transform.a)
    native = {"modis": sample.modis_resolution, "landsat": 30.0, "sentinel2": 10.0}[sensor]
    factor = _factor(native, pixel)
    shape = (grid.height, grid.width)
    times, stacks, masks, ids = [], [], [], []
    seed, tag = sample.seed, _SENSOR_TAG[sensor]
    for day in tqdm(schedule(sensor, month, settings), desc=f"sample {sensor}", leave=False):
        n = _day_number(day)
        rng = _rng(seed, tag, 2, n)
        truth = landscape.truth(day, seed)
        if sensor == "sentinel2":
            data = landscape.reflectance(day, spec.all_bands)
            data = block_mean(data, factor) + _noise(rng, data.shape, factor, 0.005)
        else:
            lst = block_mean(truth, factor) + _noise(rng, shape, factor, sample.noise)
            if sensor == "modis":
                lst = lst + sample.modis_bias
            layers = [lst[None]]
            if spec.reflectance:
                refl = block_mean(landscape.reflectance(day, LANDSAT_SR_BANDS), factor)
                layers.append(refl + _noise(rng, refl.shape, factor, 0.005))
            data = np.concatenate(layers)
        clear = _clear(_rng(seed, tag, 3, n), shape, factor, sample.cloudy_fraction)
        data = data.astype(np.float32)
        data[:, ~clear] = np.nan
        times.append(_acquired(day, sensor, grid.centre_lon))
        stacks.append(data)
        masks.append(clear)
        ids.append(f"SAMPLE_{sensor.upper()}_{day:%Y%m%d}")
    if stacks:
        data_all, valid_all = np.stack(stacks), np.stack(masks)
    else:
        data_all = np.zeros((0, len(spec.all_bands), *shape), np.float32)
        valid_all = np.zeros((0, *shape), bool)
    attrs = _attrs(settings, area, sensor, month, area_settings.bbox)
    attrs.update({"stac_items": json.dumps(ids), "items": len(ids), "native_resolution_m": native})
    # same key order as the real routes' stores
    ordered = {k: attrs[k] for k in ("source", "source_url", "source_version")}
    ordered.update(attrs)
    return tile_dataset(times, data_all, valid_all, spec, grid, ordered)


def truth_dataset(
    landscape: Landscape,
    month: str,
    area: str,
    area_settings: Area,
    grid: AreaGrid,
    settings: TilesSettings,
) -> xr.Dataset:
    """The month's hidden 10 m daily LST (K), with land cover and emissivity (static)."""
    import rioxarray  # noqa: F401  (registers the .rio accessor)

    days = schedule("truth", month, settings)
    lst = np.stack([landscape.truth(d, settings.sample.seed) for d in days])
    times = np.array(
        [
            np.datetime64(_acquired(d, "truth", grid.centre_lon).replace(tzinfo=None), "ns")
            for d in days
        ],
        "datetime64[ns]",
    )
    attrs = _attrs(settings, area, "truth", month, area_settings.bbox)
    attrs["native_resolution_m"] = float(abs(grid.transform.a))
    ds = xr.Dataset(
        {
            "lst": (
                ("time", "y", "x"),
                lst,
                {
                    "units": "K",
                    "standard_name": "surface_temperature",
                    "long_name": "hidden daily land surface temperature of the sample "
                    "(evaluation only)",
                },
            ),
            "land_cover": (
                ("y", "x"),
                landscape.land_cover,
                {
                    "long_name": "land cover of the sample",
                    "flag_values": np.arange(len(CLASSES), dtype=np.uint8),
                    "flag_meanings": " ".join(CLASSES),
                },
            ),
            "emissivity": (
                ("y", "x"),
                landscape.emissivity,
                {
                    "units": "1",
                    "standard_name": "surface_longwave_emissivity",
                    "long_name": "broadband thermal emissivity of the land cover",
                },
            ),
        },
        coords={
            "time": ("time", times, {"long_name": "overpass time (UTC), one per day"}),
            "y": ("y", grid.y),
            "x": ("x", grid.x),
        },
        attrs=attrs,
    )
    ds = ds.rio.write_crs(grid.crs).rio.write_transform(grid.transform)
    ds = ds.rio.write_coordinate_system()
    for name in ("lst", "land_cover", "emissivity"):
        ds[name].attrs["grid_mapping"] = "spatial_ref"
    return ds


def generate_tiles_sample_month(
    area: str,
    month: str,
    outputs: dict[str, str | os.PathLike],
    settings: TilesSettings,
) -> dict[str, Path]:
    """Write the sample stores of (``area``, ``month``): ``outputs`` maps each of
    ``modis``, ``landsat``, ``sentinel2`` and ``truth`` wanted to its store path."""
    if area not in settings.areas:
        raise TileError(f"tiles: area {area!r} not in tiles.areas {sorted(settings.areas)}")
    unknown = sorted(set(outputs) - {*_SENSOR_TAG})
    if unknown:
        raise TileError(f"tiles sample: outputs {unknown} unknown; expected {sorted(_SENSOR_TAG)}")
    area_settings = settings.areas[area]
    grid = area_grid(area_settings, area)
    landscape = Landscape((grid.height, grid.width), settings.sample.seed)
    written = {}
    for name, out in outputs.items():
        if name == "truth":
            ds = truth_dataset(landscape, month, area, area_settings, grid, settings)
        else:
            ds = sensor_dataset(landscape, name, month, area, area_settings, grid, settings)
        log.info("tiles sample %s/%s %s: %d day(s) → %s", area, name, month, ds.sizes["time"], out)
        written[name] = write_store(ds, out, validate=False)
    return written
