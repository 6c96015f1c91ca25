"""Deterministic ERA5-like sample data, so the whole workflow runs without a network.

The fields are not random noise: they follow crude but coherent physics (temperature
falling with latitude and height, hypsometric geopotential, geostrophic wind, humidity
from relative humidity times saturation, eastward-travelling synoptic waves), at ERA5
magnitudes, because pretrained backbones normalise with ERA5 statistics. The new target
variables (tp, ro, swvl1, pev) are functions of the state at the same time plus noise, so
a model that sees the atmosphere can learn them.

Every field is a function of the absolute time and the seed only, computed one time step
at a time: generating two months separately gives bit-identical arrays to generating the
period in one call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import xarray as xr

from eofm.config import Era5Settings
from eofm.data.variables import ATMOSPHERIC, STATIC, SURFACE, TARGETS, lookup

SOURCE = "sample"
SOURCE_URL = "eofm.data.sample (offline generator)"

EARTH_RADIUS = 6.371e6  # m
OMEGA = 7.292e-5  # s-1, Earth's rotation rate
GRAVITY = 9.80665  # m s-2
R_DRY = 287.05  # J kg-1 K-1
EPOCH = np.datetime64("2000-01-01T00:00:00", "ns")
TROPOPAUSE_HPA = 150.0  # above it the sample atmosphere is isothermal
TOP_TEMPERATURE = 220.0  # K at and above the tropopause
LAND_FRACTION = 0.30
MAX_OROGRAPHY = 40000.0  # m2 s-2, ~4 km
SECONDS_PER_ACCUMULATION = 6 * 3600  # targets are 6 h accumulations, as the catalogue says


_ERA5 = Era5Settings()  # the config's defaults are the grid's, so the two never disagree


@dataclass(frozen=True)
class SampleGrid:
    """Shape of the generated data: a regular global grid and pressure levels (hPa)."""

    nlat: int = _ERA5.grid.nlat
    nlon: int = _ERA5.grid.nlon
    levels: tuple[int, ...] = tuple(_ERA5.levels)  # hPa, ascending pressure
    step_hours: int = _ERA5.step_hours

    def __post_init__(self) -> None:
        if self.nlat < 2 or self.nlon < 4:
            raise ValueError(f"SampleGrid: expected nlat >= 2 and nlon >= 4, got {self}")
        levels = tuple(int(p) for p in self.levels)
        if not levels or any(p <= 0 for p in levels) or list(levels) != sorted(set(levels)):
            raise ValueError(
                f"SampleGrid: expected positive, strictly ascending pressure levels in hPa, "
                f"got {self.levels}"
            )
        object.__setattr__(self, "levels", levels)  # a YAML list becomes a hashable tuple
        if self.step_hours <= 0:
            raise ValueError(f"SampleGrid: expected step_hours > 0, got {self.step_hours}")


def grid_coords(nlat: int, nlon: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre latitudes (strictly descending) and longitudes in [0, 360) from 0."""
    dlat = 180.0 / nlat
    lat = 90.0 - dlat * (np.arange(nlat, dtype=np.float64) + 0.5)
    lon = np.arange(nlon, dtype=np.float64) * (360.0 / nlon)
    return lat, lon


def month_times(month: str, step_hours: int) -> np.ndarray:
    """All time steps of month ``"YYYY-MM"``, starting at 00 UTC on the 1st."""
    if not re.fullmatch(r"\d{4}-\d{2}", month):
        raise ValueError(f"month_times: expected a month as 'YYYY-MM', got {month!r}")
    start = np.datetime64(month, "M")
    stop = (start + 1).astype("datetime64[ns]")
    return np.arange(start.astype("datetime64[ns]"), stop, np.timedelta64(step_hours, "h"))


