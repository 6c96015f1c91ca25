"""FireCube-like sample generator that uses the real FireCube per-variable statistics.

FireCube (Prapas, Kondylatos, Papoutsis; CC-BY-4.0) is a daily ~1 km datacube of Greece
(dims time/y/x, EPSG:4326, lon 18.7-28.9, lat 42.3-34.3). The statistics file
(``mean_std_train.json`` from HakamShams/LOAN, MIT) gives min/max/mean/std per variable of
the training split under LOAN's variable names; ``DYNAMIC_STATS_KEYS`` and
``STATIC_STATS_KEYS`` map the datacube's names onto them.

Values are generated in the units of the statistics, which differ from the datacube's
``units`` attribute for a few variables (see ``STATS_UNIT_NOTES``):

- ndvi, evi: the statistics are the index times 1e8 (range -2e7..1e8 = -0.2..1.0).
- fapar: listed in '%', the statistics are a fraction; max 2.54 is the MODIS fill 254*0.01.
- lai: max 25.4 is the MODIS fill 254*0.1; et: max 3276.6 is the fill 32766*0.1. The
  fill values also inflate these variables' mean and std.
- max_rh/min_rh/avg_rh: listed in '%', the statistics are fractions (mean 0.66).
- ROAD_DISTANCE, WATERWAY_DISTANCE: listed in 'meters', the statistics (max 49, 57) look
  like kilometres.

The fields are smooth in space (Gaussian-filtered noise) and time (AR(1)), with a seasonal
cycle for temperature, vegetation, humidity, soil moisture and precipitation, and cheap
physical links: temperature falls with elevation, surface pressure falls with elevation,
relative humidity is anti-correlated with temperature, number_of_fires counts the
ignition points of each day. fwi is computed from the cube's own weather, as the Canadian
Fire Weather Index is from noon temperature, humidity, wind and precipitation: it rises
with temperature and wind and falls with humidity and rain (a small noise stands for its
coarser grid). An earlier version drew most of it from noise of its own, so a fire driver
the models never see (LOAN reads no fwi) carried weather the cube did not show.

Fires follow their drivers as in the Mediterranean (physical realism, not tuned to any
model): the daily ignition probability of a pixel is ``exp(risk)`` rescaled to a mean of
``fire_rate``, where ``risk`` adds

- dryness over the previous ``FIRE_LAG_DAYS`` days (t-10 .. t-1, not day t): high fwi,
  low soil moisture (sminx) and low minimum humidity — fuel dries over days. Its 10-day
  mean is standardised, so that its weight is per standard deviation as the other
  drivers' are (before, the mean's smaller spread cut the stated 1.2 to an actual 0.86).
  The weight depends on the fuel (``DRYNESS_WEIGHT`` 1.2 at the mean fuel,
  ``FUEL_DRYNESS_SLOPE``): in Mediterranean ecosystems fuel shapes the fire-climate
  relationship. Fire on productive, fuel-rich land is limited by drought and follows it
  closely; on sparse, fuel-poor land it is limited by fuel and hardly follows drought
  (Pausas and Paula 2012, Global Ecol. Biogeogr. 21:1074-1082). The weight therefore
  falls to 0 two standard deviations below the mean fuel and rises to 2.4 two above;
- same-day maximum temperature (0.4) and maximum wind speed (0.3);
- fuel from the latest CORINE fractions (``FUEL_WEIGHTS``: forest and shrubland/misc.
  vegetation burn most, water and built-up land hardly at all);
- terrain: slope raises it (0.3), elevation lowers it (0.3, cooler and wetter);
- people (``HUMAN_WEIGHTS``): nearness to roads (0.6) and population density (0.4). Most
  Mediterranean ignitions are human-caused (96 % in Spain, 1988-99; Martínez, Chuvieco and
  Martín), and ignition models there find accessibility by road and population density the
  main human drivers, secondary to fuel dryness (Catry et al. 2009, Int. J. Wildland Fire
  18:1-11; Gelabert et al. 2025, NHESS 25:4713). FireCube carries both layers and LOAN reads
  them as static inputs.

Burned areas spread from each ignition to its 8 neighbours on the same day with a
probability that rises with wind speed and fuel. A pixel's burned day is its fire's start
day, as in FireCube, where each burned polygon is rasterised on its ignition date. Land-cover
fractions are drawn independently per class (they do not sum to one), there is no sea mask
and the CLC mode variables (no statistics) are not generated.

Each variable draws from its own random stream keyed by (seed, variable name), so a seed
gives bit-identical output. ``times`` need not be contiguous (e.g. the fire seasons of
several years): the AR(1) runs over the listed days, so a season's first day follows the
previous season's last.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import xarray as xr
import zarr
from numpy.typing import ArrayLike
from scipy import ndimage
from scipy.special import ndtr, ndtri

from eofm.config import FirecubeSettings
from eofm.data.fetch import RetryPolicy, download, redact, sha256sum
from eofm.data.store import write_store
from eofm.errors import ConfigError

LON_RANGE = (18.7, 28.9)  # x ascending
LAT_RANGE = (42.3, 34.3)  # y descending
CRS = "EPSG:4326"
STAT_NAMES = ("min", "max", "mean", "std")
GROUPS = ("dynamic", "static", "clc")

# Datacube variable name -> LOAN statistics key (group "dynamic").
DYNAMIC_STATS_KEYS: dict[str, str] = {
    "ndvi": "1 km 16 days NDVI",
    "evi": "1 km 16 days EVI",
    "et": "ET_500m",
    "lst_day": "LST_Day_1km",
    "lst_night": "LST_Night_1km",
    "fapar": "Fpar_500m",
    "lai": "Lai_500m",
    "max_u10": "era5_max_u10",
    "max_v10": "era5_max_v10",
    "max_d2m": "era5_max_d2m",
    "max_t2m": "era5_max_t2m",
    "max_sp": "era5_max_sp",
    "max_tp": "era5_max_tp",
    "min_u10": "era5_min_u10",
    "min_v10": "era5_min_v10",
    "min_d2m": "era5_min_d2m",
    "min_t2m": "era5_min_t2m",
    "min_sp": "era5_min_sp",
    "min_tp": "era5_min_tp",
    "avg_u10": "era5_avg_u10",
    "avg_v10": "era5_avg_v10",
    "avg_d2m": "era5_avg_d2m",
    "avg_t2m": "era5_avg_t2m",
    "avg_sp": "era5_avg_sp",
    "avg_tp": "era5_avg_tp",
    "smian": "smian",
    "sminx": "sminx",
    "fwi": "fwi",
    "max_wind_u10": "era5_max_wind_u10",
    "max_wind_v10": "era5_max_wind_v10",
    "max_wind_speed": "era5_max_wind_speed",
    "max_wind_direction": "era5_max_wind_direction",
    "max_rh": "era5_max_rh",
    "min_rh": "era5_min_rh",
    "avg_rh": "era5_avg_rh",
}

POP_YEARS = tuple(range(2009, 2022))
CLC_YEARS = (2006, 2012, 2018)
CLC_CLASSES = (
    "artificial_surfaces",
    "discontinuous_urban",
    "arable_land",
    "permanent_crops",
    "pastures",
    "general_agricultural",
    "forest",
    "misc_vegetation",
    "misc_no_vegetation",
    "water",
)

# Datacube variable name -> (statistics group, key) for the static (y, x) variables.
STATIC_STATS_KEYS: dict[str, tuple[str, str]] = {
    "DEM": ("static", "dem_mean"),
    "SLOPE": ("static", "slope_mean"),
    "ASPECT": ("static", "aspect_mean"),
    "ROUGHNESS": ("static", "roughness_mean"),
    "ROAD_DISTANCE": ("static", "roads_distance"),
    "WATERWAY_DISTANCE": ("static", "waterway_distance"),
    **{f"POP_DENS_{year}": ("static", "population_density") for year in POP_YEARS},
    **{
        f"CLC_{year}_{k}": ("clc", f"clc_{k}")
        for year in CLC_YEARS
        for k in range(len(CLC_CLASSES))
    },
}

STATS_UNIT_NOTES: dict[str, str] = {
    "ndvi": "values are NDVI x 1e8, as in the statistics",
    "evi": "values are EVI x 1e8, as in the statistics",
    "fapar": "values are a fraction (not %); statistics include the MODIS fill 2.54",
    "lai": "statistics include the MODIS fill 25.4",
    "et": "statistics include the MODIS fill 3276.6",
    "max_rh": "values are a fraction (not %), as in the statistics",
    "min_rh": "values are a fraction (not %), as in the statistics",
    "avg_rh": "values are a fraction (not %), as in the statistics",
    "ROAD_DISTANCE": "values are in the statistics' units (apparently km, not meters)",
    "WATERWAY_DISTANCE": "values are in the statistics' units (apparently km, not meters)",
}

# (units, long_name) copied from the datacube listing dataset_greece_v1.0.txt.
_ERA5_ATTRS = {
    "u10": ("m/s", "10 metre U wind component"),
    "v10": ("m/s", "10 metre V wind component"),
    "d2m": ("K", "2 metre dewpoint temperature"),
    "t2m": ("K", "2 metre temperature"),
    "sp": ("Pa", "Surface pressure"),
    "tp": ("m", "Total precipitation"),
}
ATTRS: dict[str, tuple[str, str]] = {
    "burned_areas": ("unitless", "Rasterized burned polygons"),
    "ignition_points": ("unitless", "Rasterized ignition points"),
    "number_of_fires": ("unitless", "Daily number of fires"),
    "ndvi": ("unitless", "16-day NDVI"),
    "evi": ("unitless", "16-day EVI"),
    "et": ("kg/m^2/8day", "8-day Evapotranspiration"),
    "lst_day": ("K", "Day Land Surface Temperature"),
    "lst_night": ("K", "Night Land Surface Temperature"),
    "fapar": ("%", "Fraction of Absorbed Photosynthetically Active Radiation"),
    "lai": ("unitless", "Leaf Area Index"),
    **{
        f"{prefix}_{var}": (units, f"{label} {name}")
        for prefix, label in (("max", "Max"), ("min", "Min"), ("avg", "Avg"))
        for var, (units, name) in _ERA5_ATTRS.items()
    },
    # the listing's capitalisation differs from the pattern for these two
    "min_sp": ("Pa", "Min Surface Pressure"),
    "avg_tp": ("m", "Avg total precipitation"),
    "smian": ("unitless", "Soil moisture index anomaly"),
    "sminx": ("unitless", "Soil moisture index"),
    "fwi": ("unitless", "Fire Weather Index"),
    "max_wind_u10": ("m/s", "10 metre U wind of Max Wind"),
    "max_wind_v10": ("m/s", "10 metre V wind of Max Wind"),
    "max_wind_speed": ("m/s", "Max wind speed norm"),
    "max_wind_direction": ("degrees", "Wind direction of Max Wind"),
    "max_rh": ("%", "Max Relative humidity"),
    "min_rh": ("%", "Min Relative humidity"),
    "avg_rh": ("%", "Avg Relative humidity"),
    "DEM": ("m", "Elevation"),
    "SLOPE": ("degrees", "Slope"),
    "ASPECT": ("degrees", "Aspect"),
    "ROUGHNESS": ("unitless", "Roughness"),
    "ROAD_DISTANCE": ("meters", "Distance from roads"),
    "WATERWAY_DISTANCE": ("meters", "Distance from waterways"),
    **{f"POP_DENS_{y}": ("humans/km^2", f"Population density ({y})") for y in POP_YEARS},
    **{
        f"CLC_{year}_{k}": ("/100 %", f"Fraction of lc class {k} ({name})")
        for year in CLC_YEARS
        for k, name in enumerate(CLC_CLASSES)
    },
}

UNIFORM = {"max_wind_direction", "ASPECT"}  # circular variables: uniform on [min, max]


@dataclass(frozen=True)
class VarStats:
    min: float
    max: float
    mean: float
    std: float


@dataclass(frozen=True)
class FireCubeStats:
    """Statistics per group ('dynamic', 'static', 'clc') and LOAN key."""

    groups: dict[str, dict[str, VarStats]]
    source: str

    def for_variable(self, name: str) -> VarStats:
        """Statistics of a datacube variable (e.g. 'ndvi', 'DEM', 'CLC_2018_6')."""
        if name in DYNAMIC_STATS_KEYS:
            group, key = "dynamic", DYNAMIC_STATS_KEYS[name]
        elif name in STATIC_STATS_KEYS:
            group, key = STATIC_STATS_KEYS[name]
        else:
            raise KeyError(f"FireCube: no statistics mapping for variable {name!r}")
        return self.groups[group][key]


def load_firecube_stats(path: str | Path) -> FireCubeStats:
    """Parse LOAN's ``mean_std_train.json``; every mapped variable must have all 4 stats."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"FireCube statistics file not found: {path}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    required: dict[str, dict[str, str]] = {g: {} for g in GROUPS}
    for name, key in DYNAMIC_STATS_KEYS.items():
        required["dynamic"].setdefault(key, name)
    for name, (group, key) in STATIC_STATS_KEYS.items():
        required[group].setdefault(key, name)
    groups: dict[str, dict[str, VarStats]] = {}
    for group in GROUPS:
        block = raw.get(group) if isinstance(raw, dict) else None
        if not isinstance(block, dict):
            raise ValueError(f"{path}: missing group {group!r} (expected keys {GROUPS})")
        for stat in STAT_NAMES:
            if not isinstance(block.get(stat), dict):
                raise ValueError(f"{path}: missing {group!r}/{stat!r}")
        groups[group] = {}
        for key, name in required[group].items():
            values = {}
            for stat in STAT_NAMES:
                if key not in block[stat]:
                    raise ValueError(
                        f"{path}: missing {group}/{stat}/{key!r} (datacube variable {name!r})"
                    )
                values[stat] = float(block[stat][key])
            vs = VarStats(**values)
            if not (vs.min <= vs.mean <= vs.max and vs.std >= 0):
                raise ValueError(f"{path}: inconsistent statistics for {group}/{key!r}: {vs}")
            groups[group][key] = vs
    return FireCubeStats(groups=groups, source=str(path))


# ---------------------------------------------------------------- random fields


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _standardize(a: np.ndarray) -> np.ndarray:
    std = a.std()
    return (a - a.mean()) / (std if std > 0 else 1.0)


def _smooth(rng: np.random.Generator, shape: tuple[int, ...], sigma: float, rho: float = 0.0):
    """Unit-variance noise, Gaussian-smoothed over (y, x) and AR(1) with ``rho`` over time."""
    white = rng.standard_normal(shape)
    sig = (0.0,) * (len(shape) - 2) + (sigma, sigma)
    field = ndimage.gaussian_filter(white, sigma=sig, mode="wrap")
    if len(shape) == 3 and rho > 0:
        for t in range(1, shape[0]):
            field[t] = rho * field[t - 1] + np.sqrt(1 - rho**2) * field[t]
    return _standardize(field)


def _mix(*parts: tuple[float, np.ndarray]) -> np.ndarray:
    """Weighted sum of (roughly independent) unit-variance fields, rescaled to unit variance."""
    total = sum(w * f for w, f in parts)
    return total / np.sqrt(sum(w * w for w, _ in parts))


def _season(doy: np.ndarray, peak_doy: float) -> np.ndarray:
    """Unit-variance annual cycle peaking on ``peak_doy``, shaped (time, 1, 1)."""
    return (np.sqrt(2) * np.cos(2 * np.pi * (doy - peak_doy) / 365.25))[:, None, None]