def generate_static(grid: SampleGrid, seed: int) -> xr.Dataset:
    """Land-sea mask, surface geopotential and soil type: the fields that never change."""
    static = _static_fields(grid, seed)
    lat, lon = grid_coords(grid.nlat, grid.nlon)
    data_vars = {
        name: (("lat", "lon"), static[name].astype(np.float32), lookup(name, "static").attrs())
        for name in STATIC
    }
    ds = xr.Dataset(data_vars, coords=_coords(lat, lon))
    ds.attrs = _dataset_attrs(seed, "eofm sample static fields (ERA5-like invariants)")
    return ds


def generate_month(month: str, grid: SampleGrid, seed: int) -> xr.Dataset:
    """One month of surface, pressure-level and target fields at ``grid.step_hours``."""
    return generate_period(month_times(month, grid.step_hours), grid, seed)


def generate_period(times: np.ndarray, grid: SampleGrid, seed: int) -> xr.Dataset:
    """Fields at the given times; each time step depends only on its timestamp and seed."""
    times = np.asarray(times)
    if times.ndim != 1 or times.size == 0 or not np.issubdtype(times.dtype, np.datetime64):
        raise ValueError(
            f"generate_period: expected a non-empty 1-D datetime64 array of times, "
            f"got dtype {times.dtype} shape {times.shape}"
        )
    times = times.astype("datetime64[ns]")
    if np.any(np.diff(times) <= np.timedelta64(0, "ns")):
        raise ValueError("generate_period: expected strictly increasing times")

    ctx = _Context(grid, seed)
    steps = [ctx.fields_at(t) for t in times]
    lat, lon = grid_coords(grid.nlat, grid.nlon)
    data_vars = {}
    for name in SURFACE:
        stacked = np.stack([s[name] for s in steps]).astype(np.float32)
        data_vars[name] = (("time", "lat", "lon"), stacked, lookup(name, "surface").attrs())
    for name in ATMOSPHERIC:
        stacked = np.stack([s[name] for s in steps]).astype(np.float32)
        attrs = lookup(name, "atmospheric").attrs()
        data_vars[name] = (("time", "level", "lat", "lon"), stacked, attrs)
    for name in TARGETS:
        stacked = np.stack([s[name] for s in steps]).astype(np.float32)
        data_vars[name] = (("time", "lat", "lon"), stacked, lookup(name, "target").attrs())
    ds = xr.Dataset(data_vars, coords=_coords(lat, lon, times=times, levels=grid.levels))
    ds.attrs = _dataset_attrs(seed, "eofm sample ERA5-like surface, pressure-level and targets")
    return ds


# --------------------------------------------------------------------------- metadata