def _to_values(z: np.ndarray, s: VarStats, uniform: bool = False) -> np.ndarray:
    """Map a standard-normal field onto the statistics' moments and clip to [min, max].

    Skewed variables (mean less than 2 std above the min: precipitation, fwi, population,
    distances...) use a shifted log-normal with the same mean and std; circular ones are
    uniform on [min, max]; the rest are normal.
    """
    if uniform:
        values = s.min + (s.max - s.min) * ndtr(z)
    elif s.std > 0 and s.mean - s.min < 2 * s.std:
        m = s.mean - s.min
        sig2 = np.log1p((s.std / m) ** 2)
        values = s.min + np.exp(np.log(m) - sig2 / 2 + np.sqrt(sig2) * z)
    else:
        values = s.mean + s.std * z
    lo, hi = np.float32(s.min), np.float32(s.max)
    if lo < s.min:
        lo = np.nextafter(lo, np.float32(np.inf))
    if hi > s.max:
        hi = np.nextafter(hi, np.float32(-np.inf))
    return np.clip(values.astype(np.float32), lo, hi)


# ---------------------------------------------------------------- generator


def generate_firecube(
    stats: FireCubeStats,
    times: ArrayLike,
    ny: int = 64,
    nx: int = 80,
    seed: int = 0,
    fire_rate: float = 1e-3,
    probability: bool = False,
) -> xr.Dataset:
    """A FireCube-like dataset on ``times`` over the real extent with ``ny`` x ``nx`` pixels.

    ``fire_rate`` is the mean daily probability of an ignition per pixel (the real cube's
    is far lower, ~1e-5, which leaves small samples without fires). ``probability`` adds
    ``ignition_probability``, the daily probability the ignitions were drawn with: no
    variable of the real cube, but the ceiling any fire model of the sample is held to.
    """
    time = np.asarray(times, dtype="datetime64[ns]").reshape(-1)
    if time.size == 0 or ny < 2 or nx < 2:
        raise ValueError(f"generate_firecube: need >= 1 time and ny, nx >= 2, got {ny}x{nx}")
    nt = time.size
    doy = ((time - time.astype("datetime64[Y]")) / np.timedelta64(1, "D")).astype(float) + 1
    sigma = max(1.0, min(ny, nx) / 8)
    shape3, shape2 = (nt, ny, nx), (ny, nx)

    def noise3(name: str, rho: float = 0.7) -> np.ndarray:
        return _smooth(_rng(seed, name), shape3, sigma, rho)

    def noise2(name: str, scale: float = 1.0) -> np.ndarray:
        return _smooth(_rng(seed, name), shape2, sigma * scale)

    # shared latent fields (standard normal, roughly)
    height = noise2("latent:height", 1.5)
    greenness = noise2("latent:greenness", 1.5)
    temp = _mix((0.8, _season(doy, 205)), (0.3, -height), (0.5, noise3("latent:temp")))
    rh_noise = noise3("latent:rh")
    humid = _mix((-0.7, temp), (0.7, rh_noise))
    veg = _mix((0.6, _season(doy, 100)), (0.6, greenness), (0.5, noise3("latent:veg", 0.9)))
    rain = _mix((0.5, _season(doy, 15)), (0.85, noise3("latent:rain", 0.3)))
    u, v = noise3("latent:u"), noise3("latent:v")

    z: dict[str, np.ndarray] = {}
    for p in ("max", "min", "avg"):
        z[f"{p}_t2m"] = _mix((0.95, temp), (0.3, noise3(f"{p}_t2m")))
        z[f"{p}_d2m"] = _mix((0.85, temp), (0.5, noise3(f"{p}_d2m")))
        z[f"{p}_rh"] = _mix((0.95, humid), (0.3, noise3(f"{p}_rh")))
        z[f"{p}_sp"] = _mix((-0.9, height[None]), (0.4, noise3(f"{p}_sp")))
        z[f"{p}_tp"] = _mix((0.9, rain), (0.4, noise3(f"{p}_tp", 0.3)))
        z[f"{p}_u10"] = _mix((0.9, u), (0.45, noise3(f"{p}_u10")))
        z[f"{p}_v10"] = _mix((0.9, v), (0.45, noise3(f"{p}_v10")))
    z["lst_day"] = _mix((0.9, temp), (0.45, noise3("lst_day")))
    z["lst_night"] = _mix((0.9, temp), (0.45, noise3("lst_night")))
    for name in ("ndvi", "evi", "lai", "fapar", "et"):
        z[name] = _mix((0.85, veg), (0.5, noise3(name, 0.9)))
    z["sminx"] = _mix((0.6, _season(doy, 30)), (0.5, rain), (0.6, noise3("sminx", 0.95)))
    z["smian"] = noise3("smian", 0.95)
    z["max_wind_u10"] = _mix((0.9, u), (0.45, noise3("max_wind_u10")))
    z["max_wind_v10"] = _mix((0.9, v), (0.45, noise3("max_wind_v10")))
    rayleigh = (np.hypot(u, v) - np.sqrt(np.pi / 2)) / np.sqrt((4 - np.pi) / 2)
    z["max_wind_speed"] = _mix((0.8, rayleigh), (0.6, noise3("max_wind_speed")))
    # fwi is computed from the weather (Canadian FWI System: noon temperature, humidity,
    # wind speed, 24 h precipitation), so it follows the cube's own weather, plus a little
    # noise for its coarser grid (0.25 deg in FireCube); humid = -0.7 temp + 0.7 rh_noise
    z["fwi"] = _mix(
        (0.8, temp), (-0.45, rh_noise), (0.3, rayleigh), (-0.35, rain), (0.2, noise3("fwi"))
    )
    # direction the wind blows from, uniform because (u, v) is symmetric around zero
    direction = np.degrees(np.arctan2(-u, -v)) % 360.0
    z["max_wind_direction"] = _standard_normal_from_uniform(direction / 360.0)

    coords = {
        "time": ("time", time),
        "y": (
            "y",
            np.linspace(*LAT_RANGE, ny),
            {"units": "degrees_north", "long_name": "latitude"},
        ),
        "x": (
            "x",
            np.linspace(*LON_RANGE, nx),
            {"units": "degrees_east", "long_name": "longitude"},
        ),
        "band": 1,
        "spatial_ref": (
            (),
            0,
            {"crs": CRS, "spatial_ref": CRS, "grid_mapping_name": "latitude_longitude"},
        ),
    }
    data: dict[str, xr.Variable] = {}

    def attrs(name: str, stats_key: str | None = None) -> dict[str, str]:
        units, long_name = ATTRS[name]
        out = {"units": units, "long_name": long_name, "grid_mapping": "spatial_ref"}
        if stats_key is not None:
            out["stats_key"] = stats_key
        if name in STATS_UNIT_NOTES:
            out["comment"] = STATS_UNIT_NOTES[name]
        return out

    for name, key in DYNAMIC_STATS_KEYS.items():
        values = _to_values(z[name], stats.for_variable(name), uniform=name in UNIFORM)
        data[name] = xr.Variable(("time", "y", "x"), values, attrs(name, key))

    # static variables
    zs: dict[str, np.ndarray] = {
        "DEM": height,
        "SLOPE": _mix((0.6, height), (0.8, noise2("SLOPE", 0.5))),
        "ROUGHNESS": _mix((0.6, height), (0.8, noise2("ROUGHNESS", 0.5))),
        "ASPECT": noise2("ASPECT", 0.3),
        "ROAD_DISTANCE": _mix((0.5, height), (0.87, noise2("ROAD_DISTANCE"))),
        "WATERWAY_DISTANCE": noise2("WATERWAY_DISTANCE"),
    }
    population = _mix((-0.5, height), (0.87, noise2("population", 0.5)))
    for year in POP_YEARS:
        zs[f"POP_DENS_{year}"] = population + 0.01 * (year - POP_YEARS[0])
    for k in range(len(CLC_CLASSES)):
        base = noise2(f"clc_{k}")
        if CLC_CLASSES[k] in ("forest", "misc_vegetation"):
            base = _mix((0.7, greenness), (0.7, base))
        for year in CLC_YEARS:
            zs[f"CLC_{year}_{k}"] = _mix((0.95, base), (0.3, noise2(f"CLC_{year}_{k}", 0.5)))
    for name, (_, key) in STATIC_STATS_KEYS.items():
        values = _to_values(zs[name], stats.for_variable(name), uniform=name in UNIFORM)
        data[name] = xr.Variable(("y", "x"), values, attrs(name, key))

    # fires (see the module docstring): a daily ignition probability from the previous
    # days' dryness, same-day weather, fuel (land cover) and terrain, rescaled so that its
    # mean is ``fire_rate``; burned areas spread from each ignition, further in wind and fuel
    fire_rng = _rng(seed, "fires")
    dryness = _mix((0.7, z["fwi"]), (-0.5, z["sminx"]), (-0.4, z["min_rh"]))
    lagged = _standardize(_trailing_mean(dryness, FIRE_LAG_DAYS))
    fuel = _fuel(zs)
    risk = (
        _dryness_weight(fuel)[None] * lagged
        + 0.4 * z["max_t2m"]
        + 0.3 * z["max_wind_speed"]
        + (fuel + 0.3 * zs["SLOPE"] - 0.3 * zs["DEM"] + _human(zs, population))[None]
    )
    p = np.exp(risk - risk.max())
    p = np.clip(p * (fire_rate / p.mean()), 0.0, 1.0)
    ignition = fire_rng.random(shape3) < p
    around = ndimage.binary_dilation(ignition, structure=np.ones((1, 3, 3), dtype=bool))
    spread = ndtr(0.6 * z["max_wind_speed"] + 0.6 * fuel[None])
    burned = ignition | (around & (fire_rng.random(shape3) < spread))
    data["burned_areas"] = xr.Variable(
        ("time", "y", "x"), burned.astype(np.float32), attrs("burned_areas")
    )
    data["ignition_points"] = xr.Variable(
        ("time", "y", "x"), ignition.astype(np.float32), attrs("ignition_points")
    )
    data["number_of_fires"] = xr.Variable(
        "time", ignition.sum(axis=(1, 2)).astype(np.int16), attrs("number_of_fires")
    )
    if probability:
        data["ignition_probability"] = xr.Variable(
            ("time", "y", "x"),
            p.astype(np.float32),
            {"units": "1", "long_name": "daily ignition probability of the generator"},
        )

    ds = xr.Dataset(data, coords=coords)
    ds = ds[
        [
            "burned_areas",
            "ignition_points",
            "ndvi",
            "number_of_fires",
            *[
                n
                for n in data
                if n not in ("burned_areas", "ignition_points", "ndvi", "number_of_fires")
            ],
        ]
    ]
    ds.attrs = {
        "title": "FireCube-like synthetic sample (eofm.data.firecube)",
        "crs": CRS,
        "spatial_extent": f"({LON_RANGE[0]}, {LON_RANGE[1]}, {LAT_RANGE[1]}, {LAT_RANGE[0]})",
        "temporal_extent": f"({str(time[0])[:10]}, {str(time[-1])[:10]})",
        "stats_source": stats.source,
        "seed": seed,
        "fire_rate": fire_rate,
    }
    return ds


FIRE_LAG_DAYS = 10
# ignition weight of the lagged dryness per standard deviation, at the mean fuel
DRYNESS_WEIGHT = 1.2
# how the dryness weight grows with the fuel index (per standard deviation of fuel): from
# none two deviations below the mean fuel (fuel-limited) to twice DRYNESS_WEIGHT two above
# (drought-limited), see the module docstring; the mean weight stays DRYNESS_WEIGHT
FUEL_DRYNESS_SLOPE = 0.5
# fuel weight per CORINE aggregate (CLC_CLASSES order): burnable vegetation high, built-up,
# bare ground and water low (EFFIS burned areas fall mostly on forest and shrubland)
FUEL_WEIGHTS = (-1.5, -1.0, 0.0, 0.2, 0.6, 0.0, 1.0, 1.2, -0.8, -2.0)
# ignition weights of (nearness to roads, population density), per standard deviation:
# the two main human drivers, below the lagged dryness (1.2), see the module docstring
HUMAN_WEIGHTS = (0.6, 0.4)


def _trailing_mean(z: np.ndarray, days: int) -> np.ndarray:
    """Mean of ``z`` over the ``days`` days before each day (t-days .. t-1), 0 at the start."""
    csum = np.concatenate([np.zeros_like(z[:1]), np.cumsum(z, axis=0)])
    t = np.arange(z.shape[0])
    lo = np.maximum(t - days, 0)
    n = np.maximum(t - lo, 1)[:, None, None]
    return (csum[t] - csum[lo]) / n