def _coords(
    lat: np.ndarray,
    lon: np.ndarray,
    times: np.ndarray | None = None,
    levels: tuple[int, ...] | None = None,
) -> dict[str, tuple]:
    """Coordinates with the CF attributes the store contract expects."""
    coords: dict[str, tuple] = {}
    if times is not None:
        coords["time"] = ("time", times, {"standard_name": "time", "long_name": "time"})
    if levels is not None:
        level_attrs = {
            "units": "hPa",
            "standard_name": "air_pressure",
            "long_name": "pressure level",
            "positive": "down",
        }
        coords["level"] = ("level", np.asarray(levels, dtype=np.int64), level_attrs)
    coords["lat"] = (
        "lat",
        lat,
        {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude"},
    )
    coords["lon"] = (
        "lon",
        lon,
        {"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude"},
    )
    return coords


def _dataset_attrs(seed: int, title: str) -> dict[str, str | int]:
    return {
        "source": SOURCE,
        "source_url": SOURCE_URL,
        "sample_seed": int(seed),
        "Conventions": "CF-1.8",
        "title": title,
    }


# --------------------------------------------------------------------------- static fields


def _check_seed(seed: int) -> int:
    if int(seed) != seed or seed < 0:
        raise ValueError(f"sample generator: expected a non-negative integer seed, got {seed!r}")
    return int(seed)


def _fourier_params(rng: np.random.Generator, n: int, kmin: float, kmax: float) -> tuple:
    """Random plane waves on the unit sphere: a smooth field that does not depend on the grid."""
    directions = rng.normal(size=(n, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    wavenumbers = rng.uniform(kmin, kmax, size=n)
    phases = rng.uniform(0.0, 2.0 * np.pi, size=n)
    amplitudes = 1.0 / wavenumbers
    return directions * wavenumbers[:, None], phases, amplitudes


def _eval_fourier(params: tuple, lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    k, phases, amplitudes = params
    phi, lam = np.deg2rad(lat_deg), np.deg2rad(lon_deg)
    xyz = np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=-1)
    return np.cos(xyz @ k.T + phases) @ amplitudes


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values, axis=None)
    v, w = values.ravel()[order], weights.ravel()[order]
    cumulative = np.cumsum(w) / w.sum()
    return float(v[np.searchsorted(cumulative, q)])


def _static_fields(grid: SampleGrid, seed: int) -> dict[str, np.ndarray]:
    """lsm, z, slt as float64 arrays; thresholds come from a fixed reference grid so that
    continents are the same at every resolution."""
    rng = np.random.default_rng([_check_seed(seed), 0x57A71C])
    land_p = _fourier_params(rng, 32, 1.5, 4.5)
    rough_p = _fourier_params(rng, 24, 3.0, 8.0)
    soil_p = _fourier_params(rng, 16, 2.0, 6.0)

    ref_lat, ref_lon = np.meshgrid(*grid_coords(90, 180), indexing="ij")
    ref_w = np.cos(np.deg2rad(ref_lat))
    ref_land = _eval_fourier(land_p, ref_lat, ref_lon)
    coast = _weighted_quantile(ref_land, ref_w, 1.0 - LAND_FRACTION)
    peak = _weighted_quantile(ref_land, ref_w, 0.995)
    rough_scale = float(np.std(_eval_fourier(rough_p, ref_lat, ref_lon)))
    soil_scale = float(np.std(_eval_fourier(soil_p, ref_lat, ref_lon)))

    lat, lon = np.meshgrid(*grid_coords(grid.nlat, grid.nlon), indexing="ij")
    land = _eval_fourier(land_p, lat, lon)
    lsm = (land > coast).astype(np.float64)
    interior = np.clip((land - coast) / (peak - coast), 0.0, 1.0)
    rough = 0.5 + 0.5 * np.tanh(_eval_fourier(rough_p, lat, lon) / rough_scale)
    z = MAX_OROGRAPHY * interior**1.2 * (0.3 + 0.7 * rough) * lsm
    soil = 0.5 + 0.5 * np.tanh(_eval_fourier(soil_p, lat, lon) / soil_scale)
    slt = np.clip(1.0 + np.floor(7.0 * soil), 1.0, 7.0) * lsm
    return {"lsm": lsm, "z": z, "slt": slt}


# --------------------------------------------------------------------------- time-varying fields


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _qsat(temperature: np.ndarray, pressure_pa: np.ndarray | float) -> np.ndarray:
    """Saturation specific humidity (kg/kg), Clausius-Clapeyron in Bolton's form."""
    es = 611.2 * np.exp(17.67 * (temperature - 273.15) / (temperature - 29.65))
    return 0.622 * es / np.maximum(pressure_pa - 0.378 * es, 1.0)


class _Context:
    """Everything that does not depend on time, computed once per call."""

    def __init__(self, grid: SampleGrid, seed: int) -> None:
        self.grid = grid
        self.seed = _check_seed(seed)
        lat, lon = grid_coords(grid.nlat, grid.nlon)
        self.lat_deg, self.lon_deg = np.meshgrid(lat, lon, indexing="ij")
        self.phi = np.deg2rad(lat)[:, None] * np.ones((1, grid.nlon))
        self.lam = np.deg2rad(self.lon_deg)
        self.phi_1d = np.deg2rad(lat)
        self.dlam = np.deg2rad(360.0 / grid.nlon)
        hemisphere = np.where(self.phi >= 0.0, 1.0, -1.0)
        self.f = hemisphere * np.maximum(
            np.abs(2.0 * OMEGA * np.sin(self.phi)), 2.0 * OMEGA * np.sin(np.deg2rad(15.0))
        )
        self.coslat = np.cos(self.phi)
        static = _static_fields(grid, seed)
        self.lsm, self.zs = static["lsm"], static["z"]
        self.levels = np.asarray(grid.levels, dtype=np.float64)

        rng = np.random.default_rng([self.seed, 0x3A7E5])
        # synoptic waves, three per hemisphere, eastward with periods of days:
        # cos(k lam - omega t + theta) = cos(k lam) cos(omega t - theta) + sin(k lam) sin(...),
        # so the spatial parts are computed once and each step only combines them
        n = 6
        k = rng.integers(3, 9, size=n).astype(np.float64)
        self.w_omega = 2.0 * np.pi / (24.0 * rng.uniform(3.0, 8.0, size=n))  # rad per hour
        self.w_phase = rng.uniform(0.0, 2.0 * np.pi, size=n)
        self.w_amp = rng.uniform(0.5, 1.0, size=n)
        centre = rng.uniform(35.0, 60.0, size=n) * np.array([1, 1, 1, -1, -1, -1])
        width = rng.uniform(12.0, 18.0, size=n)
        envelope = np.exp(
            -(((self.lat_deg[None] - centre[:, None, None]) / width[:, None, None]) ** 2)
        )
        self.w_cos = envelope * np.cos(k[:, None, None] * self.lam[None])
        self.w_sin = envelope * np.sin(k[:, None, None] * self.lam[None])
        self.w_sign = np.sign(centre)
        # slower, broader moisture anomalies that also reach the tropics
        m = 4
        mk = rng.integers(1, 6, size=m).astype(np.float64)
        ml = rng.uniform(1.0, 4.0, size=m)
        self.m_omega = 2.0 * np.pi / (24.0 * rng.uniform(4.0, 12.0, size=m))
        m_phase = rng.uniform(0.0, 2.0 * np.pi, size=m)
        spatial = mk[:, None, None] * self.lam[None] + ml[:, None, None] * self.phi[None]
        self.m_cos = np.cos(spatial + m_phase[:, None, None])
        self.m_sin = np.sin(spatial + m_phase[:, None, None])

    # -- column structure -------------------------------------------------------------

    def _temperature(self, t0: np.ndarray, p_hpa: float) -> np.ndarray:
        """Linear in log-pressure from the 1000 hPa value up to an isothermal tropopause."""
        frac = np.log(p_hpa / TROPOPAUSE_HPA) / np.log(1000.0 / TROPOPAUSE_HPA)
        return TOP_TEMPERATURE + (t0 - TOP_TEMPERATURE) * max(frac, 0.0)

    def _geopotential(self, z1000: np.ndarray, t0: np.ndarray, p_hpa: float) -> np.ndarray:
        """Hypsometric equation, integrated exactly for the profile of ``_temperature``."""
        s, s_top, s_1000 = np.log(p_hpa), np.log(TROPOPAUSE_HPA), np.log(1000.0)
        depth = s_1000 - s_top
        if s >= s_top:
            integral = TOP_TEMPERATURE * (s_1000 - s) + (t0 - TOP_TEMPERATURE) * (
                depth**2 - (s - s_top) ** 2
            ) / (2.0 * depth)
        else:
            integral = TOP_TEMPERATURE * (s_1000 - s) + (t0 - TOP_TEMPERATURE) * depth / 2.0
        return z1000 + R_DRY * integral

    def _geostrophic(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Geostrophic wind from geopotential, with |f| held at its 15 degree value nearer the
        equator so that the tropics do not blow up."""
        dz_dlam = (np.roll(z, -1, axis=-1) - np.roll(z, 1, axis=-1)) / (2.0 * self.dlam)
        dz_dphi = np.gradient(z, self.phi_1d, axis=-2)
        u = -dz_dphi / (self.f * EARTH_RADIUS)
        v = dz_dlam / (self.f * EARTH_RADIUS * self.coslat)
        return u, v

    @staticmethod
    def _relative_humidity(rh_surface: np.ndarray, p_hpa: float) -> np.ndarray:
        return 0.2 + (rh_surface - 0.2) * (0.6 + 0.4 * p_hpa / 1000.0)

    # -- one time step -----------------------------------------------------------------

    def fields_at(self, t: np.datetime64) -> dict[str, np.ndarray]:
        """Every variable at one timestamp, float64."""
        hours = float((t - EPOCH) / np.timedelta64(1, "h"))
        days = hours / 24.0
        declination = np.deg2rad(23.44) * np.sin(2.0 * np.pi * (days - 79.0) / 365.2422)
        season = np.sin(declination) / np.sin(np.deg2rad(23.44))  # +1 at NH summer solstice
        local_hour = np.mod(hours + self.lon_deg / 15.0, 24.0)
        hour_angle = 2.0 * np.pi * (local_hour - 12.0) / 24.0
        cos_zenith = np.sin(self.phi) * np.sin(declination) + self.coslat * np.cos(
            declination
        ) * np.cos(hour_angle)
        daylight = np.maximum(cos_zenith, 0.0)
        lsm, phi_deg = self.lsm, self.lat_deg

        # synoptic waves: pressure anomaly (wave) and the warm sector a quarter wave ahead
        amp = self.w_amp * (1.0 - 0.3 * season * self.w_sign)  # stronger in winter
        wave = np.zeros_like(self.phi)
        wave_t = np.zeros_like(self.phi)
        for i in range(len(amp)):  # a fixed-order sum keeps every step bit-reproducible
            alpha = self.w_omega[i] * hours - self.w_phase[i]
            c, s = amp[i] * np.cos(alpha), amp[i] * np.sin(alpha)
            wave += c * self.w_cos[i] + s * self.w_sin[i]
            wave_t += c * self.w_sin[i] - s * self.w_cos[i]
        moist = np.zeros_like(self.phi)
        for i in range(len(self.m_omega)):
            beta = self.m_omega[i] * hours
            moist += (np.cos(beta) * self.m_cos[i] + np.sin(beta) * self.m_sin[i]) / len(
                self.m_omega
            )

        # temperature at 1000 hPa (sea-level reference) and at 2 m
        sin_phi = np.sin(self.phi)
        t0 = (
            254.0
            + 46.0 * self.coslat**2
            + 12.0 * season * sin_phi * (0.4 + 0.6 * lsm)
            + 3.0 * wave_t
        )
        diurnal = (1.0 + 5.0 * lsm) * self.coslat * np.cos(2.0 * np.pi * (local_hour - 15.0) / 24.0)
        t_column = t0 + 0.3 * diurnal
        t2m = t0 + diurnal - 0.0065 * self.zs / GRAVITY

        # mean sea level pressure: ITCZ trough, subtropical highs, subpolar lows, waves
        msl = (
            101325.0
            + 700.0 * np.cos(2.0 * np.pi * (np.abs(phi_deg) - 30.0) / 60.0)
            - 600.0 * season * np.sign(phi_deg) * lsm
            - 1500.0 * wave
        )
        z1000 = R_DRY * t_column * np.log(msl / 100000.0)

        # relative humidity: moist ITCZ following the sun, dry subtropics, moist lows
        itcz = 8.0 * season
        rh_base = (
            0.55
            + 0.30 * np.exp(-(((phi_deg - itcz) / 10.0) ** 2))
            - 0.25 * np.exp(-(((np.abs(phi_deg) - 25.0) / 9.0) ** 2))
            + 0.10 * np.exp(-(((np.abs(phi_deg) - 55.0) / 12.0) ** 2))
            - 0.05 * lsm
        )
        rh_surface = 0.2 + 0.75 * _sigmoid(6.0 * (rh_base + 0.25 * wave + 0.15 * moist - 0.55))

        out: dict[str, np.ndarray] = {}
        nlev = len(self.levels)
        shape = (nlev, *self.phi.shape)
        z_lev, t_lev, q_lev = np.empty(shape), np.empty(shape), np.empty(shape)
        for i, p in enumerate(self.levels):
            t_lev[i] = self._temperature(t_column, p)
            z_lev[i] = self._geopotential(z1000, t_column, p)
            rh = self._relative_humidity(rh_surface, p)
            q_lev[i] = rh * _qsat(t_lev[i], p * 100.0)
        u_lev, v_lev = self._geostrophic(z_lev)
        out.update(z=z_lev, u=u_lev, v=v_lev, t=t_lev, q=q_lev)

        u1000, v1000 = self._geostrophic(z1000)
        out.update({"2t": t2m, "10u": 0.7 * u1000, "10v": 0.7 * v1000, "msl": msl})

        # diagnostics at fixed levels for the targets, whatever levels the grid has
        t850 = self._temperature(t_column, 850.0)
        rh850 = self._relative_humidity(rh_surface, 850.0)
        q850 = rh850 * _qsat(t850, 85000.0)
        rh1000 = self._relative_humidity(rh_surface, 1000.0)
        q1000 = rh1000 * _qsat(t_column, 100000.0)
        out.update(self._targets(t2m, msl, q850, rh850, q1000, rh1000, t_column, out, daylight, t))
        return out

    def _targets(
        self,
        t2m: np.ndarray,
        msl: np.ndarray,
        q850: np.ndarray,
        rh850: np.ndarray,
        q1000: np.ndarray,
        rh1000: np.ndarray,
        t1000: np.ndarray,
        state: dict[str, np.ndarray],
        daylight: np.ndarray,
        t: np.datetime64,
    ) -> dict[str, np.ndarray]:
        """tp, ro, swvl1, pev: deterministic functions of the state times seeded noise."""
        lsm = self.lsm
        stamp = int(t.astype("datetime64[s]").astype(np.int64)) + 2**40
        noise = np.random.default_rng([self.seed, stamp, 0x7A26]).standard_normal((4, *lsm.shape))

        uplift = np.clip((101325.0 - msl) / 1000.0, 0.0, 4.0)
        tp_clean = 1.5 * q850 * np.maximum(rh850 - 0.6, 0.0) ** 1.5 * (1.0 + uplift)
        tp = np.maximum(tp_clean * (1.0 + 0.2 * noise[0]), 0.0)

        wetness = _sigmoid(8.0 * (rh1000 - 0.6) - 0.08 * (t1000 - 285.0))
        swvl1_clean = 0.05 + 0.40 * wetness
        swvl1 = np.clip(swvl1_clean + 0.02 * noise[1], 0.05, 0.45) * lsm

        saturation = np.clip((swvl1_clean - 0.25) / 0.20, 0.0, 1.0) ** 2
        ro = np.maximum(tp_clean * saturation * (1.0 + 0.2 * noise[2]), 0.0) * lsm

        wind = np.sqrt(state["10u"] ** 2 + state["10v"] ** 2 + 1.0)
        deficit = np.maximum(_qsat(t2m, msl) - q1000, 0.0)
        bulk = 1.2 * 1.1e-3 * SECONDS_PER_ACCUMULATION / 1000.0  # rho C_E dt / rho_water
        evaporation = bulk * wind * deficit * (1.0 + 1.5 * lsm * daylight)
        pev = -np.maximum(evaporation * (1.0 + 0.15 * noise[3]), 0.0)
        return {"tp": tp, "ro": ro, "swvl1": swvl1, "pev": pev}