def _fuel(zs: dict[str, np.ndarray]) -> np.ndarray:
    """Standardised fuel index of each pixel from its latest land-cover fractions."""
    year = CLC_YEARS[-1]
    total = sum(w * zs[f"CLC_{year}_{k}"] for k, w in enumerate(FUEL_WEIGHTS))
    return _standardize(total)


def _dryness_weight(fuel: np.ndarray) -> np.ndarray:
    """Per-pixel weight of the lagged dryness: fuel-rich land responds to drought, fuel-poor
    land hardly does (Pausas and Paula 2012)."""
    return DRYNESS_WEIGHT * np.maximum(0.0, 1.0 + FUEL_DRYNESS_SLOPE * fuel)


def _human(zs: dict[str, np.ndarray], population: np.ndarray) -> np.ndarray:
    """Human ignition pressure of each pixel: near roads and where people live."""
    roads, people = HUMAN_WEIGHTS
    return roads * -_standardize(zs["ROAD_DISTANCE"]) + people * _standardize(population)


def _standard_normal_from_uniform(q: np.ndarray) -> np.ndarray:
    return ndtri(np.clip(q, 1e-9, 1 - 1e-9))


# ---------------------------------------------------------------- sources → Zarr

BUNDLED_STATS = Path(__file__).with_name("resources") / "firecube_mean_std_train.json"
REQUIRED_VARIABLES = ("burned_areas", "ignition_points")


def fetch_firecube(out: str | Path, settings: FirecubeSettings, policy: RetryPolicy) -> Path:
    """Write the FireCube datacube (or its sample) as one Zarr store at ``out``.

    ``settings`` is the config's ``firecube`` section. ``source``:

    - ``sample``: the offline generator on ``sample: {ny, nx, seed}`` pixels over
      ``start..stop``, driven by the bundled real statistics (or ``stats``, a path);
    - ``http``: download ``url`` (Zarr zip or NetCDF; resumable, ``sha256`` checked when
      given) next to ``out`` in ``<out>.download/``, then convert;
    - ``local``: convert ``path`` (a ``.zarr`` directory, a zipped Zarr or NetCDF).

    The cube is checked (dims time/y/x, the fire targets present, y descending) and
    sliced to ``start..stop`` before it is written, one day per chunk.
    """
    source = settings.source
    start, stop = settings.start, settings.stop
    if source == "sample":
        ds = sample_firecube(settings)
    elif source in ("http", "local"):
        if source == "http":
            path = download_firecube(out, settings, policy)
            origin = redact(str(settings.url))
        else:
            if not settings.path:
                raise ConfigError("firecube.source is 'local' but firecube.path is not set")
            path = Path(settings.path)
            origin = str(path)
        ds = open_firecube(path)
        ds = ds.sel(time=slice(start, stop))
        if ds.sizes["time"] == 0:
            raise ValueError(f"{path}: FireCube has no days in {start}..{stop}")
        ds.attrs = {
            **ds.attrs,
            "source": f"firecube-{source}",
            "source_url": origin,
            "source_version": ds.attrs.get("title", Path(path).name),
        }
        if source == "http":
            ds.attrs["input_checksums"] = json.dumps({Path(path).name: sha256sum(path)})
    else:
        raise ConfigError(
            f"firecube.source: {source!r} has no fetch route; expected sample, http or local"
        )
    return write_store(ds, out, validate=False)


def sample_firecube(settings: FirecubeSettings) -> xr.Dataset:
    """The FireCube-like sample for the config's period and grid."""
    stats = load_firecube_stats(settings.stats or BUNDLED_STATS)
    times = np.arange(
        np.datetime64(settings.start, "D"),
        np.datetime64(settings.stop, "D") + 1,
        dtype="datetime64[D]",
    )
    sample = settings.sample
    if sample.months:
        months = times.astype("datetime64[M]").astype(int) % 12 + 1
        times = times[np.isin(months, sample.months)]
        if times.size == 0:
            raise ConfigError(
                f"firecube.sample.months {sample.months}: no day of "
                f"{settings.start}..{settings.stop} falls in these months"
            )
    ds = generate_firecube(
        stats, times, ny=sample.ny, nx=sample.nx, seed=sample.seed, fire_rate=sample.fire_rate
    )
    ds.attrs.update(
        source="sample",
        source_url="eofm.data.firecube (offline generator)",
        source_version=f"FireCube-like sample, statistics {Path(stats.source).name}",
    )
    return ds


def download_firecube(out: str | Path, settings: FirecubeSettings, policy: RetryPolicy) -> Path:
    """Fetch the published cube file once; a complete earlier download is reused."""
    url = settings.url
    if not url:
        raise ConfigError("firecube.source is 'http' but firecube.url is not set")
    name = Path(urlsplit(url).path).name or "firecube"
    dest = Path(f"{out}.download") / name
    expected = settings.sha256
    if dest.is_file() and (expected is None or sha256sum(dest) == expected.lower()):
        return dest
    return download(
        url,
        dest,
        source="firecube",
        period=f"{settings.start}..{settings.stop}",
        policy=policy,
        sha256=expected,
    )


def open_firecube(path: str | Path, *, dask: bool = True) -> xr.Dataset:
    """Open a FireCube file and check it is the datacube the workflow expects.

    ``dask=False`` opens it lazily without Dask (streaming readers: a read of a few days
    touches only those days, without a task graph and its worker threads' memory).
    """
    chunks: dict | None = {} if dask else None
    p = Path(path)
    try:
        if p.is_dir():
            ds = xr.open_zarr(p, consolidated=None, chunks=chunks)
        elif p.suffix == ".zip":
            ds = xr.open_zarr(zarr.storage.ZipStore(p, mode="r"), consolidated=None, chunks=chunks)
        else:
            ds = xr.open_dataset(p, chunks=chunks)
    except Exception as err:  # every backend phrases "not my format" differently
        raise ValueError(
            f"{p}: cannot open as FireCube (expected a Zarr directory, a zipped Zarr or "
            f"NetCDF): {err}"
        ) from err
    problems = []
    for dim in ("time", "y", "x"):
        if dim not in ds.dims:
            problems.append(f"missing dimension {dim!r} (dims are {sorted(map(str, ds.dims))})")
    for name in REQUIRED_VARIABLES:
        if name not in ds.data_vars:
            problems.append(f"missing variable {name!r}")
        elif ds[name].dims != ("time", "y", "x"):
            problems.append(f"variable {name!r} has dims {ds[name].dims}, expected (time, y, x)")
    if not problems and ds.sizes["y"] > 1 and not bool(ds["y"][0] > ds["y"][-1]):
        problems.append("y (latitude) must be descending")
    if problems:
        raise ValueError(f"{p}: not a FireCube datacube: " + "; ".join(problems))
    return ds
